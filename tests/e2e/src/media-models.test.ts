import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { ffprobe, makePng, makeVideo } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

/*
 * The generative media types through the gateway, with the model emulator as the provider (its own
 * process, as `npm start` runs it without a token): video.generate, image.remove-background,
 * video.roto and model.rig, their outputs checked with ffprobe and sharp. One stack for the file.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "model-emulator", "gateway"] });

const jobs = jobHelpers(ctx);
const { runJob, download, upstream } = jobs;
const upload = async (token: string, filename: string, contentType: string, bytes: Uint8Array) => (await jobs.upload(token, filename, contentType, bytes)).id;


const credits = async (token: string) => (await ctx.api.get("/billing/credits", token)).body;
const videoStream = (probe: any) => probe.streams.find((s: { codec_type: string }) => s.codec_type === "video");

/** The alpha plane of one frame of a video (ffmpeg's alphaextract), 8-bit. */
function alphaPlane(bytes: Uint8Array, ext: string, frame: number): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "e2e-alpha-"));
  try {
    writeFileSync(join(dir, `f.${ext}`), bytes);
    return new Uint8Array(
      execFileSync("ffmpeg", ["-v", "error", "-i", join(dir, `f.${ext}`), "-vf", `select=eq(n\\,${frame}),alphaextract,format=gray`, "-frames:v", "1", "-f", "rawvideo", "-"]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Names and bytes of a zip's entries, with unzip. */
function unzip(bytes: Uint8Array): { names: string[]; read: (name: string) => Buffer } {
  const dir = mkdtempSync(join(tmpdir(), "e2e-zip-"));
  const zip = join(dir, "a.zip");
  writeFileSync(zip, bytes);
  const names = execFileSync("unzip", ["-Z1", zip]).toString().trim().split("\n");
  return { names, read: (name) => execFileSync("unzip", ["-p", zip, name], { maxBuffer: 64 * 1024 * 1024 }) };
}

/** A studio shot as a PNG: a red subject in front of a green screen. */
const greenScreen = () =>
  sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240"><rect width="100%" height="100%" fill="#2db446"/><circle cx="160" cy="120" r="50" fill="#c83c2a"/></svg>`))
    .png()
    .toBuffer();

describe("video.generate against the model emulator", () => {
  it("makes an H.264 video of the asked length and aspect ratio, charges per second and says it is synthetic", async () => {
    const u = await ctx.api.signUp();
    const input = { prompt: "a paper boat on a stream", duration_s: 2, aspect_ratio: "16:9" };
    const estimate = await ctx.api.post("/jobs/estimate", { type: "video.generate", input }, u.token);
    expect(estimate.body).toMatchObject({ credits: 10, eta_seconds: 150, work: { output_seconds: 2, output_pixels: 832 * 480 } });

    const run = await runJob(u.token, "video.generate", input);
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    const [file] = run.final.result.files;
    expect(file).toMatchObject({ filename: "video.mp4", content_type: "video/mp4" });
    const probe = ffprobe(await download(u.token, file.file_id), "mp4");
    expect(videoStream(probe)).toMatchObject({ codec_name: "h264", width: 832, height: 480, pix_fmt: "yuv420p" });
    expect(Number(probe.format.duration)).toBeCloseTo(2, 1);
    expect(run.final.result).toMatchObject({ mode: "text-to-video", aspect_ratio: "16:9", duration_s: expect.closeTo(2, 1) });
    expect(run.final.result.provider).toMatchObject({ name: "emulator", model: "wavespeedai/wan-2.1-t2v-480p", prediction_id: expect.any(String), cost_usd: 0, list_price_usd: 0.18, synthetic: true });
    expect(await upstream(run.final.result.provider.prediction_id)).toMatchObject({ status: "succeeded" });
    expect(run.final).toMatchObject({ credits: { amount: 10, state: "captured" }, provider_cost_usd: 0 });
    expect(await credits(u.token)).toMatchObject({ credits: 90, reserved: 0 });
    expect(JSON.stringify(run.final.result)).not.toContain(ctx.stack.emulatorUrl!);
  });

  it("starts from an image in its aspect ratio, with the prompt enhanced first (both prompts recorded)", async () => {
    const u = await ctx.api.signUp();
    const image = await upload(u.token, "portrait.png", "image/png", await makePng(360, 640));
    const run = await runJob(u.token, "video.generate", { prompt: "she turns to the camera", image_file_id: image, duration_s: 1, enhance_prompt: true });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    const probe = ffprobe(await download(u.token, run.final.result.files[0].file_id), "mp4");
    expect(videoStream(probe)).toMatchObject({ width: 480, height: 832 });
    expect(Number(probe.format.duration)).toBeCloseTo(1, 1);
    expect(run.final.result).toMatchObject({ mode: "image-to-video", aspect_ratio: "9:16", prompt: "she turns to the camera", enhanced_prompt: expect.any(String) });
    expect(run.final.result.enhanced_prompt).not.toBe("she turns to the camera");
    expect(run.final.result.provider_runs.map((r: { model: string }) => r.model)).toEqual(["meta/meta-llama-3-8b-instruct", "wavespeedai/wan-2.1-i2v-480p"]);
  });

  it("cancels a running generation: the prediction is canceled upstream and the credits come back", async () => {
    const u = await ctx.api.signUp();
    await jobs.cancelMidPrediction(u.token, "video.generate", { prompt: "[emulator:slow] a very long shot", duration_s: 1 });
    expect(await credits(u.token)).toMatchObject({ credits: 100, reserved: 0 });
  });
});

describe("image.remove-background", () => {
  it("keys a green-screen shot locally (auto): the screen transparent, the subject opaque, no provider run", async () => {
    const u = await ctx.api.signUp();
    const file = await upload(u.token, "studio.png", "image/png", await greenScreen());
    const estimate = await ctx.api.post("/jobs/estimate", { type: "image.remove-background", input: { file_id: file } }, u.token);
    expect(estimate.body).toMatchObject({ credits: 3, eta_seconds: 4 });
    const run = await runJob(u.token, "image.remove-background", { file_id: file });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.final.result).toMatchObject({ method: "chroma_key", model: "chroma-key", provider: { name: "local", model: "chroma-key", cost_usd: 0 } });
    expect(run.final.result.files[0]).toMatchObject({ filename: "studio-cutout.png", content_type: "image/png" });
    const { data, info } = await sharp(await download(u.token, run.final.result.files[0].file_id)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([320, 240, 4]);
    const alphaAt = (x: number, y: number) => data[(y * info.width + x) * 4 + 3];
    expect([alphaAt(1, 1), alphaAt(318, 238), alphaAt(40, 120)]).toEqual([0, 0, 0]);
    expect(alphaAt(160, 120)).toBe(255);
    expect(run.final).toMatchObject({ provider_cost_usd: 0 });
  });

  it("cuts out an ordinary photo with the model: a PNG with alpha of the photo's size", async () => {
    const u = await ctx.api.signUp();
    const file = await upload(u.token, "photo.png", "image/png", await makePng(300, 200));
    const run = await runJob(u.token, "image.remove-background", { file_id: file, method: "model" });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.final.result.provider).toMatchObject({ name: "emulator", model: expect.stringMatching(/^lucataco\/remove-bg:/), synthetic: true });
    const meta = await sharp(await download(u.token, run.final.result.files[0].file_id)).metadata();
    expect([meta.format, meta.width, meta.height, meta.hasAlpha]).toEqual(["png", 300, 200, true]);
    expect(run.final.credits).toMatchObject({ amount: 3, state: "captured" });
  });
});

describe("video.roto", () => {
  it("tracks the subject into ProRes 4444 with the mask as alpha, for the frame range only", async () => {
    const u = await ctx.api.signUp();
    const clip = await upload(u.token, "walk.mp4", "video/mp4", makeVideo(2, "320x240"));
    const input = { file_id: clip, frame_range: "0-25", description: "Track the person walking", preset: "Track Person", tightness: 75, smoothing: 60, output_format: "video_alpha" };
    const estimate = await ctx.api.post("/jobs/estimate", { type: "video.roto", input }, u.token);
    expect(estimate.body).toMatchObject({ credits: 2, eta_seconds: 60 });

    const run = await runJob(u.token, "video.roto", input);
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.final.result.files[0]).toMatchObject({ filename: "walk-roto.mov", content_type: "video/quicktime" });
    const bytes = await download(u.token, run.final.result.files[0].file_id);
    const probe = ffprobe(bytes, "mov");
    expect(videoStream(probe)).toMatchObject({ codec_name: "prores", width: 320, height: 240 });
    expect(videoStream(probe).pix_fmt).toMatch(/^yuva444p1[02]le$/);
    expect(Number(probe.format.duration)).toBeCloseTo(1, 1);
    // The emulator's mask is a disc that starts at the preset's click: opaque there on the first frame, clear in the corners.
    const alpha = alphaPlane(bytes, "mov", 0);
    expect(alpha[132 * 320 + 160]).toBeGreaterThan(240);
    expect(alpha[2 * 320 + 2]).toBeLessThan(10);
    expect(run.final.result).toMatchObject({ output_format: "video_alpha", alpha_codec: "prores_4444", preset: "Track Person", matte: { erode_px: expect.any(Number), temporal_frames: 3 } });
    expect(run.final.result.matte.erode_px).toBeGreaterThan(0);
    expect(run.final.result.provider).toMatchObject({ name: "emulator", model: expect.stringMatching(/^meta\/sam-2-video:/), synthetic: true });
  });

  it("writes a zip of one RGBA PNG per frame for png_sequence", async () => {
    const u = await ctx.api.signUp();
    const clip = await upload(u.token, "walk.mp4", "video/mp4", makeVideo(2, "320x240"));
    const run = await runJob(u.token, "video.roto", { file_id: clip, frame_range: "5-15", description: "the dog", preset: "Track Object", output_format: "png_sequence" });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.final.result.files[0]).toMatchObject({ filename: "walk-roto-png.zip", content_type: "application/zip" });
    const zip = unzip(await download(u.token, run.final.result.files[0].file_id));
    expect(zip.names).toHaveLength(10);
    expect(run.final.result.frames).toBe(10);
    const { data, info } = await sharp(zip.read(zip.names[0]!)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([320, 240, 4]);
    expect(data[(120 * 320 + 160) * 4 + 3]).toBe(255);
    expect(data[3]).toBe(0);
  });

  it("fails with PROVIDER_ERROR when the model fails, and gives the credits back", async () => {
    const u = await ctx.api.signUp();
    const clip = await upload(u.token, "walk.mp4", "video/mp4", makeVideo(1, "160x120"));
    const run = await runJob(u.token, "video.roto", { file_id: clip, description: "[emulator:fail] the runner" });
    expect(run.final).toMatchObject({ status: "failed", error: { code: "PROVIDER_ERROR" }, credits: { state: "released" }, attempts: 1 });
    expect(run.final.error.message).toMatch(/meta\/sam-2-video/);
    expect(await credits(u.token)).toMatchObject({ credits: 100, reserved: 0 });
  });
});

describe("model.rig", () => {
  const cube = ["# a unit cube", "o cube", ...[0, 1].flatMap((x) => [0, 1].flatMap((y) => [0, 1].map((z) => `v ${x} ${y * 2} ${z}`))), "f 1 2 4 3", "f 5 7 8 6", "f 1 5 6 2", "f 3 4 8 7", "f 1 3 7 5", "f 2 6 8 4", ""].join("\n");

  it("rigs an OBJ: a skinned GLB and the skeleton as JSON, as the job's own files", async () => {
    const u = await ctx.api.signUp();
    const file = await upload(u.token, "hero.obj", "model/obj", Buffer.from(cube));
    const run = await runJob(u.token, "model.rig", { file_id: file, rig_type: "Humanoid", joint_size: 40, ik_fk: 75 });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    const files = run.final.result.files as { file_id: string; filename: string; content_type: string }[];
    expect(files.map((f) => [f.filename, f.content_type])).toEqual([
      ["hero-rigged.glb", "model/gltf-binary"],
      ["hero-skeleton.json", "application/json"],
    ]);
    const glb = await download(u.token, files[0]!.file_id);
    expect(glb.toString("latin1", 0, 4)).toBe("glTF");
    expect(glb.readUInt32LE(8)).toBe(glb.length);
    const skeleton = JSON.parse((await download(u.token, files[1]!.file_id)).toString());
    expect(skeleton).toMatchObject({ rig_type: "Humanoid", ik_fk_blend: 0.75 });
    expect(run.final.result).toMatchObject({ source_format: "obj", rig_type: "Humanoid", joints: skeleton.joints.length, provider: { name: "emulator", model: "cutroom/auto-rig", synthetic: true } });
    expect(run.final.credits).toMatchObject({ amount: 20, state: "captured" });
  });

  it("refuses a file that is no FBX or OBJ, whatever it is called: a picture at enqueue (422), other bytes when the worker reads them, giving the credits back", async () => {
    const u = await ctx.api.signUp();
    // Stored as the image its bytes show (the type sent was generic), so enqueue sees its kind.
    const picture = await upload(u.token, "not-a-model.fbx", "application/octet-stream", await makePng(8, 8));
    const refused = await ctx.api.post("/jobs", { type: "model.rig", input: { file_id: picture } }, u.token);
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatchObject({ code: "INVALID_INPUT", details: { field: "file_id", kind: "image", accepted: ["other"] } });
    const text = await upload(u.token, "notes.fbx", "application/octet-stream", new TextEncoder().encode("not a model at all\n"));
    const run = await runJob(u.token, "model.rig", { file_id: text });
    expect(run.final).toMatchObject({ status: "failed", error: { code: "INVALID_MEDIA" }, credits: { state: "released" } });
    expect(await credits(u.token)).toMatchObject({ credits: 100, reserved: 0 });
  });
});

describe("GET /job-types", () => {
  it("lists each generative media type with its levels and prices from the catalog", async () => {
    const types = (await ctx.api.get("/job-types")).body.data as { type: string; queue: string; models: any[]; cost: { description: string }; presets: unknown }[];
    const byName = Object.fromEntries(types.map((t) => [t.type, t]));
    expect(byName["video.generate"]).toMatchObject({ queue: "video", cost: { description: expect.stringMatching(/per second/) } });
    expect(byName["video.generate"]!.models).toContainEqual(expect.objectContaining({ quality: "fast", model: "wavespeedai/wan-2.1-t2v-480p", price: { usd_per_output_second: 0.09 }, available: true }));
    expect(byName["video.generate"]!.models).toContainEqual(expect.objectContaining({ quality: "fast", variant: "i2v", model: "wavespeedai/wan-2.1-i2v-480p" }));
    expect(byName["image.remove-background"]!.models).toContainEqual(expect.objectContaining({ quality: "green-screen", provider: "local", model: "chroma-key", price: null, available: true }));
    expect(byName["video.roto"]).toMatchObject({ queue: "video", presets: expect.objectContaining({ "Track Face": expect.any(Object) }) });
    expect(byName["video.roto"]!.models).toContainEqual(expect.objectContaining({ quality: "premium", alias_of: "fast", model: expect.stringMatching(/^meta\/sam-2-video:/) }));
    expect(byName["model.rig"]).toMatchObject({ queue: "video" });
    expect(byName["model.rig"]!.models).toContainEqual(expect.objectContaining({ quality: "fast", model: "cutroom/auto-rig", price: { usd_per_second: 0.000975 } }));
  });
});
