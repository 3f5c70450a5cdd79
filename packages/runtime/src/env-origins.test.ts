import { describe, expect, it } from "vitest";
import { z } from "zod";
import { envOrigins } from "./env.ts";

const Env = z.object({ CORS_ORIGINS: envOrigins("*") });

describe("envOrigins", () => {
  it("lets any origin in by default, or with *", () => {
    expect(Env.parse({}).CORS_ORIGINS).toBe("*");
    expect(Env.parse({ CORS_ORIGINS: " * " }).CORS_ORIGINS).toBe("*");
  });

  it("reads a comma-separated list of origins, trimmed, without trailing slashes", () => {
    expect(Env.parse({ CORS_ORIGINS: "https://app.example.com/, http://localhost:5173" }).CORS_ORIGINS).toEqual(["https://app.example.com", "http://localhost:5173"]);
  });

  it("refuses what is not an origin, naming it", () => {
    const parsed = Env.safeParse({ CORS_ORIGINS: "https://app.example.com/path,app.example.com" });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.message)).toEqual([
      "https://app.example.com/path is not an origin (scheme://host[:port]) nor *",
      "app.example.com is not an origin (scheme://host[:port]) nor *",
    ]);
  });
});
