import { randomUUID } from "node:crypto";
import postgres from "postgres";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { signUpAdmin, useStack } from "./stack.ts";

/*
 * Job creation commits many jobs per transaction (ADR 027). A job-service killed (SIGKILL) in the
 * middle of a burst must still keep every job it answered 202 for, and charge each job once.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { RPC_TIMEOUT_MS: "2000" } });

const USERS = 4;
const CONNECTIONS = 32;

describe("job creation across a job-service crash", () => {
  it("loses no job that got its 202 and charges no job twice when job-service is killed (SIGKILL) during a burst of creations", async () => {
    const png = new Uint8Array(await sharp({ create: { width: 40, height: 30, channels: 3, background: "#336699" } }).png().toBuffer());
    const admin = await signUpAdmin(ctx);
    // Enterprise users (300 new jobs a minute): the free tier's 10 would refuse most of the burst.
    const users = await Promise.all(
      Array.from({ length: USERS }, async () => {
        const signedUp = await ctx.api.signUp();
        expect((await ctx.api.request("PATCH", `/api/v1/admin/users/${signedUp.user_id}`, { token: admin.token, json: { tier: "enterprise" } })).status).toBe(200);
        const login = await ctx.api.post("/auth/login", { email: signedUp.email, password: signedUp.password });
        const u = { token: login.body.access_token as string };
        const file = await ctx.api.upload(u.token, "in.png", "image/png", png);
        expect(file.status, JSON.stringify(file.body)).toBe(200);
        return { token: u.token, fileId: file.body.file.id as string };
      }),
    );
    const body = (u: (typeof users)[number]) => ({ type: "image.resize", input: { file_id: u.fileId, width: 16 } });

    // Each request keeps its key, so the client can retry it after the crash as a client should.
    const sent: { user: number; key: string; status: number; jobId?: string }[] = [];
    let accepted = 0;
    let stop = false;
    let killed: Promise<void> | undefined;
    const loop = async (c: number) => {
      for (let n = 0; !stop; n++) {
        const user = (c + n) % USERS;
        const key = randomUUID();
        const reply = await ctx.api.post("/jobs", body(users[user]!), users[user]!.token, { "idempotency-key": key });
        sent.push({ user, key, status: reply.status, ...(reply.status === 202 ? { jobId: reply.body.id } : {}) });
        if (!killed && reply.status !== 202) throw new Error(`before the kill: ${reply.status} ${JSON.stringify(reply.body)}`);
        if (reply.status === 202 && ++accepted === 60) killed = ctx.stack.services.kill("job-service", "SIGKILL");
        // Enough failed answers after the kill: the burst has run into the dead service.
        if (killed && sent.filter((s) => s.status !== 202).length >= CONNECTIONS) stop = true;
        if (sent.length > 400) stop = true;
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, c) => loop(c)));
    expect(killed, "job-service was killed during the burst").toBeDefined();
    await killed;
    await ctx.stack.services.start("job-service");

    // Every job answered 202 exists.
    const answered = sent.filter((s) => s.status === 202);
    for (const s of answered) {
      const job = await ctx.api.get(`/jobs/${s.jobId}`, users[s.user]!.token);
      expect(job.status, `job ${s.jobId} answered 202 before the crash`).toBe(200);
    }
    // A client retries what got no 202 with its key: it gets its one job, created now or before the crash.
    for (const s of sent.filter((s) => s.status !== 202)) {
      const retry = await ctx.api.post("/jobs", body(users[s.user]!), users[s.user]!.token, { "idempotency-key": s.key });
      expect(retry.status, JSON.stringify(retry.body)).toBe(202);
      s.jobId = retry.body.id;
    }

    // One job per request, each charged once: the ledger's reservations are the jobs', and the balances agree.
    const sql = postgres(ctx.stack.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      for (const [i, u] of users.entries()) {
        const mine = sent.filter((s) => s.user === i);
        const jobs = await ctx.api.get("/jobs?limit=100", u.token);
        const listed = (await ctx.api.get(`/jobs?limit=1`, u.token)).body.total as number;
        expect(listed).toBe(mine.length);
        expect(new Set(mine.map((s) => s.jobId)).size).toBe(mine.length);
        expect(jobs.status).toBe(200);
        const credits = (await ctx.api.get("/billing/credits", u.token)).body;
        const charged = jobs.body.data[0].credits.amount as number;
        expect({ available: credits.credits, reserved: credits.reserved }).toEqual({ available: 100 - charged * mine.length, reserved: charged * mine.length });
      }
      const ids = sent.map((s) => s.jobId!);
      const reserves = await sql<{ job_id: string; n: number }[]>`
        select job_id, count(*)::int as n from billing.ledger where kind = 'reserve' and job_id = any(${ids}::uuid[]) group by job_id`;
      expect(reserves.length).toBe(ids.length);
      expect(reserves.every((r) => r.n === 1)).toBe(true);
      const orphans = await sql`
        select r.job_id from billing.ledger r
        where r.kind = 'reserve' and not exists (select 1 from jobs.jobs j where j.id = r.job_id)`;
      expect(orphans).toEqual([]);
    } finally {
      await sql.end();
    }
  }, 120_000);
});
