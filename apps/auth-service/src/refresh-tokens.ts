import { createHash, randomBytes, randomUUID } from "node:crypto";
import { and, eq, gt, isNull, type Db } from "@cutroom/db";
import { refreshTokens } from "@cutroom/db/auth";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** Only this hash is stored: a leaked table does not hand out sessions. */
export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Issues a new opaque token in `familyId` (one family per login) and returns it. */
export async function issueRefreshToken(db: Db | Tx, userId: string, familyId: string, ttlSeconds: number): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  await db.insert(refreshTokens).values({
    id: randomUUID(),
    userId,
    familyId,
    tokenHash: hashToken(token),
    expiresAt: new Date(Date.now() + ttlSeconds * 1000),
  });
  return token;
}

export type Rotation =
  | { status: "rotated"; userId: string; refreshToken: string }
  | { status: "reused"; userId: string; familyId: string; revoked: number }
  | { status: "invalid" };

/**
 * Spends `token` and issues its successor in the same family. The conditional update lets
 * exactly one of several concurrent presentations win. A token that was spent already is a
 * replay (stolen, or a client bug): its whole family is revoked.
 */
export async function rotateRefreshToken(db: Db, token: string, ttlSeconds: number): Promise<Rotation> {
  const tokenHash = hashToken(token);
  const now = new Date();
  const rotated = await db.transaction(async (tx) => {
    const [spent] = await tx
      .update(refreshTokens)
      .set({ usedAt: now })
      .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.usedAt), isNull(refreshTokens.revokedAt), gt(refreshTokens.expiresAt, now)))
      .returning({ userId: refreshTokens.userId, familyId: refreshTokens.familyId });
    if (!spent) return null;
    return { userId: spent.userId, refreshToken: await issueRefreshToken(tx, spent.userId, spent.familyId, ttlSeconds) };
  });
  if (rotated) return { status: "rotated", ...rotated };

  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash));
  if (!row?.usedAt) return { status: "invalid" };
  return { status: "reused", userId: row.userId, familyId: row.familyId, revoked: await revokeFamily(db, row.familyId) };
}

export async function findRefreshToken(db: Db, token: string) {
  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(token)));
  return row ?? null;
}

// Spent and expired tokens are dead already, so "revoked" counts the live ones: one per session.
const live = () => and(isNull(refreshTokens.usedAt), isNull(refreshTokens.revokedAt), gt(refreshTokens.expiresAt, new Date()));

/** Revokes every live token of a family; returns how many. */
export async function revokeFamily(db: Db, familyId: string): Promise<number> {
  const rows = await db
    .update(refreshTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(refreshTokens.familyId, familyId), live()))
    .returning({ id: refreshTokens.id });
  return rows.length;
}

export async function revokeAllForUser(db: Db | Tx, userId: string): Promise<number> {
  const rows = await db
    .update(refreshTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(refreshTokens.userId, userId), live()))
    .returning({ id: refreshTokens.id });
  return rows.length;
}
