import { kindOf, type FileKind, type MediaFacts } from "@cutroom/contracts";
import { executePrepared, sqlTag as sql, type Db } from "@cutroom/db";
import type { FileMediaColumns, FileSqlRow } from "@cutroom/db/storage";
import { coalesce } from "./coalesce.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a job's check needs of one input file: its state as a client sees it, its kind, its media facts. */
export interface InputFile {
  status: "pending" | "ready" | "rejected";
  kind: FileKind;
  media: MediaFacts | undefined;
}

/**
 * Reads input files from storage's table in the shared database (ADR 027), as storage's getFile
 * answers them to their owner: another user's file is not there, as a missing one. Concurrent
 * requests' reads are answered by one query.
 */
export function createInputFileReader(db: Db) {
  const read = coalesce(async (asks: { ownerId: string; ids: string[] }[]) => {
    const rows = await readFiles(db, [...new Set(asks.flatMap((a) => a.ids))]);
    return asks.map((a) => new Map(a.ids.flatMap((id) => (rows.get(id)?.ownerId === a.ownerId ? [[id, rows.get(id)!.file] as const] : []))));
  });
  return {
    /** The owner's files among `ids`, by id. */
    get: async (ownerId: string, ids: readonly string[]): Promise<Map<string, InputFile>> => {
      // Not a uuid: no file of anyone's (and no cast error from Postgres).
      const wanted = ids.filter((id) => UUID.test(id));
      return wanted.length === 0 ? new Map() : read({ ownerId, ids: wanted });
    },
  };
}

export type InputFileReader = ReturnType<typeof createInputFileReader>;

async function readFiles(db: Db, ids: string[]): Promise<Map<string, { ownerId: string; file: InputFile }>> {
  // Prepared: one round trip (an unprepared statement with parameters costs two, ADR 044).
  const rows = await executePrepared<Pick<FileSqlRow, "id" | "owner_id" | "status" | "content_type"> & FileMediaColumns>(db, sql`
    select id, owner_id, status, content_type, width, height, duration_seconds, frame_rate, video_codec, audio_codec, has_audio, has_alpha
    from storage.files where id = any(${sql.param(ids)}::uuid[])`);
  return new Map(
    [...rows].map((row) => [
      row.id,
      {
        ownerId: row.owner_id,
        file: {
          // As toFileObject in storage-service: the upload's inner states are "pending" to a client.
          status: row.status === "receiving" || row.status === "uploaded" ? "pending" : row.status,
          kind: kindOf(row.content_type),
          media:
            row.width !== null || row.duration_seconds !== null
              ? {
                  width: row.width,
                  height: row.height,
                  duration_seconds: row.duration_seconds,
                  frame_rate: row.frame_rate,
                  video_codec: row.video_codec,
                  audio_codec: row.audio_codec,
                  has_audio: row.has_audio,
                  has_alpha: row.has_alpha,
                }
              : undefined,
        },
      },
    ]),
  );
}
