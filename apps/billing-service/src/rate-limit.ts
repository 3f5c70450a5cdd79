import { createHash } from "node:crypto";

// consumeRate lives in @cutroom/ledger: job-service takes its jobs.create slots in its job-creating transaction (ADR 027).
export { consumeRate } from "@cutroom/ledger";

/**
 * Throttle keys (emails, addresses) as the uuid the windows table is keyed by: a digest, so billing
 * stores no one's email or address, only a number per bucket.
 */
export function throttleKey(key: string): string {
  const h = createHash("sha256").update(key).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
