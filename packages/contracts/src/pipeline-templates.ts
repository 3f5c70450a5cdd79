/**
 * The template language of pipeline types (docs/PIPELINES.md): pure, so a type's stages can be
 * checked at load and its whole run estimated before any job exists.
 */

/** What a template reads: the run's input, its flavor's params, what earlier stages made, the approved ids, and `item`/`index` in a foreach or repeat. */
export interface TemplateContext {
  input: Record<string, unknown>;
  flavor: Record<string, unknown>;
  stages: Record<string, { file_ids: string[]; results: unknown[] }>;
  gates: Record<string, { file_ids: string[] }>;
  item?: unknown;
  index?: number;
}

const WHOLE = /^\{\{\s*([^{}]+?)\s*\}\}$/;
const PLACEHOLDER = /\{\{\s*([^{}]+?)\s*\}\}/g;
const ROOTS = new Set(["input", "flavor", "stages", "gates", "item", "index"]);

export class TemplateError extends Error {}

/** A dotted path with `[n]` indexes, as segments: `stages.script_gen.results[0].text` → stages, script_gen, results, 0, text. */
export function parsePath(expr: string): (string | number)[] {
  if (!/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*|\[\d+\])*$/.test(expr)) throw new TemplateError(`"${expr}" is not a path (dotted names with optional [n] indexes)`);
  const segments = [...expr.matchAll(/([A-Za-z_][\w-]*)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
  if (!ROOTS.has(segments[0] as string)) throw new TemplateError(`"${expr}" starts with ${segments[0]}; a path starts with one of ${[...ROOTS].join(", ")}`);
  return segments;
}

/** The value at a path; null where any step is missing. */
export function resolvePath(expr: string, ctx: TemplateContext): unknown {
  let value: unknown = ctx;
  for (const segment of parsePath(expr)) {
    if (value === null || value === undefined) return null;
    if (typeof segment === "number") value = Array.isArray(value) ? value[segment] : undefined;
    else value = typeof value === "object" && Object.hasOwn(value as object, segment) ? (value as Record<string, unknown>)[segment] : undefined;
  }
  return value ?? null;
}

/**
 * Evaluates a template against the context:
 * - a string that is exactly one `{{path}}` is that value, type kept; other strings interpolate values as text (null as "");
 * - an object's keys whose value is null are dropped, and so are an array's null items (optional inputs stay optional);
 * - `{"$map": "{{path}}", "to": template}` is the template once per item of the array (`item`, `index` rebound), null for no array;
 * - `{"$if": "{{path}}", "$then": template, "$else": template}` is `$then` when the value is truthy (a non-empty array), else `$else` (null when absent). (`$`: a plain `then` key would make the template object a thenable.)
 */
export function evaluateTemplate(template: unknown, ctx: TemplateContext): unknown {
  if (typeof template === "string") return evaluateString(template, ctx);
  if (Array.isArray(template)) return template.map((t) => evaluateTemplate(t, ctx)).filter((v) => v !== null);
  if (template === null || typeof template !== "object") return template;
  const obj = template as Record<string, unknown>;
  if ("$map" in obj) {
    const list = evaluateTemplate(obj.$map, ctx);
    if (list === null) return null;
    if (!Array.isArray(list)) throw new TemplateError(`$map needs an array; ${String(obj.$map)} is ${typeof list}`);
    return list.map((item, index) => evaluateTemplate(obj.to, { ...ctx, item, index })).filter((v) => v !== null);
  }
  if ("$if" in obj) {
    const test = evaluateTemplate(obj.$if, ctx);
    const truthy = Array.isArray(test) ? test.length > 0 : Boolean(test);
    return evaluateTemplate(truthy ? obj.$then : obj.$else, ctx) ?? null;
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const evaluated = evaluateTemplate(value, ctx);
    if (evaluated !== null && evaluated !== undefined) out[key] = evaluated;
  }
  return out;
}

function evaluateString(template: string, ctx: TemplateContext): unknown {
  const whole = WHOLE.exec(template);
  if (whole) return resolvePath(whole[1]!, ctx);
  return template.replace(PLACEHOLDER, (_, expr: string) => {
    const value = resolvePath(expr, ctx);
    if (value === null) return "";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  });
}

/** Every path a template reads (`$map`'s and `$if`'s included), for checks at load; throws TemplateError on a malformed one. */
export function templatePaths(template: unknown): string[] {
  if (typeof template === "string") {
    if (template.includes("{{") && !/\{\{\s*([^{}]+?)\s*\}\}/.test(template)) throw new TemplateError(`"${template}" has an unclosed {{`);
    return [...template.matchAll(PLACEHOLDER)].map((m) => {
      parsePath(m[1]!);
      return m[1]!;
    });
  }
  if (Array.isArray(template)) return template.flatMap(templatePaths);
  if (template === null || typeof template !== "object") return [];
  return Object.values(template).flatMap(templatePaths);
}
