import type { SQL } from "drizzle-orm";
import { drizzle, PostgresJsSession, PostgresJsTransaction, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { fileURLToPath } from "node:url";

export type Db = PostgresJsDatabase<Record<string, never>>;

export interface DbHandle {
  db: Db;
  sql: postgres.Sql;
  close: () => Promise<void>;
}

/**
 * Waits between attempts to connect, in seconds, shared by the pool: doubling from 50 ms to 1 s. The
 * driver's own grows to 20 s after a few refused connects, so a Postgres back after a 5 s restart went
 * unused for 15 s more while every query waited (measured by the chaos suite).
 */
export const reconnectBackoff = (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1);

export interface DbOptions {
  /** Connections in the pool (10). */
  max?: number;
  /**
   * How Postgres plans the pool's prepared statements (`plan_cache_mode`); its default when unset
   * (after five runs, a generic plan when its estimated cost is no higher than the custom plans').
   * - `custom`: every execution planned with the table as it is now, for a service whose statements
   *   are simple lookups (planning them costs nothing measurable) on a table that grows quickly from
   *   empty (ADR 055).
   * - `generic`: planned once per connection and kept until the table's statistics change, for a
   *   service whose statements are written and tested for the generic plan (ADR 060): the default kept
   *   planning each run of a statement whose array parameters make its generic estimate look dearer.
   */
  plans?: "custom" | "generic";
}

/** Postgres's `plan_cache_mode` for a pool's `plans` option: its default, `auto`, when none is given. */
export const planCacheMode = (plans: DbOptions["plans"]) => (plans ? `force_${plans}_plan` : "auto");

/** One pool per process; `max` stays small because every service holds its own. */
export function createDb(url: string, opts: DbOptions = {}): DbHandle {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    backoff: reconnectBackoff,
    connect_timeout: 10,
    ...(opts.plans ? { connection: { plan_cache_mode: planCacheMode(opts.plans) } } : {}),
  });
  const db = drizzle(sql);
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}

/** The postgres.js client under a Drizzle `db`: hot paths send it plain SQL, prepared once per connection, without Drizzle's query building. */
export const clientOf = (db: Db): postgres.Sql => (db as Db & { $client: postgres.Sql }).$client;

/** A Drizzle transaction, as `db.transaction` hands its callback one. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** A Drizzle `db` or one of its transactions. */
export type DbOrTx = Db | Tx;

/**
 * Runs a Drizzle `sql` query as a named prepared statement of the connection under `conn` (the pool's,
 * or the transaction's own): Postgres parses it once per connection, and each call is one round trip.
 * Drizzle's `execute` sends an unnamed statement, which Postgres parses, analyses and plans on every
 * call, and postgres.js first waits for its parameters' description: two round trips (ADR 043).
 * Answers the rows as `execute` does. Only for a text that does not change with the values (array
 * parameters, no `sql.raw` of values): postgres.js keeps every statement it prepared while the
 * connection lives.
 */
export function executePrepared<T extends Record<string, unknown>>(conn: DbOrTx, query: SQL): Promise<postgres.RowList<T[]>> {
  const client = (conn as unknown as { session: { client: postgres.Sql } }).session.client;
  return runPrepared<T>(client, queryOf(conn, query));
}

type Query = { sql: string; params: unknown[] };

/** The text and parameters Drizzle's Postgres dialect makes of a `sql` query. */
const queryOf = (conn: DbOrTx, query: SQL): Query =>
  (conn as unknown as { dialect: { sqlToQuery: (q: SQL) => Query } }).dialect.sqlToQuery(query);

/**
 * Sent at once (`execute`): postgres.js sends a query only when it is first awaited, so a statement
 * asked for first but awaited after others (a Promise.all whose other members awaited their own at
 * once) went after them, and a setting meant for them (a transaction's lock_timeout) did not apply.
 */
const runPrepared = <T extends Record<string, unknown>>(client: postgres.Sql | postgres.ReservedSql, { sql: text, params }: Query) =>
  client.unsafe<T[]>(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }).execute();

/**
 * Statements run as one transaction in one round trip (ADR 050): `begin`, each statement (a named
 * prepared one, as executePrepared), and `commit` are written together on one connection of the pool,
 * where `db.transaction` waits for the `begin`, then each statement, then the `commit`. Only for
 * statements that need nothing from the ones before them but what Postgres itself carries between
 * them (rows and locks they wrote). Answers each statement's rows, in order. A statement that fails
 * aborts the transaction (the ones after it fail, the `commit` rolls back) and its error is thrown.
 */
export async function transactionInOneTrip(db: Db, statements: readonly SQL[]): Promise<postgres.RowList<Record<string, unknown>[]>[]> {
  const queries = statements.map((s) => queryOf(db, s));
  const conn = await clientOf(db).reserve();
  try {
    // Each sent as it is made (execute), so in this order.
    const sent = [
      conn.unsafe("begin").execute(),
      ...queries.map((q) => runPrepared<Record<string, unknown>>(conn, q)),
      conn.unsafe("commit").execute(),
    ];
    const settled = await Promise.allSettled(sent);
    // The first failure is the cause; those after it say only that the transaction was aborted.
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) {
      // A commit after a failure has rolled back already; one that failed itself may not have.
      await conn.unsafe("rollback").catch(() => {});
      throw failed.reason;
    }
    return settled.slice(1, -1).map((s) => (s as PromiseFulfilledResult<postgres.RowList<Record<string, unknown>[]>>).value);
  } finally {
    conn.release();
  }
}

/**
 * `db.transaction`, with its `begin` written together with the callback's first statements (ADR 052):
 * postgres.js waits for the `begin` to be answered before it runs the callback, one round trip of
 * nothing. The callback's statements follow the `begin` on one connection of the pool, in order; a
 * failure of any (the `begin`'s too) rolls back and is thrown, also one the callback caught; else the
 * transaction commits. No savepoints: `tx.transaction` inside it is not supported.
 */
export async function transactionPipelined<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const inner = db as unknown as { dialect: ConstructorParameters<typeof PostgresJsSession>[1]; session: { schema: ConstructorParameters<typeof PostgresJsSession>[2]; options: ConstructorParameters<typeof PostgresJsSession>[3] } };
  const conn = await clientOf(db).reserve();
  try {
    // postgres.js sends a query when it is awaited: execute() sends the begin now, ahead of what fn sends.
    const begun = conn.unsafe("begin").execute();
    const session = new PostgresJsSession(conn, inner.dialect, inner.session.schema, inner.session.options);
    const tx = new PostgresJsTransaction(inner.dialect, session as never, inner.session.schema) as unknown as Tx;
    // Both settled before anything else goes out: a failed begin must not release the connection while
    // fn still sends statements on it. The begin's failure first: fn's then follow from it.
    const [begin, done] = await Promise.allSettled([begun, fn(tx)]);
    const failed = begin.status === "rejected" ? begin : done.status === "rejected" ? done : undefined;
    if (failed) {
      await conn.unsafe("rollback").catch(() => {});
      throw failed.reason;
    }
    // Postgres answers the commit of a transaction a failed statement aborted with ROLLBACK, not an
    // error: a failure fn caught must not pass for a commit.
    const ended = await conn.unsafe("commit");
    if (ended.command !== "COMMIT") throw new Error(`the transaction was rolled back (${ended.command}): one of its statements failed`);
    return (done as PromiseFulfilledResult<T>).value;
  } finally {
    conn.release();
  }
}

export const migrationsFolder = fileURLToPath(new URL("../drizzle", import.meta.url));

/**
 * Applies the committed SQL migrations; a no-op when they are applied already.
 * An advisory lock lets every service call it at start without racing the others.
 */
export async function runMigrations(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`select pg_advisory_lock(727274)`;
    await migrate(drizzle(sql), { migrationsFolder, migrationsSchema: "public" });
    await sql`select pg_advisory_unlock(727274)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export type { SQL } from "drizzle-orm";
export { sql as sqlTag, eq, and, or, desc, asc, inArray, count, isNull, gt, lt, getTableColumns } from "drizzle-orm";
