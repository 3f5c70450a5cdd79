import { CutroomError, type Health, type QueueDepth, type UserPage } from "@cutroom/sdk";
import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "../api.ts";

/** GET /admin/stats (its reply has no schema in the contracts: the SDK gives numbers by name). */
type AdminStats = Awaited<ReturnType<typeof cutroom.admin.stats>>;

const workerKinds = (health: Health) => Object.entries(health.services).filter(([name]) => name.startsWith("worker-"));

/** For admins: totals, users, every process's health, and the worker queues' load. */
export function Admin() {
  const [stats, setStats] = useState<AdminStats | null>(null);
  const [users, setUsers] = useState<UserPage | null>(null);
  const [health, setHealth] = useState<Health | null>(null);
  const [queues, setQueues] = useState<QueueDepth[] | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    const load = () =>
      Promise.all([
        cutroom.admin.stats(),
        cutroom.admin.users({ limit: 50 }),
        cutroom.admin.health(),
        // A server older than GET /admin/queues answers 404: the workers' load is shown alone.
        cutroom.admin.queues().catch((err) => {
          if (err instanceof CutroomError && err.status === 404) return null;
          throw err;
        }),
      ])
        .then(([s, u, h, q]) => {
          setStats(s);
          setUsers(u);
          setHealth(h);
          setQueues(q?.data ?? null);
          setError("");
        })
        .catch((err) => setError(describeError(err)));
    load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, []);

  return (
    <div class="card">
      <h1>Admin</h1>
      {error && <p class="error">{error}</p>}
      {stats && (
        <section>
          <h2>Stats</h2>
          <dl class="stats" id="admin-stats">
            <Stat label="users" value={stats.total_users} />
            <Stat label="new today" value={stats.users_today} />
            <Stat label="active jobs" value={stats.active_jobs} />
            <Stat label="completed today" value={stats.completed_jobs_today} />
            <Stat label="avg processing" value={stats.average_processing_time_minutes == null ? "–" : `${stats.average_processing_time_minutes.toFixed(2)} min`} />
            <Stat label="files" value={stats.total_files} />
            <Stat label="storage" value={`${stats.total_storage_gb} GB`} />
          </dl>
        </section>
      )}
      {health && (
        <section>
          {queues && (
            <>
              <h2>Queues</h2>
              <table id="queues">
                <thead>
                  <tr>
                    <th>queue</th>
                    <th>queued</th>
                    <th>held for a slot</th>
                    <th>running</th>
                    <th>undelivered</th>
                    <th>unacknowledged</th>
                  </tr>
                </thead>
                <tbody>
                  {queues.map((q) => (
                    <tr key={q.queue}>
                      <td>{q.queue}</td>
                      <td>{q.queued}</td>
                      <td>{q.held}</td>
                      <td>{q.running}</td>
                      <td>{q.pending ?? "no consumer"}</td>
                      <td>{q.ack_pending ?? "–"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          <h2>
            Workers <span class="muted">(jobs in flight on each kind / its slots)</span>
          </h2>
          <table id="workers">
            <tbody>
              {workerKinds(health).map(([name, kind]) => {
                const inFlight = (kind.instances ?? []).reduce((n, i) => n + (i.load?.in_flight ?? 0), 0);
                const slots = (kind.instances ?? []).reduce((n, i) => n + (i.load?.concurrency ?? 0), 0);
                return (
                  <tr key={name}>
                    <td>{name}</td>
                    <td>
                      <progress max={slots || 1} value={inFlight} /> {inFlight} / {slots}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <h2>
            Health <span class={`status status-${health.status}`}>{health.status}</span>
          </h2>
          <table id="health">
            <tbody>
              {Object.entries(health.checks).map(([name, c]) => (
                <tr key={name}>
                  <td>{name}</td>
                  <td class={`status-${c.status}`}>{c.status}</td>
                  <td class="muted">{c.latency_ms !== undefined ? `${c.latency_ms} ms` : ""}</td>
                  <td class="muted">{c.error ?? ""}</td>
                </tr>
              ))}
              {Object.entries(health.services).map(([name, kind]) => (
                <tr key={name}>
                  <td>{name}</td>
                  <td class={`status-${kind.status}`}>{kind.status}</td>
                  <td class="muted">{kind.count} instance(s)</td>
                  <td class="muted">{(kind.instances ?? []).map((i) => `${i.host}:${i.pid}`).join(", ") || kind.error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {users && (
        <section>
          <h2>
            Users <span class="muted">({users.total})</span>
          </h2>
          <table id="users">
            <thead>
              <tr>
                <th>email</th>
                <th>role</th>
                <th>tier</th>
                <th>credits</th>
                <th>last sign-in</th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.user_id} class={u.disabled ? "disabled" : ""}>
                  <td>{u.email}</td>
                  <td>{u.role}</td>
                  <td>{u.tier}</td>
                  <td>{u.credits}</td>
                  <td>{u.last_login ? new Date(u.last_login).toLocaleString() : "never"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </div>
  );
}

function Stat({ label, value }: { label: string; value: string | number | null | undefined }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{value ?? "–"}</dd>
    </div>
  );
}
