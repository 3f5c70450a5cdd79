import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AudioTtsInput } from "@cutroom/contracts";
import { JobFailure, type JobContext, type JobOutput, type ProviderRecord } from "@cutroom/worker-runtime";
import { isAbortError, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";

/** Kokoro's sample rate: every output is resampled to it, whichever engine spoke. */
export const SPEECH_SAMPLE_RATE = 24_000;
/** espeak-ng's own default rate, words a minute, which speed 1 keeps. */
const ESPEAK_WPM = 175;

/** espeak-ng's language for the first letter of a Kokoro voice name. */
const espeakLanguages: Record<string, string> = { a: "en-us", b: "en-gb", e: "es", f: "fr", h: "hi", i: "it", j: "ja", p: "pt-br", z: "cmn" };

/** The espeak-ng voice standing in for a Kokoro voice: its language, and a female or male variant. */
export function espeakVoice(voice: string): string {
  return `${espeakLanguages[voice[0]!] ?? "en-us"}+${voice[1] === "m" ? "m3" : "f3"}`;
}

export interface SpeechRequest {
  text: string;
  voice: string;
  speed: number;
}

/**
 * Speech from espeak-ng, as a WAV at `outPath`: the text goes through a file, so nothing in it is
 * read as an option, and the speed is espeak's own words-a-minute rate (clearer than stretching).
 */
export async function speakWithEspeak(req: SpeechRequest, outPath: string, tmpDir: string, signal?: AbortSignal): Promise<void> {
  const textFile = join(tmpDir, "speech.txt");
  await writeFile(textFile, req.text);
  const args = ["-v", espeakVoice(req.voice), "-s", String(Math.round(ESPEAK_WPM * req.speed)), "-w", outPath, "-f", textFile];
  await new Promise<void>((resolve, reject) => {
    const child = spawn("espeak-ng", args, { stdio: ["ignore", "ignore", "pipe"], signal });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk.toString();
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") reject(new JobFailure("ENGINE_UNAVAILABLE", "espeak-ng is not installed on this worker (Debian: apt-get install espeak-ng)"));
      else reject(err);
    });
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`espeak-ng exited with ${code}: ${stderr.trim()}`))));
  });
}

const encoders = {
  wav: ["-c:a", "pcm_s16le", "-f", "wav"],
  mp3: ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
} as const;

/** Speech as the format asked for: mono at 24 kHz, WAV (16-bit PCM) or MP3 (128 kb/s); returns its duration. */
export async function encodeSpeech(source: string, outPath: string, format: AudioTtsInput["format"], signal?: AbortSignal): Promise<number> {
  await runFfmpeg((cmd) => cmd.input(source).noVideo().outputOptions(["-ac", "1", "-ar", String(SPEECH_SAMPLE_RATE), ...encoders[format], "-map_metadata", "-1"]).output(outPath), { signal });
  const { duration } = await probe(outPath, { signal });
  if (!duration) throw new Error(`the encoded speech has no duration: ${outPath}`);
  return duration;
}

const contentTypes = { wav: "audio/wav", mp3: "audio/mpeg" } as const;

/**
 * audio.tts: the catalog's engine for the quality speaks the text (espeak-ng on this worker, or a
 * provider's voice model), ffmpeg makes it the format asked for, and it is uploaded as `speech.<ext>`.
 */
export async function textToSpeech(ctx: JobContext<AudioTtsInput>): Promise<JobOutput> {
  const input = ctx.input;
  const model = ctx.models.resolve("audio.tts", input.quality);
  const request: SpeechRequest = { text: input.text, voice: input.voice, speed: input.speed };

  const spoken = await ctx.stage("speak", async () => {
    if (model.provider === "local") {
      const path = join(ctx.tmpDir, "spoken.wav");
      ctx.progress(5);
      await speakWithEspeak(request, path, ctx.tmpDir, ctx.signal).catch((err) => {
        if (ctx.signal.aborted || isAbortError(err) || err instanceof JobFailure) throw err;
        throw new JobFailure("ENGINE_ERROR", `espeak-ng could not speak the text: ${(err as Error).message}`);
      });
      ctx.progress(60);
      return { path, provider: ctx.models.local(model) };
    }
    const run = await ctx.models.predict({ jobType: "audio.tts", quality: input.quality, input: { ...request }, filename: "spoken", maxOutputs: 1, progress: [5, 60] });
    return { path: run.downloads[0]!.path, provider: run.provider as ProviderRecord };
  });

  const outPath = join(ctx.tmpDir, `speech.${input.format}`);
  const duration = await ctx.stage("encode", () =>
    encodeSpeech(spoken.path, outPath, input.format, ctx.signal).catch((err) => {
      if (ctx.signal.aborted || isAbortError(err) || model.provider === "local") throw err;
      // What the provider sent is not audio ffmpeg can read.
      throw new JobFailure("PROVIDER_ERROR", `${model.model} returned audio that cannot be decoded`, { cause: err });
    }),
  );
  ctx.progress(90);

  const file = await ctx.stage("upload", () => ctx.uploadOutput(outPath, `speech.${input.format}`, contentTypes[input.format]));
  return {
    files: [file],
    duration_seconds: Math.round(duration * 100) / 100,
    format: input.format,
    voice: input.voice,
    speed: input.speed,
    characters: input.text.length,
    engine: model.model,
    provider: spoken.provider,
  };
}
