import { describe, expect, it } from "vitest";
import { analyseScreenplay, parseCue, parseHeading, stripComments, wrappedLines } from "./screenplay.ts";

const script = (...lines: string[]) => lines.join("\n");

// A small Fountain script using every element; its layout is worked out by hand in the test below.
const brickAndSteel = [
  "Title: _**BRICK & STEEL**_",
  "Credit: Written by",
  "Author: Stu Maschwitz",
  "Draft date: 1/20/2012",
  "Contact:",
  "    Next Level Productions",
  "    1588 Mission Dr.",
  "",
  "FADE IN:",
  "",
  "EXT. BRICK'S PATIO - DAY",
  "",
  "A gorgeous day. Brick grills.",
  "",
  "[[Make this funnier.]]",
  "",
  "BRICK",
  "(to himself)",
  "Perfect.",
  "",
  "STEEL (O.S.)",
  "Brick!",
  "",
  "BRICK",
  "In here.",
  "",
  "CUT TO:",
  "",
  "INT. TRAILER HOME - NIGHT #7#",
  "",
  "/* The old opening:",
  "",
  "INT. GARAGE - DAY",
  "",
  "GARY",
  "Nothing happens.",
  "*/",
  "",
  "Steel enters.",
  "",
  "STEEL",
  "Found you.",
  "",
  "BRICK ^",
  "Found you too.",
  "",
  "EXT. BRICK'S PATIO - CONTINUOUS",
  "",
  "!SILENCE.",
  "They stare at each other.",
  "",
  "STEEL (V.O.)",
  "Later.",
];
const lineOf = (text: string) => brickAndSteel.indexOf(text) + 1;

describe("screenplay breakdown", () => {
  it("breaks a Fountain script down exactly: title page, scenes, characters, locations, totals, length", () => {
    const b = analyseScreenplay(brickAndSteel.join("\n"));
    expect(b.title).toBe("BRICK & STEEL");
    expect(b.title_page).toEqual({
      Title: "_**BRICK & STEEL**_",
      Credit: "Written by",
      Author: "Stu Maschwitz",
      "Draft date": "1/20/2012",
      Contact: "Next Level Productions\n1588 Mission Dr.",
    });
    // Laid out: FADE IN: (1), blank, heading, blank, action, blank, BRICK + (to himself) + Perfect. (3), blank,
    // STEEL + Brick! (2), blank, BRICK + In here. (2), blank, CUT TO: = 17 lines before scene 7's heading;
    // then heading, action, STEEL (2) with blanks = 24, the dual speech beside STEEL's adding none; then
    // heading, SILENCE. + They stare… (2), STEEL (2) with blanks = 32.
    expect(b.scenes).toEqual([
      { number: "1", heading: "EXT. BRICK'S PATIO - DAY", int_ext: "EXT", location: "BRICK'S PATIO", time_of_day: "DAY", line: lineOf("EXT. BRICK'S PATIO - DAY"), characters: ["BRICK", "STEEL"], speeches: 3, page_eighths: 2 },
      { number: "7", heading: "INT. TRAILER HOME - NIGHT", int_ext: "INT", location: "TRAILER HOME", time_of_day: "NIGHT", line: lineOf("INT. TRAILER HOME - NIGHT #7#"), characters: ["STEEL", "BRICK"], speeches: 2, page_eighths: 1 },
      { number: "3", heading: "EXT. BRICK'S PATIO - CONTINUOUS", int_ext: "EXT", location: "BRICK'S PATIO", time_of_day: "CONTINUOUS", line: lineOf("EXT. BRICK'S PATIO - CONTINUOUS"), characters: ["STEEL"], speeches: 1, page_eighths: 1 },
    ]);
    expect(b.characters).toEqual([
      { name: "BRICK", speeches: 3, words: 6, scenes: 2, first_scene: "1" },
      { name: "STEEL", speeches: 3, words: 4, scenes: 3, first_scene: "1" },
    ]);
    expect(b.locations).toEqual([
      { name: "BRICK'S PATIO", int_ext: ["EXT"], scenes: 2 },
      { name: "TRAILER HOME", int_ext: ["INT"], scenes: 1 },
    ]);
    expect(b.totals).toEqual({
      scenes: 3,
      interior: 1,
      exterior: 2,
      interior_exterior: 0,
      times_of_day: { DAY: 1, NIGHT: 1, CONTINUOUS: 1 },
      characters: 2,
      speeches: 6,
      dialogue_words: 10,
      parentheticals: 1,
      transitions: 2,
      dual_dialogues: 1,
    });
    expect(b.lines).toBe(32);
    expect(b.page_count).toBe(5 / 8); // 32 / 55 of a page is 4.65 eighths
    expect(b.runtime_seconds).toBe(35);
  });

  it("reads scene headings: INT, EXT, INT./EXT., I/E, EST, any case, the location and a time of day only when the last part names one", () => {
    expect(parseHeading("INT. HOUSE - KITCHEN - NIGHT")).toEqual({ heading: "INT. HOUSE - KITCHEN - NIGHT", number: null, int_ext: "INT", location: "HOUSE - KITCHEN", time_of_day: "NIGHT" });
    expect(parseHeading("EXT BEACH")).toMatchObject({ int_ext: "EXT", location: "BEACH", time_of_day: null });
    expect(parseHeading("INT./EXT. CAR - MOVING - DAY")).toMatchObject({ int_ext: "INT/EXT", location: "CAR - MOVING", time_of_day: "DAY" });
    expect(parseHeading("I/E JEEP -- DUSK")).toMatchObject({ int_ext: "INT/EXT", location: "JEEP", time_of_day: "DUSK" });
    expect(parseHeading("EST. CITY SKYLINE - DAWN")).toMatchObject({ int_ext: "EXT", location: "CITY SKYLINE", time_of_day: "DAWN" });
    expect(parseHeading("int. office - day")).toMatchObject({ int_ext: "INT", location: "OFFICE", time_of_day: "DAY" });
    expect(parseHeading("EXT. SAMEWORTH FARM - BARN")).toMatchObject({ location: "SAMEWORTH FARM - BARN", time_of_day: null });
    expect(parseHeading("INT. HOUSE - DAY (FLASHBACK) #12A#")).toMatchObject({ heading: "INT. HOUSE - DAY (FLASHBACK)", number: "12A", time_of_day: "DAY (FLASHBACK)" });
  });

  it("takes a heading only after a blank line, a forced one (.) anywhere, and never one forced to be action (!)", () => {
    expect(analyseScreenplay(script("He walks in.", "INT. HOUSE - DAY", "", "Quiet.")).scenes).toEqual([]);
    const forced = analyseScreenplay(script("", ".FLASHBACK", "", "Rain.")).scenes;
    expect(forced).toMatchObject([{ heading: "FLASHBACK", int_ext: null, location: "FLASHBACK", time_of_day: null }]);
    expect(analyseScreenplay(script("", "!INT. IS NOT A HEADING HERE", "")).scenes).toEqual([]);
    expect(analyseScreenplay(script("", "...and then", "")).scenes).toEqual([]);
  });

  it("reads character cues with extensions, forced cues (@) and dual dialogue (^); exclamations, transitions and lower case are not cues", () => {
    expect(parseCue("BOB (V.O.)")).toEqual({ name: "BOB", dual: false });
    expect(parseCue("MOM (cont'd)")).toEqual({ name: "MOM", dual: false });
    expect(parseCue("HANS (on the radio) (O.S.)")).toEqual({ name: "HANS", dual: false });
    expect(parseCue("@McCLANE")).toEqual({ name: "MCCLANE", dual: false });
    expect(parseCue("BRICK ^")).toEqual({ name: "BRICK", dual: true });
    expect(parseCue("R2-D2")).toEqual({ name: "R2-D2", dual: false });
    for (const not of ["CUT TO:", "BANG!", "WHAT?", "Bob", "123", "(beat)"]) expect(parseCue(not), not).toBeNull();
  });

  it("counts a cue only when text follows it and a blank line precedes it; an upper-case line alone is action", () => {
    const b = analyseScreenplay(script("", "BOOM.", "", "The house shakes.", "SARAH", "Run!", "", "SARAH", "", "Nothing."));
    expect(b.characters).toEqual([]);
    expect(b.totals.speeches).toBe(0);
  });

  it("merges a character's cues whatever the extension, and counts words of dialogue without parentheticals", () => {
    const b = analyseScreenplay(script("", "INT. ROOM - DAY", "", "ANNA (V.O.)", "(whispering)", "One two three.", "", "ANNA (CONT'D)", "Four, five.", "(beat)", "Six."));
    expect(b.characters).toEqual([{ name: "ANNA", speeches: 2, words: 6, scenes: 1, first_scene: "1" }]);
    expect(b.totals.parentheticals).toBe(2);
  });

  it("leaves out the boneyard and notes, even inside a speech, and keeps the file's line numbers", () => {
    const b = analyseScreenplay(
      script("/*", "INT. CUT SCENE - DAY", "", "GHOST", "Boo.", "*/", "", "INT. KEPT - NIGHT", "", "BOB", "[[say it slower]]", "Hi [[a note]] there.", "[[a note", "on two lines]]", "Bye."),
    );
    expect(b.scenes).toMatchObject([{ heading: "INT. KEPT - NIGHT", line: 8, characters: ["BOB"], speeches: 1 }]);
    expect(b.characters).toEqual([{ name: "BOB", speeches: 1, words: 3, scenes: 1, first_scene: "1" }]);
    expect(stripComments("a /* x\ny */ b\nc").map((l) => [l.text, l.line])).toEqual([
      ["a  b", 1],
      ["c", 3],
    ]);
  });

  it("counts transitions (… TO:, FADE IN/OUT, forced with >) but not centered text (> … <)", () => {
    const b = analyseScreenplay(script("FADE IN:", "", "INT. A - DAY", "", "CUT TO:", "", "> SMASH CUT", "", "> THE END <", "", "FADE OUT."));
    expect(b.totals.transitions).toBe(4);
    expect(b.scenes).toHaveLength(1);
  });

  it("ignores sections, synopses and page breaks", () => {
    const b = analyseScreenplay(script("# ACT ONE", "", "= Brick meets Steel.", "", "INT. A - DAY", "", "===", "", "Action."));
    expect(b.scenes).toHaveLength(1);
    expect(b.lines).toBe(3); // heading, blank, action
  });

  it("lays dual dialogue side by side: only the longer speech's lines count", () => {
    const single = analyseScreenplay(script("", "A", "Line one.", "", "B", "Line two.")).lines;
    const dual = analyseScreenplay(script("", "A", "Line one.", "", "B ^", "Line two.")).lines;
    const longer = analyseScreenplay(script("", "A", "Line one.", "", "B ^", "Line two.", "Line three.")).lines;
    expect([single, dual, longer]).toEqual([5, 2, 3]);
    expect(analyseScreenplay(script("", "A", "Hi.", "", "B ^", "Hi.")).totals.dual_dialogues).toBe(1);
    // Nothing to pair with: after a heading, a `^` cue is an ordinary speech.
    expect(analyseScreenplay(script("", "INT. A - DAY", "", "B ^", "Hi.")).totals.dual_dialogues).toBe(0);
  });

  it("reads a plain-text export: headings flush left, cues and dialogue indented", () => {
    const b = analyseScreenplay(
      script("EXT. FIELD - DAY", "", "Wind in the grass.", "", "                      JOHN", "          (calling)", "          Mary! Where are", "          you?", "", "                      MARY (O.S.)", "          Here."),
    );
    expect(b.scenes).toMatchObject([{ int_ext: "EXT", location: "FIELD", time_of_day: "DAY", characters: ["JOHN", "MARY"], speeches: 2 }]);
    expect(b.characters.map((c) => [c.name, c.words])).toEqual([
      ["JOHN", 4],
      ["MARY", 1],
    ]);
  });

  it("keeps speeches before the first heading out of every scene", () => {
    const b = analyseScreenplay(script("NARRATOR (V.O.)", "Once upon a time.", "", "INT. CASTLE - NIGHT", "", "KING", "Hm."));
    expect(b.characters).toEqual([
      { name: "KING", speeches: 1, words: 1, scenes: 1, first_scene: "1" },
      { name: "NARRATOR", speeches: 1, words: 4, scenes: 0, first_scene: null },
    ]);
  });

  it("makes 55 laid-out lines a page and a page a minute; a scene is at least an eighth", () => {
    const page = analyseScreenplay(Array.from({ length: 55 }, (_, i) => `Line ${i}.`).join("\n"));
    expect([page.lines, page.page_count, page.runtime_seconds]).toEqual([55, 1, 60]);
    const empty = analyseScreenplay("");
    expect([empty.lines, empty.page_count, empty.runtime_seconds, empty.scenes.length]).toEqual([0, 0, 0, 0]);
    expect(analyseScreenplay(script("", "INT. A - DAY")).scenes[0]!.page_eighths).toBe(1);
  });

  it("wraps lines at the element's width, words whole", () => {
    expect(wrappedLines("word ".repeat(12).trim(), 60)).toBe(1); // 59 characters
    expect(wrappedLines("word ".repeat(13).trim(), 60)).toBe(2);
    expect(wrappedLines("x".repeat(61), 60)).toBe(2);
    expect(wrappedLines("", 35)).toBe(1);
  });

  it("reads Windows line ends and a byte order mark", () => {
    const b = analyseScreenplay("\uFEFFINT. A - DAY\r\n\r\nBOB\r\nHi.\r\n");
    expect(b.scenes).toHaveLength(1);
    expect(b.characters.map((c) => c.name)).toEqual(["BOB"]);
  });
});
