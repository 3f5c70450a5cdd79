import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureAudio, probe } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Seed } from "../determinism.ts";
import type { RunContext } from "../run-context.ts";
import { lipsyncVideo } from "./lipsync.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "emulated-lipsync-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file made by ffmpeg, as the data: URI the client inlines it as. */
function dataUri(name: string, mime: string, ...args: string[]): string {
  const path = join(dir, name);
  execFileSync("ffmpeg", ["-v", "error", "-y", ...args, path]);
  return `data:${mime};base64,${readFileSync(path).toString("base64")}`;
}

function runContext(name: string): RunContext {
  const workDir = mkdtempSync(join(dir, `${name}-work-`));
  const outDir = mkdtempSync(join(dir, `${name}-out-`));
  return { workDir, outDir, signal: new AbortController().signal, seed: new Seed("sync/lipsync-2", name, {}), url: (n) => join(outDir, n), log: () => {} };
}

describe("the emulated lip-sync model", () => {
  it("returns the video's pictures carrying the given audio, as long as the shorter (cut_off) or as the video", async () => {
    const video = dataUri("v.mp4", "video/mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2", "-pix_fmt", "yuv420p");
    const audio = dataUri("a.wav", "audio/wav", "-f", "lavfi", "-i", "sine=frequency=700:duration=1.5");
    const cut = await lipsyncVideo(runContext("cut"), { video, audio, syncMode: "cut_off" });
    const info = await probe(cut);
    expect(info.duration).toBeCloseTo(1.5, 1);
    expect(info.streams.map((s) => s.type).sort()).toEqual(["audio", "video"]);
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ width: 160, height: 120 });
    expect((await measureAudio(cut, { startSec: 0.2, durationSec: 1 })).rmsDb).toBeGreaterThan(-35);
    expect((await probe(await lipsyncVideo(runContext("silence"), { video, audio, syncMode: "silence" }))).duration).toBeCloseTo(2, 1);
  });
});
