import { Cutroom, type WebSocketConstructor } from "@cutroom/sdk";
import WebSocket from "ws";
import type { Config } from "./config.ts";
import { CliError, type Output } from "./output.ts";

/** What every command gets: where to write, which API, and a client carrying the saved session. */
export class Ctx {
  private sdk: Cutroom | undefined;

  constructor(
    readonly out: Output,
    /** The API's origin, e.g. http://127.0.0.1:8000 (no /api/v1). */
    readonly api: string,
    readonly config: Config,
  ) {}

  /** A client with the session saved for this API, if any; new tokens (each refresh) are saved as they come. */
  async client(): Promise<Cutroom> {
    if (this.sdk) return this.sdk;
    const session = await this.config.session(this.api);
    let saving = Promise.resolve();
    const sdk = new Cutroom({
      baseUrl: this.api,
      // Node 20 has no global WebSocket; the SDK follows live events through this one.
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      accessToken: session?.access_token,
      refreshToken: session?.refresh_token,
      onTokens: (tokens) => {
        // In order: a refresh's pair must not be overwritten by an older write finishing late.
        saving = saving.then(() =>
          this.config.setSession(this.api, tokens ? { ...(session?.email ? { email: session.email } : {}), access_token: tokens.accessToken, refresh_token: tokens.refreshToken } : null),
        );
        this.pending.push(saving);
      },
    });
    this.sdk = sdk;
    return sdk;
  }

  /** Writes of the config still under way: main waits for them before it exits. */
  readonly pending: Promise<void>[] = [];

  /** The client, refusing early (with what to do) when nobody signed in to this API. */
  async signedIn(): Promise<Cutroom> {
    if (!(await this.config.session(this.api))) {
      throw new CliError("NOT_SIGNED_IN", `not signed in to ${this.api}: run cutroom login --email <email> (or pass --api for another server)`);
    }
    return this.client();
  }

  /** An admin's client: the token is checked (and refreshed) first, so the refusal says what is wrong. */
  async admin(): Promise<Cutroom> {
    const sdk = await this.signedIn();
    const me = await sdk.auth.me();
    if (me.role !== "admin") {
      throw new CliError("FORBIDDEN", `${me.email} is not an admin: an operator promotes it with cutroom promote --email ${me.email}, then sign in again`);
    }
    return sdk;
  }
}
