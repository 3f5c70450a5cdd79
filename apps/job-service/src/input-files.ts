import { kindOf, type FileKind, type MediaFacts } from "@cutroom/contracts";
import { and, eq, inArray, type Db } from "@cutroom/db";
import { files } from "@cutroom/db/storage";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a job's check needs of one input file: its state as a client sees it, its kind, its media facts. */
export interface InputFile {
  status: "pending" | "ready" | "rejected";
  kind: FileKind;
  media: MediaFacts | undefined;
}

/**
 * The owner's files among `ids`, read from storage's table in the shared database (ADR 027), as
 * storage's getFile answers them to their owner: another user's file is not there, as a missing one.
 */
export async function getInputFiles(db: Db, ownerId: string, ids: readonly string[]): Promise<Map<string, InputFile>> {
  // Not a uuid: no file of anyone's (and no cast error from Postgres).
  const wanted = [...new Set(ids)].filter((id) => UUID.test(id));
  if (wanted.length === 0) return new Map();
  const rows = await db
    .select({
      id: files.id,
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
    .where(and(inArray(files.id, wanted), eq(files.ownerId, ownerId)));
  return new Map(
    rows.map((row) => [
      row.id,
      {
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
    ]),
  );
}
