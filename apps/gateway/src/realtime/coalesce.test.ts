import { describe, expect, it } from "vitest";
import { createCoalescer } from "./coalesce.ts";

/** A read whose answer the test gives, recording when each one started. */
function controlledReads() {
  const started: { resolve: (v: number) => void; reject: (e: Error) => void }[] = [];
  const read = () => new Promise<number>((resolve, reject) => started.push({ resolve, reject }));
  const tick = () => new Promise((r) => setImmediate(r));
  return { started, read, tick };
}

describe("coalesced reads", () => {
  it("gives callers that asked while a read ran one later read, started after they asked", async () => {
    const coalesce = createCoalescer();
    const { started, read, tick } = controlledReads();
    const first = coalesce("job:a", read);
    await tick();
    const waiting = [coalesce("job:a", read), coalesce("job:a", read), coalesce("job:a", read)];
    await tick();
    // They did not join the read that was already under way: its answer may predate them.
    expect(started).toHaveLength(1);
    started[0]!.resolve(1);
    expect(await first).toBe(1);
    await tick();
    expect(started).toHaveLength(2);
    started[1]!.resolve(2);
    expect(await Promise.all(waiting)).toEqual([2, 2, 2]);
  });

  it("keeps keys apart, shares a failure with those who waited for that read, and reads anew after it", async () => {
    const coalesce = createCoalescer();
    const { started, read, tick } = controlledReads();
    const a = coalesce("job:a", read);
    const b = coalesce("job:b", read);
    await tick();
    expect(started).toHaveLength(2);
    started[0]!.reject(new Error("events unavailable"));
    started[1]!.resolve(7);
    await expect(a).rejects.toThrow("events unavailable");
    expect(await b).toBe(7);
    const again = coalesce("job:a", read);
    await tick();
    expect(started).toHaveLength(3);
    started[2]!.resolve(3);
    expect(await again).toBe(3);
  });

  it("shares a read under way, and its answer for a second after, with callers whose version has not changed since it began", async () => {
    let at = 0;
    const coalesce = createCoalescer({ now: () => at });
    const { started, read, tick } = controlledReads();
    const version = () => 1;
    const first = coalesce("job:a", read, version);
    await tick();
    const joined = coalesce("job:a", read, version);
    started[0]!.resolve(1);
    expect(await Promise.all([first, joined])).toEqual([1, 1]);
    at = 999;
    expect(await coalesce("job:a", read, version)).toBe(1);
    expect(started).toHaveLength(1);
    // A second after the read ended its answer is read anew, version or not.
    at = 1_000;
    const later = coalesce("job:a", read, version);
    await tick();
    expect(started).toHaveLength(2);
    started[1]!.resolve(2);
    expect(await later).toBe(2);
  });

  it("gives a caller whose version changed since the read began a read started after it asked", async () => {
    const coalesce = createCoalescer({ now: () => 0 });
    const { started, read, tick } = controlledReads();
    let version = 1;
    const first = coalesce("job:a", read, () => version);
    await tick();
    // An event was dispatched meanwhile: the read under way may not show it.
    version = 2;
    const after = coalesce("job:a", read, () => version);
    await tick();
    expect(started).toHaveLength(1);
    started[0]!.resolve(1);
    expect(await first).toBe(1);
    await tick();
    expect(started).toHaveLength(2);
    started[1]!.resolve(2);
    expect(await after).toBe(2);
    // The new read is the one shared from now on.
    expect(await coalesce("job:a", read, () => version)).toBe(2);
    expect(started).toHaveLength(2);
  });

  it("does not hand a failed read to those who ask after it failed", async () => {
    const coalesce = createCoalescer({ now: () => 0 });
    const { started, read, tick } = controlledReads();
    const first = coalesce("job:a", read, () => 1);
    await tick();
    started[0]!.reject(new Error("events unavailable"));
    await expect(first).rejects.toThrow("events unavailable");
    const again = coalesce("job:a", read, () => 1);
    await tick();
    expect(started).toHaveLength(2);
    started[1]!.resolve(3);
    expect(await again).toBe(3);
  });
});
