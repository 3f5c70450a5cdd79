import { basename, extname, join } from "node:path";
import { outputFacts, type JobHandlers } from "@cutroom/worker-runtime";
import { colorGrade } from "./color-grade.ts";
import { composeVideo } from "./compose.ts";
import { generateVideo } from "./generate-video.ts";
import { lipsync } from "./lipsync.ts";
import { rigModel } from "./rig.ts";
import { roto } from "./roto.ts";
import { detectTextHandler, eraseHandler } from "./erase.ts";
import { thumbnailsHandler } from "./thumbnails.ts";
import { transcodeHandler } from "./transcode.ts";

/** The video queue's job handlers: colour grading with ffmpeg; generation, roto and rigging with hosted models. */
export function createVideoHandlers(): JobHandlers {
  return {
    "video.compose": composeVideo,
    "video.generate": generateVideo,
    "video.roto": roto,
    "video.lipsync": lipsync,
    "model.rig": rigModel,
    "video.detect-text": detectTextHandler,
    "video.erase": eraseHandler,
    "video.transcode": transcodeHandler,
    "video.thumbnails": thumbnailsHandler,
    async "video.color-grade"(ctx) {
      const { file_id, lut_file_id, ...options } = ctx.input;
      const [video, lut] = await ctx.stage("fetch", () =>
        Promise.all([ctx.fetchInput(file_id), lut_file_id ? ctx.fetchInput(lut_file_id) : undefined]),
      );

      const outputPath = join(ctx.tmpDir, "graded.mp4");
      await ctx.stage("grade", () =>
        colorGrade({
          input: video,
          outputPath,
          lutPath: lut?.path,
          options,
          limits: ctx.limits,
          signal: ctx.signal,
          onProgress: (p) => ctx.progress(5 + p * 0.9),
        }),
      );

      const name = `${basename(video.filename, extname(video.filename)) || "video"}-graded.mp4`;
      const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, name, "video/mp4"));
      const { duration, width, height, codec } = outputFacts(file);
      return { files: [file], duration, width, height, codec };
    },
  };
}
