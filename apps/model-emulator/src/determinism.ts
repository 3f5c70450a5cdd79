import { createHash } from "node:crypto";

/** JSON with sorted keys, so the same input gives the same digest whatever its key order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * Every choice the emulator makes (colours, timings, words) comes from this digest of the model and
 * its input: the same request gives the same media, as a model run with a fixed seed would.
 */
export class Seed {
  private readonly bytes: Buffer;
  constructor(...parts: unknown[]) {
    this.bytes = createHash("sha256").update(stableJson(parts)).digest();
  }

  /** A number in [0, 1) for the n-th choice. */
  unit(n: number): number {
    const h = n < 7 ? this.bytes : createHash("sha256").update(this.bytes).update(String(n)).digest();
    return h.readUInt32BE(n < 7 ? n * 4 : 0) / 2 ** 32;
  }

  /** An integer in [min, max]. */
  int(n: number, min: number, max: number): number {
    return min + Math.floor(this.unit(n) * (max - min + 1));
  }

  pick<T>(n: number, items: readonly T[]): T {
    return items[Math.floor(this.unit(n) * items.length)]!;
  }

  /** A seed for a part of the output (the second of four images, a frame…). */
  derive(...parts: unknown[]): Seed {
    return new Seed(this.bytes.toString("hex"), parts);
  }

  /** `#rrggbb`, light or dark. */
  colour(n: number, tone: "light" | "dark"): string {
    const [lo, hi] = tone === "light" ? [150, 245] : [20, 110];
    const c = [0, 1, 2].map((k) => this.int(n * 3 + k, lo, hi).toString(16).padStart(2, "0"));
    return `#${c.join("")}`;
  }

  hex(length = 16): string {
    return this.bytes.toString("hex").slice(0, length);
  }
}
