import {
  AppError,
  evaluateTemplate,
  generatedImageSize,
  generatedVideoFrame,
  speechSeconds,
  TemplateError,
  type ImageGenerateInput,
  type MediaFacts,
  type PipelineStageDef,
  type TemplateContext,
  type VideoGenerateInput,
} from "@cutroom/contracts";

/** One job a stage starts: its type and its input as the templates give it (parsed by the job type later). */
export interface JobSpec {
  type: string;
  input: Record<string, unknown>;
}

/** A template error is the type's fault, but it shows in a run: a 422 naming the stage, never a crash. */
function templateFailure(stage: string, err: unknown): never {
  if (err instanceof TemplateError) throw new AppError("INVALID_INPUT", `stage ${stage}: ${err.message}`, { stage, reason: "template" });
  throw err;
}

/** A count given as a number or a template; null when the template gives nothing. */
export function evaluateCount(value: number | string | undefined, ctx: TemplateContext, stage: string, what: string): number | null {
  if (value === undefined) return null;
  let n: unknown;
  try {
    n = typeof value === "number" ? value : evaluateTemplate(value, ctx);
  } catch (err) {
    templateFailure(stage, err);
  }
  if (n === null) return null;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
    throw new AppError("INVALID_INPUT", `stage ${stage}: ${what} must be a whole number, not ${JSON.stringify(n)}`, { stage, reason: what });
  }
  return n;
}

/** The jobs a stage starts, in order: each template once, or per item of `foreach`, or `repeat` times. */
export function expandStageJobs(def: PipelineStageDef, ctx: TemplateContext): JobSpec[] {
  const specs: JobSpec[] = [];
  try {
    for (const template of def.jobs ?? []) {
      const one = (extra: Partial<TemplateContext>) => {
        const input = evaluateTemplate(template.input, { ...ctx, ...extra });
        specs.push({ type: template.type, input: input as Record<string, unknown> });
      };
      if (template.foreach !== undefined) {
        const items = evaluateTemplate(template.foreach, ctx);
        if (items !== null && !Array.isArray(items)) throw new TemplateError(`foreach ${template.foreach} is not an array`);
        for (const [index, item] of (items ?? []).entries()) one({ item, index });
      } else if (template.repeat !== undefined) {
        const n = evaluateCount(template.repeat, ctx, def.name, "repeat") ?? 0;
        for (let index = 0; index < n; index++) one({ index });
      } else {
        one({ index: 0 });
      }
    }
  } catch (err) {
    templateFailure(def.name, err);
  }
  return specs;
}

/** What a job will make, for the estimate of stages that have not run: its files' media facts and its result. */
export interface PredictedOutput {
  files: Partial<MediaFacts>[];
  result: Record<string, unknown>;
}

/** The text a text.generate job is predicted to write: non-empty and shorter than any text field takes (an overlay's 500 characters). */
export const PREDICTED_TEXT = "The text the language model will write.";

const picture = (width: number, height: number): Partial<MediaFacts> => ({ width, height, duration_seconds: null, frame_rate: null });

/**
 * The outputs a job of each type makes, as far as the estimate needs them (sizes and lengths the
 * later stages' costs grow with). A type not named here makes one file of unknown facts.
 */
export function predictOutputs(type: string, input: Record<string, unknown>, media: Record<string, Partial<MediaFacts> | undefined>): PredictedOutput {
  switch (type) {
    case "image.generate": {
      const { width, height } = generatedImageSize(input as ImageGenerateInput);
      return { files: Array.from({ length: Number(input.num_images ?? 1) }, () => picture(width, height)), result: {} };
    }
    case "video.generate": {
      const start = media.image_file_id;
      const startPicture = start?.width && start.height ? { width: start.width, height: start.height } : undefined;
      const { width, height } = generatedVideoFrame(input as VideoGenerateInput, startPicture);
      return { files: [{ width, height, duration_seconds: Number(input.duration_s ?? 5), frame_rate: 16 }], result: {} };
    }
    case "video.compose": {
      const seconds = Object.entries(media)
        .filter(([key]) => key.startsWith("clips."))
        .reduce((sum, [, m]) => sum + (m?.duration_seconds ?? 3), 0);
      const first = media["clips.0.file_id"];
      return { files: [{ width: first?.width ?? 1280, height: first?.height ?? 720, duration_seconds: seconds, frame_rate: 30 }], result: {} };
    }
    case "audio.tts":
      return { files: [{ width: null, height: null, duration_seconds: speechSeconds(String(input.text ?? ""), Number(input.speed ?? 1)), frame_rate: null }], result: {} };
    case "text.generate":
      // Not "": a stage whose input is only this text (a prompt, a voice's text) must pass its job type's schema as the real text would.
      return { files: input.save_as_file ? [{}] : [], result: { text: PREDICTED_TEXT } };
    case "text.scenes": {
      const n = Number(input.num_scenes ?? 4);
      const duration = Number(input.scene_duration ?? 8);
      return { files: [], result: { scenes: Array.from({ length: n }, (_, i) => ({ sequence: i + 1, prompt: `scene ${i + 1}`, duration })) } };
    }
    default:
      return { files: [{}], result: {} };
  }
}

/** A placeholder file id for a predicted output: a valid UUID that no real file has (version 4 with a zero random part). */
export const placeholderFileId = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
export const isPlaceholderFileId = (id: string) => id.startsWith("00000000-0000-4000-8000-");
