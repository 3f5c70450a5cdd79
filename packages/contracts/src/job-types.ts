import { z } from "zod";
import { Uuid } from "./common.ts";
import { AppError } from "./errors.ts";
import type { MediaFacts } from "./files.ts";
import type { JobWork } from "./jobs.ts";

/** Worker queues: one JetStream consumer per worker kind. */
export const Queue = z.enum(["image", "video", "audio"]);
export type Queue = z.infer<typeof Queue>;

const ImageFormat = z.enum(["jpeg", "png", "webp", "avif"]);
const Fit = z.enum(["cover", "contain", "fill", "inside", "outside"]);
export type Fit = z.infer<typeof Fit>;

export const ImageResizeInput = z
  .object({
    file_id: Uuid,
    width: z.number().int().min(1).max(16384).optional(),
    height: z.number().int().min(1).max(16384).optional(),
    fit: Fit.default("cover"),
    format: ImageFormat.default("jpeg"),
    quality: z.number().int().min(1).max(100).default(82),
  })
  .refine((v) => v.width !== undefined || v.height !== undefined, {
    message: "width or height is required",
    path: ["width"],
  });

export const ImageThumbnailInput = z.object({
  file_id: Uuid,
  width: z.number().int().min(16).max(1024).default(256),
  height: z.number().int().min(16).max(1024).default(256),
  fit: Fit.default("cover"),
  format: ImageFormat.default("webp"),
});

/** Seed 000's colour-grade presets, as offsets applied before the user's sliders. */
export const colorGradePresets = {
  Filmic: { exposure: -0.1, contrast: 15, saturation: 85, temperature: 0, tint: 0 },
  Warm: { exposure: 0.1, contrast: 5, saturation: 110, temperature: 0.15, tint: 0.02 },
  Cool: { exposure: 0, contrast: 5, saturation: 95, temperature: -0.15, tint: 0 },
  "Nollywood-Standard": { exposure: 0.2, contrast: 20, saturation: 125, temperature: 0.08, tint: 0.03 },
} as const;
export const ColorGradePreset = z.enum(Object.keys(colorGradePresets) as [keyof typeof colorGradePresets, ...(keyof typeof colorGradePresets)[]]);

export const FrameRange = z
  .string()
  .regex(/^\d+-\d+$/, 'must look like "0-100"')
  .refine((s) => {
    const [a, b] = s.split("-").map(Number);
    return a! < b!;
  }, "start frame must be before end frame");

export const VideoColorGradeInput = z.object({
  file_id: Uuid,
  preset: ColorGradePreset.default("Filmic"),
  exposure: z.number().min(-3).max(3).default(0),
  contrast: z.number().min(-100).max(100).default(0),
  saturation: z.number().min(0).max(200).default(100),
  lut_file_id: Uuid.optional().describe("a .cube 3D LUT uploaded as a file"),
  frame_range: FrameRange.optional(),
});

/** Seed 000's audio-cleanup presets. */
export const audioCleanupPresets = {
  "Light Denoise": { noiseReduction: 6, highpass: 60, lowpass: 16000, dialogue: false },
  "Heavy Denoise": { noiseReduction: 18, highpass: 100, lowpass: 12000, dialogue: false },
  "Dialogue Enhance": { noiseReduction: 10, highpass: 90, lowpass: 9000, dialogue: true },
} as const;
export const AudioCleanupPreset = z.enum(Object.keys(audioCleanupPresets) as [keyof typeof audioCleanupPresets, ...(keyof typeof audioCleanupPresets)[]]);

export const AudioCleanupInput = z.object({
  file_id: Uuid,
  preset: AudioCleanupPreset.default("Light Denoise"),
  aggression: z.number().min(0).max(100).default(50),
  format: z.enum(["wav", "mp3", "m4a"]).default("wav"),
});

/** Media facts of the files a job's input names, by input field (`file_id`…); undefined where a file has none. */
export type InputMedia = Readonly<Record<string, MediaFacts | undefined>>;

export interface JobTypeDefinition<S extends z.ZodType = z.ZodType> {
  queue: Queue;
  title: string;
  description: string;
  input: S;
  stages: readonly string[];
  /**
   * The work the input asks for, from its files' media facts: what the tier limits bound and the
   * credits grow with. A fact it needs and the file lacks is an INVALID_INPUT AppError.
   */
  work: (input: z.output<S>, media: InputMedia) => JobWork;
  /** Credits reserved at enqueue, from the work; `describe` says the rule to clients beside the number. */
  cost: { estimate: (input: z.output<S>, work: JobWork) => number; describe: string };
  presets?: Record<string, unknown>;
  /** Input fields that name files the job reads: checked for ownership at enqueue. */
  fileFields: readonly string[];
  /**
   * The models catalog entries (packages/models/catalog.json) the input makes the job run: its own
   * and any other it calls (prompt enhancement). Absent for types that run no model. job-service
   * refuses the job (503 PROVIDER_UNAVAILABLE) when one of them cannot run.
   */
  models?: (input: z.output<S>) => readonly ModelUse[];
}

/** One models catalog lookup: `jobType` is the catalog key (a job type, or a use such as prompt.enhance). */
export interface ModelUse {
  jobType: string;
  quality: string;
  variant?: string;
}

const define = <S extends z.ZodType>(d: JobTypeDefinition<S>) => d;

/**
 * The size sharp's resize gives a `src`-sized picture: both sides as asked for cover, contain and
 * fill; the aspect kept for inside and outside, and when only one side is given (the worker uses
 * this very function to bound its output).
 */
export function resizedSize(src: { width: number; height: number }, box: { width?: number; height?: number; fit: Fit }): { width: number; height: number } {
  const side = (n: number) => Math.max(1, Math.round(n));
  const { width: w, height: h } = box;
  if (w !== undefined && h !== undefined) {
    if (box.fit !== "inside" && box.fit !== "outside") return { width: w, height: h };
    const scale = (box.fit === "inside" ? Math.min : Math.max)(w / src.width, h / src.height);
    return { width: side(src.width * scale), height: side(src.height * scale) };
  }
  if (w !== undefined) return { width: w, height: side((src.height * w) / src.width) };
  if (h !== undefined) return { width: side((src.width * h) / src.height), height: h };
  return { width: src.width, height: src.height };
}

const stale = "a file stored before uploads were measured must be uploaded again";

function pictureOf(media: InputMedia, field: string): { width: number; height: number } {
  const m = media[field];
  if (!m?.width || !m.height) {
    throw new AppError("INVALID_INPUT", `${field} names a file with no known picture size: it must be an image or a video (${stale})`, { field, reason: "no picture size" });
  }
  return { width: m.width, height: m.height };
}

function durationOf(media: InputMedia, field: string, kinds: string): number {
  const seconds = media[field]?.duration_seconds;
  if (seconds === null || seconds === undefined) {
    throw new AppError("INVALID_INPUT", `${field} names a file with no known duration: it must be ${kinds} (${stale})`, { field, reason: "no duration" });
  }
  return seconds;
}

function imageWork(input: { width?: number; height?: number; fit: Fit }, media: InputMedia): JobWork {
  const src = pictureOf(media, "file_id");
  const out = resizedSize(src, input);
  return { input_pixels: src.width * src.height, output_pixels: out.width * out.height, media_seconds: 0, output_seconds: 0 };
}

/** Pixels one image credit buys: a 2048×2048 picture, so every image up to that costs 1 as before. */
export const pixelsPerImageCredit = 2048 * 2048;

/** How many `unit`s `seconds` starts, at least one; timed to the nearest second, so a 60.02 s "minute" is one. */
const startedUnits = (seconds: number, unit: number) => Math.max(1, Math.ceil(Math.round(seconds) / unit));
const imageCost = {
  estimate: (_input: unknown, work: JobWork) => Math.max(1, Math.ceil(work.output_pixels / pixelsPerImageCredit)),
  describe: "1 credit per started 2048×2048 (4.2 megapixels) of output image",
};

/** The part of the video a frame range picks, in seconds, at the video's frame rate (25 when unknown, as the worker). */
function gradedSeconds(frameRange: string | undefined, media: MediaFacts | undefined, duration: number): number {
  if (!frameRange) return duration;
  const [start, end] = frameRange.split("-").map(Number) as [number, number];
  const fps = media?.frame_rate ?? 25;
  if (start / fps >= duration) {
    throw new AppError("INVALID_INPUT", `frame_range starts at frame ${start}, but the video has only about ${Math.round(duration * fps)} frames`, {
      field: "frame_range",
      reason: "past the end",
    });
  }
  return Math.min(end / fps, duration) - start / fps;
}

/** Quality levels of generation: seed 001's fast | high and seed 000's economical | balanced | premium, mapped onto models by the catalog. */
export const ModelQuality = z.enum(["fast", "high", "economical", "balanced", "premium"]);
export type ModelQuality = z.infer<typeof ModelQuality>;

/** Picture sizes for each aspect ratio: about a megapixel, sides multiples of 64 (what SDXL and Flux make natively). */
export const aspectSizes = {
  "1:1": { width: 1024, height: 1024 },
  "16:9": { width: 1344, height: 768 },
  "9:16": { width: 768, height: 1344 },
  "4:3": { width: 1152, height: 896 },
  "3:4": { width: 896, height: 1152 },
} as const;
export const AspectRatio = z.enum(Object.keys(aspectSizes) as [keyof typeof aspectSizes, ...(keyof typeof aspectSizes)[]]);
export type AspectRatio = z.infer<typeof AspectRatio>;

const side = z.number().int().min(256).max(2048).multipleOf(8);

export const ImageGenerateInput = z
  .object({
    prompt: z.string().trim().min(1).max(2000),
    negative_prompt: z.string().trim().max(2000).optional().describe("what the picture must not show (sdxl; other families ignore it)"),
    num_images: z.number().int().min(1).max(4).default(1),
    aspect_ratio: AspectRatio.optional().describe("1:1 when neither it nor width/height is given"),
    width: side.optional().describe("with height, instead of aspect_ratio"),
    height: side.optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).optional().describe("the same seed and input give the same images"),
    quality: ModelQuality.default("fast"),
    family: z.enum(["flux", "sdxl", "wan"]).default("flux"),
    reference_file_ids: z.array(Uuid).min(1).max(4).optional().describe("images to start from (image-to-image) or to keep a character like"),
    enhance_prompt: z.boolean().default(false).describe("run the prompt through the language model first; the job records both prompts"),
  })
  .refine((v) => (v.width === undefined) === (v.height === undefined), { message: "width and height go together", path: ["width"] })
  .refine((v) => !(v.aspect_ratio && v.width !== undefined), { message: "give aspect_ratio or width/height, not both", path: ["aspect_ratio"] })
  .refine((v) => !(v.family === "wan" && v.reference_file_ids), { message: "the wan family takes no reference images", path: ["reference_file_ids"] });
export type ImageGenerateInput = z.output<typeof ImageGenerateInput>;

/** The size of each image an image.generate input asks for (the worker asks the model for this very size). */
export function generatedImageSize(input: Pick<ImageGenerateInput, "aspect_ratio" | "width" | "height">): { width: number; height: number } {
  if (input.width !== undefined && input.height !== undefined) return { width: input.width, height: input.height };
  return aspectSizes[input.aspect_ratio ?? "1:1"];
}

/** Credits per image per started megapixel, by quality. */
const imageGenerateCredits: Record<ModelQuality, number> = { fast: 2, economical: 2, balanced: 5, high: 5, premium: 8 };

/** The job type registry: name → queue, input schema, stages, cost model, presets. */
export const jobTypes = {
  "image.resize": define({
    queue: "image",
    title: "Resize / convert an image",
    description: "Resize with sharp to the given box and encode as jpeg, png, webp or avif.",
    input: ImageResizeInput,
    stages: ["fetch", "process", "upload"],
    work: imageWork,
    cost: imageCost,
    fileFields: ["file_id"],
  }),
  "image.thumbnail": define({
    queue: "image",
    title: "Thumbnail",
    description: "A small preview image (default 256×256 webp, cover).",
    input: ImageThumbnailInput,
    stages: ["fetch", "process", "upload"],
    work: imageWork,
    cost: imageCost,
    fileFields: ["file_id"],
  }),
  "video.color-grade": define({
    queue: "video",
    title: "Colour grade",
    description: "Preset look plus exposure/contrast/saturation, optional .cube LUT and frame range; audio kept.",
    input: VideoColorGradeInput,
    stages: ["fetch", "grade", "upload"],
    work: (input, media) => {
      const frame = pictureOf(media, "file_id");
      const duration = durationOf(media, "file_id", "a video");
      const pixels = frame.width * frame.height;
      return { input_pixels: pixels, output_pixels: pixels, media_seconds: duration, output_seconds: gradedSeconds(input.frame_range, media.file_id, duration) };
    },
    cost: {
      estimate: (input, work) => startedUnits(work.output_seconds, 60) * (input.lut_file_id ? 30 : 25),
      describe: "25 credits per started minute of graded video (the frame range when given), 30 with a LUT",
    },
    presets: colorGradePresets,
    fileFields: ["file_id", "lut_file_id"],
  }),
  "audio.cleanup": define({
    queue: "audio",
    title: "Audio cleanup",
    description: "Denoise / dialogue enhance with an aggression dial, loudness normalised (EBU R128).",
    input: AudioCleanupInput,
    stages: ["fetch", "clean", "upload"],
    work: (_input, media) => {
      const duration = durationOf(media, "file_id", "an audio or video file");
      return { input_pixels: 0, output_pixels: 0, media_seconds: duration, output_seconds: duration };
    },
    cost: { estimate: (_input, work) => startedUnits(work.media_seconds, 5 * 60) * 5, describe: "5 credits per started 5 minutes of audio" },
    presets: audioCleanupPresets,
    fileFields: ["file_id"],
  }),
  "image.generate": define({
    queue: "image",
    title: "Generate images",
    description: "Text-to-image (and image-to-image from reference images) with a hosted model: Flux, SDXL or Wan, by quality; the prompt optionally enhanced by a language model first.",
    input: ImageGenerateInput,
    stages: ["prepare", "generate", "upload"],
    work: (input, media) => {
      const { width, height } = generatedImageSize(input);
      const refs = Object.entries(media).filter(([field]) => field.startsWith("reference_file_ids"));
      const inputPixels = Math.max(0, ...refs.map(([, m]) => (m?.width ?? 0) * (m?.height ?? 0)));
      return { input_pixels: inputPixels, output_pixels: width * height, media_seconds: 0, output_seconds: 0 };
    },
    cost: {
      estimate: (input, work) =>
        input.num_images * imageGenerateCredits[input.quality] * Math.max(1, Math.ceil(work.output_pixels / (1024 * 1024))) * (input.family === "wan" ? 2 : 1) + (input.enhance_prompt ? 1 : 0),
      describe: "2 credits per started megapixel (1024×1024) of each image at fast or economical quality, 5 at high or balanced, 8 at premium; twice that for the wan family; 1 more with enhance_prompt",
    },
    fileFields: ["reference_file_ids"],
    models: (input) => [
      { jobType: "image.generate", quality: input.quality, variant: input.family },
      ...(input.enhance_prompt ? [{ jobType: "prompt.enhance", quality: "fast" }] : []),
    ],
  }),
} as const satisfies Record<string, JobTypeDefinition<any>>;

export type JobTypeName = keyof typeof jobTypes;
export const JobTypeName = z.enum(Object.keys(jobTypes) as [JobTypeName, ...JobTypeName[]]);
export type JobInput<T extends JobTypeName> = z.output<(typeof jobTypes)[T]["input"]>;

export function getJobType(name: string): JobTypeDefinition | undefined {
  return Object.hasOwn(jobTypes, name) ? (jobTypes as Record<string, JobTypeDefinition>)[name] : undefined;
}

/** One quality level of a model-backed job type, from the models catalog: what runs it, its price, whether it can run here. */
export const ModelLevelDescription = z.object({
  quality: z.string(),
  variant: z.string().nullable().describe("the family (sdxl, flux, wan) or mode (i2v) this level is for; null: the type's default"),
  provider: z.enum(["replicate", "local"]),
  model: z.string().describe("owner/name[:version] on Replicate, or the local engine"),
  alias_of: z.string().nullable().describe("the quality this one is another name for"),
  price: z.record(z.string(), z.number()).nullable().describe("the provider's price: usd_per_second, usd_per_output, usd_per_output_second or usd_per_million_*_tokens; null for local engines"),
  eta_s: z.number().nullable().describe("a typical run, in seconds"),
  available: z.boolean().describe("whether this server can run it now (a local engine, or a configured provider)"),
});

/** The public description of a job type, as GET /job-types lists it. */
export const JobTypeDescription = z.object({
  type: JobTypeName,
  queue: Queue,
  title: z.string(),
  description: z.string(),
  stages: z.array(z.string()),
  input_schema: z.record(z.string(), z.unknown()).describe("JSON Schema of the job's input"),
  presets: z.record(z.string(), z.unknown()).nullable().describe("named starting points for the input, when the type has any"),
  cost: z.object({ description: z.string() }),
  models: z.array(ModelLevelDescription).nullable().describe("the quality levels of a model-backed type, from the models catalog; null for types that run no model"),
});
export type JobTypeDescription = z.infer<typeof JobTypeDescription>;

/** The public description of a job type, with its input as JSON Schema. */
export function describeJobType(name: JobTypeName): JobTypeDescription {
  const t = jobTypes[name] as JobTypeDefinition;
  return {
    type: name,
    queue: t.queue,
    title: t.title,
    description: t.description,
    stages: [...t.stages],
    input_schema: z.toJSONSchema(t.input, { io: "input", unrepresentable: "any" }),
    presets: t.presets ?? null,
    cost: { description: t.cost.describe },
    models: null,
  };
}
