import { z } from "zod";
import { resolveModel, type Catalog, type ResolvedModel } from "./catalog.ts";

/** Who runs hosted models: Replicate itself, the project's Replicate-protocol emulator (synthetic outputs), or nobody. */
export const ModelProviderName = z.enum(["replicate", "emulator", "none"]);
export type ModelProviderName = z.infer<typeof ModelProviderName>;

/** The variables that decide it; the same names in every process, though only workers hold the token. */
export interface ProviderEnv {
  /** Set by the stack for processes that hold no token (job-service, gateway): replicate, emulator or none. */
  MODEL_PROVIDER?: string;
  REPLICATE_API_TOKEN?: string;
  MODEL_EMULATOR_URL?: string;
}

/**
 * Replicate when a token is set, else the emulator when its URL is set, else none. An explicit
 * MODEL_PROVIDER wins: job-service and the gateway learn the answer from the stack without the token.
 */
export function providerAvailability(env: ProviderEnv): ModelProviderName {
  const explicit = env.MODEL_PROVIDER?.trim();
  if (explicit) return ModelProviderName.parse(explicit);
  if (env.REPLICATE_API_TOKEN?.trim()) return "replicate";
  if (env.MODEL_EMULATOR_URL?.trim()) return "emulator";
  return "none";
}

/** One catalog lookup a job needs: the job's own model, or another it calls (prompt enhancement). */
export interface ModelUse {
  jobType: string;
  quality: string;
  variant?: string;
}

/** Whether `model` can run with `provider`: a local engine always can, a hosted model needs a provider. */
export const canRun = (model: Pick<ResolvedModel, "provider">, provider: ModelProviderName) => model.provider === "local" || provider !== "none";

/**
 * The first of `uses` that cannot run with `provider`, with the reason; undefined when all can.
 * An entry the catalog lacks counts as unavailable (an operator removed that quality).
 */
export function unavailableModel(catalog: Catalog, provider: ModelProviderName, uses: readonly ModelUse[]): { use: ModelUse; reason: string } | undefined {
  for (const use of uses) {
    let model: ResolvedModel;
    try {
      model = resolveModel(catalog, use.jobType, use.quality, use.variant);
    } catch (err) {
      return { use, reason: (err as Error).message };
    }
    if (!canRun(model, provider)) return { use, reason: `${model.model} needs a model provider, and none is configured (set REPLICATE_API_TOKEN, or MODEL_EMULATOR_URL for the emulator)` };
  }
  return undefined;
}

/** The job types of the catalog and which of their qualities can run with `provider` (those with a local engine always can). */
export function runnableJobTypes(catalog: Catalog, provider: ModelProviderName): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [type, table] of Object.entries(catalog)) {
    const qualities = Object.keys(table).filter((key) => {
      const [variant, quality] = key.includes(":") ? [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)] : [undefined, key];
      try {
        return canRun(resolveModel(catalog, type, quality, variant), provider);
      } catch {
        return false;
      }
    });
    if (qualities.length) out[type] = qualities;
  }
  return out;
}
