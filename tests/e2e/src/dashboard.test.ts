import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePng } from "./media.ts";
import { signUpAdmin, useStack } from "./stack.ts";

/*
 * The dashboard (apps/dashboard, built by `npm test`'s bootstrap) in Debian's chromium, driven as a
 * person would, against the whole stack. CUTROOM_SCREENSHOTS=1 also saves each page to
 * docs/screenshots/ for the README (only then: the committed images are not rewritten by every run).
 */
// The callbacks given to $eval and waitForFunction run in the page; this package has no DOM types.
declare const document: any;
declare const window: any;
declare const MutationObserver: any;

const CHROMIUM = "/usr/bin/chromium";
const skip = process.env.CUTROOM_BROWSER_SKIP ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (Debian: apt-get install -y chromium)`);
if (skip) console.warn(`dashboard browser test skipped: ${skip}`);
const screenshots = process.env.CUTROOM_SCREENSHOTS ? join(import.meta.dirname, "..", "..", "..", "docs", "screenshots") : undefined;

const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"] });
let browser: Browser;

beforeAll(async () => {
  if (skip) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  });
});
afterAll(async () => browser?.close());

/** A fresh browser profile whose console errors (a CSP refusal, a failed script) are collected. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 820 } });
  const page = await context.newPage();
  const problems: string[] = [];
  // Chromium's console says only "Failed to load resource": the answers name the URL.
  page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && problems.push(m.text()));
  page.on("pageerror", (err) => problems.push(err.message));
  return { page, problems };
}

async function shot(page: Page, name: string) {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

async function signIn(page: Page, email: string, password: string) {
  await page.goto(`${ctx.stack.url}/dashboard/`);
  // Without a session every page leads to the sign-in form.
  await page.waitForURL("**/dashboard/sign-in");
  await page.fill("#email", email);
  await page.fill("#password", password);
  await shot(page, "sign-in");
  await page.click("button[type=submit]");
  await page.waitForSelector("header nav");
}

describe.skipIf(skip)("the dashboard in a browser", () => {
  it("signs in, uploads a PNG with progress, runs image.thumbnail from its generated form, follows it live to succeeded and previews the output", async () => {
    const user = await ctx.api.signUp();
    const { page, problems } = await openPage();
    await signIn(page, user.email, user.password);

    await page.click("header nav >> text=Upload");
    await page.setInputFiles("#file", { name: "photo.png", mimeType: "image/png", buffer: Buffer.from(await makePng(640, 480)) });
    await page.click("button[type=submit]");
    await page.waitForSelector("#uploaded");
    expect(await page.$eval("#upload-progress", (p: any) => p.value)).toBe(1);
    expect(await page.textContent("#uploaded")).toContain("photo.png");
    await shot(page, "upload");

    // The upload's link carries the file to the form, where it is preselected.
    await page.click("#uploaded a");
    await page.waitForURL("**/dashboard/new?file_id=*");
    await page.waitForSelector("#job-type option[value='image.thumbnail']", { state: "attached" });
    // Every frame of the new type's form shows its own defaults: the heights the page rendered are recorded
    // as the DOM changes (a render with the last type's values, fixed later, once failed this test).
    await page.evaluate(() => {
      const seen: string[] = [];
      window.heightsSeen = seen;
      new MutationObserver(() => {
        const height = document.querySelector("#field-height");
        if (height) seen.push(height.value);
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await page.selectOption("#job-type", "image.thumbnail");
    await page.waitForSelector("#field-width");
    expect([...new Set(await page.evaluate(() => window.heightsSeen as string[]))]).toEqual(["256"]);
    const fileId = new URL(page.url()).searchParams.get("file_id");
    expect(await page.inputValue("#field-file_id")).toBe(fileId);
    // Fields and defaults come from the type's input JSON Schema.
    expect(await page.inputValue("#field-height")).toBe("256");
    expect(await page.$$eval("#field-format option", (os: any[]) => os.map((o) => o.value))).toEqual(["jpeg", "png", "webp", "avif"]);
    await page.fill("#field-width", "128");
    await page.fill("#field-height", "96");
    await page.selectOption("#field-format", "png");
    await shot(page, "new-job");
    await page.click("button[type=submit]");

    await page.waitForURL("**/dashboard/jobs/*");
    await page.waitForFunction(() => document.querySelector("#job-status")?.textContent === "succeeded", undefined, { timeout: 60_000 });
    expect(await page.$eval("#job-progress", (p: any) => p.value)).toBe(100);
    // What the page showed came over the job's WebSocket: its events from the first, ending with the result
    // (a quick job's progress and stage events may be folded into its end), and the stages it went through.
    const events = await page.$$eval("#job-events li", (lis: any[]) => lis.map((li) => li.textContent ?? ""));
    expect(events.join(" | ")).toMatch(/^#1 queued \| .*running.* \| #\d+ succeeded$/);
    expect(await page.textContent(".stages")).toMatch(/fetch\s*done.*process\s*done.*upload\s*done/s);

    const image = await page.waitForFunction(
      () => {
        const img = document.querySelector(".preview img");
        return img?.complete && img.naturalWidth > 0 ? { width: img.naturalWidth, height: img.naturalHeight } : null;
      },
      undefined,
      { timeout: 20_000 },
    );
    expect(await image.jsonValue()).toEqual({ width: 128, height: 96 });
    await shot(page, "job");

    await page.click("header nav >> text=Jobs");
    await page.waitForSelector("#jobs tbody tr");
    expect(await page.textContent("#jobs tbody")).toContain("image.thumbnail");
    await shot(page, "jobs");
    expect(problems).toEqual([]);
  });

  it("approves a pipeline's images at its gate, and the run goes on", async () => {
    const user = await ctx.api.signUp();
    const run = await ctx.api.post("/pipelines", { type: "storyboard", input: { prompt: "a lighthouse at dawn", num_images: 2, video_prompt: "waves roll in", duration: 2 } }, user.token);
    expect(run.status).toBe(202);
    const { page, problems } = await openPage();
    await signIn(page, user.email, user.password);
    await page.click(`text=storyboard`);
    await page.waitForURL(`**/dashboard/pipelines/${run.body.id}`);

    // Live: the page moves to the gate by itself, showing the images stage's outputs, all chosen.
    await page.waitForSelector("text=Approve: approve_images", { timeout: 90_000 });
    await page.waitForFunction(() => [...document.querySelectorAll(".pick img")].filter((i: any) => i.complete && i.naturalWidth > 0).length === 2, undefined, { timeout: 20_000 });
    await page.click(".pick:first-child input[type=checkbox]");
    await shot(page, "pipeline-gate");
    await page.click("text=Approve 1 output(s)");

    await page.waitForFunction(() => document.querySelector("section h2")?.textContent?.startsWith("Approve") !== true, undefined, { timeout: 20_000 });
    const stored = (await ctx.api.get(`/pipelines/${run.body.id}`, user.token)).body;
    const gate = stored.stages.find((s: { name: string }) => s.name === "approve_images");
    expect(gate.status).toBe("succeeded");
    expect(gate.approved_file_ids).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  it("shows an admin the stats, users, worker queues and every service's health", async () => {
    const admin = await signUpAdmin(ctx, "dashboard-admin@e2e.cutroom.test");
    const { page, problems } = await openPage();
    await signIn(page, admin.email, admin.password);
    await page.click("header nav >> text=Admin");
    await page.waitForSelector("#admin-stats");
    await page.waitForSelector("#users tbody tr");
    expect(await page.textContent("#users")).toContain(admin.email);
    expect(await page.textContent("#workers")).toContain("worker-image");
    expect(await page.textContent("#health")).toContain("job");
    await shot(page, "admin");
    // /health answers 503 while some worker kinds are not running (this stack has no video or audio workers): the page shows it.
    // GET /admin/queues may not exist on this server yet (404): the page shows the workers' load alone.
    expect(problems.filter((p) => !p.endsWith("/health") && !p.endsWith("/api/v1/admin/queues"))).toEqual([]);
  });
});
