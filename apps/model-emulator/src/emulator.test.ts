import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@cutroom/runtime";
import { probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import type { FastifyInstance } from "fastify";
import Replicate, { parseProgressFromLogs, validateWebhook, type Prediction } from "replicate";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "./app.ts";

const SECRET = "whsec_dGVzdC1zZWNyZXQtb2YtdGhlLWVtdWxhdG9y";
const log = createLogger("model-emulator-test", process.env.TEST_LOG_LEVEL ?? "silent");

let dir: string;
let app: FastifyInstance;
let baseUrl: string;
let replicate: Replicate;

beforeAll(async () => {
  dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "model-emulator-"));
  app = await buildApp({ log, dir: join(dir, "outputs"), webhookSecret: SECRET, pace: { normalMs: 400, slowMs: 30_000 } });
  await app.listen({ port: 0, host: "127.0.0.1" });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  replicate = new Replicate({ auth: "r8_any", baseUrl: `${baseUrl}/v1`, useFileOutput: false });
});
afterAll(async () => {
  await app?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs a model to the end through the client, polling, and keeps every state the client saw. */
async function run(model: string, input: Record<string, unknown>) {
  const seen: Prediction[] = [];
  const output: unknown = await replicate.run(model as `${string}/${string}`, { input, wait: { mode: "poll", interval: 100 } }, (p) => seen.push(structuredClone(p)));
  return { output, seen, final: seen.at(-1)! };
}

const download = async (url: string) => {
  expect(url.startsWith(`${baseUrl}/files/`)).toBe(true);
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
};
const saved = async (url: string, name: string) => {
  const path = join(dir, name);
  await writeFile(path, await download(url));
  return path;
};
const dataUri = (bytes: Buffer, type: string) => `data:${type};base64,${bytes.toString("base64")}`;
const videoInfo = async (path: string) => {
  const info = await probe(path);
  const video = info.streams.find((s) => s.type === "video")!;
  return { duration: info.duration!, width: video.width!, height: video.height!, codec: video.codec };
};
/** The RGB of one pixel of the frame at `atSec`. */
async function pixel(video: string, atSec: number, x: number, y: number): Promise<[number, number, number]> {
  const frame = join(dir, `frame-${Date.now()}-${Math.random()}.png`);
  await runFfmpeg((cmd) => cmd.input(video).inputOptions(["-ss", String(atSec)]).outputOptions(["-frames:v", "1"]).output(frame));
  const { data, info } = await sharp(frame).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 3;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

describe("the default models, through the replicate client", () => {
  it("flux-schnell: num_outputs pictures of the aspect ratio asked, with progress in the logs and predict_time", async () => {
    const { output, seen, final } = await run("black-forest-labs/flux-schnell", { prompt: "a red fox in the snow", aspect_ratio: "16:9", num_outputs: 2 });
    expect(output).toHaveLength(2);
    for (const url of output as string[]) expect(await sharp(await download(url)).metadata()).toMatchObject({ width: 1344, height: 768, format: "webp" });
    expect(seen.map((p) => p.status)).toContain("processing");
    const progress = seen.map((p) => parseProgressFromLogs(p)?.percentage).filter((v) => v !== undefined);
    expect(progress.some((p) => p > 0 && p < 1)).toBe(true);
    expect(progress.at(-1)).toBe(1);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    expect(final.status).toBe("succeeded");
    expect(final.metrics?.predict_time).toBeGreaterThan(0.3);
  });

  it("flux-dev: starts from an input image and honours aspect ratio and format", async () => {
    const start = await sharp({ create: { width: 300, height: 300, channels: 3, background: "#1040c0" } }).png().toBuffer();
    const { output } = await run("black-forest-labs/flux-dev", { prompt: "a blue square", aspect_ratio: "9:16", output_format: "png", image: dataUri(start, "image/png") });
    const picture = sharp(await download((output as string[])[0]!));
    expect(await picture.metadata()).toMatchObject({ width: 768, height: 1344, format: "png" });
    const { dominant } = await picture.stats();
    expect(dominant.b).toBeGreaterThan(dominant.r);
  });

  it("sdxl by its version id: a PNG of the width and height asked, the same bytes for the same input", async () => {
    const model = "stability-ai/sdxl:7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc";
    const input = { prompt: "a lighthouse", width: 640, height: 384, seed: 7 };
    const first = await run(model, input);
    expect(first.final.version).toBe("7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc");
    const bytes = await download((first.output as string[])[0]!);
    expect(await sharp(bytes).metadata()).toMatchObject({ width: 640, height: 384, format: "png" });
    const again = await run(model, input);
    expect((again.output as string[])[0]).not.toBe((first.output as string[])[0]);
    expect(await download((again.output as string[])[0]!)).toEqual(bytes);
  });

  it("wan t2v 480p: an H.264 mp4 of the duration and aspect asked", async () => {
    const { output } = await run("wavespeedai/wan-2.1-t2v-480p", { prompt: "a boat at sea", aspect_ratio: "9:16", duration: 3 });
    const info = await videoInfo(await saved(output as string, "wan-480.mp4"));
    expect(info).toMatchObject({ width: 480, height: 832, codec: "h264" });
    expect(info.duration).toBeCloseTo(3, 1);
  });

  it("wan t2v 720p: 81 frames at 16 fps by default, 16:9; and one frame when num_frames is 1", async () => {
    const { output } = await run("wavespeedai/wan-2.1-t2v-720p", { prompt: "city lights" });
    const info = await videoInfo(await saved(output as string, "wan-720.mp4"));
    expect(info).toMatchObject({ width: 1280, height: 720 });
    expect(info.duration).toBeCloseTo(81 / 16, 1);
    const still = await run("wavespeedai/wan-2.1-t2v-480p", { prompt: "a single frame", num_frames: 1 });
    const frames = await probe(await saved(still.output as string, "wan-still.mp4"));
    expect(frames.duration).toBeLessThan(0.1);
  }, 60_000);

  it("wan i2v: the video starts from the input image, in its orientation", async () => {
    const red = await sharp({ create: { width: 300, height: 500, channels: 3, background: "#d01010" } }).png().toBuffer();
    const { output } = await run("wavespeedai/wan-2.1-i2v-480p", { prompt: "it comes alive", image: dataUri(red, "image/png"), num_frames: 32 });
    const video = await saved(output as string, "i2v.mp4");
    expect(await videoInfo(video)).toMatchObject({ width: 480, height: 832 });
    const [r, g, b] = await pixel(video, 0, 240, 200);
    expect(r).toBeGreaterThan(150);
    expect(g + b).toBeLessThan(120);
  });

  it("remove-bg: a PNG with alpha, the plain background transparent and the subject opaque", async () => {
    const photo = await sharp({ create: { width: 200, height: 150, channels: 3, background: "#f4f4f4" } })
      .composite([{ input: await sharp({ create: { width: 80, height: 60, channels: 3, background: "#2050d0" } }).png().toBuffer(), left: 60, top: 45 }])
      .jpeg()
      .toBuffer();
    const { output } = await run("lucataco/remove-bg:95fcc2a26d3899cd6c2691c900465aaeff466285a65c14638cc5f36f34befaf1", { image: dataUri(photo, "image/jpeg") });
    const png = await download(output as string);
    expect(await sharp(png).metadata()).toMatchObject({ format: "png", width: 200, height: 150, hasAlpha: true, channels: 4 });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const alpha = (x: number, y: number) => data[(y * 200 + x) * 4 + 3]!;
    expect(alpha(5, 5)).toBe(0);
    expect(alpha(100, 75)).toBe(255);
  });

  it("sam-2-video: a mask video of the input's size and length, white where the click is and black in the corner; frames and greenscreen too", async () => {
    const source = join(dir, "source.mp4");
    await runFfmpeg((cmd) => cmd.input("testsrc2=size=320x240:rate=25:duration=2").inputFormat("lavfi").outputOptions(["-c:v", "libx264", "-pix_fmt", "yuv420p"]).output(source));
    const input_video = dataUri(await readFile(source), "video/mp4");
    const model = "meta/sam-2-video";
    const { output } = await run(model, { input_video, click_coordinates: "[100,80]", output_video: true, video_fps: 25 });
    expect(output).toHaveLength(1);
    const mask = await saved((output as string[])[0]!, "mask.mp4");
    const info = await videoInfo(mask);
    expect(info).toMatchObject({ width: 320, height: 240, codec: "h264" });
    expect(info.duration).toBeCloseTo(2, 1);
    expect(Math.min(...(await pixel(mask, 0, 100, 80)))).toBeGreaterThan(200);
    expect(Math.max(...(await pixel(mask, 0, 3, 236)))).toBeLessThan(40);

    const frames = await run(model, { input_video, click_coordinates: "[100,80]", output_format: "png", output_frame_interval: 10 });
    expect(frames.output).toHaveLength(5);
    expect(await sharp(await download((frames.output as string[])[0]!)).metadata()).toMatchObject({ format: "png", width: 320, height: 240 });

    const green = await run(model, { input_video, output_video: true, mask_type: "greenscreen" });
    const [r, g, b] = await pixel(await saved((green.output as string[])[0]!, "green.mp4"), 0.5, 3, 3);
    expect(g).toBeGreaterThan(180);
    expect(r + b).toBeLessThan(120);

    const tinted = await run(model, { input_video, click_coordinates: "[100,80]", output_video: true, mask_type: "highlighted" });
    const [tr, , tb] = await pixel(await saved((tinted.output as string[])[0]!, "tinted.mp4"), 0, 100, 80);
    expect(tr).toBeGreaterThan(tb + 40);
  }, 60_000);

  it("kokoro-82m: a WAV whose length grows with the text", async () => {
    const say = async (text: string) => {
      const { output } = await run("jaaari/kokoro-82m", { text, voice: "af_bella" });
      const info = await probe(await saved(output as string, `speech-${text.length}.wav`));
      expect(info.streams[0]).toMatchObject({ type: "audio", sample_rate: 24_000, channels: 1 });
      return info.duration!;
    };
    const short = await say("Hello there.");
    const long = await say("Hello there. This sentence is much longer, so that saying it takes a good deal more time than the first one did.");
    expect(short).toBeGreaterThan(0.3);
    expect(long).toBeGreaterThan(short * 2);
  });

  it("llama 3 8b and 70b: a list of string tokens, JSON when asked, token counts in the metrics", async () => {
    const plain = await run("meta/meta-llama-3-8b-instruct", { prompt: 'Improve this prompt: "a cat on a roof"', max_tokens: 64 });
    const tokens = plain.output as string[];
    expect(tokens.length).toBeGreaterThan(5);
    for (const t of tokens) expect(typeof t).toBe("string");
    expect(tokens.join("")).toMatch(/^a cat on a roof, /);
    expect(plain.final.metrics).toMatchObject({ output_token_count: tokens.length, input_token_count: expect.any(Number) });

    const json = await run("meta/meta-llama-3-70b-instruct", {
      prompt: 'Plan 3 scenes for a music video about summer love. Answer with JSON only: [{"sequence": 1, "prompt": "...", "duration": 4}]',
    });
    const scenes = JSON.parse((json.output as string[]).join("")) as Array<{ sequence: number; prompt: string; duration: number }>;
    expect(scenes.map((s) => s.sequence)).toEqual([1, 2, 3]);
    expect(scenes[0]!.prompt).toContain("summer love");
  });

  it("auto-rig: a GLB skinned to a skeleton and its JSON, fitted to the OBJ", async () => {
    const cube = ["v 0 0 0", "v 1 0 0", "v 0 2 0", "v 1 2 0", "v 0 0 1", "v 1 0 1", "v 0 2 1", "v 1 2 1", "f 1 2 4 3", "f 5 6 8 7", "f 1 2 6 5", "f 3 4 8 7"].join("\n");
    const { output } = await run("cutroom/auto-rig", { model_file: dataUri(Buffer.from(cube), "text/plain"), rig_type: "Quadruped", ik_fk: 75 });
    const { rigged_model, skeleton } = output as { rigged_model: string; skeleton: string };
    const glb = await download(rigged_model);
    expect(glb.subarray(0, 4).toString("latin1")).toBe("glTF");
    expect(glb.readUInt32LE(4)).toBe(2);
    expect(glb.readUInt32LE(8)).toBe(glb.length);
    const gltf = JSON.parse(glb.subarray(20, 20 + glb.readUInt32LE(12)).toString()) as { skins: Array<{ joints: number[] }>; accessors: Array<{ count: number }> };
    const rig = JSON.parse((await download(skeleton)).toString()) as { rig_type: string; ik_fk_blend: number; joints: Array<{ name: string; position: number[] }> };
    expect(rig).toMatchObject({ rig_type: "Quadruped", ik_fk_blend: 0.75 });
    expect(gltf.skins[0]!.joints).toHaveLength(rig.joints.length);
    expect(gltf.accessors[0]!.count).toBe(8);
    for (const j of rig.joints) {
      expect(j.position[1]).toBeGreaterThanOrEqual(0);
      expect(j.position[1]).toBeLessThanOrEqual(2);
    }
  });
});

describe("the API around predictions", () => {
  it("cancels a slow prediction, which then stays canceled", async () => {
    const p = await replicate.predictions.create({ model: "black-forest-labs/flux-schnell", input: { prompt: "take your time [emulator:slow]" } });
    let current = p;
    while (!parseProgressFromLogs(current)) {
      await new Promise((r) => setTimeout(r, 100));
      current = await replicate.predictions.get(p.id);
    }
    expect(current.status).toBe("processing");
    const canceled = await replicate.predictions.cancel(p.id);
    expect(canceled.status).toBe("canceled");
    await new Promise((r) => setTimeout(r, 1500));
    expect(await replicate.predictions.get(p.id)).toMatchObject({ status: "canceled", output: null });
  });

  it("fails a prediction whose prompt asks for it, with an error the client reports", async () => {
    await expect(run("meta/meta-llama-3-8b-instruct", { prompt: "please [emulator:fail]" })).rejects.toThrow(/Prediction failed: emulated failure/);
    const [latest] = (await replicate.predictions.list()).results;
    expect(latest).toMatchObject({ status: "failed", error: expect.stringContaining("[emulator:fail]") });
  });

  it("holds the reply for Prefer: wait until the prediction is done", async () => {
    const p = await replicate.predictions.create({ model: "meta/meta-llama-3-8b-instruct", input: { prompt: "hi" }, wait: true });
    expect(p.status).toBe("succeeded");
    expect(Array.isArray(p.output)).toBe(true);
  });

  it("answers 401 without a token, 404 for a model it does not know, 422 for an invalid input", async () => {
    const anonymous = new Replicate({ auth: "", baseUrl: `${baseUrl}/v1` });
    await expect(anonymous.predictions.list()).rejects.toMatchObject({ response: { status: 401 } });
    await expect(run("nobody/no-such-model", { prompt: "x" })).rejects.toMatchObject({ response: { status: 404 } });
    await expect(replicate.models.get("nobody", "no-such-model")).rejects.toMatchObject({ response: { status: 404 } });
    const refused = run("black-forest-labs/flux-schnell", { prompt: "x", num_outputs: 9 });
    // The client puts the answer's body in its error's message.
    await expect(refused).rejects.toMatchObject({ response: { status: 422 }, message: expect.stringMatching(/Input validation failed.*input\.num_outputs/) });
    await expect(replicate.predictions.create({ version: "0".repeat(64), input: {} })).rejects.toMatchObject({ response: { status: 422 } });
  });

  it("describes its models as the client reads them, with the input schema", async () => {
    const model = await replicate.models.get("wavespeedai", "wan-2.1-t2v-480p");
    expect(model).toMatchObject({ owner: "wavespeedai", name: "wan-2.1-t2v-480p", latest_version: { id: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    const input = (model.latest_version!.openapi_schema as { components: { schemas: { Input: { properties: Record<string, unknown> } } } }).components.schemas.Input;
    expect(Object.keys(input.properties)).toEqual(expect.arrayContaining(["prompt", "aspect_ratio", "num_frames", "frames_per_second"]));
  });
});

describe("webhooks", () => {
  const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const receiver = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    received.push({ headers: req.headers, body });
    res.writeHead(204).end();
  });
  let hook: string;
  beforeAll(async () => {
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => void receiver.close());

  const eventsFor = async (id: string, until: (p: Prediction) => boolean) => {
    for (let i = 0; i < 100; i++) {
      const mine = received.filter((r) => (JSON.parse(r.body) as Prediction).id === id);
      if (mine.some((r) => until(JSON.parse(r.body) as Prediction))) return mine;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no final webhook for ${id}`);
  };
  const done = (p: Prediction) => ["succeeded", "failed", "canceled"].includes(p.status);

  it("sends only the events of the filter, signed with the secret the API hands out", async () => {
    const { key } = await replicate.webhooks.default.secret.get();
    expect(key).toBe(SECRET);
    const p = await replicate.predictions.create({ model: "meta/meta-llama-3-8b-instruct", input: { prompt: "hello" }, webhook: hook, webhook_events_filter: ["start", "completed"] });
    const mine = await eventsFor(p.id, done);
    expect(mine.map((r) => (JSON.parse(r.body) as Prediction).status)).toEqual(["starting", "succeeded"]);
    const signed = (r: { headers: IncomingHttpHeaders; body: string }, body = r.body) =>
      validateWebhook({ id: String(r.headers["webhook-id"]), timestamp: String(r.headers["webhook-timestamp"]), signature: String(r.headers["webhook-signature"]), body, secret: key });
    for (const r of mine) expect(await signed(r)).toBe(true);
    expect(await signed(mine[1]!, mine[1]!.body.replace("hello", "HELLO"))).toBe(false);
    expect(mine[0]!.headers["webhook-id"]).not.toBe(mine[1]!.headers["webhook-id"]);
  });

  it("sends logs and output as they come without a filter, and the canceled end of a canceled prediction", async () => {
    const p = await replicate.predictions.create({ model: "meta/meta-llama-3-8b-instruct", input: { prompt: "tell me more" }, webhook: hook });
    const all = (await eventsFor(p.id, done)).map((r) => JSON.parse(r.body) as Prediction);
    expect(all[0]!.status).toBe("starting");
    expect(all.filter((e) => e.status === "processing").length).toBeGreaterThanOrEqual(3);
    expect(all.at(-1)).toMatchObject({ status: "succeeded", output: expect.any(Array) });
    // The output event, then the completed one, both with the output.
    expect(all.filter((e) => e.status === "succeeded")).toHaveLength(2);

    const slow = await replicate.predictions.create({ model: "meta/meta-llama-3-8b-instruct", input: { prompt: "slowly [emulator:slow]" }, webhook: hook, webhook_events_filter: ["completed"] });
    await replicate.predictions.cancel(slow.id);
    const ends = (await eventsFor(slow.id, done)).map((r) => JSON.parse(r.body) as Prediction);
    expect(ends.map((e) => e.status)).toEqual(["canceled"]);
  });
});

describe("listing", () => {
  let small: FastifyInstance;
  beforeAll(async () => {
    small = await buildApp({ log, dir: join(dir, "list-outputs"), webhookSecret: SECRET, pageSize: 3, pace: { normalMs: 50, slowMs: 1000 } });
    await small.listen({ port: 0, host: "127.0.0.1" });
  });
  afterAll(() => small?.close());

  it("pages through every prediction, newest first, by cursor", async () => {
    const client = new Replicate({ auth: "r8_any", baseUrl: `http://127.0.0.1:${(small.server.address() as AddressInfo).port}/v1`, useFileOutput: false });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await client.predictions.create({ model: "meta/meta-llama-3-8b-instruct", input: { prompt: `n${i}` } })).id);
    const pages: string[][] = [];
    for await (const page of client.paginate(() => client.predictions.list())) pages.push(page.map((p) => p.id));
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(ids.reverse());
  });
});

it("boots from src/server.ts with its env and tells the parent it is ready over IPC", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: join(import.meta.dirname, ".."),
    env: { ...process.env, MODEL_EMULATOR_PORT: "0", MODEL_EMULATOR_HOST: "127.0.0.1", MODEL_EMULATOR_DIR: join(dir, "server"), LOG_LEVEL: "silent" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  try {
    const [message] = (await once(child, "message")) as [{ type: string; url: string }];
    expect(message).toMatchObject({ type: "ready", url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    expect((await fetch(`${message.url}/v1/predictions`)).status).toBe(401);
    expect(await (await fetch(`${message.url}/health`)).json()).toMatchObject({ status: "ok", synthetic: true });
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
}, 90_000); // a cold tsx boot beside another test file's stack can outlast the default 30 s
