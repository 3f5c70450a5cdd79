import { describe, expect, it } from "vitest";
import { FETCH_BLOCKED_PORTS } from "./wait.ts";

describe("freePort's skipped ports", () => {
  it("are ports fetch refuses to reach (a stack on one failed every request with 'bad port')", async () => {
    for (const port of FETCH_BLOCKED_PORTS) {
      const err = await fetch(`http://127.0.0.1:${port}/`).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(String((err?.cause as Error | undefined)?.message)).toBe("bad port");
    }
  });
});
