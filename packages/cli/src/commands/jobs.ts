import { readFile } from "node:fs/promises";
import type { Cutroom, Job, JobEvent } from "@cutroom/sdk";
import type { Ctx } from "../context.ts";
import { CliError, exitCodes, table, usageError } from "../output.ts";
import { uploadFile } from "./files.ts";

const describeJob = (j: Job) => {
  const lines = [`job ${j.id}  ${j.type}  ${j.status}  ${j.progress}%`, `credits ${j.credits.amount} (${j.credits.state})  attempts ${j.attempts}  created ${j.created_at}`];
  if (j.queue_position) lines.push(`waiting: place ${j.queue_position} (${j.queue_reason})`);
  if (j.stages.length > 0) lines.push(`stages ${j.stages.map((s) => `${s.name}:${s.status}`).join(" ")}`);
  if (j.error) lines.push(`error ${j.error.code}: ${j.error.message}`);
  for (const f of j.result?.files ?? []) lines.push(`result ${f.filename} (${f.content_type}, file ${f.file_id})`);
  return lines.join("\n");
};

/** An `--input` JSON object, or `@path` to read it from a file. */
async function parseInput(raw: string | undefined): Promise<Record<string, unknown>> {
  if (raw === undefined) return {};
  const text = raw.startsWith("@") ? await readFile(raw.slice(1), "utf8").catch(() => null) : raw;
  if (text === null) throw usageError(`cannot read the input file ${raw.slice(1)}`);
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw usageError(`--input is not JSON: ${(err as Error).message}`, { input: raw });
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) throw usageError("--input must be a JSON object, e.g. '{\"width\": 256}'", { input: raw });
  return input as Record<string, unknown>;
}

/**
 * A job's events as they come (replayed from `since`, then live), told to a person: stages and log
 * lines as lines, progress as a bar on a terminal (a line per tenth otherwise). Ends after the terminal event.
 */
async function followJob(ctx: Ctx, sdk: Cutroom, id: string, opts: { since?: number; collect?: JobEvent[] } = {}) {
  let lastTenth = -1;
  for await (const e of sdk.jobs.events(id, { since: opts.since ?? 0 })) {
    opts.collect?.push(e);
    switch (e.type) {
      case "status":
        ctx.out.note(`${e.status}${e.message ? `: ${e.message}` : ""}${e.queue_position ? ` (place ${e.queue_position}, ${e.queue_reason})` : ""}`);
        break;
      case "stage":
        ctx.out.note(`stage ${e.stage}: ${e.status}`);
        break;
      case "progress": {
        const tenth = Math.floor(e.progress / 10);
        if (!ctx.out.tty && tenth === lastTenth) break;
        lastTenth = tenth;
        ctx.out.progress(e.progress / 100, e.stage ?? "");
        break;
      }
      case "log":
        ctx.out.note(`[${e.level}] ${e.message}`);
        break;
      case "result":
        ctx.out.note("succeeded");
        break;
      case "error":
        ctx.out.note(`${e.status}: ${e.error.code} ${e.error.message}`);
        break;
    }
  }
  ctx.out.endBar();
}

/** Prints the ended job; a job that did not succeed sets exit status 3 and its error goes to stderr as an envelope. */
function reportEnded(ctx: Ctx, job: Job) {
  ctx.out.result(job, describeJob);
  if (job.status !== "succeeded") {
    const code = job.error?.code ?? job.status.toUpperCase();
    ctx.out.error(new CliError(code, `job ${job.id} ${job.status}${job.error ? `: ${job.error.message}` : ""}`, exitCodes.jobFailed, { job_id: job.id, status: job.status }));
    process.exitCode = exitCodes.jobFailed;
  }
}

export async function run(ctx: Ctx, args: string[], values: { input?: string; file?: string; detach?: boolean; project?: string }) {
  const type = args[0]!;
  const input = await parseInput(values.input);
  const sdk = await ctx.signedIn();
  if (values.file !== undefined) {
    if (input.file_id !== undefined) throw usageError("give the input file either as --file or as file_id in --input, not both");
    input.file_id = (await uploadFile(ctx, sdk, values.file)).id;
  }
  const job = await sdk.jobs.createUntyped({ type, input, ...(values.project ? { project_id: values.project } : {}) });
  if (values.detach) {
    ctx.out.result(job, describeJob);
    return;
  }
  ctx.out.note(`job ${job.id} (${job.type}) queued, ${job.credits.amount} credits reserved`);
  await followJob(ctx, sdk, job.id);
  reportEnded(ctx, await sdk.jobs.wait(job.id));
}

export async function list(ctx: Ctx, values: { status?: string; type?: string; limit?: string; offset?: string }) {
  const sdk = await ctx.signedIn();
  const page = await sdk.jobs.list({
    ...(values.status ? { status: values.status as Job["status"] } : {}),
    ...(values.type ? { type: values.type } : {}),
    ...(values.limit ? { limit: intOption("limit", values.limit) } : {}),
    ...(values.offset ? { offset: intOption("offset", values.offset) } : {}),
  });
  ctx.out.result(page, (p) =>
    p.data.length === 0
      ? "no jobs"
      : `${table(
          ["ID", "TYPE", "STATUS", "PROGRESS", "CREDITS", "CREATED"],
          p.data.map((j) => [j.id, j.type, j.status, `${j.progress}%`, `${j.credits.amount} ${j.credits.state}`, j.created_at]),
        )}\n${p.offset + p.data.length} of ${p.total}${p.has_more ? " (more with --offset)" : ""}`,
  );
}

export async function get(ctx: Ctx, args: string[]) {
  const job = await (await ctx.signedIn()).jobs.get(args[0]!);
  ctx.out.result(job, describeJob);
}

export async function cancel(ctx: Ctx, args: string[]) {
  const reply = await (await ctx.signedIn()).jobs.cancel(args[0]!);
  ctx.out.result(reply, (r) => `canceled job ${r.job.id}; ${r.credits_refunded} credits refunded`);
}

/** A job's stored events from `since` (0: all of them), then live ones until it ends. */
export async function events(ctx: Ctx, args: string[], values: { since?: string }) {
  const sdk = await ctx.signedIn();
  const collected: JobEvent[] = [];
  if (ctx.out.json) {
    for await (const e of sdk.jobs.events(args[0]!, { since: values.since ? intOption("since", values.since) : 0 })) collected.push(e);
    ctx.out.result({ data: collected }, () => "");
    return;
  }
  for await (const e of sdk.jobs.events(args[0]!, { since: values.since ? intOption("since", values.since) : 0 })) {
    const { seq, timestamp, type, job_id: _job, ...rest } = e;
    process.stdout.write(`${seq}\t${timestamp}\t${type}\t${JSON.stringify(rest)}\n`);
  }
}

/** Admins: a failed job run again as a new job of its owner (who follows it: jobs are watched by their owners). */
export async function requeue(ctx: Ctx, args: string[]) {
  const reply = await (await ctx.admin()).admin.requeueJob(args[0]!);
  ctx.out.result(reply, (r) => `${r.created ? "requeued" : "already requeued"} job ${r.requeued_from} as job ${r.job.id} (${r.job.status}, ${r.job.credits.amount} credits reserved from its owner)`);
}

export function intOption(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw usageError(`--${name} must be a whole number, got ${raw}`);
  return n;
}
