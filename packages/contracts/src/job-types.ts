import { z } from "zod";
import { Uuid } from "./common.ts";
import { AppError } from "./errors.ts";
import type { FileKind, MediaFacts } from "./files.ts";
import { AudioMixInput, VideoComposeInput, composeClipSeconds, composeFrame, composedSeconds } from "./compose-job-types.ts";
import type { JobWork } from "./jobs.ts";
import { EraseMethod, EraseRegion } from "./video-edit-job-types.ts";
import { VideoDetectTextInput, VideoEraseInput, VideoThumbnailsInput, VideoTranscodeInput, eraseDetects, fitFrame, thumbnailSize, transcodeCodec } from "./video-edit-job-types.ts";

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
  /**
   * Input fields that name files the job reads: checked for ownership at enqueue. A field holds a
   * file id or a list of them; `list[].field` names the file id field of each object of a list
   * (`segments[].audio_file_id`), whose facts go under `list.<index>.field` in InputMedia.
   */
  fileFields: readonly string[];
  /** The kinds of file each of fileFields accepts (`segments[].audio_file_id` as written there); a field not named takes any kind. Another kind is a 422 at enqueue. */
  fileKinds?: Readonly<Record<string, readonly FileKind[]>>;
  /**
   * The models catalog entries (packages/models/catalog.json) the input makes the job run: its own
   * and any other it calls (prompt enhancement). Absent for types that run no model. job-service
   * refuses the job (503 PROVIDER_UNAVAILABLE) when one of them cannot run.
   */
  models?: (input: z.output<S>) => readonly ModelUse[];
  /** Retries and deadlines where the type differs from defaultJobControl (ADR 039). */
  control?: Partial<JobControl>;
}

/** How a job of a type is retried and bounded in time (ADR 039); job-service's env may override some. */
export interface JobControl {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Seconds a job may wait queued before a worker starts it; then it fails EXPIRED. */
  startWithinS: number;
  /** Seconds one run may take; then it is canceled and fails TIMEOUT. */
  timeoutS: number;
}

/** Local engines rarely fail twice the same way; a hosted model's network and provider may (seed 001: 1, 2, 4, 8 s apart). */
export const defaultJobControl: JobControl = { maxAttempts: 3, startWithinS: 24 * 3600, timeoutS: 3600 };
const hostedModel: Partial<JobControl> = { maxAttempts: 5, timeoutS: 1800 };

/** One models catalog lookup: `jobType` is the catalog key (a job type, or a use such as prompt.enhance). */
export interface ModelUse {
  jobType: string;
  quality: string;
  variant?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds every type, each with its own input schema
type AnyJobTypeDefinition = JobTypeDefinition<any>;

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

/** A video input's frame and length: the frame asked for first, so a file with neither is refused for its picture. */
function videoOf(media: InputMedia): { frame: { width: number; height: number }; duration: number } {
  return { frame: pictureOf(media, "file_id"), duration: durationOf(media, "file_id", "a video") };
}

/** The work of a job that reads a whole video and writes frames of its size. */
function videoWork(media: InputMedia): JobWork {
  const { frame, duration } = videoOf(media);
  const pixels = frame.width * frame.height;
  return { input_pixels: pixels, output_pixels: pixels, media_seconds: duration, output_seconds: duration };
}

/** videoWork of a job that writes only the frame range it is given (the whole video without one). */
function frameRangeWork(input: { frame_range?: string }, media: InputMedia): JobWork {
  const work = videoWork(media);
  return { ...work, output_seconds: gradedSeconds(input.frame_range, media.file_id, work.media_seconds) };
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

/** Credits per unit of a text job by quality: fast, economical and balanced run the catalog's small language model, high and premium its large one. */
const textCredits: Record<ModelQuality, number> = { fast: 1, economical: 1, balanced: 1, high: 3, premium: 3 };
/** Tokens a text is, roughly, for pricing before any tokenizer runs: about 4 characters a token in English. */
const roughTokens = (...texts: (string | undefined)[]) => Math.ceil(texts.reduce((n, t) => n + (t?.length ?? 0), 0) / 4);
const noMediaWork = (): JobWork => ({ input_pixels: 0, output_pixels: 0, media_seconds: 0, output_seconds: 0 });

export const TextGenerateInput = z.object({
  prompt: z.string().trim().min(1).max(20_000),
  system_prompt: z.string().trim().max(8000).optional().describe("how the model should answer: its role, tone, format"),
  max_tokens: z.number().int().min(1).max(4096).default(512).describe("the longest answer, in tokens (a token is about ¾ of an English word)"),
  temperature: z.number().min(0).max(2).default(0.7).describe("0 answers most predictably; higher varies more"),
  quality: ModelQuality.default("fast").describe("fast, economical and balanced: the catalog's small language model; high and premium: its large one"),
  save_as_file: z.boolean().default(false).describe("also store the answer as a .txt output file"),
});
export type TextGenerateInput = z.output<typeof TextGenerateInput>;

/** Seed 002's music-video scene prompts: a concept in, a numbered scene list out. */
export const TextScenesInput = z.object({
  concept_prompt: z.string().trim().min(1).max(2000).describe('the idea of the whole video ("Robot exploring Austin, Texas")'),
  num_scenes: z.number().int().min(1).max(20).default(4),
  scene_duration: z.number().min(1).max(30).default(8).describe("seconds each scene should last; video models make clips of 5 to 10 s"),
  style: z.string().trim().max(300).optional().describe('a look every scene keeps ("neon noir, rain")'),
  quality: ModelQuality.default("fast"),
});
export type TextScenesInput = z.output<typeof TextScenesInput>;

/** A scene of text.scenes' result. */
export const GeneratedScene = z.object({
  sequence: z.number().int().positive(),
  prompt: z.string().trim().min(1).max(2000),
  duration: z.number().positive().max(60),
});
export type GeneratedScene = z.infer<typeof GeneratedScene>;

export const TextScriptAnalysisInput = z.object({
  file_id: Uuid.describe("a screenplay: Fountain (.fountain) or plain text, UTF-8"),
  notes: z
    .boolean()
    .default(true)
    .describe("add a language model's notes (structure, pacing, characters) when a model provider serves; the breakdown itself runs locally and never needs one"),
  quality: ModelQuality.default("fast").describe("of the notes: fast, economical and balanced use the small language model, high and premium the large one"),
});
export type TextScriptAnalysisInput = z.output<typeof TextScriptAnalysisInput>;

/**
 * A speaking voice, named as Kokoro names them, which the local engine (espeak-ng) maps onto its own:
 * the language (a American and b British English, e Spanish, f French, h Hindi, i Italian, j Japanese,
 * p Brazilian Portuguese, z Mandarin), f or m, then a name.
 */
export const TtsVoice = z
  .string()
  .regex(/^[abefhijpz][fm]_[a-z]+$/, "a voice such as af_bella, am_adam, bf_emma or bm_george: language letter, f or m, _name")
  .describe("Kokoro's voice names (af_bella, am_adam, bf_emma, bm_george, ff_siwis…); the local engine keeps the language and the gender");

export const AudioTtsInput = z.object({
  text: z.string().trim().min(1).max(5000),
  voice: TtsVoice.default("af_bella"),
  speed: z.number().min(0.5).max(2).default(1).describe("1 is normal; 2 is twice as fast"),
  format: z.enum(["wav", "mp3"]).default("wav"),
  quality: ModelQuality.default("fast").describe("fast, economical and balanced speak with the local engine (espeak-ng); high and premium with the provider's voices (Kokoro)"),
});
export type AudioTtsInput = z.output<typeof AudioTtsInput>;

/** Seconds `text` takes to say at `speed`: 150 words a minute, a word counted for every 6 characters at least (scripts without spaces). */
export function speechSeconds(text: string, speed: number): number {
  const words = Math.max(text.trim().split(/\s+/).filter(Boolean).length, Math.ceil(text.trim().length / 6));
  return (words * 0.4) / speed;
}

/** The size of each image an image.generate input asks for (the worker asks the model for this very size). */
export function generatedImageSize(input: Pick<ImageGenerateInput, "aspect_ratio" | "width" | "height">): { width: number; height: number } {
  if (input.width !== undefined && input.height !== undefined) return { width: input.width, height: input.height };
  return aspectSizes[input.aspect_ratio ?? "1:1"];
}

/** Credits per image per started megapixel, by quality. */
const imageGenerateCredits: Record<ModelQuality, number> = { fast: 2, economical: 2, balanced: 5, high: 5, premium: 8 };

/** The aspect ratio of AspectRatio nearest to a picture's (by log ratio): what an image-to-video run keeps by default. */
export function nearestAspectRatio({ width, height }: { width: number; height: number }): AspectRatio {
  const off = (r: AspectRatio) => Math.abs(Math.log(aspectSizes[r].width / aspectSizes[r].height / (width / height)));
  return AspectRatio.options.reduce((best, r) => (off(r) < off(best) ? r : best));
}

/** Wan 2.1's frame sizes: 480p at fast, economical and balanced quality, 720p at high and premium. */
export const videoFrameSizes = {
  "480p": { "16:9": { width: 832, height: 480 }, "9:16": { width: 480, height: 832 }, "1:1": { width: 624, height: 624 }, "4:3": { width: 640, height: 480 }, "3:4": { width: 480, height: 640 } },
  "720p": { "16:9": { width: 1280, height: 720 }, "9:16": { width: 720, height: 1280 }, "1:1": { width: 960, height: 960 }, "4:3": { width: 960, height: 720 }, "3:4": { width: 720, height: 960 } },
} as const satisfies Record<string, Record<AspectRatio, { width: number; height: number }>>;
export const videoResolution = (quality: ModelQuality): keyof typeof videoFrameSizes => (quality === "high" || quality === "premium" ? "720p" : "480p");

export const VideoGenerateInput = z
  .object({
    prompt: z.string().trim().min(1).max(2000),
    negative_prompt: z.string().trim().max(2000).optional().describe("what the video must not show"),
    image_file_id: Uuid.optional().describe("an image to start from (image-to-video); the video keeps its aspect ratio unless aspect_ratio says otherwise"),
    reference_file_ids: z.array(Uuid).min(1).max(4).optional().describe("images to keep a character or style like, for a family whose model takes them (wan does not)"),
    duration_s: z.number().int().min(1).max(10).default(5).describe("seconds of video"),
    aspect_ratio: AspectRatio.optional().describe("16:9 by default; with image_file_id, the image's nearest"),
    seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    quality: ModelQuality.default("fast").describe("fast, economical and balanced make 480p; high and premium 720p (image-to-video: 480p)"),
    family: z.enum(["wan"]).default("wan"),
    enhance_prompt: z.boolean().default(false).describe("run the prompt through the language model first (motion, camera, scene); the job records both prompts"),
  })
  .refine((v) => !(v.family === "wan" && v.reference_file_ids), {
    message: "the wan family takes no reference images: give the picture to start from as image_file_id",
    path: ["reference_file_ids"],
  });
export type VideoGenerateInput = z.output<typeof VideoGenerateInput>;

/** The frame an input asks for: its aspect ratio (or the start image's nearest, or 16:9) at its quality's resolution. */
export function generatedVideoFrame(input: Pick<VideoGenerateInput, "aspect_ratio" | "quality">, startImage?: { width: number; height: number }): { aspect_ratio: AspectRatio; width: number; height: number } {
  const aspect = input.aspect_ratio ?? (startImage ? nearestAspectRatio(startImage) : "16:9");
  return { aspect_ratio: aspect, ...videoFrameSizes[videoResolution(input.quality)][aspect] };
}

/** Credits per second of generated video, by quality (720p costs more than twice 480p at the provider). */
const videoGenerateCredits: Record<ModelQuality, number> = { fast: 5, economical: 5, balanced: 5, high: 12, premium: 12 };

export const ImageRemoveBackgroundInput = z.object({
  file_id: Uuid,
  method: z
    .enum(["auto", "model", "chroma_key"])
    .default("auto")
    .describe("model: the background-removal model; chroma_key: the local green-screen key; auto: the key when the picture's border is mostly green, else the model"),
  quality: ModelQuality.default("fast"),
});
export type ImageRemoveBackgroundInput = z.output<typeof ImageRemoveBackgroundInput>;

/**
 * Seed 000's roto presets: what SAM 2 is pointed at on the first frame (a click, as a share of the
 * frame's width and height) and the object's label.
 */
export const rotoPresets = {
  "Track Person": { label: "person", click: [0.5, 0.55] },
  "Track Object": { label: "object", click: [0.5, 0.5] },
  "Track Face": { label: "face", click: [0.5, 0.3] },
  "Track Clothing": { label: "clothing", click: [0.5, 0.62] },
} as const;
export const RotoPreset = z.enum(Object.keys(rotoPresets) as [keyof typeof rotoPresets, ...(keyof typeof rotoPresets)[]]);

export const VideoRotoInput = z.object({
  file_id: Uuid,
  frame_range: FrameRange.optional().describe("frames start-end (end exclusive) to track; the whole video when absent"),
  description: z.string().trim().min(1).max(500).describe("what to track, in words (\"the person walking\")"),
  preset: RotoPreset.default("Track Person"),
  tightness: z.number().min(0).max(100).default(50).describe("50 keeps the mask's edge; above shrinks it (erode), below grows it (dilate)"),
  smoothing: z.number().min(0).max(100).default(50).describe("feathers the edge and smooths it over neighbouring frames; 0 leaves the mask hard"),
  output_format: z.enum(["video_alpha", "png_sequence"]).default("video_alpha").describe("a video with an alpha channel, or a zip of RGBA PNGs"),
  alpha_codec: z.enum(["prores_4444", "vp9"]).default("prores_4444").describe("video_alpha only: ProRes 4444 in .mov, or VP9 with alpha in .webm"),
  quality: ModelQuality.default("fast"),
});
export type VideoRotoInput = z.output<typeof VideoRotoInput>;

export const RigType = z.enum(["Biped", "Quadruped", "Humanoid", "Custom"]);

export const ModelRigInput = z.object({
  file_id: Uuid.describe("an FBX (binary or ASCII) or OBJ model"),
  rig_type: RigType.default("Biped"),
  joint_size: z.number().min(0).max(100).default(50),
  ik_fk: z.number().min(0).max(100).default(50).describe("0 is pure FK, 100 pure IK on the limbs"),
  quality: ModelQuality.default("fast"),
});
export type ModelRigInput = z.output<typeof ModelRigInput>;

const seconds = z.number().min(0).max(24 * 3600);

/** One segment of a lip-sync: a span of the video whose speech becomes a span of an audio file. */
export const LipsyncSegment = z.object({
  start_time: seconds.describe("where the segment starts in the video, in seconds"),
  end_time: seconds.describe("where it ends; after start_time, within the video"),
  audio_file_id: Uuid.describe("the audio (or a video whose sound is used) spoken over the segment"),
  audio_start: seconds.optional().describe("where in the audio to start; default 0"),
  audio_end: seconds.optional().describe("where in the audio to stop; default its end. Audio longer than the segment is cut at the segment's end, shorter is followed by silence"),
  label: z.string().trim().max(100).optional(),
  color: z.string().regex(/^#[0-9a-fA-F]{6}$/, "a colour such as #FF9800").optional(),
});
export type LipsyncSegment = z.output<typeof LipsyncSegment>;

export const VideoLipsyncInput = z.object({
  file_id: Uuid.describe("the video whose speakers are re-voiced"),
  segments: z.array(LipsyncSegment).min(1).max(50).describe("at most 3 on the free tier, 10 on pro, 50 on enterprise"),
  mode: z
    .enum(["lipsync", "dub"])
    .default("lipsync")
    .describe("lipsync: the lip-sync model moves the lips to each segment's audio; dub: the audio is replaced alone (no model, runs without a provider)"),
  quality: ModelQuality.default("fast"),
  effects: z.array(EraseRegion).max(200).default([]).describe("boxes erased over time ranges once the segments are joined (seed 004's text removal), as video.erase's regions: erasure or protection"),
  effects_method: EraseMethod.default("delogo").describe("how the effects' boxes are erased, as video.erase's method"),
});
export type VideoLipsyncInput = z.output<typeof VideoLipsyncInput>;

/** Where each segment's audio is read from and for how long: its crop, checked against the segments and the files' lengths. */
export interface PlannedSegment {
  index: number;
  start: number;
  end: number;
  audioStart: number;
  /** Seconds of audio placed: the crop, cut at the segment's length. */
  audioSeconds: number;
}

/** How far past a file's measured end a time may point and still be read as its end (container rounding). */
const endTolerance = 0.05;

/**
 * Checks a lip-sync's segments against the video and their audio files (end after start, inside the
 * video, no overlap, the audio crop inside the audio): INVALID_SEGMENT_CONFIG naming the segment's
 * index otherwise. Returns them in video order, with the audio each places.
 */
export function planSegments(input: Pick<VideoLipsyncInput, "segments">, videoSeconds: number, audioSeconds: (index: number) => number): PlannedSegment[] {
  const bad = (index: number, message: string, extra: Record<string, unknown>) => {
    const s = input.segments[index]!;
    return new AppError("INVALID_SEGMENT_CONFIG", `segments[${index}]: ${message}`, { segment_index: index, start_time: s.start_time, end_time: s.end_time, ...extra });
  };
  const planned = input.segments.map((s, index): PlannedSegment => {
    if (s.end_time <= s.start_time) throw bad(index, "end_time must be after start_time", { reason: "end before start" });
    if (s.end_time > videoSeconds + endTolerance) {
      throw bad(index, `end_time ${s.end_time} s is past the end of the video (${videoSeconds} s)`, { reason: "outside the video", video_duration: videoSeconds });
    }
    const length = audioSeconds(index);
    const audioStart = s.audio_start ?? 0;
    const audioEnd = s.audio_end ?? length;
    if (audioEnd <= audioStart) throw bad(index, "audio_end must be after audio_start", { reason: "audio end before start", audio_start: audioStart, audio_end: audioEnd });
    if (audioStart >= length || audioEnd > length + endTolerance) {
      throw bad(index, `the audio crop ${audioStart}–${audioEnd} s is outside the audio (${length} s)`, { reason: "outside the audio", audio_duration: length, audio_start: audioStart, audio_end: audioEnd });
    }
    return { index, start: s.start_time, end: Math.min(s.end_time, videoSeconds), audioStart, audioSeconds: Math.min(Math.min(audioEnd, length) - audioStart, s.end_time - s.start_time) };
  });
  const ordered = [...planned].sort((a, b) => a.start - b.start);
  for (let i = 1; i < ordered.length; i++) {
    const [prev, next] = [ordered[i - 1]!, ordered[i]!];
    if (next.start < prev.end) throw bad(next.index, `overlaps segments[${prev.index}] (${prev.start}–${prev.end} s)`, { reason: "overlap", overlaps: prev.index });
  }
  return ordered;
}

/** Credits per started minute of segments: the lip-sync model, or a plain dub. */
const lipsyncCredits = { lipsync: 20, dub: 5 } as const;

/** video.compose's work: the clips' lengths from their media facts (a still lasts its duration), the composition's length and frame. */
function composeWork(input: VideoComposeInput, media: InputMedia): JobWork {
  const clipSeconds = input.clips.map((clip, i) => {
    const key = `clips.${i}.file_id`;
    const m = media[key];
    // A still has a picture and no duration; a file with neither is not a clip.
    const source = m?.duration_seconds ?? (m?.width ? null : durationOf(media, key, "a video or an image"));
    const length = composeClipSeconds(clip, source);
    if (length === undefined) {
      throw new AppError("INVALID_INPUT", `clips[${i}] starts at ${clip.trim_start} s, past the end of its video (${source} s)`, { field: `clips.${i}.trim_start`, reason: "past the end" });
    }
    if (input.transition === "crossfade" && input.clips.length > 1 && length <= input.transition_duration) {
      throw new AppError("INVALID_INPUT", `clips[${i}] lasts ${length} s, not longer than the ${input.transition_duration} s crossfade`, { field: `clips.${i}`, reason: "shorter than the transition" });
    }
    return length;
  });
  const frame = composeFrame(input, pictureOf(media, "clips.0.file_id"));
  const inputs = Object.values(media);
  const inputPixels = Math.max(0, ...inputs.map((m) => (m?.width ?? 0) * (m?.height ?? 0)));
  const mediaSeconds = inputs.reduce((sum, m) => sum + (m?.duration_seconds ?? 0), 0);
  return { input_pixels: inputPixels, output_pixels: frame.width * frame.height, media_seconds: mediaSeconds, output_seconds: composedSeconds(input, clipSeconds) };
}

/** The job type registry: name → queue, input schema, stages, cost model, presets. */
export const jobTypes = {
  "image.resize": define({
    control: { timeoutS: 300 },
    queue: "image",
    title: "Resize / convert an image",
    description: "Resize with sharp to the given box and encode as jpeg, png, webp or avif.",
    input: ImageResizeInput,
    stages: ["fetch", "process", "upload"],
    work: imageWork,
    cost: imageCost,
    fileFields: ["file_id"],
    fileKinds: { file_id: ["image"] },
  }),
  "image.thumbnail": define({
    control: { timeoutS: 300 },
    queue: "image",
    title: "Thumbnail",
    description: "A small preview image (default 256×256 webp, cover).",
    input: ImageThumbnailInput,
    stages: ["fetch", "process", "upload"],
    work: imageWork,
    cost: imageCost,
    fileFields: ["file_id"],
    fileKinds: { file_id: ["image"] },
  }),
  "video.color-grade": define({
    queue: "video",
    title: "Colour grade",
    description: "Preset look plus exposure/contrast/saturation, optional .cube LUT and frame range; audio kept.",
    input: VideoColorGradeInput,
    stages: ["fetch", "grade", "upload"],
    work: frameRangeWork,
    cost: {
      estimate: (input, work) => startedUnits(work.output_seconds, 60) * (input.lut_file_id ? 30 : 25),
      describe: "25 credits per started minute of graded video (the frame range when given), 30 with a LUT",
    },
    presets: colorGradePresets,
    fileFields: ["file_id", "lut_file_id"],
    fileKinds: { file_id: ["video"], lut_file_id: ["other"] },
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
    fileKinds: { file_id: ["audio", "video"] },
  }),
  "text.generate": define({
    control: hostedModel,
    queue: "image",
    title: "Generate text",
    description: "A language model's completion of the prompt, with an optional system prompt, max_tokens and temperature; the text is in the result, and optionally a .txt output file.",
    input: TextGenerateInput,
    stages: ["generate", "upload"],
    work: noMediaWork,
    cost: {
      estimate: (input) => Math.max(1, Math.ceil((roughTokens(input.prompt, input.system_prompt) + input.max_tokens) / 2000)) * textCredits[input.quality],
      describe:
        "1 credit per started 2,000 tokens (the prompts at about 4 characters a token, plus max_tokens) at fast, economical or balanced quality, 3 at high or premium",
    },
    fileFields: [],
    models: (input) => [{ jobType: "text.generate", quality: input.quality }],
  }),
  "text.scenes": define({
    control: hostedModel,
    queue: "image",
    title: "Scene prompts for a music video",
    description:
      "A language model splits a concept into num_scenes scene prompts for a video model, each with its sequence number and duration (seed 002's MV scenes); the answer is checked, and asked again once when it is not the JSON wanted.",
    input: TextScenesInput,
    stages: ["generate"],
    work: noMediaWork,
    cost: {
      estimate: (input) => Math.ceil(input.num_scenes / 5) * textCredits[input.quality],
      describe: "1 credit per started 5 scenes at fast, economical or balanced quality, 3 at high or premium",
    },
    fileFields: [],
    models: (input) => [{ jobType: "text.scenes", quality: input.quality }],
  }),
  "text.script-analysis": define({
    control: hostedModel,
    queue: "image",
    title: "Screenplay breakdown",
    description:
      "A Fountain or plain-text screenplay broken down locally and exactly: scenes (INT/EXT, location, time of day, length in eighths of a page), characters with their speeches and words, locations, page count at 55 lines a page and a runtime at a page a minute; plus a language model's notes when a model provider serves.",
    input: TextScriptAnalysisInput,
    stages: ["fetch", "breakdown", "notes"],
    work: noMediaWork,
    cost: {
      estimate: (input) => (!input.notes ? 1 : input.quality === "high" || input.quality === "premium" ? 5 : 2),
      describe: "2 credits per screenplay, notes included (5 at high or premium quality, whose notes come from the large model); 1 with notes: false",
    },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["other"] },
    // Only the local breakdown is required: the notes are added when a provider serves, so the type runs without one.
    models: () => [{ jobType: "text.script-analysis", quality: "breakdown" }],
  }),
  "audio.tts": define({
    control: hostedModel,
    queue: "audio",
    title: "Text to speech",
    description: "Speech from text (up to 5,000 characters) in a voice, at a speed, as wav or mp3: the local engine (espeak-ng) by default, the provider's voices (Kokoro) at high or premium quality.",
    input: AudioTtsInput,
    stages: ["speak", "encode", "upload"],
    work: (input) => ({ input_pixels: 0, output_pixels: 0, media_seconds: 0, output_seconds: speechSeconds(input.text, input.speed) }),
    cost: {
      estimate: (input, work) => startedUnits(work.output_seconds, 60) * (input.quality === "high" || input.quality === "premium" ? 3 : 1),
      describe: "1 credit per started minute of speech (150 words a minute at speed 1) with the local engine, 3 with the provider's voices (high or premium quality)",
    },
    fileFields: [],
    models: (input) => [{ jobType: "audio.tts", quality: input.quality }],
  }),
  "image.generate": define({
    control: hostedModel,
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
    fileKinds: { reference_file_ids: ["image"] },
    models: (input) => [
      { jobType: "image.generate", quality: input.quality, variant: input.family },
      ...(input.enhance_prompt ? [{ jobType: "prompt.enhance", quality: "fast" }] : []),
    ],
  }),
  "video.generate": define({
    control: hostedModel,
    queue: "video",
    title: "Generate a video",
    description: "Text-to-video, or image-to-video from a start image, with a hosted model (Wan 2.1) by quality; the prompt optionally enhanced by a language model first. The output is an H.264 mp4 of the asked length and aspect ratio.",
    input: VideoGenerateInput,
    stages: ["prepare", "generate", "encode", "upload"],
    work: (input, media) => {
      const start = input.image_file_id ? pictureOf(media, "image_file_id") : undefined;
      const { width, height } = generatedVideoFrame(input, start);
      return { input_pixels: start ? start.width * start.height : 0, output_pixels: width * height, media_seconds: 0, output_seconds: input.duration_s };
    },
    cost: {
      estimate: (input) => input.duration_s * videoGenerateCredits[input.quality] + (input.enhance_prompt ? 1 : 0),
      describe: "5 credits per second of video at fast, economical or balanced quality (480p), 12 at high or premium (720p); 1 more with enhance_prompt",
    },
    fileFields: ["image_file_id", "reference_file_ids"],
    fileKinds: { image_file_id: ["image"], reference_file_ids: ["image"] },
    models: (input) => [
      { jobType: "video.generate", quality: input.quality, variant: input.image_file_id ? "i2v" : input.family },
      ...(input.enhance_prompt ? [{ jobType: "prompt.enhance", quality: "fast" }] : []),
    ],
  }),
  "image.remove-background": define({
    control: hostedModel,
    queue: "image",
    title: "Remove the background",
    description: "A PNG with alpha from any photo: the background-removal model, or a local chroma key for green-screen shots (method auto picks the key when the picture's border is mostly green).",
    input: ImageRemoveBackgroundInput,
    stages: ["fetch", "remove", "upload"],
    work: (_input, media) => {
      const { width, height } = pictureOf(media, "file_id");
      return { input_pixels: width * height, output_pixels: width * height, media_seconds: 0, output_seconds: 0 };
    },
    cost: {
      estimate: (input, work) => Math.max(1, Math.ceil(work.output_pixels / pixelsPerImageCredit)) * (input.method === "chroma_key" ? 1 : 3),
      describe: "3 credits per started 2048×2048 (4.2 megapixels) of image with the model or auto, 1 with chroma_key",
    },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["image"] },
    models: (input) => [{ jobType: "image.remove-background", quality: input.method === "chroma_key" ? "green-screen" : input.quality }],
  }),
  "video.roto": define({
    control: hostedModel,
    queue: "video",
    title: "Roto / track a subject",
    description:
      "SAM 2 tracks the described subject (pointed at by the preset) and gives its mask; Cutroom tightens or loosens it (erode/dilate), feathers it and smooths it over time, and writes the footage with the mask as alpha: a ProRes 4444 .mov or VP9 .webm, or a zip of RGBA PNGs.",
    input: VideoRotoInput,
    stages: ["fetch", "track", "matte", "upload"],
    work: frameRangeWork,
    cost: {
      estimate: (_input, work) => 2 * startedUnits(work.output_seconds, 1),
      describe: "2 credits per started second of tracked video (the frame range when given)",
    },
    presets: rotoPresets,
    fileFields: ["file_id"],
    fileKinds: { file_id: ["video"] },
    models: (input) => [{ jobType: "video.roto", quality: input.quality }],
  }),
  "model.rig": define({
    control: hostedModel,
    queue: "video",
    title: "Auto-rig a 3D model",
    description: "A skeleton of the rig type fitted to an FBX or OBJ model, with joint size and IK/FK blend, by the rigging model of the catalog: a skinned GLB and the skeleton as JSON.",
    input: ModelRigInput,
    stages: ["fetch", "rig", "upload"],
    // A 3D model has no picture or duration for the tier limits to bound; its size is bounded at upload.
    work: noMediaWork,
    cost: { estimate: () => 20, describe: "20 credits per model rigged" },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["other"] },
    models: (input) => [{ jobType: "model.rig", quality: input.quality }],
  }),
  "video.lipsync": define({
    control: hostedModel,
    queue: "video",
    title: "Lip-sync segments (pro-sync)",
    description:
      "Each segment of the video takes the speech of an audio file (cropped with audio_start/audio_end), with the lips moved to it by the lip-sync model (mode lipsync) or the sound alone replaced (mode dub, no model); the segments are joined back into the untouched parts, so the video keeps its length. Progress is reported per segment.",
    input: VideoLipsyncInput,
    stages: ["fetch", "segments", "assemble", "upload"],
    work: (input, media) => {
      const work = videoWork(media);
      const audio = (i: number) => durationOf(media, `segments.${i}.audio_file_id`, "an audio or video file");
      planSegments(input, work.media_seconds, audio);
      return { ...work, segments: input.segments.length };
    },
    cost: {
      estimate: (input) => startedUnits(input.segments.reduce((sum, s) => sum + Math.max(0, s.end_time - s.start_time), 0), 60) * lipsyncCredits[input.mode],
      describe: "20 credits per started minute of segments (their total length) with the lip-sync model, 5 in dub mode",
    },
    fileFields: ["file_id", "segments[].audio_file_id"],
    fileKinds: { file_id: ["video"], "segments[].audio_file_id": ["audio", "video"] },
    // A dub needs no model, so it runs where no provider serves.
    models: (input) => (input.mode === "lipsync" ? [{ jobType: "video.lipsync", quality: input.quality }] : []),
  }),
  "video.compose": define({
    queue: "video",
    title: "Compose a video",
    description:
      "Clips (videos, trimmed, and still images with an optional slow zoom) joined by cuts or crossfades, with timed text and image overlays and audio mixed over the clips' sound (music ducked under a voice when asked), scaled and padded to one frame and fps; an H.264/AAC mp4 at the asked loudness. Seed 003's compose-final-video, seed 002's compositing stage.",
    input: VideoComposeInput,
    stages: ["fetch", "compose", "upload"],
    work: composeWork,
    cost: {
      estimate: (_input, work) => startedUnits(work.output_seconds, 60) * 20,
      describe: "20 credits per started minute of composed video",
    },
    fileFields: ["clips[].file_id", "image_overlays[].file_id", "audio[].file_id"],
    fileKinds: { "clips[].file_id": ["video", "image"], "image_overlays[].file_id": ["image"], "audio[].file_id": ["audio", "video"] },
  }),
  "audio.mix": define({
    queue: "audio",
    title: "Mix audio",
    description: "Audio files placed on a timeline with their volumes, mixed and loudness normalised (EBU R128, -16 LUFS by default); wav, mp3 or m4a.",
    input: AudioMixInput,
    stages: ["fetch", "mix", "upload"],
    work: (input, media) => {
      const lengths = input.tracks.map((_t, i) => durationOf(media, `tracks.${i}.file_id`, "an audio or video file"));
      const end = Math.max(...input.tracks.map((t, i) => t.start + lengths[i]!));
      return { input_pixels: 0, output_pixels: 0, media_seconds: lengths.reduce((a, b) => a + b, 0), output_seconds: end };
    },
    cost: { estimate: (_input, work) => startedUnits(work.output_seconds, 60) * 2, describe: "2 credits per started minute of mixed audio" },
    fileFields: ["tracks[].file_id"],
    fileKinds: { "tracks[].file_id": ["audio", "video"] },
  }),
  "video.detect-text": define({
    queue: "video",
    title: "Detect burnt-in text",
    description:
      "Frames sampled over the video (sample_fps a second) are read by tesseract OCR; words above min_confidence are joined into captions and followed over time: regions {start_time, end_time, bbox, text, confidence}.",
    input: VideoDetectTextInput,
    stages: ["fetch", "detect"],
    work: (_input, media) => videoWork(media),
    cost: { estimate: (_input, work) => startedUnits(work.media_seconds, 60) * 5, describe: "5 credits per started minute of video" },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["video"] },
  }),
  "video.erase": define({
    queue: "video",
    title: "Erase text and logos (GhostCut)",
    description:
      "Seed 004's GhostCut: erasure regions (boxes over time ranges) and, with auto_detect, the burnt-in text OCR finds are erased by delogo, blur or inpaint (delogo's interpolation softened by a blur, not a learned model); protection regions keep their pixels. H.264 mp4, sound kept; the result lists what was erased and what was skipped as protected.",
    input: VideoEraseInput,
    stages: ["fetch", "detect", "erase", "upload"],
    work: (input, media) => {
      const { frame, duration } = videoOf(media);
      input.regions.forEach((r, i) => {
        if (r.start_time >= duration) {
          throw new AppError("INVALID_INPUT", `regions[${i}] starts at ${r.start_time} s, past the end of the video (${duration} s)`, { field: `regions.${i}.start_time`, reason: "past the end" });
        }
        if (r.bbox.x >= frame.width || r.bbox.y >= frame.height) {
          throw new AppError("INVALID_INPUT", `regions[${i}]'s box starts outside the ${frame.width}×${frame.height} frame`, { field: `regions.${i}.bbox`, reason: "outside the frame" });
        }
      });
      return videoWork(media);
    },
    cost: {
      estimate: (input, work) => startedUnits(work.media_seconds, 60) * (eraseDetects(input) ? 25 : 20),
      describe: "20 credits per started minute of video, 25 with auto_detect (OCR over the whole video first)",
    },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["video"] },
  }),
  "video.transcode": define({
    queue: "video",
    title: "Transcode a video",
    description: "Another container (mp4, webm, mov) and codec (h264, h265, vp9, prores as the container allows), scaled down to a maximum size (aspect kept), at an fps, crf or bitrate, with or without its sound.",
    input: VideoTranscodeInput,
    stages: ["fetch", "transcode", "upload"],
    work: (input, media) => {
      const work = videoWork(media);
      const out = fitFrame(pictureOf(media, "file_id"), { width: input.max_width, height: input.max_height });
      return { ...work, output_pixels: out.width * out.height };
    },
    cost: { estimate: (input, work) => startedUnits(work.media_seconds, 60) * (transcodeCodec(input) === "prores" ? 3 : 5), describe: "5 credits per started minute of video, 3 to ProRes (no compression search)" },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["video"] },
  }),
  "video.thumbnails": define({
    queue: "video",
    title: "Thumbnails of a video",
    description: "One image at a time, count images evenly spaced, or a contact sheet of count frames in columns (ffmpeg's tile filter); jpeg, png or webp.",
    input: VideoThumbnailsInput,
    stages: ["fetch", "extract", "upload"],
    work: (input, media) => {
      const { frame: src, duration } = videoOf(media);
      if (input.mode === "single" && input.time !== undefined && input.time >= duration) {
        throw new AppError("INVALID_INPUT", `time ${input.time} s is past the end of the video (${duration} s)`, { field: "time", reason: "past the end" });
      }
      const tile = thumbnailSize(input, src);
      const tiles = input.mode === "single" ? 1 : input.count;
      const columns = Math.min(input.columns, tiles);
      const out = input.mode === "contact_sheet" ? tile.width * columns * tile.height * Math.ceil(tiles / columns) : tile.width * tile.height;
      return { input_pixels: src.width * src.height, output_pixels: out, media_seconds: duration, output_seconds: 0 };
    },
    cost: {
      estimate: (input) => Math.ceil((input.mode === "single" ? 1 : input.count) / 10),
      describe: "1 credit per started 10 frames (a single image: 1); a seek per frame, so the video's length does not matter",
    },
    fileFields: ["file_id"],
    fileKinds: { file_id: ["video"] },
  }),
} as const satisfies Record<string, AnyJobTypeDefinition>;

export type JobTypeName = keyof typeof jobTypes;
export const JobTypeName = z.enum(Object.keys(jobTypes) as [JobTypeName, ...JobTypeName[]]);
export type JobInput<T extends JobTypeName> = z.output<(typeof jobTypes)[T]["input"]>;

export function getJobType(name: string): JobTypeDefinition | undefined {
  return Object.hasOwn(jobTypes, name) ? (jobTypes as Record<string, JobTypeDefinition>)[name] : undefined;
}

/** A type's retries and deadlines: its own where it has them, else defaultJobControl. */
export function jobControl(name: string): JobControl {
  return { ...defaultJobControl, ...getJobType(name)?.control };
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
