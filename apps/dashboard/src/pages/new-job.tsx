import type { FileObject, JobTypeDescription } from "@cutroom/sdk";
import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "../api.ts";
import { navigate } from "../router.tsx";
import { type FormValues, type JsonSchema, SchemaForm, initialValues, inputFromValues } from "../schema-form.tsx";

/** Pick a job type; its form comes from the type's input JSON Schema (GET /job-types). */
export function NewJob({ query }: { query: URLSearchParams }) {
  const [types, setTypes] = useState<JobTypeDescription[]>([]);
  const [files, setFiles] = useState<FileObject[]>([]);
  const [typeName, setTypeName] = useState(query.get("type") ?? "");
  // What the user typed, for the type it was typed in: a newly picked type renders with its own defaults
  // from its first frame (derived below, not set by an effect after a render with the last type's values).
  const [edited, setEdited] = useState<{ type: string; values: FormValues } | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    Promise.all([cutroom.jobs.types(), cutroom.files.list({ limit: 100 })])
      .then(([t, f]) => {
        setTypes(t);
        setFiles(f.data.filter((file) => file.status === "ready"));
        if (!typeName && t[0]) setTypeName(t[0].type);
      })
      .catch((err) => setError(describeError(err)));
  }, []);

  const type = types.find((t) => t.type === typeName);
  const schema = type?.input_schema as JsonSchema | undefined;
  // A new type starts from its defaults, with the file the upload page passed along.
  const fileId = query.get("file_id");
  const values =
    edited?.type === typeName ? edited.values : schema ? initialValues(schema, fileId && schema.properties?.file_id ? { file_id: fileId } : {}) : {};
  const setValues = (next: FormValues) => setEdited({ type: typeName, values: next });

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!type || !schema) return;
    setBusy(true);
    setError("");
    try {
      // The form is generated at run time from the schema: the server validates the input (422 naming the field).
      const job = await cutroom.jobs.createUntyped({ type: type.type, input: inputFromValues(schema, values) });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card" onSubmit={submit}>
      <h1>New job</h1>
      <div class="field">
        <label for="job-type">Job type</label>
        <select id="job-type" value={typeName} onChange={(e) => setTypeName(e.currentTarget.value)}>
          {types.map((t) => (
            <option key={t.type} value={t.type}>
              {t.type} — {t.title}
            </option>
          ))}
        </select>
      </div>
      {type && (
        <>
          <p class="muted">
            {type.description} Cost: {type.cost.description}.
          </p>
          <SchemaForm schema={schema!} values={values} files={files} onChange={setValues} />
        </>
      )}
      {error && <p class="error">{error}</p>}
      <button type="submit" disabled={!type || busy}>
        Create job
      </button>
    </form>
  );
}
