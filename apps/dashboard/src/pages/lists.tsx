import type { JobPage, PipelinePage } from "@cutroom/sdk";
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "../api.ts";
import { Link } from "../router.tsx";

const when = (iso: string) => new Date(iso).toLocaleString();

/** The signed-in user's latest jobs and pipeline runs. */
export function Lists() {
  const [jobs, setJobs] = useState<JobPage | null>(null);
  const [pipelines, setPipelines] = useState<PipelinePage | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    Promise.all([cutroom.jobs.list({ limit: 25 }), cutroom.pipelines.list({ limit: 25 })])
      .then(([j, p]) => {
        setJobs(j);
        setPipelines(p);
      })
      .catch((err) => setError(describeError(err)));
  }, []);
  return (
    <div class="card">
      {error && <p class="error">{error}</p>}
      <h1>Jobs {jobs && <span class="muted">({jobs.total})</span>}</h1>
      {jobs && jobs.data.length === 0 && (
        <p class="muted">
          No jobs yet: <Link to="/upload">upload a file</Link> and <Link to="/new">run one</Link>.
        </p>
      )}
      {jobs && jobs.data.length > 0 && (
        <RunTable
          id="jobs"
          rows={jobs.data.map((j) => ({ id: j.id, to: `/jobs/${j.id}`, label: j.type, status: j.status, progress: j.progress, credits: j.credits.amount, created_at: j.created_at }))}
        />
      )}
      <h1>Pipelines {pipelines && <span class="muted">({pipelines.total})</span>}</h1>
      {pipelines && pipelines.data.length === 0 && <p class="muted">No pipeline runs yet (POST /api/v1/pipelines starts one).</p>}
      {pipelines && pipelines.data.length > 0 && (
        <RunTable
          id="pipelines"
          rows={pipelines.data.map((p) => ({
            id: p.id,
            to: `/pipelines/${p.id}`,
            label: (
              <>
                {p.type} <span class="muted">{p.flavor}</span>
              </>
            ),
            status: p.status,
            progress: p.progress,
            credits: p.credits,
            created_at: p.created_at,
          }))}
        />
      )}
    </div>
  );
}

/** One row of the jobs or the pipelines table: a job and a pipeline run show the same columns. */
interface RunRow {
  id: string;
  to: string;
  label: ComponentChildren;
  status: string;
  progress: number;
  credits: number;
  created_at: string;
}

const RUN_COLUMNS = ["type", "status", "progress", "credits", "created"];

function RunTable({ id, rows }: { id: string; rows: RunRow[] }) {
  return (
    <table id={id}>
      <thead>
        <tr>
          {RUN_COLUMNS.map((c) => (
            <th key={c}>{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.id}>
            <td>
              <Link to={r.to}>{r.label}</Link>
            </td>
            <td class={`status-${r.status}`}>{r.status}</td>
            <td>{Math.round(r.progress)}%</td>
            <td>{r.credits}</td>
            <td>{when(r.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
