import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { notFound } from "../problems.ts";

const TYPES: Record<string, string> = {
  ".png": "image/png",
  ".webp": "image/webp",
  ".jpg": "image/jpeg",
  ".mp4": "video/mp4",
  ".wav": "audio/wav",
  ".json": "application/json",
  ".glb": "model/gltf-binary",
};
// One path segment each, never a dot file (the work directory) nor `..`.
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Outputs, at the URLs predictions hand out; like Replicate's delivery URLs, they need no token. */
export function fileRoutes(app: FastifyInstance, dir: string) {
  app.get<{ Params: { id: string; name: string } }>("/files/:id/:name", async (req, reply) => {
    const { id, name } = req.params;
    if (!SEGMENT.test(id) || !SEGMENT.test(name)) throw notFound();
    const path = join(dir, id, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw notFound(`Output ${name} of prediction ${id} does not exist (or was removed).`);
    return reply
      .type(TYPES[extname(name).toLowerCase()] ?? "application/octet-stream")
      .header("content-length", info.size)
      .header("cache-control", "public, max-age=3600")
      .send(createReadStream(path));
  });
}
