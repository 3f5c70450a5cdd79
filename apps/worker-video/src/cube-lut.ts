import { readFile, stat } from "node:fs/promises";
import { JobFailure } from "@cutroom/worker-runtime";

// A 129³ LUT (the largest in common use) is about 60 MB of text; anything far beyond is not a LUT.
const MAX_BYTES = 128 * 1024 * 1024;
const MAX_SIZE = 256;

/**
 * Checks that a file is a usable Adobe/Resolve .cube 3D LUT before ffmpeg's lut3d sees it,
 * so a bad upload fails the job with INVALID_LUT instead of a retried ffmpeg error.
 */
export async function assertCubeLut(path: string): Promise<{ size: number }> {
  const invalid = (why: string) => new JobFailure("INVALID_LUT", `the LUT is not a valid .cube 3D LUT: ${why}`);
  if ((await stat(path)).size > MAX_BYTES) throw invalid("the file is too large");

  let size = 0;
  let rows = 0;
  const lines = (await readFile(path, "utf8")).split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [keyword, ...rest] = line.split(/\s+/);
    if (keyword === "LUT_3D_SIZE") {
      size = Number(rest[0]);
      if (!Number.isInteger(size) || size < 2 || size > MAX_SIZE) throw invalid(`LUT_3D_SIZE must be 2–${MAX_SIZE}`);
    } else if (keyword === "LUT_1D_SIZE") {
      throw invalid("1D LUTs are not supported");
    } else if (keyword !== "TITLE" && keyword !== "DOMAIN_MIN" && keyword !== "DOMAIN_MAX") {
      const values = line.split(/\s+/).map(Number);
      if (values.length !== 3 || values.some((v) => !Number.isFinite(v))) throw invalid(`line ${i + 1} is not three numbers`);
      rows++;
    }
  }
  if (size === 0) throw invalid("LUT_3D_SIZE is missing");
  if (rows !== size ** 3) throw invalid(`expected ${size ** 3} rows for size ${size}, found ${rows}`);
  return { size };
}
