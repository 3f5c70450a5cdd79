import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { natsInboxPrefix, natsPermissions, natsUserNames, type NatsUserName } from "@cutroom/contracts";

/** A user with every permission, for tests and operators' tools (the `nats` CLI); no app uses it. */
export const NATS_ADMIN = "admin";
export type NatsLoginName = NatsUserName | typeof NATS_ADMIN;

export interface NatsLogin {
  user: string;
  password: string;
}
export type NatsLogins = Record<NatsLoginName, NatsLogin>;

/**
 * A login per app, and the admin's. With `file`, they are made once and kept there (mode 600),
 * so a restart of `npm start` keeps them; without, they are new each time (tests).
 */
export function createNatsLogins(file?: string): NatsLogins {
  const saved = (file && existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {}) as Partial<Record<string, Partial<NatsLogin>>>;
  const names: NatsLoginName[] = [...natsUserNames, NATS_ADMIN];
  const logins = Object.fromEntries(
    names.map((name) => {
      const password = saved[name]?.password;
      return [name, { user: name, password: typeof password === "string" && password.length >= 32 ? password : randomBytes(24).toString("hex") }];
    }),
  ) as NatsLogins;
  if (file && JSON.stringify(saved) !== JSON.stringify(logins)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(logins, null, 2) + "\n", { mode: 0o600 });
  }
  return logins;
}

/**
 * nats-server's `authorization` block: each app's user with the allow lists of
 * packages/contracts/src/nats-permissions.ts, the admin with no limits, no anonymous access.
 */
export function natsAuthConfig(logins: NatsLogins): string {
  const users = natsUserNames.map((name) => {
    const p = natsPermissions[name];
    const permissions = { publish: { allow: p.publish }, subscribe: { allow: p.subscribe }, ...(p.allowResponses ? { allow_responses: true } : {}) };
    return { user: logins[name].user, password: logins[name].password, permissions };
  });
  users.push({ user: logins[NATS_ADMIN].user, password: logins[NATS_ADMIN].password } as (typeof users)[number]);
  // JSON is valid nats-server config, and its quoted strings keep `$JS...` from reading as variables.
  return `authorization {\n  users = [\n${users.map((u) => `    ${JSON.stringify(u)}`).join(",\n")}\n  ]\n}\n`;
}

/**
 * Options for nats.js `connect()` as one of the stack's users (the admin by default), or without
 * auth when the server has none. An app's user gets the inbox prefix its permissions allow.
 */
export function natsConnectOptions(url: string, logins: NatsLogins | undefined, as: NatsLoginName = NATS_ADMIN) {
  if (!logins) return { servers: url };
  return { servers: url, user: logins[as].user, pass: logins[as].password, ...(as === NATS_ADMIN ? {} : { inboxPrefix: natsInboxPrefix(as) }) };
}
