import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sniffModelFormat } from "./rig.ts";

let dir: string;
const file = async (name: string, bytes: string | Buffer) => {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-rig-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("sniffModelFormat, from the bytes whatever the name", () => {
  it("knows a binary FBX by its magic", async () => {
    const fbx = Buffer.concat([Buffer.from("Kaydara FBX Binary  \0\x1a\0", "latin1"), Buffer.from([0xe8, 0x1c, 0, 0]), Buffer.alloc(64)]);
    expect(await sniffModelFormat(await file("model.bin", fbx))).toBe("fbx-binary");
  });

  it("knows an ASCII FBX by its header comment", async () => {
    expect(await sniffModelFormat(await file("a.txt", "; FBX 7.4.0 project file\n; ----\nFBXHeaderExtension:  {\n}\n"))).toBe("fbx-ascii");
  });

  it("knows an OBJ by its vertex and face lines, even when the faces come after many vertices", async () => {
    const vertices = Array.from({ length: 20_000 }, (_, i) => `v ${i * 0.001} ${-i * 0.5e-3} 1.5e-2`).join("\n");
    expect(await sniffModelFormat(await file("cube.dat", `# a model\nmtllib x.mtl\no cube\n${vertices}\nvn 0 0 1\nf 1/1/1 2/2/1 3/3/1\n`))).toBe("obj");
  });

  it("refuses text with vertices but no faces, a PNG, and an FBX magic that is cut short", async () => {
    expect(await sniffModelFormat(await file("points.obj", "v 0 0 0\nv 1 1 1\n"))).toBeUndefined();
    expect(await sniffModelFormat(await file("x.obj", Buffer.from("89504e470d0a1a0a0000000d49484452", "hex")))).toBeUndefined();
    expect(await sniffModelFormat(await file("y.fbx", "Kaydara FBX"))).toBeUndefined();
    expect(await sniffModelFormat(await file("z.obj", "f 1 2 3\nv 0 0 0\n"))).toBeUndefined();
  });
});
