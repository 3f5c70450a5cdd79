const mmss = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};

/**
 * One tqdm progress line, as Cog models print them and as the `replicate` client's
 * `parseProgressFromLogs` reads them: ` 40%|████████            | 4/10 [00:01<00:01,  3.21it/s]`.
 */
export function progressLine(current: number, total: number, elapsedMs: number): string {
  const pct = Math.floor((current / total) * 100);
  const bar = "█".repeat(Math.floor(pct / 5)).padEnd(20, " ");
  const rate = elapsedMs > 0 ? (current / (elapsedMs / 1000)).toFixed(2) : "0.00";
  const remaining = current > 0 ? (elapsedMs / current) * (total - current) : 0;
  return `${String(pct).padStart(3)}%|${bar}| ${current}/${total} [${mmss(elapsedMs)}<${mmss(remaining)}, ${rate.padStart(6)}it/s]`;
}
