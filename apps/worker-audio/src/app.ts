import { basename, extname, join } from "node:path";
import { outputFacts, type JobHandlers } from "@cutroom/worker-runtime";
import { cleanupAudio } from "./audio-cleanup.ts";
import { mixHandler } from "./audio-mix.ts";
import { textToSpeech } from "./tts.ts";

const contentTypes = { wav: "audio/wav", mp3: "audio/mpeg", m4a: "audio/mp4" } as const;

/** The audio queue's job handlers: audio.cleanup (fetch, clean with ffmpeg, upload) and audio.tts (speak, encode, upload). */
export function createAudioHandlers(): JobHandlers {
  return {
    "audio.mix": mixHandler,
    async "audio.cleanup"(ctx) {
      const { file_id, ...options } = ctx.input;
      const input = await ctx.stage("fetch", () => ctx.fetchInput(file_id));

      const outputPath = join(ctx.tmpDir, `cleaned.${options.format}`);
      const cleaned = await ctx.stage("clean", () =>
        cleanupAudio({ inputPath: input.path, outputPath, options, limits: ctx.limits, signal: ctx.signal, onProgress: (p) => ctx.progress(5 + p * 0.9) }),
      );

      const name = `${basename(input.filename, extname(input.filename)) || "audio"}-cleaned.${options.format}`;
      const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, name, contentTypes[options.format]));
      return { files: [file], duration: outputFacts(file).duration, ...cleaned };
    },
    "audio.tts": textToSpeech,
  };
}
