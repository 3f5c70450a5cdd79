import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

// An empty variable counts as unset, as the XDG spec says of XDG_CONFIG_HOME.
const unsetIfEmpty = (v: unknown) => (v === "" ? undefined : v);

/** The CLI's own settings. The database commands (migrate, create-admin, promote) read auth-service's: DATABASE_URL, SIGNUP_CREDITS. */
export const Env = z.object({
  /** The API the commands call unless --api is given; a stack started with PORT=9000 answers on http://127.0.0.1:9000. */
  CUTROOM_API: z.preprocess(unsetIfEmpty, z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:8000")),
  /** Where login keeps its tokens: cutroom/config.json under it (mode 0600); unset, ~/.config. */
  XDG_CONFIG_HOME: z.preprocess(unsetIfEmpty, z.string().default(join(homedir(), ".config"))),
  /** Set by npm to where `npm run cutroom` was typed: file paths resolve against it, not the repository root npm runs in; unset, the current folder. */
  INIT_CWD: z.preprocess(unsetIfEmpty, z.string().default(process.cwd())),
});
export type Env = z.output<typeof Env>;
