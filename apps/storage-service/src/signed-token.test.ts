import { describe, expect, it } from "vitest";
import { createSigner } from "./signed-token.ts";

describe("signed tokens", () => {
  const signer = createSigner("a-secret-of-enough-length");
  const claims = { op: "get" as const, key: "u/f", exp: Date.now() + 60_000, ct: "image/png", fn: "a.png" };

  it("gives back the claims of a token it signed", () => {
    expect(signer.verify(signer.sign(claims), "get")).toEqual(claims);
  });

  it("refuses a download token used to upload, and an expired one", () => {
    expect(() => signer.verify(signer.sign(claims), "put")).toThrow(expect.objectContaining({ code: "FORBIDDEN" }));
    expect(() => signer.verify(signer.sign({ ...claims, exp: Date.now() - 1 }), "get")).toThrow(/expired/);
  });

  it("refuses claims rewritten under the old signature, and another secret's tokens", () => {
    const [, signature] = signer.sign(claims).split(".");
    const otherKey = Buffer.from(JSON.stringify({ ...claims, key: "someone-else/f" })).toString("base64url");
    expect(() => signer.verify(`${otherKey}.${signature}`, "get")).toThrow(/invalid signature/);
    expect(() => createSigner("another-secret-entirely").verify(signer.sign(claims), "get")).toThrow(/invalid signature/);
    expect(() => signer.verify("garbage", "get")).toThrow(/invalid signature/);
  });
});
