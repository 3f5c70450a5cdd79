import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AudioTtsInput } from "@cutroom/contracts";
import { probe } from "@cutroom/worker-runtime/ffmpeg";
import { localJobContext } from "@cutroom/worker-runtime/local-job-context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSpeech, espeakVoice, speakWithEspeak, textToSpeech } from "./tts.ts";

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-tts-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const sentence = "The quick brown fox jumps over the lazy dog.";

async function spoken(text: string, speed = 1, voice = "af_bella") {
  const path = join(dir, `spoken-${++n}.wav`);
  await speakWithEspeak({ text, voice, speed }, path, dir);
  return path;
}
const durationOf = async (path: string) => (await probe(path)).duration!;

/** A local job context for audio.tts: uploads are copied into the test's folder. */
const jobContext = (input: Record<string, unknown>) => localJobContext<AudioTtsInput>("audio.tts", input, { dir });

describe("audio.tts", () => {
  it("speaks with espeak-ng: the speech lasts longer the longer the text, and shorter the faster it is said", async () => {
    const one = await durationOf(await spoken(sentence));
    const four = await durationOf(await spoken(Array(4).fill(sentence).join(" ")));
    const fast = await durationOf(await spoken(Array(4).fill(sentence).join(" "), 2));
    expect(one).toBeGreaterThan(1.5); // nine words at 175 a minute: about 3 s
    expect(one).toBeLessThan(6);
    expect(four).toBeGreaterThan(one * 3);
    expect(fast).toBeLessThan(four * 0.7);
  });

  it("encodes wav or mp3, mono at 24 kHz, keeping the length", async () => {
    const source = await spoken(sentence);
    const wav = join(dir, "speech.wav");
    const mp3 = join(dir, "speech.mp3");
    const wavSeconds = await encodeSpeech(source, wav, "wav");
    const mp3Seconds = await encodeSpeech(source, mp3, "mp3");
    const [w, m] = [await probe(wav), await probe(mp3)];
    expect([w.format, w.streams[0]?.codec, w.streams[0]?.sample_rate, w.streams[0]?.channels]).toEqual(["wav", "pcm_s16le", 24_000, 1]);
    expect([m.format, m.streams[0]?.codec, m.streams[0]?.sample_rate, m.streams[0]?.channels]).toEqual(["mp3", "mp3", 24_000, 1]);
    expect(mp3Seconds).toBeCloseTo(wavSeconds, 0);
    expect(wavSeconds).toBeCloseTo(await durationOf(source), 1);
  });

  it("maps Kokoro voice names onto espeak-ng's languages and variants", () => {
    expect(espeakVoice("af_bella")).toBe("en-us+f3");
    expect(espeakVoice("bm_george")).toBe("en-gb+m3");
    expect(espeakVoice("ff_siwis")).toBe("fr+f3");
    expect(espeakVoice("zm_yunxi")).toBe("cmn+m3");
  });

  it("runs the local engine at fast quality without any provider, and uploads an mp3 when asked", async () => {
    const { ctx, uploads } = jobContext({ text: `${sentence} ${sentence}`, voice: "bm_george", format: "mp3" });
    const result = await textToSpeech(ctx);
    expect(uploads).toEqual([expect.objectContaining({ filename: "speech.mp3", contentType: "audio/mpeg" })]);
    const out = await probe(uploads[0]!.path);
    expect(out.format).toBe("mp3");
    expect(result).toMatchObject({ engine: "espeak-ng", format: "mp3", voice: "bm_george", provider: { name: "local", model: "espeak-ng", cost_usd: 0, synthetic: false } });
    expect(result.duration_seconds).toBeCloseTo(out.duration!, 1);
  });

  it("asks the provider's voices at high quality, and fails PROVIDER_UNAVAILABLE when the worker has none", async () => {
    const { ctx } = jobContext({ text: sentence, quality: "high" });
    await expect(textToSpeech(ctx)).rejects.toMatchObject({ name: "JobFailure", code: "PROVIDER_UNAVAILABLE" });
  });
});
