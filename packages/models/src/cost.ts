import type { CatalogEntry } from "./catalog.ts";

/** What one run used, as the provider reports it (metrics) and the worker counts it (outputs). */
export interface ModelUsage {
  /** Seconds of prediction (Replicate's metrics.predict_time). */
  predict_time_s?: number | null;
  /** Files the run produced. */
  outputs?: number;
  /** Seconds of video or audio produced. */
  output_seconds?: number;
  input_tokens?: number;
  output_tokens?: number;
}

const round = (usd: number) => Math.round(usd * 1e6) / 1e6;

/**
 * The run's cost in USD from the entry's price and the usage; 0 for a local engine, null when the
 * usage the price needs is unknown (a provider that reported no predict_time).
 */
export function costUsd(entry: Pick<CatalogEntry, "price" | "provider">, usage: ModelUsage): number | null {
  const price = entry.price;
  if (!price) return 0;
  if ("usd_per_second" in price) return usage.predict_time_s == null ? null : round(price.usd_per_second * usage.predict_time_s);
  if ("usd_per_output" in price) return usage.outputs == null ? null : round(price.usd_per_output * usage.outputs);
  if ("usd_per_output_second" in price) return usage.output_seconds == null ? null : round(price.usd_per_output_second * usage.output_seconds);
  if (usage.input_tokens == null && usage.output_tokens == null) return null;
  return round(((usage.input_tokens ?? 0) * price.usd_per_million_input_tokens + (usage.output_tokens ?? 0) * price.usd_per_million_output_tokens) / 1e6);
}
