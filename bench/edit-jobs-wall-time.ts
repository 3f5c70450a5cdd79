import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AudioMixInput, jobLimits, planSegments, VideoComposeInput, VideoLipsyncInput, VideoThumbnailsInput, VideoTranscodeInput } from "@cutroom/contracts";
import { parseLoudnorm, probe, runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { mixFfmpegArgs, mixMeasureArgs, planMix } from "../apps/worker-audio/src/audio-mix.ts";
import { composeFfmpegArgs, composeMeasureArgs, planComposeFromPaths } from "../apps/worker-video/src/compose.ts";
import { eraseFfmpegArgs, eraseFilterGraph, planErasures } from "../apps/worker-video/src/erase-graph.ts";
import { assembleArgs, partsOf, segmentAudioArgs } from "../apps/worker-video/src/lipsync-graph.ts";
import { thumbnailsFfmpegArgs } from "../apps/worker-video/src/thumbnails.ts";
import { transcodeFfmpegArgs } from "../apps/worker-video/src/transcode.ts";
import { makeVideo, median, openSocket, type Api, type Benchmark, type Row } from "./lib.ts";

const RUNS = 3;
const CLIP = { seconds: 4, size: "640x360", width: 640, height: 360 };
const JOB_TIMEOUT_MS = 90_000;
const limits = jobLimits("enterprise");

/** Local copies of the uploaded files, by role, and their ids in Cutroom. */
interface Media {
  clip: string;
  low: string;
  high: string;
  ids: { clip: string; low: string; high: string };
}

/** One of issue 9's types: the input it is benchmarked with, and the worker's very ffmpeg commands on the same files. */
interface EditCase {
  type: string;
  input: (ids: Media["ids"]) => Record<string, unknown>;
  /** Runs the commands the handler runs (from the handler's own argument builders), in order; resolves with the wall time in ms. */
  direct: (media: Media, out: string) => Promise<number>;
}

const timed = async (run: () => Promise<unknown>) => {
  const started = performance.now();
  await run();
  return performance.now() - started;
};
const runAll = async (commands: string[][]) => {
  for (const args of commands) await runFfmpegArgs(args);
};

const cases: EditCase[] = [
  {
    type: "video.compose",
    input: (ids) => ({
      clips: [{ file_id: ids.clip, trim_end: 2.5 }, { file_id: ids.clip, trim_start: 1 }],
      transition: "crossfade",
      transition_duration: 0.5,
      text_overlays: [{ text: "Benchmark", start_time: 0.5, duration: 2, position: "bottom", font_size: 28, color: "white", box: true }],
      audio: [{ file_id: ids.low, volume: 0.8 }],
    }),
    direct: (m, out) =>
      timed(async () => {
        const options = VideoComposeInput.parse(cases[0]!.input(m.ids));
        const plan = await planComposeFromPaths({ options, clipPaths: [m.clip, m.clip], imageOverlayPaths: [], audioPaths: [m.low], workDir: join(out, ".."), limits });
        const { stderr } = await runFfmpegArgs(composeMeasureArgs(plan));
        await runFfmpegArgs(composeFfmpegArgs(plan, out, parseLoudnorm(stderr)));
      }),
  },
  {
    type: "video.erase",
    input: (ids) => ({ file_id: ids.clip, regions: [{ start_time: 0.5, end_time: 3, bbox: { x: 40, y: 40, width: 200, height: 60 }, type: "erasure" }], auto_detect: false, method: "delogo" }),
    direct: (m, out) =>
      timed(async () => {
        const frame = { width: CLIP.width, height: CLIP.height };
        const plan = planErasures([{ start_time: 0.5, end_time: 3, bbox: { x: 40, y: 40, width: 200, height: 60 }, source: "given" }], [], frame);
        await runFfmpegArgs(eraseFfmpegArgs({ inputPath: m.clip, outputPath: out, graph: eraseFilterGraph(plan.erase, [], "delogo", frame), audioCodec: "aac" }));
      }),
  },
  {
    type: "video.transcode",
    input: (ids) => ({ file_id: ids.clip, format: "mp4", max_width: 320, crf: 28 }),
    direct: (m, out) =>
      timed(() => runFfmpegArgs(transcodeFfmpegArgs(VideoTranscodeInput.parse(cases[2]!.input(m.ids)), { width: CLIP.width, height: CLIP.height, hasAudio: true }, m.clip, out))),
  },
  {
    type: "video.thumbnails",
    input: (ids) => ({ file_id: ids.clip, mode: "contact_sheet", count: 6, columns: 3 }),
    direct: (m, out) =>
      timed(async () => {
        mkdirSync(out, { recursive: true });
        await runAll(thumbnailsFfmpegArgs(VideoThumbnailsInput.parse(cases[3]!.input(m.ids)), { width: CLIP.width, height: CLIP.height }, CLIP.seconds, m.clip, out).commands);
      }),
  },
  {
    type: "audio.mix",
    input: (ids) => ({ tracks: [{ file_id: ids.low, start: 0, volume: 1 }, { file_id: ids.high, start: 1, volume: 0.5 }] }),
    direct: (m, out) =>
      timed(async () => {
        // The tracks' lengths as storage measured them, as the handler gets them (ADR 058): no probe by hand either.
        const tone = (seconds: number) => ({ width: null, height: null, duration_seconds: seconds, frame_rate: null, video_codec: null, audio_codec: "pcm_s16le", has_audio: true, has_alpha: null });
        const plan = await planMix({ options: AudioMixInput.parse(cases[4]!.input(m.ids)), inputs: [{ path: m.low, media: tone(3) }, { path: m.high, media: tone(2) }], limits });
        const { stderr } = await runFfmpegArgs(mixMeasureArgs(plan));
        await runFfmpegArgs(mixFfmpegArgs(plan, out, parseLoudnorm(stderr)));
      }),
  },
  {
    type: "video.lipsync",
    input: (ids) => ({
      file_id: ids.clip,
      mode: "dub",
      segments: [
        { start_time: 0.5, end_time: 1.5, audio_file_id: ids.low },
        { start_time: 2, end_time: 3.5, audio_file_id: ids.high, audio_start: 0.5 },
      ],
    }),
    direct: (m, out) =>
      timed(async () => {
        const input = VideoLipsyncInput.parse(cases[5]!.input(m.ids));
        const [video, low, high] = await Promise.all([probe(m.clip), probe(m.low), probe(m.high)]);
        const audioPaths = [m.low, m.high];
        const audioSeconds = [low.duration!, high.duration!];
        const plan = planSegments(input, video.duration!, (i) => audioSeconds[i]!);
        const cut = new Map<number, string>();
        for (const seg of plan) {
          const path = `${out}.segment-${seg.index}.wav`;
          await runFfmpegArgs(segmentAudioArgs({ audioPath: audioPaths[seg.index]!, audioStart: seg.audioStart, audioSeconds: seg.audioSeconds, segmentSeconds: seg.end - seg.start, output: path }));
          cut.set(seg.index, path);
        }
        const parts = partsOf(plan, video.duration!, (seg) => ({ audioPath: cut.get(seg.index)! }));
        await runFfmpegArgs(assembleArgs({ videoPath: m.clip, hasAudio: true, parts, format: { width: CLIP.width, height: CLIP.height, fps: 25 }, output: out }));
      }),
  },
];

/**
 * Issue 9's edit types through the whole stack (enqueue → terminal event on the job's WebSocket)
 * against the worker's own ffmpeg commands run by hand on the same files, in the same run; runs
 * alternate, so a slow spell of the machine hits both.
 */
export const editJobsWallTime: Benchmark = {
  name: "edit-jobs",
  title: "6. issue 9's edit jobs: wall time",
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-video", "worker-audio", "gateway"],
  timeoutMs: 900_000,
  async run({ stack, api, adminToken, dir, log }) {
    const clip = join(dir, "clip.mp4");
    makeVideo(clip, CLIP.seconds, CLIP.size);
    const tone = (name: string, hz: number, seconds: number) => {
      const path = join(dir, name);
      execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `sine=frequency=${hz}:duration=${seconds}:sample_rate=48000`, path]);
      return path;
    };
    const [low, high] = [tone("low.wav", 300, 3), tone("high.wav", 900, 2)];
    const user = await api.enterpriseUser(adminToken, 10_000);
    const bytes = (path: string) => new Uint8Array(readFileSync(path));
    const ids = {
      clip: await api.upload(user.token, "clip.mp4", "video/mp4", bytes(clip)),
      low: await api.upload(user.token, "low.wav", "audio/wav", bytes(low)),
      high: await api.upload(user.token, "high.wav", "audio/wav", bytes(high)),
    };
    const media: Media = { clip, low, high, ids };

    const rows: Row[] = [];
    for (const c of cases) {
      const direct: number[] = [];
      const whole: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const out = join(dir, `${c.type}-${i}${c.type === "audio.mix" ? ".wav" : c.type === "video.thumbnails" ? "" : ".mp4"}`);
        direct.push(await c.direct(media, out));
        whole.push(await runThroughStack(api, stack.url, user.token, { type: c.type, input: c.input(ids) }));
        log(`${c.type} run ${i + 1}: ffmpeg ${(direct[i]! / 1000).toFixed(2)} s, stack ${(whole[i]! / 1000).toFixed(2)} s`);
      }
      rows.push({ measure: `${c.type}, median of ${RUNS}`, cutroom: median(whole) / 1000, peer: median(direct) / 1000, unit: "s" });
    }
    return {
      peer: "the same ffmpeg commands by hand",
      rows,
      notes: [
        `a ${CLIP.seconds} s ${CLIP.size} testsrc2 + sine clip (H.264/AAC) and two tones (3 s at 300 Hz, 2 s at 900 Hz, WAV); compose: two trims of the clip crossfaded, a boxed text overlay and a tone mixed, loudness normalised; erase: one given box (no detection), delogo; transcode: mp4 at most 320 wide, crf 28; thumbnails: a 6-frame contact sheet; audio.mix: the two tones, the second from 1 s at half volume; lipsync: mode dub, two segments`,
        "the peer runs each handler's ffmpeg commands, built by the handler's own exported builders (composeFfmpegArgs and its measuring pass, eraseFfmpegArgs, transcodeFfmpegArgs, thumbnailsFfmpegArgs, mixFfmpegArgs and its measuring pass, segmentAudioArgs and assembleArgs), with the same ffmpeg module; it skips what the job adds: upload and download through storage, storage's ffprobe of the output (and the ffprobe of the inputs that compose and lipsync make; the video types and audio.mix take the input's facts from storage, ADR 058, and so does the by-hand audio.mix), the queue, events",
        "Cutroom from sending POST /jobs to the terminal event on WS /ws/jobs/{id}",
      ],
    };
  },
};

async function runThroughStack(api: Api, baseUrl: string, token: string, body: { type: string; input: Record<string, unknown> }): Promise<number> {
  const sent = performance.now();
  const job = await api.expect(202, `enqueue ${body.type}`, api.call("POST", "/jobs", { token, json: body }));
  let endedAt = 0;
  let last: { type?: string; error?: unknown } | undefined;
  // since=0 replays what happened before the socket opened, so no event is missed.
  const ws = await openSocket(`${baseUrl.replace(/^http/, "ws")}/ws/jobs/${job.id}?since=0`, {
    headers: { authorization: `Bearer ${token}` },
    onMessage: (text) => {
      const m = JSON.parse(text);
      if (typeof m.seq !== "number") return;
      last = m;
      if (m.type === "result" || m.type === "error") endedAt = performance.now();
    },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => (ws.terminate(), reject(new Error(`job ${job.id} did not end within ${JOB_TIMEOUT_MS / 1000} s`))), JOB_TIMEOUT_MS);
    ws.once("close", () => (clearTimeout(timer), resolve()));
  });
  if (last?.type !== "result") throw new Error(`${body.type} job ${job.id} did not succeed: ${JSON.stringify(last)}`);
  return endedAt - sent;
}
