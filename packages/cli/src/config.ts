import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** One signed-in session per API origin: stacks on other ports keep their own tokens. */
export interface Session {
  email?: string;
  access_token: string;
  refresh_token: string;
}

interface ConfigFile {
  sessions?: Record<string, Session>;
  /** Resumable uploads under way, by file (origin, path, size and mtime) → the server's upload id. */
  uploads?: Record<string, string>;
}

/**
 * `<dir>/config.json`, mode 0600 in a 0700 folder: it holds refresh tokens. Written whole to a
 * temporary file and renamed, so a CLI killed mid-write (or two at once) never leaves half a file.
 */
export class Config {
  readonly path: string;
  private data: ConfigFile | undefined;

  constructor(readonly dir: string) {
    this.path = join(dir, "config.json");
  }

  private async load(): Promise<ConfigFile> {
    if (this.data) return this.data;
    try {
      this.data = JSON.parse(await readFile(this.path, "utf8")) as ConfigFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot read ${this.path}: ${(err as Error).message}`);
      this.data = {};
    }
    return this.data;
  }

  private async save(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.data ?? {}, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }

  async session(origin: string): Promise<Session | undefined> {
    return (await this.load()).sessions?.[origin];
  }

  /** null forgets the session (logout, or a refresh the server refused). */
  async setSession(origin: string, session: Session | null): Promise<void> {
    const data = await this.load();
    const sessions = { ...data.sessions };
    if (session) sessions[origin] = session;
    else delete sessions[origin];
    data.sessions = sessions;
    await this.save();
  }

  async upload(key: string): Promise<string | undefined> {
    return (await this.load()).uploads?.[key];
  }

  async setUpload(key: string, uploadId: string | null): Promise<void> {
    const data = await this.load();
    const uploads = { ...data.uploads };
    if (uploadId) uploads[key] = uploadId;
    else delete uploads[key];
    data.uploads = uploads;
    await this.save();
  }
}
