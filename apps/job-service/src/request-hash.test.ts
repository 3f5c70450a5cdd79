import { describe, expect, it } from "vitest";
import { canonicalJson, requestHash } from "./request-hash.ts";

describe("request hash", () => {
  it("treats the same body with its keys in another order as the same request", () => {
    const a = { type: "image.resize", input: { file_id: "f", width: 10, nested: { x: 1, y: [1, { b: 2, a: 1 }] } } };
    const b = { input: { nested: { y: [1, { a: 1, b: 2 }], x: 1 }, width: 10, file_id: "f" }, type: "image.resize" };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(requestHash(a)).toBe(requestHash(b));
  });

  it("tells bodies apart when a value or the array order differs", () => {
    expect(requestHash({ input: { width: 10 } })).not.toBe(requestHash({ input: { width: 11 } }));
    expect(requestHash({ input: { a: [1, 2] } })).not.toBe(requestHash({ input: { a: [2, 1] } }));
    expect(requestHash({ input: {}, project_id: undefined })).toBe(requestHash({ input: {} }));
  });
});
