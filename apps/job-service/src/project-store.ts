import type { Project, ProjectCosts } from "@cutroom/contracts";
import { and, desc, eq, inArray, isNull, sqlTag as sql, type Db } from "@cutroom/db";
import { jobs, pipelines, projectApprovals, projects } from "@cutroom/db/jobs";
import type { Conn, JobRow } from "./job-store.ts";

export type ProjectRow = typeof projects.$inferSelect;

/** Jobs enqueued in a project, counted for its public shape. (Spelled out: Drizzle writes the outer column unqualified, which the subquery's own id would shadow.) */
const jobCount = sql<number>`(select count(*)::int from jobs.jobs j where j.project_id = projects.id)`;

export function toProject(row: ProjectRow, jobCount: number): Project {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    job_count: jobCount,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export async function insertProject(db: Db, p: { id: string; userId: string; name: string; description: string | null }): Promise<ProjectRow> {
  const [row] = await db.insert(projects).values(p).returning();
  return row!;
}

/** The user's project unless deleted; another user's is simply not there. */
export async function getLiveProject(db: Conn, userId: string, id: string): Promise<{ row: ProjectRow; jobCount: number } | null> {
  const [found] = await db
    .select({ row: projects, jobCount })
    .from(projects)
    .where(and(eq(projects.id, id), eq(projects.userId, userId), isNull(projects.deletedAt)));
  return found ?? null;
}

/**
 * Locks the live projects among the (user, project) pairs until the transaction ends: a job inserted
 * meanwhile holds its project live, and a delete waits for it. Answers them as `${user}\0${project}`.
 */
export async function lockLiveProjects(tx: Conn, wanted: readonly { userId: string; id: string }[]): Promise<Set<string>> {
  const rows = await tx
    .select({ id: projects.id, userId: projects.userId })
    .from(projects)
    .where(and(inArray(projects.id, [...new Set(wanted.map((w) => w.id))]), isNull(projects.deletedAt)))
    .orderBy(projects.id)
    .for("share");
  return new Set(rows.map((r) => `${r.userId}\0${r.id}`));
}

export async function listProjects(db: Db, userId: string, q: { limit: number; offset: number }) {
  const where = and(eq(projects.userId, userId), isNull(projects.deletedAt));
  const [rows, counted] = await Promise.all([
    db.select({ row: projects, jobCount }).from(projects).where(where).orderBy(desc(projects.createdAt), desc(projects.id)).limit(q.limit).offset(q.offset),
    db.select({ total: sql<number>`count(*)::int` }).from(projects).where(where),
  ]);
  return { rows, total: counted[0]?.total ?? 0 };
}

export async function updateProject(db: Db, userId: string, id: string, patch: { name?: string; description?: string | null }): Promise<ProjectRow | null> {
  const [row] = await db
    .update(projects)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(projects.id, id), eq(projects.userId, userId), isNull(projects.deletedAt)))
    .returning();
  return row ?? null;
}

/**
 * Marks the user's project deleted; true also when it was deleted already, so a retried delete
 * finishes what a failed one left (its jobs, its files). False when the user has no such project.
 */
export async function markProjectDeleted(db: Db, userId: string, id: string): Promise<boolean> {
  const [row] = await db
    .update(projects)
    .set({ deletedAt: sql`coalesce(${projects.deletedAt}, now())`, updatedAt: sql`now()` })
    .where(and(eq(projects.id, id), eq(projects.userId, userId)))
    .returning({ id: projects.id });
  return row !== undefined;
}

/** The project's jobs that are still queued or running. */
export async function activeProjectJobIds(db: Db, userId: string, projectId: string): Promise<string[]> {
  const rows = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.userId, userId), eq(jobs.projectId, projectId), inArray(jobs.status, ["queued", "running"])));
  return rows.map((r) => r.id);
}

/** The project's pipeline runs that have not ended (ADR 025). */
export async function liveProjectPipelineIds(db: Db, userId: string, projectId: string): Promise<string[]> {
  const rows = await db
    .select({ id: pipelines.id })
    .from(pipelines)
    .where(and(eq(pipelines.userId, userId), eq(pipelines.projectId, projectId), inArray(pipelines.status, ["queued", "running", "waiting_approval"])));
  return rows.map((r) => r.id);
}

export async function projectJobs(db: Db, userId: string, projectId: string): Promise<JobRow[]> {
  return db
    .select()
    .from(jobs)
    .where(and(eq(jobs.userId, userId), eq(jobs.projectId, projectId)));
}

/** The pipeline stage a job ran as (ADR 025); null for a job asked for directly. */
export function stageOfJob(row: JobRow): string | null {
  return row.pipelineStage;
}

/**
 * Where each output of the jobs stands: its 0-based position among its job's result files, or,
 * for a job of a pipeline stage, among the stage's outputs (its jobs in their stage order).
 */
export function outputOrder(jobs: JobRow[]): Map<string, number> {
  const order = new Map<string, number>();
  const filesOf = (j: JobRow) => ((j.result as { files?: { file_id: string }[] } | null)?.files ?? []).map((f) => f.file_id);
  const stages = new Map<string, JobRow[]>();
  for (const job of jobs) {
    if (job.pipelineId && job.pipelineStage) {
      const key = `${job.pipelineId}/${job.pipelineStage}`;
      stages.set(key, [...(stages.get(key) ?? []), job]);
    } else {
      for (const [i, id] of filesOf(job).entries()) order.set(id, i);
    }
  }
  for (const stageJobs of stages.values()) {
    stageJobs.sort((a, b) => (a.pipelineOrder ?? 0) - (b.pipelineOrder ?? 0));
    let next = 0;
    for (const job of stageJobs) for (const id of filesOf(job)) order.set(id, next++);
  }
  return order;
}

/** The user's verdicts on files of the project, by file id. */
export async function projectApprovalMap(db: Db, projectId: string): Promise<Map<string, boolean>> {
  const rows = await db.select({ fileId: projectApprovals.fileId, approved: projectApprovals.approved }).from(projectApprovals).where(eq(projectApprovals.projectId, projectId));
  return new Map(rows.map((r) => [r.fileId, r.approved]));
}

/** Sets the verdict on every file given, in one statement: all of them or none. Returns how many files of the project are approved after it. */
export async function setApprovals(db: Db, projectId: string, fileIds: string[], approved: boolean): Promise<number> {
  return db.transaction(async (tx) => {
    await tx
      .insert(projectApprovals)
      .values(fileIds.map((fileId) => ({ projectId, fileId, approved })))
      .onConflictDoUpdate({ target: [projectApprovals.projectId, projectApprovals.fileId], set: { approved, updatedAt: sql`now()` } });
    const [row] = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(projectApprovals)
      .where(and(eq(projectApprovals.projectId, projectId), eq(projectApprovals.approved, true)));
    return row?.n ?? 0;
  });
}

/**
 * What the project's jobs cost, by job type and model: credits captured (succeeded jobs), the USD
 * the provider charged (failed runs too), and units: the output files made. A job counts when it
 * ended having been charged credits or having run a model.
 */
export async function projectCosts(db: Db, userId: string, projectId: string): Promise<ProjectCosts> {
  // Model-backed types record the model as result.model, or inside result.provider.
  const model = sql<string | null>`coalesce(${jobs.result}->>'model', ${jobs.result}->'provider'->>'model')`;
  const rows = await db
    .select({
      jobType: jobs.type,
      model,
      credits: sql<number>`coalesce(sum(${jobs.credits}) filter (where ${jobs.creditState} = 'captured'), 0)::int`,
      usd: sql<number>`coalesce(sum(${jobs.providerCostUsd}), 0)::float8`,
      units: sql<number>`coalesce(sum(jsonb_array_length(coalesce(${jobs.result}->'files', '[]'::jsonb))), 0)::int`,
      count: sql<number>`count(*)::int`,
    })
    .from(jobs)
    .where(
      and(
        eq(jobs.userId, userId),
        eq(jobs.projectId, projectId),
        inArray(jobs.status, ["succeeded", "failed", "canceled"]),
        sql`(${jobs.creditState} = 'captured' or ${jobs.providerCostUsd} is not null)`,
      ),
    )
    .groupBy(jobs.type, model)
    .orderBy(jobs.type, model);
  const usd = (n: number) => Math.round(n * 1e6) / 1e6;
  const breakdown = rows.map((r) => ({ job_type: r.jobType, model: r.model, credits: r.credits, usd: usd(r.usd), units: r.units, count: r.count }));
  return {
    project_id: projectId,
    total_credits: breakdown.reduce((s, r) => s + r.credits, 0),
    total_usd: usd(breakdown.reduce((s, r) => s + r.usd, 0)),
    breakdown,
  };
}
