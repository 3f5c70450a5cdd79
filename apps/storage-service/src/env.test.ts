import { expect, it } from "vitest";
import { Env } from "./env.ts";

it("refuses to start in production without a configured URL signing secret", () => {
  const parsed = Env.safeParse({ NODE_ENV: "production" });
  expect(parsed.success).toBe(false);
  expect(parsed.error?.issues.map((i) => i.path.join("."))).toContain("STORAGE_URL_SECRET");
  expect(Env.safeParse({ NODE_ENV: "production", STORAGE_URL_SECRET: "a".repeat(64) }).success).toBe(true);
  expect(Env.safeParse({}).success).toBe(true);
});
