import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EraseRegion } from "@cutroom/contracts";
import { probe, runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clampToFrame, eraseFfmpegArgs, eraseFilterGraph, evenBox, planErasures, subtractBox, type Erasure } from "./erase-graph.ts";

const frame = { width: 160, height: 120 };
const erasure = (x: number, y: number, width: number, height: number, start_time = 0, end_time = 2): Erasure => ({ start_time, end_time, bbox: { x, y, width, height }, source: "given" });
const protection = (x: number, y: number, width: number, height: number, start_time = 0, end_time = 2): EraseRegion => ({ start_time, end_time, bbox: { x, y, width, height }, type: "protection" });

describe("box arithmetic", () => {
  it("subtracts a box, leaving the strips around the cut", () => {
    expect(subtractBox({ x: 0, y: 0, width: 10, height: 10 }, { x: 3, y: 3, width: 4, height: 4 })).toEqual([
      { x: 0, y: 0, width: 10, height: 3 },
      { x: 0, y: 7, width: 10, height: 3 },
      { x: 0, y: 3, width: 3, height: 4 },
      { x: 7, y: 3, width: 3, height: 4 },
    ]);
    expect(subtractBox({ x: 0, y: 0, width: 10, height: 10 }, { x: -1, y: -1, width: 20, height: 20 })).toEqual([]);
  });

  it("keeps delogo's boxes off the frame's outer pixels, and grows crops to even coordinates", () => {
    expect(clampToFrame({ x: 0, y: 0, width: 200, height: 50 }, frame)).toEqual({ x: 1, y: 1, width: 158, height: 49 });
    expect(clampToFrame({ x: 159, y: 10, width: 5, height: 5 }, frame)).toBeUndefined();
    expect(evenBox({ x: 3, y: 5, width: 10, height: 9 }, frame)).toEqual({ x: 2, y: 4, width: 12, height: 10 });
  });
});

describe("planErasures", () => {
  it("skips an erasure protected all over its box for all of its time, and flags one protected in part", () => {
    const plan = planErasures(
      [erasure(20, 20, 40, 20), erasure(100, 20, 40, 20, 0, 2)],
      [protection(10, 10, 60, 40), protection(100, 20, 20, 20, 0, 1)],
      frame,
    );
    expect(plan.skipped).toEqual([expect.objectContaining({ bbox: { x: 20, y: 20, width: 40, height: 20 }, reason: "protected" })]);
    expect(plan.erase).toEqual([expect.objectContaining({ bbox: { x: 100, y: 20, width: 40, height: 20 }, protected_overlap: true })]);
  });

  it("erases a box whose protection covers only part of its time", () => {
    const plan = planErasures([erasure(20, 20, 40, 20, 0, 2)], [protection(0, 0, 160, 120, 0, 1)], frame);
    expect(plan.erase).toHaveLength(1);
    expect(plan.skipped).toEqual([]);
  });
});

describe("eraseFilterGraph", () => {
  const planned = planErasures([erasure(20, 30, 60, 24, 0.5, 1.5)], [protection(16, 28, 20, 30, 0, 2)], frame).erase;

  it("delogos each box in its time and puts the protected pixels back from the untouched source", () => {
    expect(eraseFilterGraph(planned, [protection(16, 28, 20, 30, 0, 2), protection(140, 100, 10, 10)], "delogo", frame)).toBe(
      "[0:v]split=2[s0][keep0];[keep0]crop=20:30:16:28[prot0];" +
        "[s0]delogo=x=20:y=30:w=60:h=24:enable='between(t,0.5,1.5)'[s1];" +
        "[s1][prot0]overlay=16:28:enable='between(t,0,2)'[s2];" +
        "[s2]crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0,format=yuv420p[v]",
    );
  });

  it("blurs a cropped copy of the box and overlays it back only in its time", () => {
    const graph = eraseFilterGraph(planned, [], "blur", frame);
    expect(graph).toContain("crop=60:24:20:30,boxblur=luma_radius=11:luma_power=2:chroma_radius=5:chroma_power=2");
    expect(graph).toContain("overlay=20:30:enable='between(t,0.5,1.5)'");
    expect(graph).not.toContain("delogo");
  });

  it("inpaints as delogo followed by a soft blur of the same box", () => {
    const graph = eraseFilterGraph(planned, [], "inpaint", frame);
    expect(graph.indexOf("delogo=x=20:y=30:w=60:h=24")).toBeLessThan(graph.indexOf("gblur=sigma=4"));
  });

  describe("run by ffmpeg", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "cutroom-erase-"));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it.each(["delogo", "blur", "inpaint"] as const)("makes a valid graph for %s (odd frame size cropped to even)", async (method) => {
      const source = "testsrc2=size=161x121:rate=10:duration=1";
      const out = join(dir, `${method}.mp4`);
      const odd = { width: 161, height: 121 };
      const plan = planErasures([erasure(0, 0, 300, 20, 0, 0.5), erasure(30, 40, 50, 30)], [protection(40, 40, 10, 10)], odd).erase;
      const args = eraseFfmpegArgs({ inputPath: source, outputPath: out, graph: eraseFilterGraph(plan, [protection(40, 40, 10, 10)], method, odd), audioCodec: null });
      await runFfmpegArgs(["-f", "lavfi", ...args.slice(2)]);
      const info = await probe(out);
      expect(info.streams[0]).toMatchObject({ codec: "h264", width: 160, height: 120 });
    });
  });
});
