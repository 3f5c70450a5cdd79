import { describe, expect, it } from "vitest";
import { acceptsContent } from "./media-check.ts";

describe("acceptsContent", () => {
  it("takes media whose bytes are of the declared kind, even in another format", () => {
    expect(acceptsContent("image/png", "image/png")).toBe(true);
    expect(acceptsContent("image/jpeg", "image/png")).toBe(true);
    expect(acceptsContent("video/mp4", "video/quicktime")).toBe(true);
  });

  it("refuses media whose bytes are unrecognised or of another kind", () => {
    expect(acceptsContent("image/png", undefined)).toBe(false);
    expect(acceptsContent("image/png", "video/mp4")).toBe(false);
    expect(acceptsContent("video/mp4", "image/gif")).toBe(false);
  });

  it("takes audio recorded into a video container", () => {
    expect(acceptsContent("audio/webm", "video/webm")).toBe(true);
    expect(acceptsContent("video/webm", "audio/ogg")).toBe(false);
  });

  it("takes text and generic binaries unless text turns out to be media", () => {
    expect(acceptsContent("text/plain", undefined)).toBe(true);
    expect(acceptsContent("text/plain", "image/png")).toBe(false);
    expect(acceptsContent("application/octet-stream", "video/mp4")).toBe(true);
    expect(acceptsContent("application/octet-stream", undefined)).toBe(true);
  });
});
