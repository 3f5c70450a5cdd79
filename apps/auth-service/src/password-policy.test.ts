import { describe, expect, it } from "vitest";
import { assertPasswordAllowed, passwordProblem } from "./password-policy.ts";

describe("password policy", () => {
  it("refuses passwords from the list of common leaked passwords, in any case", () => {
    for (const password of ["12345678", "password", "PassWord", "qwerty123", "iloveyou", "sunshine"]) {
      expect(passwordProblem(password, "ada@example.com"), password).toMatch(/^is too common: .*leaked/);
    }
  });

  it("refuses the user's own email address or its local part", () => {
    expect(passwordProblem("ada.lovelace@example.com", "ada.lovelace@example.com")).toBe("is too common: it is your email address");
    expect(passwordProblem("Ada.Lovelace", "ada.lovelace@example.com")).toBe("is too common: it is your email address");
  });

  it("accepts a long passphrase that is on no list", () => {
    expect(passwordProblem("correct horse battery staple", "ada@example.com")).toBeNull();
  });

  it("answers INVALID_INPUT naming the password field", () => {
    let thrown: unknown;
    try {
      assertPasswordAllowed("12345678", "ada@example.com");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: "INVALID_INPUT", status: 422, details: { fields: [{ path: "password", message: expect.stringMatching(/^is too common: /) }] } });
  });
});
