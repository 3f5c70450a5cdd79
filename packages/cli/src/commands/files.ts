import { createWriteStream, openAsBlob } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream } from "node:stream/web";
import { CutroomError, type Cutroom, type FileObject } from "@cutroom/sdk";
import type { Ctx } from "../context.ts";
import { CliError, formatBytes, usageError } from "../output.ts";

/**
 * A resumable upload through the SDK. The upload's id is kept in the config as soon as the server
 * gives it, so running the same command again after a crash or Ctrl-C sends only the missing chunks.
 */
export async function uploadFile(ctx: Ctx, sdk: Cutroom, path: string): Promise<FileObject> {
  const full = resolve(path);
  const info = await stat(full).catch(() => null);
  if (!info?.isFile()) throw usageError(`no file at ${path}`, { path });
  const key = `${ctx.api}|${full}|${info.size}|${info.mtimeMs}`;
  const blob = await openAsBlob(full);
  const filename = basename(full);
  let uploadId = await ctx.config.upload(key);
  if (uploadId) ctx.out.note(`resuming upload ${uploadId}`);
  let saved = uploadId;
  let lastLine = -1;
  const start = (id: string | undefined) => {
    const upload = sdk.files.uploadResumable(blob, {
      filename,
      ...(id ? { uploadId: id } : {}),
      onProgress: ({ loaded, total }) => {
        if (upload.uploadId && upload.uploadId !== saved) {
          saved = upload.uploadId;
          ctx.pending.push(ctx.config.setUpload(key, saved));
        }
        const fraction = total === 0 ? 1 : loaded / total;
        // Off a terminal, a line per tenth is enough for a log.
        if (!ctx.out.tty && Math.floor(fraction * 10) === lastLine) return;
        lastLine = Math.floor(fraction * 10);
        ctx.out.progress(fraction, `${filename} ${formatBytes(loaded)} of ${formatBytes(total)}`);
      },
    });
    return upload;
  };
  let done: Awaited<ReturnType<typeof sdk.files.uploadResumable>["done"]>;
  try {
    done = await start(uploadId).done;
  } catch (err) {
    // An upload that expired or was finished elsewhere: start again from the first byte.
    if (!(uploadId && err instanceof CutroomError && (err.status === 404 || err.status === 410))) throw err;
    ctx.out.note(`upload ${uploadId} is gone from the server; starting again`);
    uploadId = undefined;
    saved = undefined;
    done = await start(undefined).done;
  }
  ctx.out.endBar();
  await Promise.all(ctx.pending);
  await ctx.config.setUpload(key, null);
  return sdk.files.get(done.file_id);
}

export async function upload(ctx: Ctx, args: string[]) {
  const sdk = await ctx.signedIn();
  const file = await uploadFile(ctx, sdk, args[0]!);
  ctx.out.result(file, (f) => `uploaded ${f.filename}: file ${f.id} (${f.kind}, ${f.content_type}, ${formatBytes(f.size)})`);
}

/** The result files of a job, or one file: each written under `-o` (a file for one, a folder for several) or the current folder. */
export async function download(ctx: Ctx, args: string[], values: { output?: string }) {
  const sdk = await ctx.signedIn();
  const id = args[0]!;
  let files: { file_id: string; filename: string }[];
  try {
    const job = await sdk.jobs.get(id);
    if (job.status !== "succeeded" || !job.result) {
      throw new CliError("INVALID_STATE", `job ${id} is ${job.status}: only a succeeded job has result files`, undefined, { status: job.status });
    }
    files = job.result.files.map((f) => ({ file_id: f.file_id, filename: f.filename }));
  } catch (err) {
    // Not a job of yours (404) or not a job id at all (422): a file id, then.
    if (!(err instanceof CutroomError && (err.status === 404 || err.status === 422))) throw err;
    const file = await sdk.files.get(id).catch((e: unknown) => {
      throw e instanceof CutroomError && (e.status === 404 || e.status === 422) ? new CliError("NOT_FOUND", `no job or file of yours with the id ${id}`, undefined, { id }) : e;
    });
    files = [{ file_id: file.id, filename: file.filename }];
  }
  const target = values.output;
  const targetIsDir = target !== undefined && (files.length > 1 || (await stat(target).catch(() => null))?.isDirectory() === true);
  if (target !== undefined && targetIsDir) await mkdir(target, { recursive: true });
  const written: { file_id: string; filename: string; path: string; size: number }[] = [];
  for (const f of files) {
    const path = target === undefined ? join(".", basename(f.filename)) : targetIsDir ? join(target, basename(f.filename)) : target;
    const res = await sdk.files.download(f.file_id);
    if (!res.body) throw new CliError("INTERNAL", `file ${f.file_id} came with no body`);
    await pipeline(Readable.fromWeb(res.body as ReadableStream), createWriteStream(path));
    written.push({ ...f, path, size: (await stat(path)).size });
  }
  ctx.out.result({ files: written }, (r) => r.files.map((f) => `${f.path} (${formatBytes(f.size)}, file ${f.file_id})`).join("\n"));
}
