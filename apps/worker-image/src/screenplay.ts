/**
 * A screenplay broken down locally and exactly: Fountain (https://fountain.io/syntax), which also
 * reads the plain-text screenplays editors export (headings flush left, cues and dialogue indented).
 * Pure: text in, breakdown out, so every rule is unit-tested.
 *
 * Lengths follow the industry's convention: the script is laid out as a Courier 12 pt page would
 * be (action 60 characters wide, dialogue 35, parentheticals 25, a blank line between blocks),
 * 55 lines make a page, a page is a minute of screen time, and a scene's length is counted in
 * eighths of a page (at least one), as production breakdowns do.
 */

export type IntExt = "INT" | "EXT" | "INT/EXT";

export interface Scene {
  /** The scene number written in the heading (`#12A#`), else its position (1, 2, …). */
  number: string;
  /** The heading as written, without the scene number. */
  heading: string;
  int_ext: IntExt | null;
  location: string;
  /** The heading's last ` - ` part when it names a time (DAY, NIGHT, CONTINUOUS…); null otherwise. */
  time_of_day: string | null;
  /** 1-based line of the heading in the file. */
  line: number;
  /** Who speaks in the scene, in the order they first do. */
  characters: string[];
  /** Dialogue blocks (speeches) in the scene. */
  speeches: number;
  /** The scene's length in eighths of a page, at least 1. */
  page_eighths: number;
}

export interface CharacterSummary {
  name: string;
  /** Dialogue blocks: each cue and the lines under it is one. */
  speeches: number;
  /** Words spoken, parentheticals left out. */
  words: number;
  /** Scenes the character speaks in. */
  scenes: number;
  /** The number of the first scene they speak in; null when only before the first heading. */
  first_scene: string | null;
}

export interface LocationSummary {
  name: string;
  int_ext: IntExt[];
  scenes: number;
}

export interface Breakdown {
  title: string | null;
  /** The title page's fields (Title, Credit, Author, Draft date, Contact…), as written. */
  title_page: Record<string, string>;
  scenes: Scene[];
  /** By speeches, most first; then by name. */
  characters: CharacterSummary[];
  /** In order of first appearance. */
  locations: LocationSummary[];
  totals: {
    scenes: number;
    interior: number;
    exterior: number;
    interior_exterior: number;
    /** Scenes by time of day (DAY, NIGHT…), `unspecified` for headings that name none. */
    times_of_day: Record<string, number>;
    characters: number;
    speeches: number;
    dialogue_words: number;
    parentheticals: number;
    transitions: number;
    /** Pairs of speeches side by side (a cue ending in `^`). */
    dual_dialogues: number;
  };
  /** Lines of the laid-out script (title page left out). */
  lines: number;
  /** Pages, at 55 lines a page, in eighths (1.375 is 1 3/8). */
  page_count: number;
  /** At a page a minute. */
  runtime_seconds: number;
}

export const LINES_PER_PAGE = 55;
/** Characters per line of each element at Courier 12 pt (10 a inch): action 6", dialogue 3.5", parentheticals 2.5". */
export const WIDTHS = { action: 60, dialogue: 35, parenthetical: 25 } as const;

const TITLE_KEYS = new Set(["title", "credit", "author", "authors", "source", "draft date", "date", "contact", "copyright", "notes", "revision"]);
const HEADING = /^(INT\.?\/EXT|EXT\.?\/INT|INT\/EXT|I\/E|INT|EXT|EST)(?:\.|\s)\s*(.*)$/i;
const SCENE_NUMBER = /\s*#([\w.-]+)#\s*$/;
/** Words that make a heading's last part a time of day rather than part of the location. */
const TIME_WORDS =
  /\b(DAY|NIGHT|MORNING|AFTERNOON|EVENING|DUSK|DAWN|SUNSET|SUNRISE|NOON|MIDNIGHT|TWILIGHT|CONTINUOUS|LATER|SAME|MOMENTS LATER|MAGIC HOUR|GOLDEN HOUR)\b/;
const STANDARD_TRANSITIONS = /^(FADE IN:|FADE OUT\.?|FADE TO BLACK\.?|CUT TO BLACK\.?)$/;
const WORD = /[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu;

// Stand-ins while comments are cut out: a removed span, and a line break it swallowed (kept for line numbers).
const CUT = "\u0000";
const SWALLOWED_BREAK = "\u0001";

interface SourceLine {
  text: string;
  /** 1-based line in the file. */
  line: number;
}

/**
 * Boneyard (`/* … *\/`) and notes (`[[ … ]]`) removed; a line that held nothing else goes with them,
 * so a note between a cue and its dialogue does not end the speech. Line numbers stay the file's.
 */
export function stripComments(source: string): SourceLine[] {
  const cut = (match: string) => CUT + SWALLOWED_BREAK.repeat(match.split("\n").length - 1);
  const text = source
    .replace(/^\uFEFF/, "")
    .replace(/\r\n?/g, "\n")
    .replace(/\/\*[\s\S]*?\*\//g, cut)
    // A note may span lines, not a blank one (Fountain: two spaces keep a note's empty line).
    .replace(/\[\[(?:(?!\n[ \t]*\n)[\s\S])*?\]\]/g, cut);
  const out: SourceLine[] = [];
  let line = 1;
  for (const raw of text.split("\n")) {
    const swallowed = raw.split(SWALLOWED_BREAK).length - 1;
    const hadCut = raw.includes(CUT);
    const clean = raw.replaceAll(CUT, "").replaceAll(SWALLOWED_BREAK, "");
    if (!(hadCut && clean.trim() === "")) out.push({ text: clean.trimEnd(), line });
    line += 1 + swallowed;
  }
  return out;
}

/** The title page at the very top: `Key: value` lines (known keys), values continued on indented lines, up to the first blank line. */
export function parseTitlePage(lines: SourceLine[]): { fields: Record<string, string>; bodyStart: number } {
  const fields: Record<string, string> = {};
  const first = /^([A-Za-z][A-Za-z ]*?):(.*)$/.exec(lines[0]?.text ?? "");
  if (!first || !TITLE_KEYS.has(first[1]!.trim().toLowerCase())) return { fields, bodyStart: 0 };
  let key = "";
  let i = 0;
  for (; i < lines.length && lines[i]!.text.trim() !== ""; i++) {
    const text = lines[i]!.text;
    const kv = /^([A-Za-z][A-Za-z ]*?):(.*)$/.exec(text);
    if (kv && !/^(\s{3,}|\t)/.test(text)) {
      key = kv[1]!.trim();
      fields[key] = kv[2]!.trim();
    } else if (key) {
      fields[key] = [fields[key], text.trim()].filter(Boolean).join("\n");
    }
  }
  return { fields, bodyStart: i };
}

/** A heading's parts: INT/EXT, location and time of day (`INT. HOUSE - KITCHEN - NIGHT`). */
export function parseHeading(text: string): { heading: string; number: string | null; int_ext: IntExt | null; location: string; time_of_day: string | null } {
  const numbered = SCENE_NUMBER.exec(text);
  const heading = (numbered ? text.slice(0, numbered.index) : text).trim();
  const m = HEADING.exec(heading);
  const prefix = m?.[1]?.toUpperCase().replace(/\./g, "");
  const int_ext: IntExt | null = !prefix ? null : prefix === "INT" ? "INT" : prefix === "EXT" || prefix === "EST" ? "EXT" : "INT/EXT";
  // Headings separate their parts with " - " (or "--", "–", "—").
  const parts = (m ? m[2]! : heading)
    .split(/\s+(?:-{1,2}|–|—)\s+/)
    .map((p) => p.trim())
    .filter(Boolean);
  const last = parts.at(-1)?.toUpperCase();
  const time_of_day = parts.length > 1 && last && TIME_WORDS.test(last) ? last : null;
  const location = (time_of_day ? parts.slice(0, -1) : parts).join(" - ").toUpperCase();
  return { heading, number: numbered?.[1] ?? null, int_ext, location, time_of_day };
}

/**
 * A character cue's name, or null when the line is not one: upper case outside its parentheses
 * (extensions such as `(V.O.)` or `(cont'd)` may be any case), a letter at least, not a transition,
 * not an exclamation or question. `@` forces a cue; a trailing `^` marks dual dialogue.
 */
export function parseCue(text: string): { name: string; dual: boolean } | null {
  let t = text.trim();
  const forced = t.startsWith("@");
  if (forced) t = t.slice(1).trim();
  const dual = t.endsWith("^");
  if (dual) t = t.slice(0, -1).trim();
  const name = t
    .replace(/\([^)]*\)/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  if (!name || !/\p{L}/u.test(name)) return null;
  if (!forced && (name !== name.toUpperCase() || /[:!?]$/.test(name))) return null;
  return { name: name.toUpperCase(), dual };
}

/** Lines `text` takes when wrapped at `width` characters, words kept whole unless longer than a line. */
export function wrappedLines(text: string, width: number): number {
  const words = text.replace(/[*_\\]/g, "").trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return 1;
  let lines = 1;
  let used = 0;
  for (const word of words) {
    let w = word.length;
    if (used > 0 && used + 1 + w <= width) {
      used += 1 + w;
      continue;
    }
    if (used > 0) lines++;
    while (w > width) {
      lines++;
      w -= width;
    }
    used = w;
  }
  return lines;
}

const countWords = (text: string) => text.match(WORD)?.length ?? 0;

/** The whole breakdown of a screenplay's text. */
export function analyseScreenplay(source: string): Breakdown {
  const all = stripComments(source);
  const { fields, bodyStart } = parseTitlePage(all);
  const lines = all.slice(bodyStart);

  const scenes: Scene[] = [];
  const characters = new Map<string, CharacterSummary & { sceneSet: Set<number> }>();
  const totals = { parentheticals: 0, transitions: 0, dual_dialogues: 0, speeches: 0, dialogue_words: 0 };

  let laidOut = 0; // lines of the laid-out script so far
  let blockOpen = false; // a block has been laid out: the next one starts after a blank line
  const startBlock = (n: number) => {
    laidOut += (blockOpen ? 1 : 0) + n;
    blockOpen = true;
  };
  const sceneStarts: number[] = []; // laidOut before each scene's heading

  let prevBlank = true;
  let speaker: string | null = null;
  let speechLines = 0; // laid-out lines of the current speech
  let previousSpeechLines = 0; // of the speech before it, for dual dialogue side by side
  let dualPending = false;

  const endSpeech = () => {
    if (speaker === null) return;
    if (dualPending) {
      // Printed beside the speech before it (no blank line between): only what is longer than that one adds lines.
      laidOut -= 1 + speechLines;
      laidOut += Math.max(0, speechLines - previousSpeechLines);
    }
    previousSpeechLines = speechLines;
    speaker = null;
    dualPending = false;
  };

  for (let i = 0; i < lines.length; i++) {
    const { text, line } = lines[i]!;
    const t = text.trim();

    if (t === "" || /^={3,}$/.test(t) || t.startsWith("#") || (t.startsWith("=") && !t.startsWith("=="))) {
      // Blank lines end a speech; page breaks, sections and synopses are not printed.
      endSpeech();
      prevBlank = true;
      continue;
    }

    if (speaker !== null) {
      if (t.startsWith("(") && t.endsWith(")")) {
        totals.parentheticals++;
        const n = wrappedLines(t, WIDTHS.parenthetical);
        laidOut += n;
        speechLines += n;
      } else {
        const words = countWords(t);
        const c = characters.get(speaker)!;
        c.words += words;
        totals.dialogue_words += words;
        const n = wrappedLines(t.replace(/^~\s*/, ""), WIDTHS.dialogue);
        laidOut += n;
        speechLines += n;
      }
      continue;
    }

    const nextHasText = (lines[i + 1]?.text.trim() ?? "") !== "";
    const forcedAction = t.startsWith("!");
    const forcedHeading = t.startsWith(".") && !t.startsWith("..");
    const centered = t.startsWith(">") && t.endsWith("<");

    if (!forcedAction && !centered && (forcedHeading || (prevBlank && HEADING.test(t)))) {
      const h = parseHeading(forcedHeading ? t.slice(1).trim() : t);
      sceneStarts.push(laidOut);
      previousSpeechLines = 0;
      startBlock(wrappedLines(h.heading, WIDTHS.action));
      scenes.push({
        number: h.number ?? String(scenes.length + 1),
        heading: h.heading,
        int_ext: h.int_ext,
        location: h.location,
        time_of_day: h.time_of_day,
        line,
        characters: [],
        speeches: 0,
        page_eighths: 0,
      });
    } else if (!forcedAction && !centered && (t.startsWith(">") || (prevBlank && (STANDARD_TRANSITIONS.test(t) || (t === t.toUpperCase() && /TO:$/.test(t)))))) {
      totals.transitions++;
      startBlock(1);
      previousSpeechLines = 0;
    } else if (!forcedAction && prevBlank && nextHasText && parseCue(t)) {
      const cue = parseCue(t)!;
      const sceneIndex = scenes.length - 1;
      let c = characters.get(cue.name);
      if (!c) {
        c = { name: cue.name, speeches: 0, words: 0, scenes: 0, first_scene: null, sceneSet: new Set() };
        characters.set(cue.name, c);
      }
      c.speeches++;
      totals.speeches++;
      if (sceneIndex >= 0) {
        const scene = scenes[sceneIndex]!;
        scene.speeches++;
        if (!scene.characters.includes(cue.name)) scene.characters.push(cue.name);
        if (!c.sceneSet.has(sceneIndex)) {
          c.sceneSet.add(sceneIndex);
          c.first_scene ??= scene.number;
        }
      }
      // A `^` cue pairs with the speech just before it (if there is one to pair with).
      dualPending = cue.dual && previousSpeechLines > 0;
      if (dualPending) totals.dual_dialogues++;
      startBlock(1);
      speaker = cue.name;
      speechLines = 1;
    } else {
      // Action (forced with `!`, centered with `> <`, lyrics with `~`): a paragraph's lines follow each other.
      const body = (forcedAction ? t.slice(1) : centered ? t.slice(1, -1) : t).replace(/^~\s*/, "");
      const n = wrappedLines(body, WIDTHS.action);
      if (prevBlank) startBlock(n);
      else laidOut += n;
      previousSpeechLines = 0;
    }
    prevBlank = false;
  }
  endSpeech();

  const eighths = (n: number) => Math.max(1, Math.round((n / LINES_PER_PAGE) * 8));
  scenes.forEach((scene, i) => {
    // A scene runs from its heading to the next one (the blank line before that heading included).
    scene.page_eighths = eighths((sceneStarts[i + 1] ?? laidOut) - sceneStarts[i]!);
  });

  const locations = new Map<string, LocationSummary>();
  const times: Record<string, number> = {};
  for (const s of scenes) {
    const loc = locations.get(s.location) ?? { name: s.location, int_ext: [], scenes: 0 };
    loc.scenes++;
    if (s.int_ext && !loc.int_ext.includes(s.int_ext)) loc.int_ext.push(s.int_ext);
    locations.set(s.location, loc);
    const time = s.time_of_day ?? "unspecified";
    times[time] = (times[time] ?? 0) + 1;
  }

  const characterList = [...characters.values()]
    .map(({ sceneSet, ...c }) => ({ ...c, scenes: sceneSet.size }))
    .sort((a, b) => b.speeches - a.speeches || a.name.localeCompare(b.name));

  const titleKey = Object.keys(fields).find((k) => k.toLowerCase() === "title");
  const title = titleKey ? fields[titleKey]!.replace(/[*_]/g, "").replace(/\s*\n\s*/g, " ").trim() || null : null;

  return {
    title,
    title_page: fields,
    scenes,
    characters: characterList,
    locations: [...locations.values()],
    totals: {
      scenes: scenes.length,
      interior: scenes.filter((s) => s.int_ext === "INT").length,
      exterior: scenes.filter((s) => s.int_ext === "EXT").length,
      interior_exterior: scenes.filter((s) => s.int_ext === "INT/EXT").length,
      times_of_day: times,
      characters: characterList.length,
      speeches: totals.speeches,
      dialogue_words: totals.dialogue_words,
      parentheticals: totals.parentheticals,
      transitions: totals.transitions,
      dual_dialogues: totals.dual_dialogues,
    },
    lines: laidOut,
    page_count: laidOut === 0 ? 0 : eighths(laidOut) / 8,
    runtime_seconds: Math.round((laidOut / LINES_PER_PAGE) * 60),
  };
}
