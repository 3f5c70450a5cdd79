import { z } from "zod";
import { Uuid } from "./common.ts";

/** Worker queues: one JetStream consumer per worker kind. */
export const Queue = z.enum(["image", "video", "audio"]);
export type Queue = z.infer<typeof Queue>;

const ImageFormat = z.enum(["jpeg", "png", "webp", "avif"]);
const Fit = z.enum(["cover", "contain", "fill", "inside", "outside"]);

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

export interface JobTypeDefinition<S extends z.ZodType = z.ZodType> {
  queue: Queue;
  title: string;
  description: string;
  input: S;
  stages: readonly string[];
  /** Credits reserved at enqueue; `describe` is shown to clients beside the number. */
  cost: { estimate: (input: z.output<S>) => number; describe: string };
  presets?: Record<string, unknown>;
  /** Input fields that name files the job reads: checked for ownership at enqueue. */
  fileFields: readonly string[];
}

const define = <S extends z.ZodType>(d: JobTypeDefinition<S>) => d;

/** The job type registry: name → queue, input schema, stages, cost model, presets. */
export const jobTypes = {
  "image.resize": define({
    queue: "image",
    title: "Resize / convert an image",
    description: "Resize with sharp to the given box and encode as jpeg, png, webp or avif.",
    input: ImageResizeInput,
    stages: ["fetch", "process", "upload"],
    cost: { estimate: () => 1, describe: "1 credit per image" },
    fileFields: ["file_id"],
  }),
  "image.thumbnail": define({
    queue: "image",
    title: "Thumbnail",
    description: "A small preview image (default 256×256 webp, cover).",
    input: ImageThumbnailInput,
    stages: ["fetch", "process", "upload"],
    cost: { estimate: () => 1, describe: "1 credit per image" },
    fileFields: ["file_id"],
  }),
  "video.color-grade": define({
    queue: "video",
    title: "Colour grade",
    description: "Preset look plus exposure/contrast/saturation, optional .cube LUT and frame range; audio kept.",
    input: VideoColorGradeInput,
    stages: ["fetch", "grade", "upload"],
    cost: { estimate: (i) => (i.lut_file_id ? 30 : 25), describe: "25 credits per video, 30 with a LUT" },
    presets: colorGradePresets,
    fileFields: ["file_id", "lut_file_id"],
  }),
  "audio.cleanup": define({
    queue: "audio",
    title: "Audio cleanup",
    description: "Denoise / dialogue enhance with an aggression dial, loudness normalised (EBU R128).",
    input: AudioCleanupInput,
    stages: ["fetch", "clean", "upload"],
    cost: { estimate: () => 5, describe: "5 credits per file" },
    presets: audioCleanupPresets,
    fileFields: ["file_id"],
  }),
} as const satisfies Record<string, JobTypeDefinition<any>>;

export type JobTypeName = keyof typeof jobTypes;
export const JobTypeName = z.enum(Object.keys(jobTypes) as [JobTypeName, ...JobTypeName[]]);
export type JobInput<T extends JobTypeName> = z.output<(typeof jobTypes)[T]["input"]>;

export function getJobType(name: string): JobTypeDefinition | undefined {
  return Object.hasOwn(jobTypes, name) ? (jobTypes as Record<string, JobTypeDefinition>)[name] : undefined;
}

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
  };
}
