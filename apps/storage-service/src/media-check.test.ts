import { describe, expect, it } from "vitest";
import { acceptsContent, storedContentType } from "./media-check.ts";

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

describe("storedContentType", () => {
  it("takes the type the bytes show when the client declared only a generic binary type", () => {
    expect(storedContentType("application/octet-stream", "video/mp4")).toBe("video/mp4");
    expect(storedContentType("binary/octet-stream", "image/png")).toBe("image/png");
    expect(storedContentType("", "audio/mpeg")).toBe("audio/mpeg");
  });

  it("keeps a specific declared type, and a generic one whose bytes are unknown", () => {
    expect(storedContentType("video/quicktime", "video/mp4")).toBe("video/quicktime");
    expect(storedContentType("text/plain", undefined)).toBe("text/plain");
    expect(storedContentType("application/octet-stream", undefined)).toBe("application/octet-stream");
  });
});
