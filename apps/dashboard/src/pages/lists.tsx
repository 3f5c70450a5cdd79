import type { JobPage, PipelinePage } from "@cutroom/sdk";
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
        <table id="jobs">
          <thead>
            <tr>
              <th>type</th>
              <th>status</th>
              <th>progress</th>
              <th>credits</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data.map((j) => (
              <tr key={j.id}>
                <td>
                  <Link to={`/jobs/${j.id}`}>{j.type}</Link>
                </td>
                <td class={`status-${j.status}`}>{j.status}</td>
                <td>{Math.round(j.progress)}%</td>
                <td>{j.credits.amount}</td>
                <td>{when(j.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h1>Pipelines {pipelines && <span class="muted">({pipelines.total})</span>}</h1>
      {pipelines && pipelines.data.length === 0 && <p class="muted">No pipeline runs yet (POST /api/v1/pipelines starts one).</p>}
      {pipelines && pipelines.data.length > 0 && (
        <table id="pipelines">
          <thead>
            <tr>
              <th>type</th>
              <th>status</th>
              <th>progress</th>
              <th>credits</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            {pipelines.data.map((p) => (
              <tr key={p.id}>
                <td>
                  <Link to={`/pipelines/${p.id}`}>
                    {p.type} <span class="muted">{p.flavor}</span>
                  </Link>
                </td>
                <td class={`status-${p.status}`}>{p.status}</td>
                <td>{Math.round(p.progress)}%</td>
                <td>{p.credits}</td>
                <td>{when(p.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
