import { VideoTranscodeInput, VideoThumbnailsInput } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { thumbnailsFfmpegArgs } from "./thumbnails.ts";
import { transcodeFfmpegArgs } from "./transcode.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";
const transcode = (input: Record<string, unknown>, hasAudio = true) =>
  transcodeFfmpegArgs(VideoTranscodeInput.parse({ file_id: FILE, ...input }), { width: 1920, height: 1080, hasAudio }, "in.mp4", "out");
const arg = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe("transcodeFfmpegArgs", () => {
  it("writes webm as VP9 in constant quality with Opus, scaled to the max width with the aspect kept", () => {
    const args = transcode({ format: "webm", max_width: 640, crf: 30 });
    expect(arg(args, "-c:v")).toBe("libvpx-vp9");
    expect(arg(args, "-vf")).toBe("scale=640:360,format=yuv420p");
    expect(args.join(" ")).toContain("-crf 30 -b:v 0");
    expect(arg(args, "-c:a")).toBe("libopus");
    expect(arg(args, "-f")).toBe("webm");
  });

  it("gives H.265 in mp4 Apple's hvc1 tag, a bitrate instead of crf, a new fps, and drops the sound when asked", () => {
    const args = transcode({ codec: "h265", bitrate_kbps: 2500, fps: 24, max_height: 721, audio: false });
    expect(arg(args, "-c:v")).toBe("libx265");
    expect(arg(args, "-tag:v")).toBe("hvc1");
    expect(arg(args, "-b:v")).toBe("2500k");
    expect(args).not.toContain("-crf");
    expect(arg(args, "-vf")).toBe("scale=1280:720,fps=24,format=yuv420p");
    expect(args).toContain("-an");
  });

  it("writes ProRes 422 10-bit in mov, never enlarging, and AAC only when the source has sound", () => {
    const args = transcode({ format: "mov", codec: "prores", max_width: 4000 }, false);
    expect(args.join(" ")).toContain("-c:v prores_ks -profile:v 2");
    expect(arg(args, "-vf")).toBe("scale=1920:1080,format=yuv422p10le");
    expect(args).toContain("-an");
    expect(arg(transcode({ format: "mov" }), "-c:a")).toBe("aac");
  });
});

describe("thumbnailsFfmpegArgs", () => {
  const plan = (input: Record<string, unknown>) => thumbnailsFfmpegArgs(VideoThumbnailsInput.parse({ file_id: FILE, ...input }), { width: 320, height: 240 }, 10, "in.mp4", "/out");

  it("seeks once per frame to the middle of each equal part", () => {
    const p = plan({ mode: "evenly_spaced", count: 4, format: "webp", width: 100 });
    expect(p.commands.map((c) => arg(c, "-ss"))).toEqual(["1.25", "3.75", "6.25", "8.75"]);
    expect(p.outputs.map((o) => o.path)).toEqual(["/out/thumb-001.webp", "/out/thumb-002.webp", "/out/thumb-003.webp", "/out/thumb-004.webp"]);
    expect(arg(p.commands[0]!, "-vf")).toBe("scale=100:76");
    expect(arg(p.commands[0]!, "-c:v")).toBe("libwebp");
  });

  it("takes one image from the middle by default", () => {
    const p = plan({});
    expect(p.commands).toHaveLength(1);
    expect(arg(p.commands[0]!, "-ss")).toBe("5");
    expect(p.tile).toEqual({ width: 320, height: 240 });
  });

  it("tiles a contact sheet of the frames in its columns", () => {
    const p = plan({ mode: "contact_sheet", count: 7, columns: 3, width: 80 });
    expect(p.commands).toHaveLength(8);
    expect(arg(p.commands.at(-1)!, "-vf")).toBe("tile=3x3");
    expect(p.sheet).toEqual({ columns: 3, rows: 3, width: 240, height: 180 });
    expect(p.outputs).toEqual([{ path: "/out/sheet.jpg", time: expect.any(Number) }]);
  });
});
