import type { PlannedSegment } from "@cutroom/contracts";

/** The frame every part of a lip-synced video is brought to before they are joined: the source video's. */
export interface PartFormat {
  width: number;
  height: number;
  fps: number;
}

/** A span of the result: the video as it was, or a segment with its new sound (and, lip-synced, its new pictures). */
export type AssemblePart =
  | { kind: "original"; start: number; end: number }
  | { kind: "segment"; start: number; end: number; audioPath: string; lipsyncedPath?: string };

const s = (n: number) => n.toFixed(3);
// Every part's sound as one format, so concat joins them without a gap or a click.
const audioFormat = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo";

/**
 * ffmpeg's arguments (without "ffmpeg") for one segment's sound: `audioSeconds` of the audio file from
 * `audioStart`, followed by silence up to the segment's length, as 48 kHz stereo PCM.
 */
export function segmentAudioArgs(p: { audioPath: string; audioStart: number; audioSeconds: number; segmentSeconds: number; output: string }): string[] {
  return [
    "-y",
    ...["-ss", s(p.audioStart), "-t", s(p.audioSeconds), "-i", p.audioPath],
    ...["-map", "0:a:0", "-vn"],
    ...["-af", `${audioFormat},apad=whole_dur=${s(p.segmentSeconds)}`, "-t", s(p.segmentSeconds)],
    ...["-c:a", "pcm_s16le", p.output],
  ];
}

/** ffmpeg's arguments for a segment's pictures alone, cut from the video for the lip-sync model (H.264, no sound). */
export function segmentVideoArgs(p: { videoPath: string; start: number; seconds: number; output: string }): string[] {
  return [
    "-y",
    ...["-ss", s(p.start), "-t", s(p.seconds), "-i", p.videoPath],
    ...["-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", p.output],
  ];
}

/** The video's spans in order: each segment, and the untouched parts between them (none shorter than a millisecond). */
export function partsOf(plan: readonly PlannedSegment[], duration: number, paths: (segment: PlannedSegment) => { audioPath: string; lipsyncedPath?: string }): AssemblePart[] {
  const parts: AssemblePart[] = [];
  let at = 0;
  for (const seg of [...plan].sort((a, b) => a.start - b.start)) {
    if (seg.start - at > 0.001) parts.push({ kind: "original", start: at, end: seg.start });
    parts.push({ kind: "segment", start: seg.start, end: seg.end, ...paths(seg) });
    at = seg.end;
  }
  if (duration - at > 0.001) parts.push({ kind: "original", start: at, end: duration });
  return parts;
}

/**
 * ffmpeg's arguments that join the parts back into one video of the source's length: untouched spans
 * trimmed from the source (its sound kept, or silence when it has none), segments with their own
 * sound, their pictures the lip-synced clip's (fitted to the source's frame and rate, its last frame
 * held if it runs short) or the source's in a dub; then `videoGraph` over the whole (erasures: a
 * -filter_complex part from the `input` label to the `output` one), H.264/AAC mp4.
 */
export function assembleArgs(p: {
  videoPath: string;
  hasAudio: boolean;
  parts: readonly AssemblePart[];
  format: PartFormat;
  output: string;
  videoGraph?: (input: string, output: string) => string;
}): string[] {
  const inputs: string[] = ["-i", p.videoPath];
  let next = 1;
  const input = (path: string) => {
    inputs.push("-i", path);
    return next++;
  };
  const { width, height, fps } = p.format;
  const fit = `fps=${fps},scale=${width}:${height},setsar=1,format=yuv420p`;
  const sourceVideo: string[] = [];
  const sourceAudio: string[] = [];
  const graph: string[] = [];
  const joined: string[] = [];
  p.parts.forEach((part, k) => {
    const length = s(part.end - part.start);
    const pad = `apad=whole_dur=${length},atrim=duration=${length},asetpts=PTS-STARTPTS`;
    if (part.kind === "segment" && part.lipsyncedPath) {
      const i = input(part.lipsyncedPath);
      graph.push(`[${i}:v]${fit},tpad=stop_mode=clone:stop_duration=${length},trim=duration=${length},setpts=PTS-STARTPTS[v${k}]`);
    } else {
      sourceVideo.push(`[sv${k}]`);
      graph.push(`[sv${k}]trim=start=${s(part.start)}:end=${s(part.end)},setpts=PTS-STARTPTS,${fit}[v${k}]`);
    }
    if (part.kind === "segment") {
      graph.push(`[${input(part.audioPath)}:a]${audioFormat},${pad}[a${k}]`);
    } else if (p.hasAudio) {
      sourceAudio.push(`[sa${k}]`);
      graph.push(`[sa${k}]atrim=start=${s(part.start)}:end=${s(part.end)},asetpts=PTS-STARTPTS,${audioFormat},${pad}[a${k}]`);
    } else {
      graph.push(`anullsrc=r=48000:cl=stereo,atrim=duration=${length}[a${k}]`);
    }
    joined.push(`[v${k}][a${k}]`);
  });
  const split = (what: "v" | "a", outs: string[]) => {
    if (outs.length === 0) return [];
    if (outs.length === 1) return [`[0:${what}]${what === "v" ? "null" : "anull"}${outs[0]}`];
    return [`[0:${what}]${what === "v" ? "split" : "asplit"}=${outs.length}${outs.join("")}`];
  };
  const after = p.videoGraph ? `;${p.videoGraph("[vj]", "[vo]")}` : "";
  const filter = [...split("v", sourceVideo), ...split("a", sourceAudio), ...graph, `${joined.join("")}concat=n=${p.parts.length}:v=1:a=1[vj][ao]`].join(";") + after;
  return [
    "-y",
    ...inputs,
    ...["-filter_complex", filter],
    ...["-map", after ? "[vo]" : "[vj]", "-map", "[ao]"],
    ...["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
    ...["-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart", p.output],
  ];
}
