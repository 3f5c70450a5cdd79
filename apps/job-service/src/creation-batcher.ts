import type { Db } from "@cutroom/db";
import { insertReservedJobs, KeyTaken, type CreateOutcome, type JobRow, type JobToCreate } from "./job-store.ts";

interface Waiting {
  item: JobToCreate;
  resolve: (outcome: CreateOutcome) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of job creations (ADR 027): while one batch's transaction is in flight, arrivals
 * queue; the next batch takes them all, up to `maxBatch`. One commit then carries many jobs, so the
 * database's and this process's cost per job drops as load rises, and a lone request goes at once.
 *
 * A job whose account another transaction holds, and every job of a batch that failed before its
 * commit (a job's insert refused, a lock wait past the earliest deadline), is created on its own,
 * beside the batches: one job's trouble stays its own. `created` sees each batch's new jobs once
 * committed, with each held job's place among its owner's waiting jobs at its commit (ADR 031).
 */
export function createCreationBatcher(db: Db, opts: { maxBatch: number; created: (rows: JobRow[], places: ReadonlyMap<string, number>) => void }) {
  let queue: Waiting[] = [];
  let busy = false;

  const alone = (w: Waiting) =>
    insertReservedJobs(db, [w.item]).then(([outcome]) => {
      if (outcome!.kind === "created") opts.created([outcome!.row], placesOf([outcome!]));
      w.resolve(outcome!);
    }, w.reject);

  const run = async (batch: Waiting[]) => {
    let outcomes: CreateOutcome[];
    try {
      outcomes = await insertReservedJobs(
        db,
        batch.map((w) => w.item),
        { skipLocked: true },
      );
    } catch (err) {
      // Rolled back whole (insertReservedJobs commits last and throws nothing after): each on its own finds out its own answer.
      if (batch.length === 1 && !(err instanceof KeyTaken)) batch[0]!.reject(err);
      else for (const w of batch) void alone(w);
      return;
    }
    const rows: JobRow[] = [];
    const created: CreateOutcome[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.kind === "alone") void alone(batch[i]!);
      else {
        if (outcome.kind === "created") {
          rows.push(outcome.row);
          created.push(outcome);
        }
        batch[i]!.resolve(outcome);
      }
    }
    if (rows.length > 0) opts.created(rows, placesOf(created));
  };

  const drain = async () => {
    busy = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, opts.maxBatch);
      queue = queue.slice(opts.maxBatch);
      await run(batch);
    }
    busy = false;
  };

  return {
    /**
     * Jobs that commit all together or not at all (POST /jobs/batch): one transaction of their own,
     * beside the batches (a refusal of one must not roll back other requests' jobs); `created` sees them once committed.
     */
    createAll: async (items: readonly JobToCreate[]): Promise<CreateOutcome[]> => {
      const outcomes = await insertReservedJobs(db, items, { atomic: true });
      const rows = outcomes.flatMap((o) => (o.kind === "created" ? [o.row] : []));
      if (rows.length > 0) opts.created(rows, placesOf(outcomes));
      return outcomes;
    },
    create: (item: JobToCreate): Promise<CreateOutcome> =>
      new Promise((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (!busy) void drain();
      }),
  };
}

/** The held jobs' places, as their creation's admission counted them: what their 202 said too. */
function placesOf(outcomes: readonly CreateOutcome[]): Map<string, number> {
  const places = new Map<string, number>();
  for (const o of outcomes) if (o.kind === "created" && o.position) places.set(o.row.id, o.position);
  return places;
}
