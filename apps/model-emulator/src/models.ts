import { createHash } from "node:crypto";
import sharp from "sharp";
import { z } from "zod";
import { fetchInput } from "./inputs.ts";
import { speechSeconds, generateSpeech } from "./outputs/audio.ts";
import { generateImages, removeBackground, sizeForAspect } from "./outputs/image.ts";
import { lipsyncVideo } from "./outputs/lipsync.ts";
import { generateMask, parseClicks } from "./outputs/mask.ts";
import { generateRig } from "./outputs/rig.ts";
import { complete } from "./outputs/text.ts";
import { generateVideo } from "./outputs/video.ts";
import type { RunContext } from "./run-context.ts";

export interface RunResult {
  output: unknown;
  /** Besides predict_time, which every prediction gets (token counts, for language models). */
  metrics?: Record<string, number>;
}

export interface ModelSpec {
  owner: string;
  name: string;
  description: string;
  /** Version ids it answers to, the latest first: the real ones where we know them (a catalog may pin them). */
  versions: string[];
  /** The model's inputs as Replicate validates them (422 otherwise); unknown inputs are ignored, as Cog does. */
  input: z.ZodObject;
  /** JSON Schema of the output, for the version's openapi_schema. */
  output: Record<string, unknown>;
  /** The total of the progress bar (inference steps, frames…) for this input. */
  steps(input: Record<string, unknown>): number;
  run(ctx: RunContext, input: Record<string, unknown>): Promise<RunResult>;
}

/** A model whose run sees its own parsed input type. */
function model<S extends z.ZodObject>(spec: Omit<ModelSpec, "input" | "run" | "steps"> & {
  input: S;
  steps?: (input: z.output<S>) => number;
  run: (ctx: RunContext, input: z.output<S>) => Promise<RunResult>;
}): ModelSpec {
  return { steps: () => 10, ...spec } as unknown as ModelSpec;
}

/** The emulator's own version id for a model whose real one we do not pin. */
const madeUpVersion = (name: string) => createHash("sha256").update(`cutroom-model-emulator/${name}`).digest("hex");

const uri = { type: "string", format: "uri" };
const uriList = { type: "array", items: uri };

const FLUX_RATIOS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"] as const;
const fluxInput = {
  prompt: z.string(),
  aspect_ratio: z.enum(FLUX_RATIOS).default("1:1"),
  num_outputs: z.number().int().min(1).max(4).default(1),
  seed: z.number().int().optional(),
  output_format: z.enum(["webp", "jpg", "png"]).default("webp"),
  output_quality: z.number().int().min(0).max(100).default(80),
  disable_safety_checker: z.boolean().default(false),
  go_fast: z.boolean().default(true),
  megapixels: z.enum(["1", "0.25"]).default("1"),
};

const flux = (name: string, description: string, extra: z.ZodRawShape, defaultSteps: number) =>
  model({
    owner: "black-forest-labs",
    name,
    description,
    versions: [madeUpVersion(`black-forest-labs/${name}`)],
    input: z.object({ ...fluxInput, ...extra }),
    output: uriList,
    steps: (i) => (i as { num_inference_steps?: number }).num_inference_steps ?? defaultSteps,
    run: async (ctx, i) => {
      const size = sizeForAspect(i.aspect_ratio, Number(i.megapixels));
      const image = (i as { image?: string }).image;
      return { output: await generateImages(ctx, { prompt: i.prompt, ...size, count: i.num_outputs, format: i.output_format, quality: i.output_quality, image }) };
    },
  });

const SDXL_SCHEDULERS = ["DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM"] as const;

/** Wan 2.1 frame sizes by aspect ratio; the real models take 16:9 and 9:16, the others are the emulator's leniency. */
const WAN_SIZES: Record<"480p" | "720p", Record<string, [number, number]>> = {
  "480p": { "16:9": [832, 480], "9:16": [480, 832], "1:1": [624, 624], "4:3": [640, 480], "3:4": [480, 640] },
  "720p": { "16:9": [1280, 720], "9:16": [720, 1280], "1:1": [960, 960], "4:3": [960, 720], "3:4": [720, 960] },
};
const WAN_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4"] as const;

const wanInput = {
  prompt: z.string(),
  negative_prompt: z.string().optional(),
  aspect_ratio: z.enum(WAN_RATIOS).optional(),
  num_frames: z.number().int().min(1).max(1000).default(81),
  frames_per_second: z.number().int().min(1).max(60).default(16),
  /** The emulator's extension: seconds of video, instead of num_frames. */
  duration: z.number().positive().max(120).optional(),
  sample_steps: z.number().int().min(1).max(40).default(30),
  sample_guide_scale: z.number().min(0).max(10).default(5),
  sample_shift: z.number().min(0).max(10).default(3),
  fast_mode: z.enum(["Off", "Balanced", "Fast"]).default("Balanced"),
  seed: z.number().int().optional(),
  lora_weights: z.string().optional(),
  lora_scale: z.number().optional(),
  disable_safety_checker: z.boolean().default(false),
};

const wan = (name: string, resolution: "480p" | "720p", i2v: boolean) =>
  model({
    owner: "wavespeedai",
    name,
    description: `Wan 2.1 ${i2v ? "image" : "text"}-to-video at ${resolution} (emulated: a moving gradient with the prompt${i2v ? ", starting from the image" : ""})`,
    versions: [madeUpVersion(`wavespeedai/${name}`)],
    input: i2v ? z.object({ ...wanInput, image: z.string() }) : z.object(wanInput),
    output: uri,
    steps: (i) => i.sample_steps,
    run: async (ctx, i) => {
      const image = (i as { image?: string }).image;
      const imagePath = image ? await fetchInput(ctx, "image", image) : undefined;
      let ratio = i.aspect_ratio;
      if (!ratio && imagePath) {
        const meta = await sharp(imagePath).metadata();
        ratio = (meta.width ?? 16) >= (meta.height ?? 9) ? "16:9" : "9:16";
      }
      const [width, height] = WAN_SIZES[resolution][ratio ?? "16:9"]!;
      const fps = i.frames_per_second;
      const frames = i.duration ? Math.max(1, Math.round(i.duration * fps)) : i.num_frames;
      return { output: await generateVideo(ctx, { prompt: i.prompt, width, height, fps, frames, imagePath }) };
    },
  });

const KOKORO_VOICE = /^[a-z][fm]_[a-z]+$/;

/** Every model the emulator serves, by `owner/name`. */
export const MODELS: ModelSpec[] = [
  flux("flux-schnell", "FLUX.1 [schnell] text-to-image (emulated: a picture showing the prompt)", { num_inference_steps: z.number().int().min(1).max(4).default(4) }, 4),
  flux(
    "flux-dev",
    "FLUX.1 [dev] text- and image-to-image (emulated: a picture showing the prompt)",
    {
      image: z.string().optional(),
      prompt_strength: z.number().min(0).max(1).default(0.8),
      num_inference_steps: z.number().int().min(1).max(50).default(28),
      guidance: z.number().min(0).max(10).default(3),
    },
    28,
  ),
  model({
    owner: "stability-ai",
    name: "sdxl",
    description: "SDXL text- and image-to-image (emulated: a picture showing the prompt)",
    versions: ["7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc"],
    input: z.object({
      prompt: z.string().default("An astronaut riding a rainbow unicorn"),
      negative_prompt: z.string().default(""),
      image: z.string().optional(),
      mask: z.string().optional(),
      width: z.number().int().min(64).max(4096).default(1024),
      height: z.number().int().min(64).max(4096).default(1024),
      num_outputs: z.number().int().min(1).max(4).default(1),
      scheduler: z.enum(SDXL_SCHEDULERS).default("K_EULER"),
      num_inference_steps: z.number().int().min(1).max(500).default(50),
      guidance_scale: z.number().min(1).max(50).default(7.5),
      prompt_strength: z.number().min(0).max(1).default(0.8),
      seed: z.number().int().optional(),
      refine: z.enum(["no_refiner", "expert_ensemble_refiner", "base_image_refiner"]).default("no_refiner"),
      high_noise_frac: z.number().min(0).max(1).default(0.8),
      refine_steps: z.number().int().optional(),
      apply_watermark: z.boolean().default(true),
      lora_scale: z.number().min(0).max(1).default(0.6),
      disable_safety_checker: z.boolean().default(false),
    }),
    output: uriList,
    steps: (i) => i.num_inference_steps,
    run: async (ctx, i) => ({
      output: await generateImages(ctx, { prompt: i.prompt, width: i.width, height: i.height, count: i.num_outputs, format: "png", quality: 100, image: i.image }),
    }),
  }),
  wan("wan-2.1-t2v-480p", "480p", false),
  wan("wan-2.1-t2v-720p", "720p", false),
  wan("wan-2.1-i2v-480p", "480p", true),
  wan("wan-2.1-i2v-720p", "720p", true),
  model({
    owner: "lucataco",
    name: "remove-bg",
    description: "Background removal (emulated: the border's colour made transparent)",
    versions: ["95fcc2a26d3899cd6c2691c900465aaeff466285a65c14638cc5f36f34befaf1"],
    input: z.object({ image: z.string() }),
    output: uri,
    run: async (ctx, i) => ({ output: await removeBackground(ctx, i.image) }),
  }),
  model({
    owner: "meta",
    name: "sam-2-video",
    description: "SAM 2 video segmentation (emulated: a disc that starts at the first click and moves)",
    versions: ["ae56b590ea0bdca00b7469636715aaa8bd0a1ec0ed6ee1d50e103d44af779dc6"],
    input: z.object({
      input_video: z.string(),
      click_coordinates: z.string().optional(),
      click_labels: z.string().default("1"),
      click_frames: z.string().default("0"),
      click_object_ids: z.string().default(""),
      mask_type: z.enum(["binary", "highlighted", "greenscreen"]).default("binary"),
      annotation_type: z.enum(["mask", "box", "both"]).default("mask"),
      output_video: z.boolean().default(false),
      video_fps: z.number().int().min(1).max(60).default(30),
      output_format: z.enum(["webp", "jpg", "png"]).default("webp"),
      output_quality: z.number().int().min(0).max(100).default(80),
      output_frame_interval: z.number().int().min(1).default(1),
    }),
    output: uriList,
    run: async (ctx, i) => ({
      output: await generateMask(ctx, {
        video: i.input_video,
        clicks: parseClicks(i.click_coordinates),
        maskType: i.mask_type,
        outputVideo: i.output_video,
        // Real SAM 2 ignores video_fps for an image sequence, which follows the input's frames.
        fps: i.output_video ? i.video_fps : undefined,
        format: i.output_format,
        quality: i.output_quality,
        interval: i.output_frame_interval,
      }),
    }),
  }),
  ...(["8b", "70b"] as const).map((size) =>
    model({
      owner: "meta",
      name: `meta-llama-3-${size}-instruct`,
      description: `Llama 3 ${size.toUpperCase()} instruct (emulated: a deterministic reply built from the prompt; JSON when asked)`,
      versions: [madeUpVersion(`meta/meta-llama-3-${size}-instruct`)],
      input: z.object({
        prompt: z.string().default(""),
        system_prompt: z.string().default("You are a helpful assistant"),
        max_tokens: z.number().int().min(1).max(8192).default(512),
        min_tokens: z.number().int().min(0).max(8192).default(0),
        temperature: z.number().min(0).max(5).default(0.6),
        top_p: z.number().min(0).max(1).default(0.9),
        top_k: z.number().int().min(-1).default(50),
        presence_penalty: z.number().default(1.15),
        frequency_penalty: z.number().default(0.2),
        stop_sequences: z.string().default("<|end_of_text|>,<|eot_id|>"),
        prompt_template: z.string().optional(),
        length_penalty: z.number().optional(),
        seed: z.number().int().optional(),
      }),
      output: { type: "array", items: { type: "string" }, "x-cog-array-type": "iterator", "x-cog-array-display": "concatenate" },
      steps: (i) => i.max_tokens,
      run: async (ctx, i) => {
        const reply = complete(i, ctx.seed);
        return { output: reply.tokens, metrics: { input_token_count: reply.input_token_count, output_token_count: reply.tokens.length } };
      },
    }),
  ),
  model({
    owner: "jaaari",
    name: "kokoro-82m",
    description: "Kokoro 82M text-to-speech (emulated: espeak-ng when installed, else a tone of speech length)",
    versions: ["f559560eb822dc509045f3921a1921234918b91739db4bf3daab2169b71c7a13"],
    input: z.object({
      text: z.string().min(1),
      voice: z.string().regex(KOKORO_VOICE, "a Kokoro voice such as af_bella or bm_george").default("af_bella"),
      speed: z.number().min(0.1).max(5).default(1),
    }),
    output: uri,
    steps: (i) => Math.max(1, Math.ceil(speechSeconds(i.text, i.speed))),
    run: async (ctx, i) => ({ output: await generateSpeech(ctx, i) }),
  }),
  model({
    owner: "sync",
    name: "lipsync-2",
    description: "sync.'s lipsync-2, lips moved to an audio track (emulated: the video's pictures with a blinking mouth bar, carrying the audio)",
    versions: [madeUpVersion("sync/lipsync-2")],
    input: z.object({
      video: z.string(),
      audio: z.string(),
      sync_mode: z.enum(["loop", "bounce", "cut_off", "silence", "remap"]).default("cut_off"),
      temperature: z.number().min(0).max(1).default(0.5),
      active_speaker: z.boolean().default(false),
    }),
    output: uri,
    run: async (ctx, i) => ({ output: await lipsyncVideo(ctx, { video: i.video, audio: i.audio, syncMode: i.sync_mode }) }),
  }),
  model({
    owner: "cutroom",
    name: "auto-rig",
    description: "Auto-rigging placeholder (no public rigging model exists; an operator points the catalog at theirs): a skeleton fitted to the model's bounds",
    versions: [madeUpVersion("cutroom/auto-rig")],
    input: z.object({
      model_file: z.string(),
      rig_type: z.enum(["Biped", "Quadruped", "Humanoid", "Custom"]).default("Biped"),
      joint_size: z.number().min(0).max(100).default(50),
      ik_fk: z.number().min(0).max(100).default(50),
    }),
    output: { type: "object", properties: { rigged_model: uri, skeleton: uri }, required: ["rigged_model", "skeleton"] },
    run: async (ctx, i) => ({ output: await generateRig(ctx, i) }),
  }),
];

const byName = new Map(MODELS.map((m) => [`${m.owner}/${m.name}`, m]));
const byVersion = new Map(MODELS.flatMap((m) => m.versions.map((v) => [v, m] as const)));

export const findModel = (owner: string, name: string) => byName.get(`${owner}/${name}`);
export const findVersion = (version: string) => byVersion.get(version);
