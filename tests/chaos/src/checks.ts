import postgres from "postgres";
import type { JobRecord } from "./load.ts";

/** What must hold after any fault: read from Postgres (the truth) and from what the clients saw. */
export interface Verdict {
  accepted: number;
  /** Accepted jobs that are not terminal in Postgres. */
  notTerminal: string[];
  /** Jobs with more than one capture or release, or a capture of a job that did not succeed. */
  chargedWrong: string[];
  /** Reservations neither captured nor released. */
  openReservations: string[];
  /** Reservations whose job does not exist. */
  orphanReservations: string[];
  /** Accounts whose balance is not what their ledger says. */
  unbalancedAccounts: string[];
  /** Watchers whose events were not 1, 2, … ending in the terminal event. */
  brokenStreams: { id: string; seqs: number[] }[];
  /** Jobs whose POST never got a 202 (a 4xx, or the client gave up). */
  refused: { key: string; why: string }[];
  statuses: Record<string, number>;
}

export async function verify(databaseUrl: string, jobs: JobRecord[]): Promise<Verdict> {
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const accepted = jobs.filter((j) => j.id);
    const ids = accepted.map((j) => j.id!);
    const rows = await sql<{ id: string; status: string }[]>`select id, status from jobs.jobs where id = any(${ids}::uuid[])`;
    const status = new Map(rows.map((r) => [r.id, r.status]));
    const terminal = new Set(["succeeded", "failed", "canceled"]);
    const statuses: Record<string, number> = {};
    for (const id of ids) statuses[status.get(id) ?? "missing"] = (statuses[status.get(id) ?? "missing"] ?? 0) + 1;

    const settles = await sql<{ job_id: string; kinds: string[]; status: string | null }[]>`
      select l.job_id, array_agg(l.kind order by l.created_at) as kinds, j.status
      from billing.ledger l left join jobs.jobs j on j.id = l.job_id
      where l.job_id is not null group by l.job_id, j.status`;
    const chargedWrong = settles
      .filter(({ kinds, status: s }) => {
        const reserves = kinds.filter((k) => k === "reserve").length;
        const settled = kinds.filter((k) => k === "capture" || k === "release");
        return reserves !== 1 || settled.length > 1 || (settled[0] === "capture" && s !== "succeeded") || (settled[0] === "release" && s === "succeeded");
      })
      .map((r) => `${r.job_id} (${r.kinds.join(",")}; ${r.status ?? "no job"})`);
    const open = settles.filter((r) => !r.kinds.some((k) => k === "capture" || k === "release"));
    const unbalanced = await sql<{ user_id: string }[]>`
      select a.user_id from billing.accounts a
      left join (select user_id, sum(amount)::int as total from billing.ledger group by user_id) l on l.user_id = a.user_id
      left join (
        select r.user_id, sum(-r.amount)::int as held from billing.ledger r
        where r.kind = 'reserve' and not exists (select 1 from billing.ledger s where s.job_id = r.job_id and s.kind in ('capture', 'release'))
        group by r.user_id
      ) h on h.user_id = a.user_id
      where a.available <> coalesce(l.total, 0) or a.reserved <> coalesce(h.held, 0)`;

    return {
      accepted: accepted.length,
      notTerminal: ids.filter((id) => !terminal.has(status.get(id) ?? "")),
      chargedWrong,
      openReservations: open.map((r) => r.job_id),
      orphanReservations: settles.filter((r) => r.status === null).map((r) => r.job_id),
      unbalancedAccounts: unbalanced.map((r) => r.user_id),
      brokenStreams: accepted
        .filter((j) => j.terminalAt === undefined || j.events.some((e, i) => e.seq !== i + 1))
        .map((j) => ({ id: j.id!, seqs: j.events.map((e) => e.seq) })),
      refused: jobs.filter((j) => j.refused).map((j) => ({ key: j.key, why: j.refused! })),
      statuses,
    };
  } finally {
    await sql.end();
  }
}

/** The verdict's failures, one line each; empty when everything held. */
export function failures(v: Verdict): string[] {
  const out: string[] = [];
  const list = (what: string, xs: unknown[]) => xs.length > 0 && out.push(`${xs.length} ${what}: ${JSON.stringify(xs.slice(0, 5))}`);
  list("accepted jobs not terminal", v.notTerminal);
  list("jobs charged wrong", v.chargedWrong);
  list("open reservations", v.openReservations);
  list("reservations without a job", v.orphanReservations);
  list("unbalanced accounts", v.unbalancedAccounts);
  list("watchers without a gap-free stream to the end", v.brokenStreams);
  list("jobs refused or given up", v.refused);
  return out;
}
