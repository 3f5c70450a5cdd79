import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { VideoColorGradeInput } from "@cutroom/contracts";
import { combineGrade, gradeFilters } from "../apps/worker-video/src/color-grade.ts";
import { makeVideo, median, openSocket, type Api, type Benchmark } from "./lib.ts";

const RUNS = 3;
const CLIP = { seconds: 10, size: "1280x720" };
const PRESET = "Filmic";
const JOB_TIMEOUT_MS = 60_000;

interface StackRun {
  wallMs: number;
  /** Milliseconds per phase, from the job events' timestamps. */
  phases: Record<string, number>;
}

/**
 * `video.color-grade` of a generated clip through the whole stack (enqueue → terminal event on
 * the job's WebSocket) against the same ffmpeg command run directly on the same file.
 * Runs alternate, so a slow spell of the machine hits both.
 */
export const colorGradeWallTime: Benchmark = {
  name: "color-grade",
  title: "5. video.color-grade wall time",
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-video", "gateway"],
  async run({ stack, api, adminToken, dir, log }) {
    const clip = join(dir, "clip.mp4");
    makeVideo(clip, CLIP.seconds, CLIP.size);
    const user = await api.enterpriseUser(adminToken, 30 * RUNS);
    const fileId = await api.upload(user.token, "clip.mp4", "video/mp4", new Uint8Array(readFileSync(clip)));

    const direct: number[] = [];
    const whole: StackRun[] = [];
    for (let i = 0; i < RUNS; i++) {
      direct.push(await runDirect(clip, join(dir, `direct-${i}.mp4`)));
      whole.push(await runThroughStack(api, stack.url, user.token, fileId));
      log(`run ${i + 1}: ffmpeg ${(direct[i]! / 1000).toFixed(2)} s, stack ${(whole[i]!.wallMs / 1000).toFixed(2)} s`);
    }

    const phase = (name: string) => `${name} ${(median(whole.map((w) => w.phases[name] ?? NaN)) / 1000).toFixed(2)} s`;
    return {
      peer: "ffmpeg run directly",
      rows: [{ measure: `wall time, median of ${RUNS}`, cutroom: median(whole.map((w) => w.wallMs)) / 1000, peer: median(direct) / 1000, unit: "s" }],
      notes: [
        `a ${CLIP.seconds} s ${CLIP.size} testsrc2 + sine clip (H.264/AAC, ${(readFileSync(clip).byteLength / 1024 ** 2).toFixed(1)} MiB), preset ${PRESET}; the direct run uses the worker's own filter graph (gradeFilters(combineGrade(…)) from apps/worker-video) and its encoder arguments`,
        `Cutroom from sending POST /jobs to the terminal event on WS /ws/jobs/{id}; medians by phase from the events' timestamps: ${["queued → running", "fetch", "grade", "upload", "upload → result"].map(phase).join(", ")}; ${phase("everything but grade")} (the grade stage holds ffmpeg, and an ffprobe of the input only when storage did not measure it, ADR 058)`,
      ],
    };
  },
};

/** The worker's ffmpeg command (see colorGrade in apps/worker-video), argument for argument as fluent-ffmpeg builds it. */
function runDirect(input: string, output: string): Promise<number> {
  const grade = combineGrade(VideoColorGradeInput.parse({ file_id: "00000000-0000-4000-8000-000000000000", preset: PRESET }));
  const args = ["-i", input, "-y", "-acodec", "aac", "-b:a", "192k", "-vcodec", "libx264", "-filter:v", gradeFilters(grade).join(","),
    "-map", "0:v:0", "-preset", "fast", "-crf", "18", "-movflags", "+faststart", "-map", "0:a:0", "-f", "mp4", output];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const ffmpeg = spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    ffmpeg.stderr.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
    ffmpeg.once("error", reject);
    ffmpeg.once("exit", (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`ffmpeg exited with ${code}: ${stderr}`))));
  });
}

async function runThroughStack(api: Api, baseUrl: string, token: string, fileId: string): Promise<StackRun> {
  const sent = performance.now();
  const job = await api.expect(202, "enqueue", api.call("POST", "/jobs", { token, json: { type: "video.color-grade", input: { file_id: fileId, preset: PRESET } } }));
  const events: { type: string; stage?: string; status?: string; timestamp: string }[] = [];
  let endedAt = 0;
  // since=0 replays what happened before the socket opened, so no event is missed.
  const ws = await openSocket(`${baseUrl.replace(/^http/, "ws")}/ws/jobs/${job.id}?since=0`, {
    headers: { authorization: `Bearer ${token}` },
    onMessage: (text) => {
      const m = JSON.parse(text);
      if (typeof m.seq !== "number") return;
      events.push(m);
      if (m.type === "result" || m.type === "error") endedAt = performance.now();
    },
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => (ws.terminate(), reject(new Error(`job ${job.id} did not end within ${JOB_TIMEOUT_MS / 1000} s`))), JOB_TIMEOUT_MS);
    ws.once("close", () => (clearTimeout(timer), resolve()));
  });
  const last = events.at(-1);
  if (last?.type !== "result") throw new Error(`job ${job.id} did not succeed: ${JSON.stringify(last)}`);

  const at = (match: (e: (typeof events)[number]) => boolean) => Date.parse(events.find(match)?.timestamp ?? "");
  const stage = (name: string, status: string) => at((e) => e.type === "stage" && e.stage === name && e.status === status);
  return {
    wallMs: endedAt - sent,
    phases: {
      "queued → running": at((e) => e.status === "running" && e.type === "status") - at((e) => e.status === "queued"),
      fetch: stage("fetch", "done") - stage("fetch", "running"),
      grade: stage("grade", "done") - stage("grade", "running"),
      upload: stage("upload", "done") - stage("upload", "running"),
      "upload → result": at((e) => e.type === "result") - stage("upload", "done"),
      "everything but grade": endedAt - sent - (stage("grade", "done") - stage("grade", "running")),
    },
  };
}
