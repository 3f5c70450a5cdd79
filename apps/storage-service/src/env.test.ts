import { expect, it } from "vitest";
import { Env } from "./env.ts";

it("refuses to start in production without a configured URL signing secret", () => {
  const parsed = Env.safeParse({ NODE_ENV: "production" });
  expect(parsed.success).toBe(false);
  expect(parsed.error?.issues.map((i) => i.path.join("."))).toContain("STORAGE_URL_SECRET");
  expect(Env.safeParse({ NODE_ENV: "production", STORAGE_URL_SECRET: "a".repeat(64) }).success).toBe(true);
  expect(Env.safeParse({}).success).toBe(true);
});

it("takes one internal data-plane URL or a comma-separated list of replicas, and refuses what is not a URL", () => {
  expect(Env.parse({}).STORAGE_INTERNAL_URL).toEqual(["http://127.0.0.1:8001"]);
  expect(Env.parse({ STORAGE_INTERNAL_URL: "http://storage:8001/" }).STORAGE_INTERNAL_URL).toEqual(["http://storage:8001"]);
  expect(Env.parse({ STORAGE_INTERNAL_URL: "http://storage-1:8001, http://storage-2:8001" }).STORAGE_INTERNAL_URL).toEqual(["http://storage-1:8001", "http://storage-2:8001"]);
  const bad = Env.safeParse({ STORAGE_INTERNAL_URL: "http://storage-1:8001,storage-2" });
  expect(bad.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`)).toEqual(["STORAGE_INTERNAL_URL: storage-2 is not an http(s) URL"]);
});
