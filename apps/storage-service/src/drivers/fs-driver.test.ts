import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@cutroom/devstack";
import { silentLogger } from "@cutroom/testing";
import { blobRoutes, buildHttp } from "../http.ts";
import { createSigner } from "../signed-token.ts";
import { describeDriverContract } from "./driver-contract.ts";
import { FsDriver } from "./fs-driver.ts";

// The fs driver's signed URLs are served by this service's own data plane, so it runs here too.
describeDriverContract("fs", async () => {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "storage-"));
  const port = await freePort();
  const driver = new FsDriver({ dir, publicUrl: `http://127.0.0.1:${port}/storage`, signer: createSigner(randomBytes(32).toString("hex")) });
  // No database here: the PUT goes straight to the driver (the one-PUT-per-ticket gate is tested in storage.test.ts).
  const http = buildHttp(silentLogger(), [blobRoutes(driver, (key, body, maxBytes) => driver.putStream(key, body, { maxBytes }))]);
  await http.listen({ port, host: "127.0.0.1" });
  return {
    driver,
    close: async () => {
      await http.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
