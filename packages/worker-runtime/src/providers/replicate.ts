import Replicate, { parseProgressFromLogs } from "replicate";

/** A hosted-model API, as job handlers see it: run a model, get the URLs of what it made. */
export interface ModelProvider {
  run(
    model: string,
    input: Record<string, unknown>,
    opts: { signal: AbortSignal; onProgress?: (percent: number) => void },
  ): Promise<string[]>;
}

/**
 * Replicate behind the `ModelProvider` seam. `baseUrl` points it at a proxy or a compatible
 * server; polling rather than a held-open request keeps it working through both.
 */
export function createReplicateProvider(opts: { token: string; baseUrl: string; pollIntervalMs?: number }): ModelProvider {
  const client = new Replicate({ auth: opts.token, baseUrl: opts.baseUrl, useFileOutput: false, userAgent: "cutroom-worker" });
  return {
    async run(model, input, { signal, onProgress }) {
      if (!/^[^/\s]+\/[^/\s]+$/.test(model.split(":")[0] ?? "")) throw new Error(`"${model}" is not a model identifier (owner/name[:version])`);
      const output = await client.run(
        model as `${string}/${string}`,
        { input, signal, wait: { mode: "poll", interval: opts.pollIntervalMs ?? 500 } },
        (prediction) => {
          const parsed = parseProgressFromLogs(prediction);
          if (parsed) onProgress?.(parsed.percentage * 100);
        },
      );
      // The client cancels the prediction on abort but then returns normally.
      signal.throwIfAborted();
      return outputUrls(output);
    },
  };
}

/** Model outputs are a URL, a list of them, or an object holding them: collects every URL. */
function outputUrls(output: unknown): string[] {
  if (typeof output === "string") return /^(https?|data):/.test(output) ? [output] : [];
  if (Array.isArray(output)) return output.flatMap(outputUrls);
  if (output && typeof output === "object") return Object.values(output).flatMap(outputUrls);
  return [];
}
