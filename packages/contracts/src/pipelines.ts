import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { Pagination, Timestamp, Uuid } from "./common.ts";
import { jobTypes } from "./job-types.ts";
import { JobError } from "./jobs.ts";
import { TemplateError, templatePaths } from "./pipeline-templates.ts";

/*
 * Pipeline types are data (docs/PIPELINES.md, ADR 025): one JSON file per type in ../pipelines, its
 * flavors in ../pipelines/flavors/<type>/<flavor>.json, and an operator's flavors in a directory of
 * the same layout (PIPELINE_FLAVORS_DIR), all read and checked once at start.
 */

const StageName = z.string().regex(/^[a-z][a-z0-9_]*$/, "lower case letters, digits and _, starting with a letter");
const TypeName = z.string().regex(/^[a-z][a-z0-9-]*$/, "lower case letters, digits and -, starting with a letter");
/** A count: a number, or a template that gives one (`{{input.num_images}}`). */
const Count = z.union([z.number().int().nonnegative(), z.string().min(1)]);

export const PipelineJobTemplate = z
  .object({
    type: z.string().min(1).describe("a job type (GET /job-types)"),
    input: z.record(z.string(), z.unknown()).describe("the job's input, as a template"),
    foreach: z.string().min(1).optional().describe("one job per item of this array (a template); `item` and `index` name the item"),
    repeat: Count.optional().describe("this many jobs; `index` numbers them"),
  })
  .strict()
  .refine((j) => !(j.foreach && j.repeat !== undefined), { message: "give foreach or repeat, not both", path: ["repeat"] });
export type PipelineJobTemplate = z.infer<typeof PipelineJobTemplate>;

export const PipelineGate = z
  .object({
    stage: StageName.describe("the earlier stage whose outputs the user approves"),
    min: Count.optional().describe("fewest outputs to approve (default 1)"),
    max: Count.optional().describe("most outputs to approve (default: all)"),
  })
  .strict();

export const PipelineStageDef = z
  .object({
    name: StageName,
    description: z.string().optional(),
    after: z.array(StageName).optional().describe("stages it waits for; absent: the stage before it in the list"),
    jobs: z.array(PipelineJobTemplate).min(1).optional(),
    gate: PipelineGate.optional(),
  })
  .strict()
  .refine((s) => (s.jobs === undefined) !== (s.gate === undefined), { message: "a stage has jobs or a gate, one of them" });
export type PipelineStageDef = z.infer<typeof PipelineStageDef>;

export const PipelineTypeFile = z
  .object({
    $comment: z.string().optional(),
    name: TypeName,
    description: z.string().min(1),
    default_flavor: z.string().min(1),
    input: z.record(z.string(), z.unknown()).describe("JSON Schema (draft 2020-12) of the pipeline's input"),
    stages: z.array(PipelineStageDef).min(1),
  })
  .strict();
export type PipelineTypeFile = z.infer<typeof PipelineTypeFile>;

export const PipelineFlavorFile = z
  .object({
    $comment: z.string().optional(),
    description: z.string().min(1),
    params: z.record(z.string(), z.unknown()).default({}).describe("read in templates as flavor.<name>"),
  })
  .strict();
export type PipelineFlavorFile = z.infer<typeof PipelineFlavorFile>;

/** A checked type, ready to run: its input schema compiled, each stage's dependencies spelled out. */
export interface PipelineType {
  name: string;
  description: string;
  defaultFlavor: string;
  inputSchema: Record<string, unknown>;
  input: z.ZodType<Record<string, unknown>>;
  stages: (PipelineStageDef & { after: string[] })[];
  flavors: Record<string, PipelineFlavorFile>;
}

export const builtinPipelinesDir = fileURLToPath(new URL("../pipelines/", import.meta.url));

/**
 * Reads and checks every type of `typesDir` with its flavors, then the operator's flavors
 * (`flavorsDir`, same layout: <type>/<flavor>.json; one named as a built-in replaces it).
 * Throws naming the file on anything wrong, so a bad file stops the start.
 */
export function loadPipelineTypes(opts: { typesDir?: string; flavorsDir?: string } = {}): Map<string, PipelineType> {
  const typesDir = opts.typesDir ?? builtinPipelinesDir;
  const types = new Map<string, PipelineType>();
  for (const file of jsonFiles(typesDir)) {
    const type = checkPipelineType(readJson(file, PipelineTypeFile), file);
    if (types.has(type.name)) throw new Error(`${file}: a second pipeline type named ${type.name}`);
    types.set(type.name, type);
  }
  for (const dir of [join(typesDir, "flavors"), opts.flavorsDir]) {
    if (!dir || !existsSync(dir)) continue;
    for (const typeDir of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      const type = types.get(typeDir.name);
      if (!type) throw new Error(`${join(dir, typeDir.name)}: flavors of a pipeline type that does not exist (${[...types.keys()].join(", ")})`);
      for (const file of jsonFiles(join(dir, typeDir.name))) type.flavors[basename(file, ".json")] = readJson(file, PipelineFlavorFile);
    }
  }
  for (const type of types.values()) {
    if (!type.flavors[type.defaultFlavor]) throw new Error(`pipeline type ${type.name}: its default flavor ${type.defaultFlavor} has no file (flavors/${type.name}/${type.defaultFlavor}.json)`);
  }
  return types;
}

function jsonFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith(".json"))
    .map((d) => join(dir, d.name))
    .sort();
}

function readJson<S extends z.ZodType>(file: string, schema: S): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

/** Checks what the schema cannot: names, dependencies, gates, job types and template paths. */
export function checkPipelineType(file: PipelineTypeFile, where = file.name): PipelineType {
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  const seen = new Map<string, PipelineStageDef>();
  const stages: PipelineType["stages"] = [];
  for (const [i, stage] of file.stages.entries()) {
    if (seen.has(stage.name)) fail(`two stages named ${stage.name}`);
    // Only earlier stages may be named: the list order is then a valid order to run them in, and no cycle can be written.
    const after = stage.after ?? (i === 0 ? [] : [file.stages[i - 1]!.name]);
    for (const dep of after) if (!seen.has(dep)) fail(`stage ${stage.name} waits for ${dep}, which is not a stage before it`);
    if (stage.gate) {
      const gated = seen.get(stage.gate.stage);
      if (!gated?.jobs) fail(`gate ${stage.name} approves outputs of ${stage.gate.stage}, which is not a stage of jobs before it`);
      if (stage.after && !stage.after.includes(stage.gate.stage)) fail(`gate ${stage.name} must wait for ${stage.gate.stage}, whose outputs it approves`);
    }
    for (const job of stage.jobs ?? []) {
      if (!Object.hasOwn(jobTypes, job.type)) fail(`stage ${stage.name} runs ${job.type}, which is not a job type`);
    }
    try {
      for (const path of templatePaths([stage.jobs ?? [], stage.gate?.min ?? null, stage.gate?.max ?? null])) {
        const [root, name] = path.split(/[.[]/);
        if (root !== "stages" && root !== "gates") continue;
        const named = name ? seen.get(name) : undefined;
        if (!named) fail(`stage ${stage.name} reads ${path}, but ${name} is not a stage before it`);
        if (root === "gates" && !named?.gate) fail(`stage ${stage.name} reads ${path}, but ${name} is not a gate`);
      }
    } catch (err) {
      if (err instanceof TemplateError) fail(`stage ${stage.name}: ${err.message}`);
      throw err;
    }
    seen.set(stage.name, stage);
    stages.push({ ...stage, after });
  }
  let input: z.ZodType<Record<string, unknown>>;
  try {
    input = z.fromJSONSchema(file.input as Parameters<typeof z.fromJSONSchema>[0]) as z.ZodType<Record<string, unknown>>;
  } catch (err) {
    return fail(`its input is not a JSON Schema zod can read: ${(err as Error).message}`);
  }
  if (file.input.type !== "object") fail(`its input schema must be of type object`);
  return { name: file.name, description: file.description, defaultFlavor: file.default_flavor, inputSchema: file.input, input, stages, flavors: {} };
}

// The API.

export const PipelineStatus = z.enum(["queued", "running", "waiting_approval", "succeeded", "failed", "canceled"]);
export type PipelineStatus = z.infer<typeof PipelineStatus>;
export const PipelineStageStatus = z.enum(["pending", "running", "waiting_approval", "succeeded", "failed", "canceled"]);
export const pipelineTerminalStatuses: readonly PipelineStatus[] = ["succeeded", "failed", "canceled"];

export const PipelineTypeDescription = z
  .object({
    name: z.string(),
    description: z.string(),
    input_schema: z.record(z.string(), z.unknown()).describe("JSON Schema of the input POST /pipelines takes"),
    stages: z.array(z.object({ name: z.string(), kind: z.enum(["jobs", "gate"]), after: z.array(z.string()), job_types: z.array(z.string()), description: z.string().nullable() })),
    flavors: z.array(z.object({ name: z.string(), description: z.string() })),
    default_flavor: z.string(),
  })
  .meta({ id: "PipelineType" });
export type PipelineTypeDescription = z.infer<typeof PipelineTypeDescription>;

export function describePipelineType(t: PipelineType): PipelineTypeDescription {
  return {
    name: t.name,
    description: t.description,
    input_schema: t.inputSchema,
    stages: t.stages.map((s) => ({ name: s.name, kind: s.gate ? "gate" : "jobs", after: s.after, job_types: (s.jobs ?? []).map((j) => j.type), description: s.description ?? null })),
    flavors: Object.entries(t.flavors).map(([name, f]) => ({ name, description: f.description })),
    default_flavor: t.defaultFlavor,
  };
}

export const CreatePipelineBody = z.object({
  type: z.string().min(1).max(100),
  flavor: z.string().min(1).max(100).optional().describe("one of the type's flavors; its default_flavor when absent"),
  project_id: Uuid.optional().describe("a project of yours: the pipeline's jobs and files belong to it"),
  input: z.record(z.string(), z.unknown()),
});
export type CreatePipelineBody = z.infer<typeof CreatePipelineBody>;

export const PipelineEstimate = z
  .object({
    credits: z.number().int().describe("the whole run, every gate assumed to pass all outputs of its stage (at most its max)"),
    eta_seconds: z.number().nullable().describe("the models' typical time along the longest chain of stages, waits for approval not counted; null when none runs a model"),
  })
  .meta({ id: "PipelineEstimate" });

export const PipelineStage = z.object({
  name: z.string(),
  kind: z.enum(["jobs", "gate"]),
  status: PipelineStageStatus,
  progress: z.number().min(0).max(100),
  started_at: Timestamp.nullable(),
  completed_at: Timestamp.nullable(),
  error: JobError.nullable(),
  job_ids: z.array(Uuid).describe("the stage's jobs, in order (GET /jobs/{id})"),
  approved_file_ids: z.array(Uuid).optional().describe("a gate's: the outputs approved"),
});

export const Pipeline = z
  .object({
    id: Uuid,
    type: z.string(),
    flavor: z.string(),
    project_id: Uuid.nullable(),
    status: PipelineStatus,
    progress: z.number().min(0).max(100).describe("the mean of its stages' progress"),
    stages: z.array(PipelineStage),
    outputs: z.array(Uuid).describe("the output files of its last stage, once it succeeded"),
    credits: z.number().int().describe("its jobs' credits, reserved or captured (released ones not counted)"),
    cost_usd: z.number().describe("what the model provider charged for its jobs, USD"),
    estimate: PipelineEstimate,
    error: JobError.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    completed_at: Timestamp.nullable(),
  })
  .meta({ id: "Pipeline" });
export type Pipeline = z.infer<typeof Pipeline>;

export const ListPipelinesQuery = Pagination.extend({
  status: PipelineStatus.optional(),
  type: z.string().max(100).optional(),
  project_id: Uuid.optional(),
});
export type ListPipelinesQuery = z.infer<typeof ListPipelinesQuery>;

export const ApprovePipelineBody = z.object({
  stage: z.string().min(1).max(100).describe("the gate"),
  file_ids: z.array(Uuid).max(100).describe("outputs of the gated stage to go on with"),
});

export const CancelPipelineReply = z.object({ pipeline: Pipeline, credits_refunded: z.number().int() });
