import { kindOf, type FileKind, type MediaFacts } from "@cutroom/contracts";
import { inArray, type Db } from "@cutroom/db";
import { files } from "@cutroom/db/storage";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a job's check needs of one input file: its state as a client sees it, its kind, its media facts. */
export interface InputFile {
  status: "pending" | "ready" | "rejected";
  kind: FileKind;
  media: MediaFacts | undefined;
}

interface Asked {
  ownerId: string;
  ids: string[];
  resolve: (found: Map<string, InputFile>) => void;
  reject: (err: unknown) => void;
}

/**
 * Reads input files from storage's table in the shared database (ADR 027), as storage's getFile
 * answers them to their owner: another user's file is not there, as a missing one. While one read is
 * in flight, the requests arriving queue and the next read answers them all (one query, not one each).
 */
export function createInputFileReader(db: Db) {
  let queue: Asked[] = [];
  let busy = false;
  const drain = async () => {
    busy = true;
    while (queue.length > 0) {
      const asked = queue;
      queue = [];
      try {
        const rows = await readFiles(db, [...new Set(asked.flatMap((a) => a.ids))]);
        for (const a of asked) a.resolve(new Map(a.ids.flatMap((id) => (rows.get(id)?.ownerId === a.ownerId ? [[id, rows.get(id)!.file] as const] : []))));
      } catch (err) {
        for (const a of asked) a.reject(err);
      }
    }
    busy = false;
  };
  return {
    /** The owner's files among `ids`, by id. */
    get: (ownerId: string, ids: readonly string[]): Promise<Map<string, InputFile>> => {
      // Not a uuid: no file of anyone's (and no cast error from Postgres).
      const wanted = ids.filter((id) => UUID.test(id));
      if (wanted.length === 0) return Promise.resolve(new Map());
      return new Promise((resolve, reject) => {
        queue.push({ ownerId, ids: wanted, resolve, reject });
        if (!busy) void drain();
      });
    },
  };
}

export type InputFileReader = ReturnType<typeof createInputFileReader>;

async function readFiles(db: Db, ids: string[]): Promise<Map<string, { ownerId: string; file: InputFile }>> {
  const rows = await db
    .select({
      id: files.id,
      ownerId: files.ownerId,
      status: files.status,
      contentType: files.contentType,
      width: files.width,
      height: files.height,
      durationSeconds: files.durationSeconds,
      frameRate: files.frameRate,
      videoCodec: files.videoCodec,
      audioCodec: files.audioCodec,
      hasAudio: files.hasAudio,
      hasAlpha: files.hasAlpha,
    })
    .from(files)
    .where(inArray(files.id, ids));
  return new Map(
    rows.map((row) => [
      row.id,
      {
        ownerId: row.ownerId,
        file: {
        // As toFileObject in storage-service: the upload's inner states are "pending" to a client.
        status: row.status === "receiving" || row.status === "uploaded" ? "pending" : row.status,
        kind: kindOf(row.contentType),
        media:
          row.width !== null || row.durationSeconds !== null
            ? {
                width: row.width,
                height: row.height,
                duration_seconds: row.durationSeconds,
                frame_rate: row.frameRate,
                video_codec: row.videoCodec,
                audio_codec: row.audioCodec,
                has_audio: row.hasAudio,
                has_alpha: row.hasAlpha,
              }
            : undefined,
        },
      },
    ]),
  );
}
