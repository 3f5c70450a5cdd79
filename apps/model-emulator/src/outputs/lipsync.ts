import { join } from "node:path";
import { probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { fetchInput } from "../inputs.ts";
import { PredictionError, type RunContext } from "../run-context.ts";

export interface LipsyncRequest {
  video: string;
  audio: string;
  /** sync/lipsync-2's handling of a length mismatch: cut_off ends with the shorter; the others keep the video's length here. */
  syncMode: string;
}

/**
 * A lip-synced video as sync/lipsync-2 returns one: the input's pictures carrying the given audio,
 * as long as the shorter of the two (cut_off) or as the video. The lip motion is emulated: a dark
 * "mouth" bar at the lower middle opens and closes five times a second, so a test can tell the
 * model's pictures from the source's.
 */
export async function lipsyncVideo(ctx: RunContext, req: LipsyncRequest): Promise<string> {
  const videoPath = await fetchInput(ctx, "video", req.video);
  const audioPath = await fetchInput(ctx, "audio", req.audio);
  const [video, audio] = await Promise.all([probe(videoPath, { signal: ctx.signal }), probe(audioPath, { signal: ctx.signal })]).catch((err: Error) => {
    ctx.signal.throwIfAborted();
    throw new PredictionError(`video or audio: not media ffprobe can read (${err.message.split("\n")[0]})`);
  });
  if (!video.streams.some((s) => s.type === "video") || video.duration === null) throw new PredictionError("video: no video stream");
  if (!audio.streams.some((s) => s.type === "audio") || audio.duration === null) throw new PredictionError("audio: no audio stream");
  const seconds = req.syncMode === "cut_off" ? Math.min(video.duration, audio.duration) : video.duration;
  const name = "output.mp4";
  await runFfmpeg(
    (cmd) =>
      cmd
        .input(videoPath)
        .input(audioPath)
        .complexFilter([
          "[0:v]drawbox=x=iw*0.4:y=ih*0.7:w=iw*0.2:h=ih*0.08:color=black@0.85:t=fill:enable='lt(mod(t,0.2),0.1)',format=yuv420p[v]",
          "[1:a]apad[a]",
        ])
        .outputOptions(["-map", "[v]", "-map", "[a]", "-t", seconds.toFixed(3), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"])
        .outputOptions(["-c:a", "aac", "-movflags", "+faststart", "-fflags", "+bitexact", "-map_metadata", "-1"])
        .output(join(ctx.outDir, name)),
    { signal: ctx.signal },
  );
  return ctx.url(name);
}
