import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CatalogError, defaultCatalog, listModelLevels, loadCatalog, resolveModel } from "./catalog.ts";

const overrideFile = (content: unknown) => {
  const file = join(mkdtempSync(join(tmpdir(), "catalog-")), "models.json");
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
};

describe("models catalog", () => {
  const catalog = defaultCatalog();

  it("ships a valid default for every model-backed job type", () => {
    for (const type of ["image.generate", "video.generate", "image.remove-background", "video.roto", "model.rig", "text.generate", "text.scenes", "text.script-analysis", "prompt.enhance", "audio.tts"]) {
      expect(Object.keys(catalog), type).toContain(type);
    }
  });

  it("maps seed 000's and seed 001's quality levels onto the same models", () => {
    expect(resolveModel(catalog, "image.generate", "fast").model).toBe("black-forest-labs/flux-schnell");
    expect(resolveModel(catalog, "image.generate", "economical")).toMatchObject({ model: "black-forest-labs/flux-schnell", quality: "fast", key: "fast" });
    expect(resolveModel(catalog, "image.generate", "high").model).toBe("black-forest-labs/flux-dev");
    expect(resolveModel(catalog, "video.generate", "premium").model).toBe("wavespeedai/wan-2.1-t2v-720p");
  });

  it("picks a family's entry, and a bare entry only for its own family", () => {
    expect(resolveModel(catalog, "image.generate", "fast", "sdxl").model).toMatch(/^stability-ai\/sdxl:7762fd07/);
    expect(resolveModel(catalog, "image.generate", "economical", "sdxl").key).toBe("sdxl:fast");
    expect(resolveModel(catalog, "image.generate", "fast", "flux").key).toBe("fast");
    expect(resolveModel(catalog, "image.generate", "fast", "wan")).toMatchObject({ model: "wavespeedai/wan-2.1-t2v-480p", params: { num_frames: 1 } });
    expect(() => resolveModel(catalog, "image.generate", "fast", "dalle")).toThrow(/no dalle model for image.generate at quality fast/);
    expect(() => resolveModel(catalog, "image.generate", "ultra")).toThrow(/no model for image.generate at quality ultra/);
    expect(() => resolveModel(catalog, "image.resize", "fast")).toThrow(/no entry for image.resize/);
  });

  it("lists each level with what runs it and its price", () => {
    const levels = listModelLevels(catalog, "audio.tts");
    expect(levels).toContainEqual({ quality: "standard", variant: null, provider: "local", model: "espeak-ng", alias_of: null, price: null, eta_s: 2 });
    expect(levels.find((l) => l.quality === "premium")).toMatchObject({ provider: "replicate", alias_of: "high", price: { usd_per_second: 0.000225 } });
  });

  it("merges an operator's file over the defaults entry by entry, and null removes one", () => {
    const merged = loadCatalog({
      overrideFile: overrideFile({
        "image.generate": { fast: { provider: "replicate", model: "acme/turbo-image", price: { usd_per_output: 0.001 } }, premium: null },
        "text.generate": { fast: { alias: "high" } },
      }),
    });
    expect(resolveModel(merged, "image.generate", "fast")).toMatchObject({ model: "acme/turbo-image", params: {} });
    expect(resolveModel(merged, "image.generate", "high").model).toBe("black-forest-labs/flux-dev");
    expect(() => resolveModel(merged, "image.generate", "premium")).toThrow(/no model/);
    expect(resolveModel(merged, "text.generate", "fast").model).toBe("meta/meta-llama-3-70b-instruct");
    expect(resolveModel(merged, "video.roto", "fast").model).toMatch(/^meta\/sam-2-video/);
  });

  it("refuses a bad override file at load, naming the file and the entry", () => {
    const bad = [
      [{ "image.generate": { fast: { provider: "replicate", model: "not a model", price: { usd_per_output: 1 } } } }, /image.generate.fast.model/],
      [{ "image.generate": { fast: { provider: "replicate", model: "acme/x" } } }, /needs a price/],
      [{ "audio.tts": { standard: { provider: "local", model: "festival" } } }, /unknown local engine "festival"/],
      [{ "image.generate": { fast: { alias: "turbo" } } }, /alias of "turbo"/],
      [{ "image.generate": { fast: { alias: "high" }, high: { alias: "fast" } } }, /in a loop/],
      [{ "image.generate": { fast: { provider: "replicate", model: "acme/x", price: { usd_per_output: 1 }, gpu: "a100" } } }, /gpu/],
      ["{ not json", /JSON/],
    ] as const;
    for (const [content, message] of bad) {
      const file = overrideFile(content);
      expect(() => loadCatalog({ overrideFile: file })).toThrow(CatalogError);
      expect(() => loadCatalog({ overrideFile: file })).toThrow(message);
      expect(() => loadCatalog({ overrideFile: file })).toThrow(file);
    }
    expect(() => loadCatalog({ overrideFile: "/nonexistent/models.json" })).toThrow(/MODEL_CATALOG_FILE \/nonexistent\/models.json/);
  });
});
