import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { natsUserNames } from "@cutroom/contracts";
import { expect, it } from "vitest";
import { createNatsLogins } from "./nats-auth.ts";

it("keeps npm start's NATS logins across restarts in a file only its owner reads, and makes new ones for each test stack", () => {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-logins-"));
  try {
    const file = join(dir, "data", "nats-logins.json");
    const first = createNatsLogins(file);
    expect(Object.keys(first).sort()).toEqual([...natsUserNames, "admin"].sort());
    expect(new Set(Object.values(first).map((l) => l.password)).size).toBe(natsUserNames.length + 1);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(createNatsLogins(file)).toEqual(first);
    expect(createNatsLogins().gateway.password).not.toBe(first.gateway.password);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
