import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadToFile, uploadFile } from "./transfer.ts";

const small = randomBytes(700);
const large = randomBytes(600 * 1024);

describe("transfers to and from storage", () => {
  let server: Server;
  let base: string;
  let dir: string;
  const received: Array<{ length: string | undefined; body: Buffer }> = [];
  const body = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "transfer-"));
    server = createServer(async (req, res) => {
      if (req.method === "PUT") {
        received.push({ length: req.headers["content-length"], body: await body(req) });
        return res.end("{}");
      }
      const bytes = req.url === "/large" ? large : small;
      // Chunked, no content-length: the size is known only from what arrives.
      if (req.url === "/chunked") return res.end(bytes);
      res.writeHead(200, { "content-length": bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("downloads small, large and chunked bodies whole, answering their sizes", async () => {
    for (const [path, bytes] of [["/small", small], ["/large", large], ["/chunked", small]] as const) {
      const file = join(dir, `in${path.slice(1)}`);
      expect(await downloadToFile(`${base}${path}`, file, new AbortController().signal)).toBe(bytes.length);
      expect((await readFile(file)).equals(bytes)).toBe(true);
    }
  });

  it("uploads small and large files with their exact length", async () => {
    for (const bytes of [small, large, Buffer.alloc(0)]) {
      const file = join(dir, `out-${bytes.length}`);
      await writeFile(file, bytes);
      received.length = 0;
      expect(await uploadFile({ upload_url: `${base}/put`, method: "PUT", headers: {} }, file, "image/png", new AbortController().signal)).toBe(bytes.length);
      expect(received).toHaveLength(1);
      expect(received[0]!.length).toBe(String(bytes.length));
      expect(received[0]!.body.equals(bytes)).toBe(true);
    }
  });
});
