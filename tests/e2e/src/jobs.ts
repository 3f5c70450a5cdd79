import { expect } from "vitest";
import type { Client } from "./client.ts";
import { makePng } from "./media.ts";
import type { Stack } from "./stack.ts";
import { eventsOf, expectGapFree, expectProgressNeverBackwards, watchJob } from "./watch.ts";

/*
 * What the e2e and security tests do through the public API again and again: upload, enqueue and
 * follow a job to its end, download an output. Bound to a file's stack (useStack's ctx), which
 * fills in only once started: hence ctx is read at each call, not here.
 */
export function jobHelpers(ctx: { stack: Stack; api: Client }) {
  /** Enqueues a job and follows its WebSocket until the server closes it; its events and final state. */
  async function watchToEnd(token: string, type: string, input: Record<string, unknown>, onMessage?: (m: any) => void) {
    const job = await ctx.api.post("/jobs", { type, input }, token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    const watched = await watchJob(ctx.stack.url, token, job.body.id, { since: 0, timeoutMs: 120_000, onMessage });
    const events = eventsOf(watched);
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, token)).body;
    return { id: job.body.id as string, watched, events, terminal: events.at(-1), final };
  }

  /** watchToEnd, checking the event stream: seq without gaps, progress never going back. */
  async function runJob(token: string, type: string, input: Record<string, unknown>, onMessage?: (m: any) => void) {
    const run = await watchToEnd(token, type, input, onMessage);
    expectGapFree(run.events);
    expectProgressNeverBackwards(run.events);
    return run;
  }

  /** A job that must end well: the socket closed normally and the job succeeded; its final state. */
  async function runToSuccess(token: string, type: string, input: Record<string, unknown>) {
    const { watched, final } = await watchToEnd(token, type, input);
    expect(watched.closeCode).toBe(1000);
    return succeeded(final);
  }

  /** Polls a job until it has ended (or 30 s have passed); its last state. */
  async function settled(jobId: string, token: string) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const job = (await ctx.api.get(`/jobs/${jobId}`, token)).body;
      if (["succeeded", "failed", "canceled"].includes(job.status) || Date.now() > deadline) return job;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Uploads a file (multipart), expecting 200; the stored file. */
  async function upload(token: string, filename: string, contentType: string, bytes: Uint8Array) {
    const reply = await ctx.api.upload(token, filename, contentType, bytes);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    return reply.body.file as { id: string } & Record<string, any>;
  }

  /** A file's bytes, through its signed download URL. */
  async function download(token: string, fileId: string): Promise<Buffer> {
    const link = await ctx.api.get(`/files/${fileId}/download-url`, token);
    expect(link.status).toBe(200);
    return Buffer.from(await (await fetch(link.body.url)).arrayBuffer());
  }

  /** The model emulator's own view of a prediction, as Replicate's GET /v1/predictions/{id} shows it. */
  async function upstream(predictionId: string): Promise<{ status: string }> {
    const res = await fetch(`${ctx.stack.emulatorUrl}/v1/predictions/${predictionId}`, { headers: { authorization: "Bearer e2e" } });
    expect(res.status).toBe(200);
    return res.json() as Promise<{ status: string }>;
  }

  /**
   * Runs a model job and cancels it as soon as its log says the prediction started: the job ends
   * canceled and, within 5 s, so does the prediction at the provider (the emulator).
   */
  async function cancelMidPrediction(token: string, type: string, input: Record<string, unknown>) {
    let predictionId: string | undefined;
    let canceled = false;
    const run = await runJob(token, type, input, (m) => {
      predictionId ??= m.type === "log" ? /prediction (\w+) started/.exec(m.message)?.[1] : undefined;
      if (predictionId && !canceled) {
        canceled = true;
        void ctx.api.post(`/jobs/${m.job_id}/cancel`, {}, token);
      }
    });
    expect(predictionId).toBeTruthy();
    expect(run.events.at(-1)).toMatchObject({ type: "error", status: "canceled" });
    let status = "";
    for (let i = 0; i < 50 && status !== "canceled"; i++) {
      status = (await upstream(predictionId!)).status;
      if (status !== "canceled") await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe("canceled");
    return run;
  }

  /** A new user who has uploaded a small PNG. */
  async function userWithImage() {
    const user = await ctx.api.signUp();
    const { body } = await ctx.api.upload(user.token, "in.png", "image/png", await makePng());
    return { ...user, fileId: body.file.id as string };
  }

  return { watchToEnd, runJob, runToSuccess, settled, upload, download, upstream, cancelMidPrediction, userWithImage };
}

/** Expects a job's final state to be succeeded (its error shown if not); the state. */
export function succeeded<T extends { status: string; error?: unknown }>(final: T): T {
  expect(final.status, JSON.stringify(final.error)).toBe("succeeded");
  return final;
}
