import { createInterface } from "node:readline";
import type { Ctx } from "../context.ts";
import { usageError } from "../output.ts";

/** The password: --password, else asked on the terminal without echo, else the first line of stdin (scripts). */
async function readPassword(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  if (process.stdin.isTTY) {
    process.stderr.write("password: ");
    const stdin = process.stdin;
    stdin.setRawMode(true);
    stdin.resume();
    return new Promise((resolve, reject) => {
      let typed = "";
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString("utf8")) {
          if (ch === "\r" || ch === "\n") {
            done();
            return resolve(typed);
          }
          if (ch === "\u0003") {
            done();
            return reject(usageError("login canceled"));
          }
          typed = ch === "\u007f" ? typed.slice(0, -1) : typed + ch;
        }
      };
      const done = () => {
        stdin.off("data", onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write("\n");
      };
      stdin.on("data", onData);
    });
  }
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw usageError("no password: pass --password, or one line on stdin");
}

export async function login(ctx: Ctx, values: { email?: string; password?: string }) {
  if (!values.email) throw usageError("login needs --email");
  const password = await readPassword(values.password);
  const sdk = await ctx.client();
  await sdk.auth.login({ email: values.email, password });
  const me = await sdk.auth.me();
  // onTokens saved the pair already; the email is for whoami's sake when the server is down.
  await Promise.all(ctx.pending);
  const { accessToken, refreshToken } = sdk.tokens;
  await ctx.config.setSession(ctx.api, { email: me.email, access_token: accessToken!, refresh_token: refreshToken! });
  ctx.out.result({ api: ctx.api, user: me, config: ctx.config.path }, (r) => `signed in to ${r.api} as ${r.user.email} (${r.user.role}, ${r.user.tier} tier, ${r.user.credits} credits)`);
}

export async function logout(ctx: Ctx, values: { everywhere?: boolean }) {
  const session = await ctx.config.session(ctx.api);
  if (!session) {
    ctx.out.result({ api: ctx.api, revoked: 0 }, (r) => `not signed in to ${r.api}`);
    return;
  }
  const sdk = await ctx.client();
  let revoked = 0;
  try {
    revoked = (await sdk.auth.logout({ everywhere: values.everywhere })).revoked;
  } finally {
    // The tokens go from this machine even when the server could not be told.
    await Promise.all(ctx.pending);
    await ctx.config.setSession(ctx.api, null);
  }
  ctx.out.result({ api: ctx.api, revoked }, (r) => `signed out of ${r.api}${values.everywhere ? ` (${r.revoked} sessions revoked)` : ""}`);
}

export async function whoami(ctx: Ctx) {
  const me = await (await ctx.signedIn()).auth.me();
  ctx.out.result(me, (u) => `${u.email} (user id ${u.user_id})\nrole ${u.role}, ${u.tier} tier, ${u.credits} credits\napi ${ctx.api}`);
}
