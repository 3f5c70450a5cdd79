import type { Transport } from "./transport.ts";
import type { LoginParams, RegisterParams, RegisterReply, TokenPair, User } from "./types.ts";

export class AuthApi {
  constructor(private readonly t: Transport) {}

  /** Creates an account (201); sign in with login() afterwards. */
  register(params: RegisterParams): Promise<RegisterReply> {
    return this.t.json("POST", "/auth/register", { json: params, auth: false });
  }

  /** Signs in: the client keeps the tokens (and tells onTokens). */
  async login(params: LoginParams): Promise<TokenPair> {
    const pair = await this.t.json<TokenPair>("POST", "/auth/login", { json: params, auth: false });
    this.t.setTokens(pair);
    return pair;
  }

  /** Trades the refresh token for a new pair now (calls do it by themselves on a 401). */
  async refresh(): Promise<void> {
    await this.t.refreshAfter(this.t.accessToken);
  }

  /** Revokes this session's refresh token (`everywhere`: all of the user's) and forgets the tokens. */
  async logout(opts: { everywhere?: boolean } = {}): Promise<{ revoked: number }> {
    const body = opts.everywhere || !this.t.refreshToken ? {} : { refresh_token: this.t.refreshToken };
    const reply = await this.t.json<{ revoked: number }>("POST", "/auth/logout", { json: body });
    this.t.setTokens(null);
    return reply;
  }

  me(): Promise<User> {
    return this.t.json("GET", "/auth/me");
  }
}
