import type { ListPipelinesQuery, Pipeline, PipelineType } from "@cutroom/contracts";
import { and, asc, desc, eq, inArray, sqlTag as sql, type Db } from "@cutroom/db";
import { jobs, pipelines, type PipelineStageRow } from "@cutroom/db/jobs";
import type { Conn, JobRow, Tx } from "./job-store.ts";

export type PipelineRow = typeof pipelines.$inferSelect;
export type NewPipeline = typeof pipelines.$inferInsert;

/** The new run, or null when a run with its id exists (a keyed request's id, taken by a retry that committed first). */
export async function insertPipeline(db: Conn, row: NewPipeline): Promise<PipelineRow | null> {
  const [inserted] = await db.insert(pipelines).values(row).onConflictDoNothing({ target: pipelines.id }).returning();
  return inserted ?? null;
}

/** The pipeline locked for this transaction: every change to a run happens under this lock, so advancing twice at once cannot start a stage twice. */
export async function lockPipeline(tx: Tx, id: string, userId?: string): Promise<PipelineRow | null> {
  const [row] = await tx
    .select()
    .from(pipelines)
    .where(and(eq(pipelines.id, id), userId ? eq(pipelines.userId, userId) : undefined))
    .for("update");
  return row ?? null;
}

export async function getUserPipeline(db: Conn, userId: string, id: string): Promise<PipelineRow | null> {
  const [row] = await db.select().from(pipelines).where(and(eq(pipelines.id, id), eq(pipelines.userId, userId)));
  return row ?? null;
}

export async function getPipelineRow(db: Conn, id: string): Promise<PipelineRow | null> {
  const [row] = await db.select().from(pipelines).where(eq(pipelines.id, id));
  return row ?? null;
}

/** Records the seq of a run's last published event; updated_at stays, as the reconciler reads it as the last advance. */
export async function raiseLastEventSeq(db: Conn, id: string, seq: number): Promise<void> {
  await db
    .update(pipelines)
    .set({ lastEventSeq: sql`greatest(${pipelines.lastEventSeq}, ${seq})` })
    .where(eq(pipelines.id, id));
}

export async function updatePipeline(db: Conn, id: string, patch: Partial<NewPipeline>): Promise<PipelineRow> {
  const [row] = await db
    .update(pipelines)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(eq(pipelines.id, id))
    .returning();
  return row!;
}

export async function listUserPipelines(db: Db, userId: string, q: ListPipelinesQuery) {
  const where = and(
    eq(pipelines.userId, userId),
    q.status ? eq(pipelines.status, q.status) : undefined,
    q.type ? eq(pipelines.type, q.type) : undefined,
    q.project_id ? eq(pipelines.projectId, q.project_id) : undefined,
  );
  const [rows, counted] = await Promise.all([
    db.select().from(pipelines).where(where).orderBy(desc(pipelines.createdAt), desc(pipelines.id)).limit(q.limit).offset(q.offset),
    db.select({ total: sql<number>`count(*)::int` }).from(pipelines).where(where),
  ]);
  return { rows, total: counted[0]?.total ?? 0 };
}

export async function pipelineOfJob(db: Conn, jobId: string): Promise<string | null> {
  const [row] = await db.select({ pipelineId: jobs.pipelineId }).from(jobs).where(eq(jobs.id, jobId));
  return row?.pipelineId ?? null;
}

/** The jobs of some pipelines, in stage and job order. */
export async function pipelineJobs(db: Conn, pipelineIds: string[]): Promise<JobRow[]> {
  if (pipelineIds.length === 0) return [];
  return db.select().from(jobs).where(inArray(jobs.pipelineId, pipelineIds)).orderBy(asc(jobs.pipelineStage), asc(jobs.pipelineOrder));
}

/**
 * Runs the reconciler advances: queued or running pipelines untouched for `graceMs` that have no job
 * left to wait for (a crash between a job's end, or an approval, and the advance), or a job that
 * ended after their last advance (the advance of one of several jobs was lost).
 */
export async function stalePipelineIds(db: Db, graceMs: number, limit = 100): Promise<string[]> {
  const rows = await db.execute<{ id: string }>(sql`
    select p.id from jobs.pipelines p
    where p.status in ('queued', 'running') and p.updated_at < now() - make_interval(secs => ${graceMs / 1000})
      and (not exists (select 1 from jobs.jobs j where j.pipeline_id = p.id and j.status in ('queued', 'running'))
        or exists (select 1 from jobs.jobs j where j.pipeline_id = p.id and j.status in ('succeeded', 'failed', 'canceled') and j.completed_at > p.updated_at))
    order by p.updated_at
    limit ${limit}`);
  return [...rows].map((r) => r.id);
}

/** Runs that ended after `after` and at least `graceMs` ago, oldest first: whose pipeline_completed must be on the stream. */
export function endedPipelines(db: Db, after: Date, graceMs: number, limit = 500) {
  return db
    .select()
    .from(pipelines)
    // pipelines_ended_idx's condition written out: a generic plan cannot match a partial index to parameters.
    .where(and(sql`${pipelines.status} in ('succeeded', 'failed', 'canceled')`, sql`${pipelines.completedAt} > ${after.toISOString()}`, sql`${pipelines.completedAt} < now() - make_interval(secs => ${graceMs / 1000})`))
    .orderBy(asc(pipelines.completedAt))
    .limit(limit);
}

/**
 * Jobs still queued or running in pipelines that ended (failed or canceled) at least `graceMs` ago,
 * when a crash kept them from being canceled. A run that ended just now is still canceling its jobs
 * itself: taken here, they would be missing from the credits its cancel (or a project delete) answers.
 */
export async function orphanedPipelineJobs(db: Db, graceMs: number, limit = 100): Promise<{ jobId: string; userId: string; pipelineId: string }[]> {
  const rows = await db.execute<{ job_id: string; user_id: string; pipeline_id: string }>(orphanedPipelineJobsSearch(graceMs, limit));
  return [...rows].map((r) => ({ jobId: r.job_id, userId: r.user_id, pipelineId: r.pipeline_id }));
}

/** The statement of orphanedPipelineJobs: from the pipelines' live jobs (jobs_pipeline_live_idx), not every ended run or every live job. */
export function orphanedPipelineJobsSearch(graceMs: number, limit: number) {
  return sql`
    select j.id as job_id, j.user_id, j.pipeline_id from jobs.jobs j join jobs.pipelines p on p.id = j.pipeline_id
    where j.pipeline_id is not null and j.status in ('queued', 'running') and p.status in ('failed', 'canceled') and p.completed_at < now() - make_interval(secs => ${graceMs / 1000})
    limit ${limit}`;
}

/** A stage's output file ids: every file of its succeeded jobs, in job order. */
export function stageFileIds(stageJobs: JobRow[]): string[] {
  return stageJobs.flatMap((j) => (j.status === "succeeded" ? ((j.result as { files?: { file_id: string }[] } | null)?.files ?? []).map((f) => f.file_id) : []));
}

/** Credits its jobs hold or spent (released ones not counted) and what their models cost. */
export function pipelineSpend(pipelineJobRows: JobRow[]): { credits: number; costUsd: number } {
  return {
    credits: pipelineJobRows.filter((j) => j.creditState !== "released").reduce((sum, j) => sum + j.credits, 0),
    costUsd: pipelineJobRows.reduce((sum, j) => sum + (j.providerCostUsd ?? 0), 0),
  };
}

/** A stage's progress as its jobs have it now: finished stages 100, a running stage the mean of its jobs'. */
export function stageProgress(stage: PipelineStageRow, stageJobs: JobRow[]): number {
  if (stage.status === "succeeded") return 100;
  if (stage.status !== "running" || stageJobs.length === 0) return stage.progress;
  return stageJobs.reduce((sum, j) => sum + (j.status === "succeeded" ? 100 : j.progress), 0) / stageJobs.length;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

/** The public shape of a run, its progress and spend read from its jobs as they are now. */
export function toPipeline(row: PipelineRow, rowJobs: JobRow[], type: PipelineType | undefined): Pipeline {
  const byStage = new Map<string, JobRow[]>();
  for (const j of rowJobs) byStage.set(j.pipelineStage ?? "", [...(byStage.get(j.pipelineStage ?? "") ?? []), j]);
  const stages = row.stages.map((s) => {
    const progress = round1(stageProgress(s, byStage.get(s.name) ?? []));
    const kind = type?.stages.find((d) => d.name === s.name)?.gate ? ("gate" as const) : ("jobs" as const);
    return { ...s, kind, progress };
  });
  const progress = row.status === "succeeded" ? 100 : round1(stages.reduce((sum, s) => sum + s.progress, 0) / Math.max(1, stages.length));
  const spend = pipelineSpend(rowJobs);
  return {
    id: row.id,
    type: row.type,
    flavor: row.flavor,
    project_id: row.projectId,
    status: row.status,
    progress,
    stages,
    outputs: row.outputs,
    credits: spend.credits,
    cost_usd: spend.costUsd,
    estimate: row.estimate,
    error: row.error ?? null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    completed_at: row.completedAt?.toISOString() ?? null,
  };
}
