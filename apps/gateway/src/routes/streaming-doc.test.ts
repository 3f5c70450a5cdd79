import { readFileSync } from "node:fs";
import { JobEvent, PipelineEvent } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { ClientMessage } from "./realtime.ts";

const doc = readFileSync(new URL("../../../../docs/STREAMING.md", import.meta.url), "utf8");
/** The message types docs/STREAMING.md describes: the first cell of a table's row, or a heading of its own. */
const documented = new Set([...doc.matchAll(/^(?:\| |### )`([a-z_]+)`/gm)].map((m) => m[1]!));

describe("docs/STREAMING.md", () => {
  it("describes every message a client may send", () => {
    const types = ClientMessage.options.map((o) => o.shape.type.value);
    expect(types.length).toBeGreaterThan(0);
    expect([...documented]).toEqual(expect.arrayContaining(types));
  });

  it("describes every job and pipeline event type, and the server's own replies", () => {
    const jobEvents = JobEvent.options.map((o) => o.shape.type.value);
    const pipelineEvents = PipelineEvent.shape.type.options;
    expect([...documented]).toEqual(expect.arrayContaining([...jobEvents, ...pipelineEvents, "snapshot", "unsubscribed", "error", "pong"]));
  });
});
