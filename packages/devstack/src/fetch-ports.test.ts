import { afterEach, describe, expect, it, vi } from "vitest";
import { FETCH_BLOCKED_PORTS, freePort, portRange } from "./wait.ts";

describe("freePort's skipped ports", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it("are ports fetch refuses to reach (a stack on one failed every request with 'bad port')", async () => {
    for (const port of FETCH_BLOCKED_PORTS) {
      const err = await fetch(`http://127.0.0.1:${port}/`).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(String((err?.cause as Error | undefined)?.message)).toBe("bad port");
    }
  });

  it("are never handed out, even when the draw lands on one", async () => {
    // The whole range (no vitest worker's slice, which might not hold the port): a draw r lands on low + r × its width.
    vi.stubEnv("VITEST_POOL_ID", "");
    const [blocked] = FETCH_BLOCKED_PORTS;
    const [low, high] = portRange();
    expect(blocked! >= low && blocked! < high).toBe(true);
    vi.spyOn(Math, "random").mockReturnValueOnce((blocked! - low + 0.5) / (high - low));
    const port = await freePort();
    expect(Math.random).toHaveBeenCalled();
    expect(port).not.toBe(blocked);
  });
});
