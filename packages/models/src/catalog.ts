import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

const defaultsFile = join(import.meta.dirname, "..", "catalog.json");

/** Engines a worker runs itself, on a plain machine, with no provider: what a `local` entry may name. */
export const localEngines = ["espeak-ng", "chroma-key", "fountain"] as const;
export type LocalEngine = (typeof localEngines)[number];

const usd = z.number().nonnegative().finite();

/**
 * What a run costs: per second of prediction (Replicate bills GPU time so), per output (per image),
 * per second of media produced (per-video pricing), or per million tokens (language models).
 */
export const Price = z.union([
  z.strictObject({ usd_per_second: usd }),
  z.strictObject({ usd_per_output: usd }),
  z.strictObject({ usd_per_output_second: usd }),
  z.strictObject({ usd_per_million_input_tokens: usd, usd_per_million_output_tokens: usd }),
]);
export type Price = z.infer<typeof Price>;

// owner/name, optionally :<64-hex version>, as Replicate names models.
const replicateModel = /^[a-z0-9][\w.-]*\/[a-z0-9][\w.-]*(:[0-9a-f]{64})?$/i;

export const CatalogEntry = z
  .strictObject({
    provider: z.enum(["replicate", "local"]),
    /** `owner/name[:version]` for replicate, the engine's name for local. */
    model: z.string().min(1),
    /** Inputs sent with every run of this entry; they win over the handler's. */
    params: z.record(z.string(), z.unknown()).default({}),
    /** Absent for local engines, which cost nothing. */
    price: Price.optional(),
    /** The model family (sdxl, flux, wan), when the job type lets a client choose one. */
    family: z.string().min(1).optional(),
    /** A typical run, in seconds: what estimates quote as eta_seconds. */
    eta_s: z.number().positive().optional(),
  })
  .superRefine((e, ctx) => {
    if (e.provider === "replicate" && !replicateModel.test(e.model)) ctx.addIssue({ code: "custom", path: ["model"], message: `"${e.model}" is not owner/name[:64-hex version]` });
    if (e.provider === "replicate" && !e.price) ctx.addIssue({ code: "custom", path: ["price"], message: "a replicate entry needs a price" });
    if (e.provider === "local" && !(localEngines as readonly string[]).includes(e.model)) {
      ctx.addIssue({ code: "custom", path: ["model"], message: `unknown local engine "${e.model}" (known: ${localEngines.join(", ")})` });
    }
  });
export type CatalogEntry = z.output<typeof CatalogEntry>;

const maxAliasHops = 3;

/** Another quality of the same job type (and variant) under a second name: economical → fast. */
export const CatalogAlias = z.strictObject({ alias: z.string().min(1) });

/**
 * `<job type>` → `<quality>` or `<variant>:<quality>` → an entry or an alias. A variant is a family a
 * client picks (image.generate's `sdxl:fast`) or a mode the input implies (video.generate's `i2v:fast`);
 * a bare quality is the type's default variant.
 */
export const Catalog = z
  .record(z.string().regex(/^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$/, "a job type name such as image.generate"), z.record(z.string().min(1), z.union([CatalogEntry, CatalogAlias])))
  .superRefine((catalog, ctx) => {
    for (const [type, table] of Object.entries(catalog)) {
      for (const [key, value] of Object.entries(table)) {
        if (!("alias" in value)) continue;
        const variant = key.includes(":") ? key.slice(0, key.indexOf(":")) : undefined;
        let target: (typeof table)[string] | undefined = value;
        for (let hops = 0; target && "alias" in target && hops <= maxAliasHops; hops++) {
          const name: string = target.alias;
          target = (variant ? table[`${variant}:${name}`] : undefined) ?? table[name];
          if (!target) ctx.addIssue({ code: "custom", path: [type, key], message: `alias of "${name}", which ${type} does not have` });
        }
        if (target && "alias" in target) ctx.addIssue({ code: "custom", path: [type, key], message: `aliases more than ${maxAliasHops} deep, or in a loop` });
      }
    }
  });
export type Catalog = z.output<typeof Catalog>;

/**
 * An operator's override file: the same shape, merged over the defaults entry by entry; `null`
 * removes a default entry (a quality the operator does not offer).
 */
export const CatalogOverride = z.record(z.string(), z.record(z.string(), z.union([CatalogEntry, CatalogAlias, z.null()])));

export class CatalogError extends Error {
  override name = "CatalogError";
}

const describeIssues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");

/** The defaults shipped in catalog.json, validated. */
export function defaultCatalog(): Catalog {
  const parsed = Catalog.safeParse(JSON.parse(readFileSync(defaultsFile, "utf8")));
  if (!parsed.success) throw new CatalogError(`packages/models/catalog.json is invalid: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** The defaults with `override` merged over them entry by entry, validated as a whole. */
export function mergeCatalog(base: Catalog, override: z.output<typeof CatalogOverride>): Catalog {
  const merged: Record<string, Record<string, unknown>> = Object.fromEntries(Object.entries(base).map(([t, table]) => [t, { ...table }]));
  for (const [type, table] of Object.entries(override)) {
    const into = (merged[type] ??= {});
    for (const [key, value] of Object.entries(table)) {
      if (value === null) delete into[key];
      else into[key] = value;
    }
    if (Object.keys(into).length === 0) delete merged[type];
  }
  const parsed = Catalog.safeParse(merged);
  if (!parsed.success) throw new CatalogError(`the merged models catalog is invalid: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/**
 * The catalog a process runs with: the defaults, with the operator's `overrideFile`
 * (MODEL_CATALOG_FILE) merged over them. Throws a CatalogError naming the file and the bad entry,
 * so a process fails at start rather than at its first job.
 */
export function loadCatalog(opts: { overrideFile?: string } = {}): Catalog {
  const base = defaultCatalog();
  if (!opts.overrideFile) return base;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(opts.overrideFile, "utf8"));
  } catch (err) {
    throw new CatalogError(`MODEL_CATALOG_FILE ${opts.overrideFile}: ${(err as Error).message}`);
  }
  const override = CatalogOverride.safeParse(raw);
  if (!override.success) throw new CatalogError(`MODEL_CATALOG_FILE ${opts.overrideFile}: ${describeIssues(override.error)}`);
  try {
    return mergeCatalog(base, override.data);
  } catch (err) {
    throw new CatalogError(`MODEL_CATALOG_FILE ${opts.overrideFile}: ${(err as Error).message}`);
  }
}

/** A catalog entry as resolved for one run. */
export interface ResolvedModel extends CatalogEntry {
  jobType: string;
  /** The quality asked for, after aliases (economical → fast). */
  quality: string;
  variant?: string;
  /** The catalog key it came from, e.g. `sdxl:fast`. */
  key: string;
}

/** No entry for what was asked: a job type without models, an unknown quality, or a variant the type lacks. */
export class UnknownModel extends CatalogError {
  override name = "UnknownModel";
}

/**
 * Which model runs `jobType` at `quality` (aliases followed), for `variant` when given: the
 * `<variant>:<quality>` entry, else the bare `<quality>` entry when its family is that variant.
 */
export function resolveModel(catalog: Catalog, jobType: string, quality: string, variant?: string): ResolvedModel {
  const table = Object.hasOwn(catalog, jobType) ? catalog[jobType]! : undefined;
  if (!table) throw new UnknownModel(`the models catalog has no entry for ${jobType}`);
  let q = quality;
  for (let hops = 0; hops <= maxAliasHops; hops++) {
    const variantKey = variant ? `${variant}:${q}` : undefined;
    const key = variantKey && Object.hasOwn(table, variantKey) ? variantKey : q;
    const value = Object.hasOwn(table, key) ? table[key] : undefined;
    if (!value) break;
    if ("alias" in value) {
      q = value.alias;
      continue;
    }
    // A bare entry serves a variant only when it is of that family (flux for image.generate's defaults).
    if (variant && key === q && value.family !== variant) break;
    return { ...value, jobType, quality: q, ...(variant ? { variant } : {}), key };
  }
  throw new UnknownModel(`the models catalog has no ${variant ? `${variant} ` : ""}model for ${jobType} at quality ${quality}`);
}

/** One quality level of a job type as clients see it (GET /job-types): what runs it and what it costs. */
export interface ModelLevel {
  quality: string;
  variant: string | null;
  provider: CatalogEntry["provider"];
  model: string;
  alias_of: string | null;
  price: Price | null;
  eta_s: number | null;
}

/** Every level of `jobType` in the catalog, aliases resolved; empty for a type with no models. */
export function listModelLevels(catalog: Catalog, jobType: string): ModelLevel[] {
  const table = Object.hasOwn(catalog, jobType) ? catalog[jobType]! : {};
  return Object.entries(table).flatMap(([key, value]) => {
    const [variant, quality] = key.includes(":") ? [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)] : [undefined, key];
    let entry: ResolvedModel;
    try {
      entry = resolveModel(catalog, jobType, quality, variant);
    } catch {
      return [];
    }
    return [
      {
        quality,
        variant: variant ?? null,
        provider: entry.provider,
        model: entry.model,
        alias_of: "alias" in value ? value.alias : null,
        price: entry.price ?? null,
        eta_s: entry.eta_s ?? null,
      },
    ];
  });
}
