import { createHmac, timingSafeEqual } from "node:crypto";
import { AppError, type Tier } from "@cutroom/contracts";

/** What a signed URL allows: one operation on one key until `exp` (ms since epoch). */
export interface TokenClaims {
  op: "put" | "get" | "ingest" | "upload" | "output";
  key: string;
  exp: number;
  /** put and ingest: the most bytes the body may have. */
  max?: number;
  /** put: the content type the upload must declare; get: the one the download is served with. */
  ct?: string;
  /** get: the filename offered in content-disposition. */
  fn?: string;
  /** ingest: the owner's tier, whose storage quota the body is checked against once its size is known. */
  tier?: Tier;
  /** output: the job whose outputs the URL takes (`key` is their owner), and its project, which they join (ADR 033). */
  job?: string;
  prj?: string;
}

export interface Signer {
  sign(claims: TokenClaims): string;
  /** The claims of a token signed with our secret, for `op`, not yet expired; FORBIDDEN otherwise. */
  verify(token: string, op: TokenClaims["op"], now?: number): TokenClaims;
}

/**
 * Tokens are `base64url(json claims).base64url(HMAC-SHA256(secret, that first part))`, so
 * every claim (op, key, expiry, max size, content type, filename) is covered by the signature.
 */
export function createSigner(secret: string): Signer {
  const mac = (payload: string) => createHmac("sha256", secret).update(payload).digest("base64url");
  return {
    sign(claims) {
      const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
      return `${payload}.${mac(payload)}`;
    },
    verify(token, op, now = Date.now()) {
      const [payload = "", signature = ""] = token.split(".");
      // Compared as text: decoding first would let a changed padding character pass.
      const expected = Buffer.from(mac(payload));
      const given = Buffer.from(signature);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new AppError("FORBIDDEN", "invalid signature");
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as TokenClaims;
      if (claims.op !== op) throw new AppError("FORBIDDEN", `this link does not allow ${op}`);
      if (claims.exp <= now) throw new AppError("FORBIDDEN", "this link has expired");
      return claims;
    },
  };
}
