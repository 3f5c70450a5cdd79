import type { Client } from "@cutroom/e2e/client";

/** One documented operation of `/openapi.json`. */
export interface Operation {
  method: string;
  /** The path template, e.g. `/api/v1/files/{id}`. */
  path: string;
  /** `GET /api/v1/files/{id}`. */
  key: string;
  /** Marked `security: []`: callable without a token. */
  isPublic: boolean;
  op: any;
}

/** The document the running gateway serves, and its operations. */
export async function getOperations(api: Client): Promise<{ spec: any; operations: Operation[] }> {
  const res = await api.request("GET", "/openapi.json");
  if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}`);
  const spec = res.body;
  const operations = Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      key: `${method.toUpperCase()} ${path}`,
      isPublic: Array.isArray(op.security) && op.security.length === 0,
      op,
    })),
  );
  return { spec, operations };
}

/** A schema with its `$ref` (to `#/components/...`) followed. */
export function resolveSchema(spec: any, schema: any): any {
  let s = schema;
  for (let hops = 0; s?.$ref && hops < 10; hops++) s = s.$ref.replace(/^#\//, "").split("/").reduce((node: any, key: string) => node?.[key], spec);
  return s;
}

/**
 * The properties an operation's JSON answer of `status` is documented to have at `path` in it
 * (property names, and a number for "an item of this array"): `["data", 0]` is a page's item.
 */
export function documentedProperties(spec: any, op: any, status: number, path: Array<string | number> = []): string[] {
  let schema = resolveSchema(spec, op.responses?.[status]?.content?.["application/json"]?.schema);
  for (const step of path) schema = resolveSchema(spec, typeof step === "number" ? schema?.items : schema?.properties?.[step]);
  return Object.keys(schema?.properties ?? {});
}

/** The template filled with `value` for every path parameter. */
export const fillPath = (template: string, value: string) => template.replace(/\{[^}]+\}/g, encodeURIComponent(value));
