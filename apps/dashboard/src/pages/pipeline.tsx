import type { Job, Pipeline } from "@cutroom/sdk";
import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "../api.ts";
import { Preview } from "../preview.tsx";
import { Link } from "../router.tsx";

type Output = NonNullable<Job["result"]>["files"][number];

/** A pipeline run followed live (WS /ws/pipelines/{id}); at a gate, its previous stage's outputs to approve. */
export function PipelinePage({ id }: { id: string }) {
  const [run, setRun] = useState<Pipeline | null>(null);
  const [outputs, setOutputs] = useState<Output[]>([]);
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [error, setError] = useState("");

  useEffect(() => {
    const stop = new AbortController();
    (async () => {
      setRun(await cutroom.pipelines.get(id));
      // Each event means the run moved: the stored run says where to, whole.
      for await (const _ of cutroom.pipelines.events(id, { signal: stop.signal })) setRun(await cutroom.pipelines.get(id));
    })().catch((err) => {
      if (!stop.signal.aborted) setError(describeError(err));
    });
    return () => stop.abort();
  }, [id]);

  const gateIndex = run?.stages.findIndex((s) => s.kind === "gate" && s.status === "waiting_approval") ?? -1;
  const gate = gateIndex >= 0 ? run!.stages[gateIndex] : undefined;
  const gated = gateIndex > 0 ? run!.stages[gateIndex - 1] : undefined;

  useEffect(() => {
    if (!gated) return setOutputs([]);
    Promise.all(gated.job_ids.map((jobId) => cutroom.jobs.get(jobId)))
      .then((jobs) => {
        const files = jobs.flatMap((j) => j.result?.files ?? []);
        setOutputs(files);
        setChosen(new Set(files.map((f) => f.file_id)));
      })
      .catch((err) => setError(describeError(err)));
  }, [gate?.name, gated?.job_ids.join()]);

  const toggle = (fileId: string) => {
    const next = new Set(chosen);
    if (!next.delete(fileId)) next.add(fileId);
    setChosen(next);
  };
  const approve = async () => {
    if (!gate) return;
    try {
      setRun(await cutroom.pipelines.approve(id, { stage: gate.name, file_ids: [...chosen] }));
    } catch (err) {
      setError(describeError(err));
    }
  };

  if (!run) return <p class="card">{error ? <span class="error">{error}</span> : "loading…"}</p>;
  return (
    <div class="card">
      <h1>
        {run.type} <span class="muted">{run.flavor}</span> <span class={`status status-${run.status}`}>{run.status}</span>
      </h1>
      <p>
        <progress max={100} value={run.progress} /> {Math.round(run.progress)}% · {run.credits} credits
      </p>
      <ol class="stages">
        {run.stages.map((s) => (
          <li key={s.name} class={`stage-${s.status}`}>
            {s.name} <span class="muted">{s.kind === "gate" ? "approval" : `${s.job_ids.length} job(s)`} · {s.status}</span>{" "}
            {s.job_ids.map((j, i) => (
              <Link key={j} to={`/jobs/${j}`}>
                #{i + 1}{" "}
              </Link>
            ))}
          </li>
        ))}
      </ol>
      {run.error && (
        <p class="error">
          {run.error.code}: {run.error.message}
        </p>
      )}
      {error && <p class="error">{error}</p>}
      {gate && (
        <section>
          <h2>Approve: {gate.name}</h2>
          <p class="muted">Choose the outputs of {gated?.name} to go on with.</p>
          <div class="previews">
            {outputs.map((f) => (
              <label key={f.file_id} class={chosen.has(f.file_id) ? "pick picked" : "pick"}>
                <input type="checkbox" checked={chosen.has(f.file_id)} onChange={() => toggle(f.file_id)} />
                <Preview fileId={f.file_id} contentType={f.content_type} filename={f.filename} />
              </label>
            ))}
          </div>
          <button type="button" disabled={chosen.size === 0} onClick={approve}>
            Approve {chosen.size} output(s)
          </button>
        </section>
      )}
      {run.outputs.length > 0 && (
        <section>
          <h2>Outputs</h2>
          <div class="previews">
            {run.outputs.map((fileId) => (
              <OutputPreview key={fileId} fileId={fileId} />
            ))}
          </div>
        </section>
      )}
    </div>
  );
}

/** A run's output, known by id only: its type comes from GET /files/{id}. */
function OutputPreview({ fileId }: { fileId: string }) {
  const [file, setFile] = useState<{ content_type: string; filename: string } | null>(null);
  useEffect(() => {
    cutroom.files.get(fileId).then(setFile, () => setFile({ content_type: "application/octet-stream", filename: fileId }));
  }, [fileId]);
  return file ? <Preview fileId={fileId} contentType={file.content_type} filename={file.filename} /> : null;
}
