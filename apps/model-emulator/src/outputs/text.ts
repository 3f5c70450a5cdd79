import type { Seed } from "../determinism.ts";

export interface CompletionRequest {
  prompt: string;
  system_prompt?: string;
  max_tokens: number;
  min_tokens: number;
}

export interface Completion {
  /** The reply as a language model streams it: pieces that join into the text. */
  tokens: string[];
  input_token_count: number;
}

const DESCRIPTORS = [
  "cinematic lighting",
  "soft morning light",
  "rich colour",
  "shallow depth of field",
  "wide establishing shot",
  "detailed textures",
  "gentle camera motion",
  "golden hour",
  "high contrast",
  "muted palette",
  "35mm film look",
  "volumetric light",
  "balanced composition",
  "crisp focus",
  "atmospheric haze",
  "dynamic angle",
];
const NOTES = [
  "keep the pacing tight",
  "the tone is consistent throughout",
  "consider a stronger opening beat",
  "the dialogue carries the scene",
  "a clear visual motif helps",
  "the ending lands well",
  "tighten the middle section",
  "the setting is vivid",
];
const STOPWORDS = new Set(
  "a an the and or but of to in on at for with from by about into over under is are was were be been this that these those it its as please write give make create return reply answer only your you me my i we our json prompt enhance improve rewrite following text return list array object format exactly each output respond valid keys fields shape like scenes scene items".split(" "),
);
const COUNTED =
  /\b(?:exactly\s+)?(\d{1,3})\s+(?:[a-z-]+\s+){0,2}(?:scenes|items|shots|notes|prompts|variations|entries|ideas|options|lines|steps|points|suggestions|results|questions|bullets|elements|objects|characters|keywords|tags|sentences)\b/i;

/** The passage a request is about: the first quoted one (`Enhance: "a cat on a roof"`), else the prompt's last non-empty line. */
export function subjectOf(prompt: string): { text: string; quoted: boolean } {
  const quoted = /"([^"\n]{2,})"|“([^”\n]{2,})”|'([^'\n]{4,})'/.exec(prompt);
  if (quoted) return { text: (quoted[1] ?? quoted[2] ?? quoted[3])!.trim(), quoted: true };
  const lines = prompt.split("\n").map((l) => l.trim()).filter(Boolean);
  return { text: (lines.at(-1) ?? "").slice(0, 300), quoted: false };
}

const contentWords = (text: string) =>
  text
    .toLowerCase()
    .match(/[\p{L}\p{N}'-]+/gu)
    ?.filter((w) => w.length > 2 && !STOPWORDS.has(w)) ?? [];

/** The last JSON object or array written in the text (an example of the shape wanted), if any. */
export function jsonTemplate(text: string): unknown {
  let found: unknown;
  for (let start = 0; start < text.length; start++) {
    const open = text[start];
    if (open !== "{" && open !== "[") continue;
    const end = matchingBracket(text, start);
    if (end < 0) continue;
    try {
      const value = JSON.parse(text.slice(start, end + 1)) as unknown;
      if (value && typeof value === "object" && Object.keys(value).length > 0) {
        found = value;
        start = end;
      }
    } catch {
      // not JSON: look further in
    }
  }
  return found;
}

function matchingBracket(text: string, start: number): number {
  const stack: string[] = [];
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") stack.push(c === "{" ? "}" : "]");
    else if (c === "}" || c === "]") {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i;
    }
  }
  return -1;
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const NUMBERING_KEY = /^(sequence|index|order|number|position|rank|id|scene|scene_number|step|shot)$/i;

/** A value of the template's shape: strings made from the subject, numbering keys counting up, other values kept. */
function fillTemplate(template: unknown, subject: string, seed: Seed, count: number | undefined): unknown {
  let counted = false;
  const fill = (value: unknown, key: string, index: number | undefined): unknown => {
    if (Array.isArray(value)) {
      let n = value.length;
      if (!counted && count !== undefined) {
        counted = true;
        n = count;
      }
      if (value.length === 0) return [];
      return Array.from({ length: n }, (_, i) => fill(value[Math.min(i, value.length - 1)], key, i));
    }
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, typeof v === "number" && index !== undefined && NUMBERING_KEY.test(k) ? index + 1 : fill(v, k, index)]),
      );
    }
    if (typeof value !== "string") return value;
    const d = seed.derive(key, index ?? -1);
    const nth = index === undefined ? "" : ` ${index + 1}`;
    if (/prompt|description|visual|image|shot|scene/i.test(key)) return `${subject}${nth ? `, part${nth}` : ""}, ${d.pick(0, DESCRIPTORS)}, ${d.pick(1, DESCRIPTORS)}`;
    if (/title|name|heading|label/i.test(key)) return `${capitalise(contentWords(subject).slice(0, 4).join(" ") || "Untitled")}${nth}`;
    return `${capitalise(d.pick(2, NOTES))} (${subject.slice(0, 60)})`;
  };
  return fill(template, "", undefined);
}

/** Pieces as a model streams them: each word with the space before it. */
export const tokenize = (text: string): string[] => text.match(/\s*\S+/g) ?? [];

/**
 * A deterministic reply. Asked for JSON (the word appears in the prompt or system prompt), it is valid
 * JSON: of the shape of the last JSON example given, with the first list as long as a count the prompt
 * names ("5 scenes"), or else `{"text": …}`; JSON is never cut at max_tokens, since a cut one would be
 * useless. Otherwise a quoted passage is "enhanced" (descriptors appended), or the prompt is answered
 * with a sentence about it; the text is cut to max_tokens and padded to min_tokens.
 */
export function complete(req: CompletionRequest, seed: Seed): Completion {
  const system = req.system_prompt ?? "";
  const input_token_count = Math.ceil((system.length + req.prompt.length) / 4);
  if (/\bjson\b/i.test(`${system}\n${req.prompt}`)) {
    const template = jsonTemplate(req.prompt) ?? jsonTemplate(system);
    // The example's own strings ("prompt": "...") are not what the request is about.
    const withoutTemplate = req.prompt.replace(/[[{][\s\S]*[\]}]/, " ");
    const subject = subjectOf(withoutTemplate);
    const countMatch = COUNTED.exec(withoutTemplate) ?? /\bnum_\w+\s*[:=]\s*(\d{1,3})\b/i.exec(withoutTemplate);
    const count = countMatch ? Math.min(100, Math.max(1, Number(countMatch[1]))) : undefined;
    const topic = subject.quoted ? subject.text : contentWords(withoutTemplate).slice(0, 10).join(" ") || "untitled";
    const value = template === undefined ? { text: `${capitalise(topic)}, ${seed.pick(0, DESCRIPTORS)}.` } : fillTemplate(template, topic, seed, count);
    return { tokens: tokenize(JSON.stringify(value, null, 1)), input_token_count };
  }
  const subject = subjectOf(req.prompt);
  const descriptors = [...DESCRIPTORS].sort((a, b) => seed.derive(a).unit(0) - seed.derive(b).unit(0)).slice(0, 4);
  let text = subject.quoted
    ? `${subject.text}, ${descriptors.join(", ")}`
    : `A synthetic reply about ${contentWords(subject.text).slice(0, 8).join(" ") || "nothing in particular"}: ${descriptors.join(", ")}.`;
  let tokens = tokenize(text);
  for (let i = 0; tokens.length < req.min_tokens; i++) {
    text += ` ${capitalise(seed.pick(100 + i, NOTES))}.`;
    tokens = tokenize(text);
  }
  return { tokens: tokens.slice(0, Math.max(1, req.max_tokens)), input_token_count };
}
