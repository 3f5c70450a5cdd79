import { AppError } from "@cutroom/contracts";
import type { StorageReplicas } from "@cutroom/runtime";
import { Agent, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";

/** Connections to storage's data plane, kept alive between requests. */
const agent = new Agent({ keepAlive: true });

/** The body stream given to `requestStorage` failed: the client's upload broke, storage is not to blame. */
export class BodyError extends Error {}

export interface StorageReply {
  res: IncomingMessage;
  /** Whether all of the body went out before storage answered (it refuses a bad token or size at once). */
  sentAll: boolean;
  /** Stops sending the rest of the body and drops the connection to storage (after its answer is read). */
  abandon: () => void;
}

/**
 * A request to storage's data plane with the body streamed from `body`, through node:http rather
 * than fetch: storage may answer before the body is through (a refused token or size), and a failed
 * body (the client's) must be told apart from storage being unreachable (SERVICE_UNAVAILABLE, whose
 * cause is logged, never answered). The body flows only once a replica took the connection, so a
 * dead replica is passed over (see StorageReplicas) without losing a byte of it.
 */
export function requestStorage(
  storage: StorageReplicas,
  url: string,
  opts: { method: string; headers: OutgoingHttpHeaders; body?: Readable; log: { warn: (obj: object, msg: string) => void } },
): Promise<StorageReply> {
  return new Promise((resolve, reject) => {
    let sentAll = !opts.body;
    let settled = false;
    let out: ClientRequest | undefined;
    const unavailable = (err: Error) => {
      // After an answer or a failed body, the connection's end is expected.
      if (settled) return;
      settled = true;
      opts.log.warn({ err: err.message, storage: new URL(url).origin }, "storage request failed");
      reject(new AppError("SERVICE_UNAVAILABLE", "storage service is unavailable"));
    };
    const body = opts.body;
    const fail = (message: string) => {
      if (!settled) reject(new BodyError(message));
      settled = true;
      out?.destroy();
    };
    if (body) {
      // It may have failed already (busboy fails a part whose body ends early while the gateway awaits another call).
      if (body.destroyed) return fail(body.errored?.message ?? "the body ended early");
      body.once("error", (err) => fail(err.message));
      // A client gone mid-body may close its request without an error: storage must not wait for the rest.
      body.once("close", () => body.readableEnded || fail("the body ended early"));
    }
    storage.connect(url, { method: opts.method, headers: opts.headers, agent }).then((req) => {
      out = req;
      req.on("error", unavailable);
      if (settled) return void req.destroy();
      req.once("response", (res) => {
        settled = true;
        resolve({
          res,
          sentAll,
          abandon: () => {
            body?.unpipe(req);
            if (!sentAll) req.destroy();
          },
        });
      });
      if (!body) return void req.end();
      req.on("finish", () => (sentAll = true));
      body.pipe(req);
    }, unavailable);
  });
}

/** A reply body read whole, up to `limit` bytes (storage's answers to PUTs are small JSON). */
export async function readAll(res: IncomingMessage, limit = 64 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AppError("INTERNAL", "storage answered with an oversized body");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
