import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import type { RunContext } from "../run-context.ts";

export interface SpeechRequest {
  text: string;
  /** A Kokoro voice name (`af_bella`: American female…): picks the accent and pitch. */
  voice: string;
  /** 1 is normal; 2 is twice as fast, so half as long. */
  speed: number;
}

const SAMPLE_RATE = 24_000; // Kokoro's

let espeak: Promise<boolean> | undefined;
/** Whether espeak-ng is installed (asked once). */
export function hasEspeak(): Promise<boolean> {
  espeak ??= new Promise((resolve) => {
    const child = spawn("espeak-ng", ["--version"], { stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("exit", (code) => resolve(code === 0));
  });
  return espeak;
}

/** espeak-ng's voice for a Kokoro voice name: its accent (a… American, b… British) and gender. */
function espeakVoice(voice: string): string {
  const accent = voice.startsWith("b") ? "en-gb" : "en-us";
  return `${accent}+${voice[1] === "m" ? "m3" : "f3"}`;
}

/** Seconds of speech for `text` at about 160 words a minute (what the tone stands in for). */
export function speechSeconds(text: string, speed: number): number {
  const words = text.trim().split(/\s+/).filter(Boolean).length;
  return Math.max(0.6, (words * 0.375) / speed);
}

/**
 * A mono 24 kHz WAV as long as the text takes to say: spoken by espeak-ng when it is installed,
 * otherwise a tone pulsing at a syllable rate, whose length follows the number of words.
 */
export async function generateSpeech(ctx: RunContext, req: SpeechRequest): Promise<string> {
  const name = "output.wav";
  const out = join(ctx.outDir, name);
  if (await hasEspeak()) {
    const textFile = join(ctx.workDir, "text.txt");
    const raw = join(ctx.workDir, "espeak.wav");
    await writeFile(textFile, req.text);
    await new Promise<void>((resolve, reject) => {
      const child = spawn("espeak-ng", ["-v", espeakVoice(req.voice), "-s", String(Math.round(160 * req.speed)), "-w", raw, "-f", textFile], { stdio: ["ignore", "ignore", "pipe"], signal: ctx.signal });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`espeak-ng failed: ${stderr.trim() || `exit ${code}`}`))));
    });
    await runFfmpeg((cmd) => cmd.input(raw).outputOptions(["-ac", "1", "-ar", String(SAMPLE_RATE), "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-map_metadata", "-1"]).output(out), {
      signal: ctx.signal,
    });
    ctx.log("spoken by espeak-ng");
    return ctx.url(name);
  }
  const seconds = speechSeconds(req.text, req.speed);
  const pitch = ctx.seed.int(1, req.voice[1] === "m" ? 110 : 190, req.voice[1] === "m" ? 150 : 240);
  await runFfmpeg(
    (cmd) =>
      cmd
        .input(`sine=f=${pitch}:r=${SAMPLE_RATE}:d=${seconds.toFixed(3)}`)
        .inputFormat("lavfi")
        .audioFilters([`volume='0.15+0.6*abs(sin(PI*t*${(3.2 * req.speed).toFixed(2)}))':eval=frame`, `afade=t=out:st=${Math.max(0, seconds - 0.1).toFixed(3)}:d=0.1`])
        .outputOptions(["-ac", "1", "-ar", String(SAMPLE_RATE), "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-map_metadata", "-1"])
        .output(out),
    { signal: ctx.signal },
  );
  ctx.log("espeak-ng is not installed: the speech is a tone of the same length");
  return ctx.url(name);
}
