import { AppError } from "@cutroom/contracts";
import { dictionary } from "@zxcvbn-ts/language-common";

// NIST SP 800-63B (5.1.1.2) asks to refuse passwords known from breaches: zxcvbn-ts's list of the
// most common leaked passwords (about 49,000), loaded once and compared case-insensitively.
const commonPasswords = new Set(dictionary["passwords-common"].map((p) => p.toLowerCase()));

/** Why `password` may not be the password of `email`, or null when it may. */
export function passwordProblem(password: string, email: string): string | null {
  const candidate = password.toLowerCase();
  const address = email.toLowerCase();
  const localPart = address.slice(0, address.lastIndexOf("@"));
  if (candidate === address || candidate === localPart) return "is too common: it is your email address";
  if (commonPasswords.has(candidate)) return "is too common: it is on a list of passwords leaked in breaches";
  return null;
}

/** Refuses a common password with 422, in the shape of the gateway's own validation errors. */
export function assertPasswordAllowed(password: string, email: string): void {
  const problem = passwordProblem(password, email);
  if (problem) throw new AppError("INVALID_INPUT", `password ${problem}`, { fields: [{ path: "password", message: problem, code: "too_common" }] });
}
