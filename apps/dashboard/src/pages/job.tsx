import { type Job, type JobEvent, terminalJobStatuses } from "@cutroom/sdk";
import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "../api.ts";
import { Preview } from "../preview.tsx";

/** What one event changes in the job as shown (the stream replays from seq 0, so the page starts from any state). */
function apply(job: Job, e: JobEvent): Job {
  switch (e.type) {
    case "status":
      return { ...job, status: e.status, queue_position: e.queue_position ?? job.queue_position };
    case "progress":
      return { ...job, progress: e.progress, stage: e.stage ?? job.stage };
    case "stage": {
      const stages = job.stages.some((s) => s.name === e.stage) ? job.stages.map((s) => (s.name === e.stage ? { ...s, status: e.status } : s)) : [...job.stages, { name: e.stage, status: e.status }];
      return { ...job, stage: e.stage, stages };
    }
    case "result":
      // A quick job's stage events may be folded into its result, which means every stage is done (ADR 028).
      return { ...job, status: "succeeded", progress: 100, result: e.result, stages: job.stages.map((s) => (s.status === "pending" || s.status === "running" ? { ...s, status: "done" } : s)) };
    case "error":
      return { ...job, status: e.status, error: e.error };
    default:
      return job;
  }
}

const describe = (e: JobEvent) =>
  e.type === "progress" ? `progress ${Math.round(e.progress)}%` : e.type === "stage" ? `${e.stage}: ${e.status}` : e.type === "log" ? e.message : e.type === "error" ? `${e.status}: ${e.error.message}` : e.type === "status" ? e.status : "succeeded";

/** A job followed live over WS /ws/jobs/{id}: status, progress, stages, then its outputs. */
export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [error, setError] = useState("");

  useEffect(() => {
    const stop = new AbortController();
    (async () => {
      let current = await cutroom.jobs.get(id, { signal: stop.signal });
      setJob(current);
      // From seq 0: the events so far, then live ones; the stream ends after the terminal event.
      for await (const e of cutroom.jobs.events(id, { signal: stop.signal })) {
        current = apply(current, e);
        setJob(current);
        setEvents((all) => [...all.slice(-99), e]);
      }
      // The stored job has what events do not carry (credits, timestamps).
      setJob(await cutroom.jobs.get(id, { signal: stop.signal }));
    })().catch((err) => {
      if (!stop.signal.aborted) setError(describeError(err));
    });
    return () => stop.abort();
  }, [id]);

  const cancel = async () => {
    try {
      setJob((await cutroom.jobs.cancel(id)).job);
    } catch (err) {
      setError(describeError(err));
    }
  };

  if (!job) return <p class="card">{error ? <span class="error">{error}</span> : "loading…"}</p>;
  const live = !terminalJobStatuses.includes(job.status);
  return (
    <div class="card">
      <h1>
        {job.type} <span class={`status status-${job.status}`} id="job-status">{job.status}</span>
      </h1>
      <p class="muted">
        {job.id} · {job.credits.amount} credits ({job.credits.state}) · created {new Date(job.created_at).toLocaleString()}
        {job.queue_position ? ` · place ${job.queue_position} in your queue` : ""}
      </p>
      <p>
        <progress id="job-progress" max={100} value={job.progress} /> <span>{Math.round(job.progress)}%</span> {job.stage && <span class="muted">{job.stage}</span>}
      </p>
      {job.stages.length > 0 && (
        <ol class="stages">
          {job.stages.map((s) => (
            <li key={s.name} class={`stage-${s.status}`}>
              {s.name} <span class="muted">{s.status}</span>
            </li>
          ))}
        </ol>
      )}
      {live && (
        <button type="button" class="secondary" onClick={cancel}>
          Cancel job
        </button>
      )}
      {job.error && (
        <p class="error">
          {job.error.code}: {job.error.message}
        </p>
      )}
      {error && <p class="error">{error}</p>}
      {job.result && (
        <section>
          <h2>Result</h2>
          <div class="previews">
            {job.result.files.map((f) => (
              <Preview key={f.file_id} fileId={f.file_id} contentType={f.content_type} filename={f.filename} />
            ))}
          </div>
        </section>
      )}
      {events.length > 0 && (
        <details open>
          <summary>Live events ({events.length})</summary>
          <ul class="events" id="job-events">
            {events.map((e) => (
              <li key={e.seq}>
                #{e.seq} {describe(e)}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}
