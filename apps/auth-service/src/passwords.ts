import { randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";

// argon2id is the library's default algorithm, and its default cost (19 MiB, 2 passes) is OWASP's baseline.
export const hashPassword = (password: string) => hash(password);

// Verified against when the email is unknown, so that answer takes as long as a wrong password.
const dummyHash = hash(randomBytes(16).toString("hex"));

/** True only when `storedHash` exists and matches; always costs one argon2 verification. */
export async function checkPassword(storedHash: string | null, password: string): Promise<boolean> {
  const matches = await verify(storedHash ?? (await dummyHash), password);
  return storedHash !== null && matches;
}
