import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fetchInput } from "../inputs.ts";
import { PredictionError, type RunContext } from "../run-context.ts";

export type RigType = "Biped" | "Quadruped" | "Humanoid" | "Custom";

export interface RigRequest {
  model_file: string;
  rig_type: RigType;
  /** 0–100: the drawn size of joints, as a share of the model's height. */
  joint_size: number;
  /** 0–100: 0 is pure FK, 100 pure IK on the limbs. */
  ik_fk: number;
}

type Vec3 = [number, number, number];
interface Joint {
  name: string;
  parent: number | null;
  /** In a unit box: x and z in −0.5..0.5 around the centre, y 0 (feet) .. 1 (top). */
  at: Vec3;
}

/** Skeleton templates in the unit box; `mirror` adds the right side of each `l_` chain. */
function template(type: RigType): { joints: Joint[]; chains: Array<{ name: string; joints: string[] }> } {
  const joints: Joint[] = [];
  const add = (name: string, parent: string | null, at: Vec3) => joints.push({ name, parent: parent === null ? null : joints.findIndex((j) => j.name === parent), at });
  const sided = (name: string, parent: string, at: Vec3) => {
    add(`l_${name}`, parent.startsWith("*") ? `l_${parent.slice(1)}` : parent, at);
    add(`r_${name}`, parent.startsWith("*") ? `r_${parent.slice(1)}` : parent, [-at[0], at[1], at[2]]);
  };
  if (type === "Quadruped") {
    add("pelvis", null, [0, 0.6, -0.3]);
    add("spine", "pelvis", [0, 0.62, 0]);
    add("chest", "spine", [0, 0.64, 0.25]);
    add("neck", "chest", [0, 0.78, 0.38]);
    add("head", "neck", [0, 0.9, 0.48]);
    add("tail", "pelvis", [0, 0.62, -0.48]);
    for (const [end, root, z] of [["hind", "pelvis", -0.3], ["front", "chest", 0.25]] as const) {
      sided(`${end}_upper_leg`, root, [0.12, 0.5, z]);
      sided(`${end}_lower_leg`, `*${end}_upper_leg`, [0.12, 0.25, z]);
      sided(`${end}_foot`, `*${end}_lower_leg`, [0.12, 0.02, z]);
    }
    const legs = ["hind", "front"].flatMap((e) => ["l", "r"].map((s) => ({ name: `${s}_${e}_leg`, joints: [`${s}_${e}_upper_leg`, `${s}_${e}_lower_leg`, `${s}_${e}_foot`] })));
    return { joints, chains: legs };
  }
  if (type === "Custom") {
    add("root", null, [0, 0, 0]);
    for (let i = 1; i <= 5; i++) add(`segment_${i}`, i === 1 ? "root" : `segment_${i - 1}`, [0, i / 5, 0]);
    return { joints, chains: [{ name: "chain", joints: ["segment_3", "segment_4", "segment_5"] }] };
  }
  add("hips", null, [0, 0.53, 0]);
  add("spine", "hips", [0, 0.62, 0]);
  add("chest", "spine", [0, 0.73, 0]);
  add("neck", "chest", [0, 0.85, 0]);
  add("head", "neck", [0, 0.93, 0]);
  sided("shoulder", "chest", [0.06, 0.82, 0]);
  sided("upper_arm", "*shoulder", [0.17, 0.81, 0]);
  sided("forearm", "*upper_arm", [0.31, 0.81, 0]);
  sided("hand", "*forearm", [0.44, 0.81, 0]);
  sided("thigh", "hips", [0.09, 0.5, 0]);
  sided("shin", "*thigh", [0.09, 0.27, 0]);
  sided("foot", "*shin", [0.09, 0.04, 0]);
  sided("toe", "*foot", [0.09, 0, 0.08]);
  if (type === "Humanoid") {
    for (const finger of ["thumb", "index", "middle"]) sided(`${finger}_finger`, "*hand", [0.49, 0.8, finger === "thumb" ? 0.03 : 0]);
    add("jaw", "head", [0, 0.91, 0.04]);
  }
  const chains = ["l", "r"].flatMap((s) => [
    { name: `${s}_arm`, joints: [`${s}_upper_arm`, `${s}_forearm`, `${s}_hand`] },
    { name: `${s}_leg`, joints: [`${s}_thigh`, `${s}_shin`, `${s}_foot`] },
  ]);
  return { joints, chains };
}

interface Geometry {
  format: "obj" | "fbx";
  positions: number[];
  indices: number[];
  min: Vec3;
  max: Vec3;
}

/** The model's triangles (OBJ) or, for FBX, whose geometry is not read here, a box of a person's size. */
export function readModel(bytes: Buffer): Geometry {
  const head = bytes.subarray(0, 32).toString("latin1");
  if (head.startsWith("Kaydara FBX Binary") || /^\s*; FBX/.test(head)) return box("fbx", [-0.3, 0, -0.15], [0.3, 1.8, 0.15]);
  const text = bytes.toString("utf8");
  if (!/^\s*v\s+-?[\d.]/m.test(text)) throw new PredictionError("model_file: neither an OBJ (no vertices found) nor an FBX file");
  const positions: number[] = [];
  const indices: number[] = [];
  for (const line of text.split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts[0] === "v") positions.push(Number(parts[1]), Number(parts[2]), Number(parts[3]));
    else if (parts[0] === "f") {
      const count = positions.length / 3;
      const ids = parts.slice(1).map((p) => {
        const i = Number.parseInt(p.split("/")[0]!, 10);
        return i < 0 ? count + i : i - 1;
      });
      for (let k = 1; k + 1 < ids.length; k++) indices.push(ids[0]!, ids[k]!, ids[k + 1]!);
    }
  }
  if (positions.some((v) => !Number.isFinite(v))) throw new PredictionError("model_file: an OBJ vertex is not a number");
  const count = positions.length / 3;
  if (indices.some((i) => i < 0 || i >= count)) throw new PredictionError("model_file: an OBJ face names a vertex that does not exist");
  const min: Vec3 = [Infinity, Infinity, Infinity];
  const max: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < positions.length; i++) {
    min[i % 3] = Math.min(min[i % 3]!, positions[i]!);
    max[i % 3] = Math.max(max[i % 3]!, positions[i]!);
  }
  // Points without faces: the box they span stands in for a surface to skin.
  return indices.length > 0 ? { format: "obj", positions, indices, min, max } : box("obj", min, max);
}

function box(format: "obj" | "fbx", min: Vec3, max: Vec3): Geometry {
  const positions: number[] = [];
  for (let i = 0; i < 8; i++) positions.push(i & 1 ? max[0] : min[0], i & 2 ? max[1] : min[1], i & 4 ? max[2] : min[2]);
  const indices = [0, 2, 1, 1, 2, 3, 4, 5, 6, 5, 7, 6, 0, 1, 4, 1, 5, 4, 2, 6, 3, 3, 6, 7, 0, 4, 2, 2, 4, 6, 1, 3, 5, 3, 7, 5];
  return { format, positions, indices, min, max };
}

/** A glTF 2.0 binary: the mesh, skinned to the skeleton (each vertex to its nearest joint). */
function glb(geometry: Geometry, joints: Array<{ name: string; parent: number | null; position: Vec3 }>): Buffer {
  const vertexCount = geometry.positions.length / 3;
  const jointIdx = new Uint16Array(vertexCount * 4);
  const weights = new Float32Array(vertexCount * 4);
  for (let v = 0; v < vertexCount; v++) {
    let best = 0;
    let bestD = Infinity;
    joints.forEach((j, i) => {
      const d = (j.position[0] - geometry.positions[v * 3]!) ** 2 + (j.position[1] - geometry.positions[v * 3 + 1]!) ** 2 + (j.position[2] - geometry.positions[v * 3 + 2]!) ** 2;
      if (d < bestD) {
        best = i;
        bestD = d;
      }
    });
    jointIdx[v * 4] = best;
    weights[v * 4] = 1;
  }
  const ibm = new Float32Array(joints.length * 16);
  joints.forEach((j, i) => {
    // Joints carry only translations, so the inverse bind matrix is the opposite translation (column-major).
    ibm.set([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -j.position[0], -j.position[1], -j.position[2], 1], i * 16);
  });
  const parts = [new Float32Array(geometry.positions), new Uint32Array(geometry.indices), jointIdx, weights, ibm];
  const views: Array<{ buffer: 0; byteOffset: number; byteLength: number }> = [];
  let offset = 0;
  for (const p of parts) {
    views.push({ buffer: 0, byteOffset: offset, byteLength: p.byteLength });
    offset += Math.ceil(p.byteLength / 4) * 4;
  }
  const bin = Buffer.alloc(offset);
  parts.forEach((p, i) => {
    Buffer.from(p.buffer, p.byteOffset, p.byteLength).copy(bin, views[i]!.byteOffset);
  });

  const meshNode = joints.length;
  const json = {
    asset: { version: "2.0", generator: "Cutroom model emulator (synthetic rig)" },
    scene: 0,
    scenes: [{ nodes: [0, meshNode] }],
    nodes: [
      ...joints.map((j, i) => {
        const parent = j.parent === null ? [0, 0, 0] : joints[j.parent]!.position;
        const children = joints.flatMap((c, k) => (c.parent === i ? [k] : []));
        return { name: j.name, translation: j.position.map((v, k) => v - parent[k]!), ...(children.length ? { children } : {}) };
      }),
      { name: "model", mesh: 0, skin: 0 },
    ],
    skins: [{ joints: joints.map((_, i) => i), skeleton: 0, inverseBindMatrices: 4 }],
    meshes: [{ name: "model", primitives: [{ attributes: { POSITION: 0, JOINTS_0: 2, WEIGHTS_0: 3 }, indices: 1, mode: 4 }] }],
    buffers: [{ byteLength: bin.length }],
    bufferViews: views.map((v, i) => ({ ...v, ...(i === 0 || i === 2 || i === 3 ? { target: 34962 } : i === 1 ? { target: 34963 } : {}) })),
    accessors: [
      { bufferView: 0, componentType: 5126, count: vertexCount, type: "VEC3", min: geometry.min, max: geometry.max },
      { bufferView: 1, componentType: 5125, count: geometry.indices.length, type: "SCALAR" },
      { bufferView: 2, componentType: 5123, count: vertexCount, type: "VEC4" },
      { bufferView: 3, componentType: 5126, count: vertexCount, type: "VEC4" },
      { bufferView: 4, componentType: 5126, count: joints.length, type: "MAT4" },
    ],
  };
  let jsonBytes = Buffer.from(JSON.stringify(json));
  jsonBytes = Buffer.concat([jsonBytes, Buffer.alloc((4 - (jsonBytes.length % 4)) % 4, 0x20)]);
  const header = Buffer.alloc(12);
  header.write("glTF", 0, "latin1");
  header.writeUInt32LE(2, 4);
  header.writeUInt32LE(12 + 8 + jsonBytes.length + 8 + bin.length, 8);
  const chunk = (type: string, body: Buffer) => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(body.length, 0);
    h.write(type, 4, "latin1");
    return Buffer.concat([h, body]);
  };
  return Buffer.concat([header, chunk("JSON", jsonBytes), chunk("BIN\0", bin)]);
}

/**
 * A made-up auto-rig: the skeleton template of `rig_type` fitted to the model's bounds, as a GLB (the
 * OBJ's own mesh, or a stand-in box for an FBX, skinned to it) and a JSON description of the joints,
 * their IK chains and the IK/FK blend.
 */
export async function generateRig(ctx: RunContext, req: RigRequest): Promise<{ rigged_model: string; skeleton: string }> {
  const geometry = readModel(await readFile(await fetchInput(ctx, "model_file", req.model_file)));
  const { joints, chains } = template(req.rig_type);
  const size = geometry.max.map((v, i) => v - geometry.min[i]!) as Vec3;
  const centre = geometry.max.map((v, i) => (v + geometry.min[i]!) / 2) as Vec3;
  const placed = joints.map((j) => ({
    name: j.name,
    parent: j.parent,
    position: [centre[0] + j.at[0] * size[0], geometry.min[1] + j.at[1] * size[1], centre[2] + j.at[2] * Math.max(size[2], size[1] * 0.2)] as Vec3,
  }));
  await writeFile(join(ctx.outDir, "rigged.glb"), glb(geometry, placed));
  const skeleton = {
    format: "cutroom-skeleton/1",
    synthetic: true,
    rig_type: req.rig_type,
    source: { format: geometry.format, vertices: geometry.positions.length / 3, bounds: { min: geometry.min, max: geometry.max } },
    joint_radius: Math.round((0.002 + (req.joint_size / 100) * 0.03) * size[1] * 1e4) / 1e4,
    ik_fk_blend: req.ik_fk / 100,
    joints: placed.map((j) => ({ name: j.name, parent: j.parent === null ? null : placed[j.parent]!.name, position: j.position.map((v) => Math.round(v * 1e4) / 1e4) })),
    ik_chains: chains.map((c) => ({ ...c, blend: req.ik_fk / 100 })),
  };
  await writeFile(join(ctx.outDir, "skeleton.json"), `${JSON.stringify(skeleton, null, 2)}\n`);
  return { rigged_model: ctx.url("rigged.glb"), skeleton: ctx.url("skeleton.json") };
}
