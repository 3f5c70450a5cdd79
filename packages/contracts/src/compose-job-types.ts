import { z } from "zod";
import { Uuid } from "./common.ts";

/** Output frames by aspect ratio for video.compose when no width/height is given: the height of the first clip, this ratio. */
export const composeAspectRatios = { "16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1, "4:3": 4 / 3, "3:4": 3 / 4 } as const;
const ComposeAspect = z.enum(Object.keys(composeAspectRatios) as [keyof typeof composeAspectRatios, ...(keyof typeof composeAspectRatios)[]]);

/** A still image's seconds on screen when the clip does not say. */
export const defaultStillSeconds = 3;

const seconds = z.number().min(0).max(24 * 3600);
/** ffmpeg colour names (white, black…) or #RRGGBB[AA]; nothing that could break out of a filter argument. */
const Color = z.string().regex(/^(#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?|[a-zA-Z]{3,20})(@(0(\.\d+)?|1(\.0+)?))?$/, "a colour name (white) or #RRGGBB, optionally @opacity (black@0.5)");
const LoudnessTarget = z.number().min(-30).max(-5).default(-16).describe("integrated loudness of the output, LUFS (EBU R128); -16 is usual for the web");

export const ComposeClip = z
  .object({
    file_id: Uuid.describe("a video, or a still image shown for `duration`"),
    trim_start: seconds.optional().describe("seconds into the video where the clip starts"),
    trim_end: seconds.optional().describe("seconds into the video where the clip ends; its end when absent"),
    duration: z.number().min(0.1).max(3600).optional().describe(`a still image's seconds on screen (default ${defaultStillSeconds}); a video clip is cut to it when shorter`),
    zoom: z.boolean().default(false).describe("a still image's slow zoom in (zoompan)"),
  })
  .refine((c) => c.trim_end === undefined || c.trim_end > (c.trim_start ?? 0), { message: "trim_end must be after trim_start", path: ["trim_end"] });
export type ComposeClip = z.output<typeof ComposeClip>;

export const ComposeTextOverlay = z
  .object({
    text: z.string().min(1).max(500),
    start_time: seconds.default(0),
    duration: z.number().positive().max(24 * 3600),
    position: z.enum(["top", "center", "bottom"]).default("bottom").describe("where the text sits, centred across; x/y override it"),
    x: z.number().int().min(0).max(8192).optional().describe("left edge in output pixels, instead of position"),
    y: z.number().int().min(0).max(8192).optional().describe("top edge in output pixels, instead of position"),
    font_size: z.number().int().min(6).max(400).default(48),
    color: Color.default("white"),
    box: z.boolean().default(false).describe("a box behind the text, for legibility"),
    box_color: Color.default("black@0.5"),
  })
  .refine((t) => (t.x === undefined) === (t.y === undefined), { message: "x and y go together", path: ["x"] });
export type ComposeTextOverlay = z.output<typeof ComposeTextOverlay>;

export const ComposeImageOverlay = z.object({
  file_id: Uuid.describe("an image (a product shot, a logo); PNG transparency is kept"),
  start_time: seconds.default(0),
  duration: z.number().positive().max(24 * 3600),
  x: z.number().int().min(0).max(8192).default(0).describe("left edge in output pixels"),
  y: z.number().int().min(0).max(8192).default(0).describe("top edge in output pixels"),
  width: z.number().int().min(2).max(8192).optional().describe("output width in pixels, height kept in proportion; the image's own when absent"),
});
export type ComposeImageOverlay = z.output<typeof ComposeImageOverlay>;

export const ComposeAudio = z.object({
  file_id: Uuid.describe("an audio file (or a video's sound)"),
  start: seconds.default(0).describe("where it starts on the output's timeline, seconds"),
  volume: z.number().min(0).max(4).default(1).describe("gain, 1 = as is"),
  role: z.enum(["voice", "music"]).optional().describe("with duck_music, music is lowered while a voice speaks"),
});
export type ComposeAudio = z.output<typeof ComposeAudio>;

const side = z.number().int().min(16).max(4096).multipleOf(2);

export const VideoComposeInput = z
  .object({
    clips: z.array(ComposeClip).min(1).max(50),
    transition: z.enum(["cut", "crossfade"]).default("cut"),
    transition_duration: z.number().min(0.04).max(5).default(0.5).describe("seconds each crossfade overlaps two clips"),
    text_overlays: z.array(ComposeTextOverlay).max(50).default([]),
    image_overlays: z.array(ComposeImageOverlay).max(20).default([]),
    audio: z.array(ComposeAudio).max(20).default([]).describe("mixed over the clips' own sound"),
    duck_music: z.boolean().default(false).describe("lower the music (role music) under the voice (role voice)"),
    width: side.optional().describe("output frame, with height; inputs of other sizes are scaled and padded"),
    height: side.optional(),
    aspect_ratio: ComposeAspect.optional().describe("instead of width/height: this ratio at the first clip's height"),
    fps: z.number().min(1).max(60).default(30),
    loudness: LoudnessTarget,
  })
  .refine((v) => (v.width === undefined) === (v.height === undefined), { message: "width and height go together", path: ["width"] })
  .refine((v) => !(v.aspect_ratio && v.width !== undefined), { message: "give aspect_ratio or width/height, not both", path: ["aspect_ratio"] });
export type VideoComposeInput = z.output<typeof VideoComposeInput>;

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/** The output frame of a composition: width/height, else the aspect ratio at the first clip's height, else the first clip's size (even sides for H.264). */
export function composeFrame(input: Pick<VideoComposeInput, "width" | "height" | "aspect_ratio">, first: { width: number; height: number }): { width: number; height: number } {
  if (input.width !== undefined && input.height !== undefined) return { width: input.width, height: input.height };
  if (input.aspect_ratio) return { width: even(first.height * composeAspectRatios[input.aspect_ratio]), height: even(first.height) };
  return { width: even(first.width), height: even(first.height) };
}

/**
 * Seconds a clip lasts in the composition: a still its `duration`; a video from trim_start to
 * trim_end (or its end), cut to `duration` when that is shorter. Undefined for a video whose trim
 * starts past its end.
 */
export function composeClipSeconds(clip: Pick<ComposeClip, "trim_start" | "trim_end" | "duration">, sourceSeconds: number | null): number | undefined {
  if (sourceSeconds === null) return clip.duration ?? defaultStillSeconds;
  const start = clip.trim_start ?? 0;
  const end = Math.min(clip.trim_end ?? sourceSeconds, sourceSeconds);
  if (end - start <= 0) return undefined;
  return Math.min(end - start, clip.duration ?? Infinity);
}

/** The composition's length: the clips' sum, less one transition for each crossfade between two clips. */
export function composedSeconds(input: Pick<VideoComposeInput, "transition" | "transition_duration">, clipSeconds: readonly number[]): number {
  const sum = clipSeconds.reduce((a, b) => a + b, 0);
  return input.transition === "crossfade" ? sum - input.transition_duration * (clipSeconds.length - 1) : sum;
}

export const AudioMixTrack = z.object({
  file_id: Uuid.describe("an audio file (or a video's sound)"),
  start: seconds.default(0).describe("where it starts on the timeline, seconds"),
  volume: z.number().min(0).max(4).default(1).describe("gain before the mix, 1 = as is"),
});

export const AudioMixInput = z.object({
  tracks: z.array(AudioMixTrack).min(1).max(20),
  format: z.enum(["wav", "mp3", "m4a"]).default("wav"),
  loudness: LoudnessTarget,
});
export type AudioMixInput = z.output<typeof AudioMixInput>;
