import { createReadStream } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { isAppError, type ModelRigInput } from "@cutroom/contracts";
import { JobFailure, type JobContext, type JobOutput, type ModelFile } from "@cutroom/worker-runtime";
import { stem } from "./media.ts";

export type ModelFormat = "fbx-binary" | "fbx-ascii" | "obj";

const FBX_BINARY_MAGIC = Buffer.from("Kaydara FBX Binary  \0", "latin1");
const OBJ_VERTEX = /^v\s+-?[\d.]+(e[-+]?\d+)?\s+-?[\d.]+(e[-+]?\d+)?\s+-?[\d.]+/i;
const OBJ_FACE = /^f\s+-?\d+/;
// Past this many lines without a face, an "OBJ" is taken for what it is not.
const OBJ_MAX_LINES_SCANNED = 5_000_000;

/**
 * What a 3D model file is, from its bytes, whatever its name or declared type: a binary FBX (its
 * magic), an ASCII FBX (its "; FBX" header comment), or an OBJ (text with vertex and face lines).
 * Anything else is undefined.
 */
export async function sniffModelFormat(path: string): Promise<ModelFormat | undefined> {
  const handle = await open(path, "r");
  const head = Buffer.alloc(64 * 1024);
  const { bytesRead } = await handle.read(head, 0, head.length, 0).finally(() => handle.close());
  const bytes = head.subarray(0, bytesRead);
  if (bytes.subarray(0, FBX_BINARY_MAGIC.length).equals(FBX_BINARY_MAGIC)) return "fbx-binary";
  // Text formats have no NUL bytes.
  if (bytes.includes(0)) return undefined;
  const text = bytes.toString("utf8").replace(/^\uFEFF/, "");
  if (/^\s*; FBX \d/.test(text)) return "fbx-ascii";
  return (await isObj(path)) ? "obj" : undefined;
}

/** An OBJ has at least one vertex and one face line; faces come after the vertices, so the file is read line by line to the first. */
async function isObj(path: string): Promise<boolean> {
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  let vertex = false;
  let n = 0;
  try {
    for await (const raw of lines) {
      const line = raw.trimStart();
      if (!vertex && OBJ_VERTEX.test(line)) vertex = true;
      else if (vertex && OBJ_FACE.test(line)) return true;
      if (++n > OBJ_MAX_LINES_SCANNED) return false;
    }
    return false;
  } finally {
    lines.close();
  }
}

/** Storage's answers when the provider's bytes are not what they claim: the provider's fault. */
const refusedOutput = new Set(["UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE", "INVALID_INPUT"]);

/** A glTF 2.0 binary: its 12-byte header says so and gives the file's own length. */
async function assertGlb(file: ModelFile, model: string): Promise<void> {
  const handle = await open(file.path, "r");
  const header = Buffer.alloc(12);
  await handle.read(header, 0, 12, 0).finally(() => handle.close());
  if (header.toString("latin1", 0, 4) !== "glTF" || header.readUInt32LE(4) !== 2 || header.readUInt32LE(8) !== file.size) {
    throw new JobFailure("PROVIDER_ERROR", `${model} returned ${file.filename}, which is not a glTF 2.0 binary`);
  }
}

/**
 * model.rig (seed 000's auto-rigger): the model file checked from its bytes, the catalog's rigging
 * model run on it, and what it returns checked (a GLB by its header, the skeleton as JSON) before
 * it goes into storage as the job's outputs.
 */
export async function rigModel(ctx: JobContext<ModelRigInput>): Promise<JobOutput> {
  const input = ctx.input;
  const { source, format } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    const format = await sniffModelFormat(source.path);
    if (!format) throw new JobFailure("INVALID_MEDIA", "file_id is neither an FBX (binary or ASCII) nor an OBJ model");
    return { source, format };
  });

  const run = await ctx.stage("rig", () =>
    ctx.models.predict({
      jobType: "model.rig",
      quality: input.quality,
      input: { rig_type: input.rig_type, joint_size: input.joint_size, ik_fk: input.ik_fk },
      files: { model_file: { ...source, contentType: format === "obj" ? "model/obj" : "application/octet-stream" } },
      filename: "rig",
      progress: [10, 85],
    }),
  );

  const name = stem(source.filename, "model");
  const { files, skeleton } = await ctx.stage("upload", async () => {
    if (!run.downloads.some((d) => d.contentType === "model/gltf-binary" || d.contentType === "application/octet-stream")) {
      throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned no rigged model`);
    }
    let skeleton: { joints?: unknown[]; ik_chains?: unknown[] } | undefined;
    const named: Array<{ download: ModelFile; filename: string }> = [];
    for (const download of run.downloads) {
      let filename = `${name}-${download.filename}`;
      if (download.contentType === "model/gltf-binary") {
        await assertGlb(download, run.model.model);
        filename = `${name}-rigged.glb`;
      } else if (download.contentType === "application/json") {
        try {
          skeleton = JSON.parse(await readFile(download.path, "utf8"));
        } catch (err) {
          throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned ${download.filename}, which is not JSON`, { cause: err });
        }
        filename = `${name}-skeleton.json`;
      }
      named.push({ download, filename });
    }
    const files = [];
    for (const { download, filename } of named) {
      try {
        files.push(await ctx.uploadOutput(download.path, filename, download.contentType, { check: true }));
      } catch (err) {
        if (isAppError(err) && refusedOutput.has(err.code)) throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned an output storage refused: ${err.message}`);
        throw err;
      }
    }
    return { files, skeleton };
  });

  return {
    files,
    source_format: format,
    rig_type: input.rig_type,
    joint_size: input.joint_size,
    ik_fk: input.ik_fk,
    ...(Array.isArray(skeleton?.joints) ? { joints: skeleton.joints.length } : {}),
    ...(Array.isArray(skeleton?.ik_chains) ? { ik_chains: skeleton.ik_chains.length } : {}),
    model: run.model.model,
    provider: run.provider,
  };
}
