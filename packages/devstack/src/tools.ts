import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

/** Finds Postgres server binaries: $PG_BIN, else the newest /usr/lib/postgresql/<v>/bin. */
export function findPgBin(): string | undefined {
  if (process.env.PG_BIN && existsSync(`${process.env.PG_BIN}/postgres`)) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(`${root}/${v}/bin/postgres`))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? `${root}/${versions[0]}/bin` : undefined;
}

// espeak-ng: the local speech engine of audio.tts (and of the model emulator's Kokoro stand-in).
// fonts-dejavu-core: DejaVu Sans, the font of video.compose's text overlays.
// tesseract-ocr: the OCR of video.detect-text and video.erase (Debian's package carries English).
type Tool = "nats-server" | "ffmpeg" | "postgresql" | "espeak-ng" | "fonts-dejavu-core" | "tesseract-ocr";

/**
 * Makes sure nats-server, ffmpeg/ffprobe, espeak-ng, tesseract and Postgres are present, installing the missing
 * ones from Debian's packages when we are root; otherwise fails saying what to install.
 */
export function ensureTools(log: (line: string) => void = console.log): { pgBin: string } {
  installMissing(["nats-server", "ffmpeg", "espeak-ng", "fonts-dejavu-core", "tesseract-ocr", "postgresql"], log);
  const pgBin = findPgBin();
  if (!pgBin) throw new Error("Postgres server binaries not found; set PG_BIN to the folder holding `postgres` and `initdb`");
  return { pgBin };
}

/** The tools the tests use beside their servers (each test file's own nats-server, ffmpeg, espeak-ng, tesseract): Postgres comes from a container. */
export function ensureToolsBesideContainers(log: (line: string) => void = console.log): void {
  installMissing(["nats-server", "ffmpeg", "espeak-ng", "fonts-dejavu-core", "tesseract-ocr"], log);
}

function installMissing(tools: Tool[], log: (line: string) => void) {
  const present: Record<Tool, () => boolean> = {
    "nats-server": () => has("nats-server"),
    ffmpeg: () => has("ffmpeg") && has("ffprobe"),
    "espeak-ng": () => has("espeak-ng"),
    "fonts-dejavu-core": () => existsSync("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "tesseract-ocr": () => has("tesseract"),
    postgresql: () => findPgBin() !== undefined,
  };
  const missing = tools.filter((t) => !present[t]());
  if (missing.length > 0) {
    const isRoot = process.getuid?.() === 0;
    if (!isRoot || !has("apt-get")) {
      throw new Error(`missing tools: ${missing.join(", ")}. Install them (Debian: apt-get install -y ${missing.join(" ")}) and run again.`);
    }
    log(`installing ${missing.join(", ")} from Debian packages…`);
    execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "-qq", ...missing], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  }
}
