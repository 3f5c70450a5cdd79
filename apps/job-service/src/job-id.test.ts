import { randomUUID } from "node:crypto";
import { Uuid } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { jobIdFor, pipelineIdFor } from "./job-id.ts";

describe("jobIdFor", () => {
  it("names the same job for every retry of one user's key, and another job for another key or user", () => {
    const user = randomUUID();
    const id = jobIdFor(user, "key-1");
    expect(Uuid.safeParse(id).success).toBe(true);
    expect(jobIdFor(user, "key-1")).toBe(id);
    expect(jobIdFor(user, "key-2")).not.toBe(id);
    expect(jobIdFor(randomUUID(), "key-1")).not.toBe(id);
    // The user and the key cannot be shifted into each other.
    expect(jobIdFor("ab", "c")).not.toBe(jobIdFor("a", "bc"));
  });

  it("names a run apart from the job of the same user and key", () => {
    const user = randomUUID();
    expect(Uuid.safeParse(pipelineIdFor(user, "k")).success).toBe(true);
    expect(pipelineIdFor(user, "k")).toBe(pipelineIdFor(user, "k"));
    expect(pipelineIdFor(user, "k")).not.toBe(jobIdFor(user, "k"));
  });
});
