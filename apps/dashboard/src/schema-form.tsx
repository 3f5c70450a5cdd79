import type { FileObject } from "@cutroom/sdk";
import type { JSX } from "preact";

/** The part of JSON Schema that GET /job-types uses for inputs (zod's toJSONSchema output). */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  items?: JsonSchema;
}

/** What the user typed, by field: text as typed, booleans as booleans; parsed into the input on submit. */
export type FormValues = Record<string, string | boolean>;

type FieldKind = "file" | "enum" | "integer" | "number" | "boolean" | "string" | "json";

function kindOf(name: string, s: JsonSchema): FieldKind {
  if (s.type === "string" && s.format === "uuid" && name.endsWith("file_id")) return "file";
  if (s.enum) return "enum";
  if (s.type === "integer" || s.type === "number" || s.type === "boolean" || s.type === "string") return s.type;
  // Arrays, objects and unions (clips, tracks, regions): edited as JSON.
  return "json";
}

/** The form's starting values: each field's default, or empty. */
export function initialValues(schema: JsonSchema, given: Record<string, string> = {}): FormValues {
  const values: FormValues = {};
  for (const [name, s] of Object.entries(schema.properties ?? {})) {
    const kind = kindOf(name, s);
    if (given[name] !== undefined) values[name] = given[name];
    else if (kind === "boolean") values[name] = s.default === true;
    else if (s.default === undefined) values[name] = "";
    else values[name] = kind === "json" ? JSON.stringify(s.default, null, 2) : String(s.default);
  }
  return values;
}

/** The job's input from the form: empty optional fields are left out (the server applies defaults). Throws on JSON that does not parse. */
export function inputFromValues(schema: JsonSchema, values: FormValues): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(schema.properties ?? {})) {
    const value = values[name];
    const kind = kindOf(name, s);
    if (kind === "boolean") input[name] = value === true;
    else if (typeof value !== "string" || value.trim() === "") continue;
    else if (kind === "integer" || kind === "number") input[name] = Number(value);
    else if (kind === "json") {
      try {
        input[name] = JSON.parse(value);
      } catch {
        throw new Error(`${name}: not valid JSON`);
      }
    } else input[name] = value;
  }
  return input;
}

const label = (name: string) => name.replaceAll("_", " ");

/** One labelled control per property of the schema, chosen by its type. */
export function SchemaForm({ schema, values, files, onChange }: { schema: JsonSchema; values: FormValues; files: FileObject[]; onChange: (values: FormValues) => void }) {
  const set = (name: string, value: string | boolean) => onChange({ ...values, [name]: value });
  const required = new Set(schema.required ?? []);
  return (
    <div class="schema-form">
      {Object.entries(schema.properties ?? {}).map(([name, s]) => {
        const kind = kindOf(name, s);
        const value = values[name];
        const id = `field-${name}`;
        const text = typeof value === "string" ? value : "";
        const onInput = (e: Event) => set(name, (e.currentTarget as HTMLInputElement).value);
        let control: JSX.Element;
        if (kind === "file") {
          control = (
            <select id={id} name={name} value={text} required={required.has(name)} onChange={onInput}>
              <option value="">{required.has(name) ? "choose a file…" : "none"}</option>
              {files.map((f) => (
                <option key={f.id} value={f.id}>
                  {f.filename} ({f.content_type})
                </option>
              ))}
            </select>
          );
        } else if (kind === "enum") {
          control = (
            <select id={id} name={name} value={text} required={required.has(name)} onChange={onInput}>
              {!required.has(name) && s.default === undefined && <option value="" />}
              {(s.enum ?? []).map((v) => (
                <option key={String(v)} value={String(v)}>
                  {String(v)}
                </option>
              ))}
            </select>
          );
        } else if (kind === "boolean") {
          control = <input id={id} name={name} type="checkbox" checked={value === true} onChange={(e) => set(name, (e.currentTarget as HTMLInputElement).checked)} />;
        } else if (kind === "integer" || kind === "number") {
          control = <input id={id} name={name} type="number" value={text} min={s.minimum} max={s.maximum} step={kind === "integer" ? 1 : "any"} required={required.has(name)} onInput={onInput} />;
        } else if (kind === "json") {
          control = <textarea id={id} name={name} rows={4} value={text} required={required.has(name)} placeholder="JSON" onInput={onInput} />;
        } else {
          control = <input id={id} name={name} type="text" value={text} required={required.has(name)} onInput={onInput} />;
        }
        return (
          <div class="field" key={name}>
            <label for={id}>
              {label(name)}
              {required.has(name) && <span class="required"> *</span>}
            </label>
            {control}
            {s.description && <small>{s.description}</small>}
          </div>
        );
      })}
    </div>
  );
}
