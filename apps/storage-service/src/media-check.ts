const media = new Set(["image", "video", "audio"]);
const topOf = (mime: string) => mime.split("/")[0]!;

/**
 * Whether bytes that sniff as `detected` (file-type's verdict on the magic bytes; undefined when
 * it knows none) may be stored as the declared content type:
 * - image/*, video/*, audio/*: the bytes must be recognised, with the same top-level type; an
 *   audio file may sniff as video, because audio-only WebM/MP4 (browser recordings) use video containers;
 * - text/*: the bytes must not be an image, video or audio (we choose to reject a PNG posing as text);
 * - anything else (application/octet-stream, zip, json…): taken as declared.
 */
export function acceptsContent(declared: string, detected: string | undefined): boolean {
  const top = topOf(declared);
  if (media.has(top)) {
    if (!detected) return false;
    const found = topOf(detected);
    return found === top || (top === "audio" && found === "video");
  }
  if (top === "text") return !detected || !media.has(topOf(detected));
  return true;
}

/** Types that say only "some bytes": curl sends application/octet-stream for an .mp4, S3 clients binary/octet-stream. */
const generic = new Set(["", "application/octet-stream", "binary/octet-stream"]);

/** The content type a file is kept as: what the bytes show when the declared type was generic, else the declared one. */
export function storedContentType(declared: string, detected: string | undefined): string {
  return detected && generic.has(declared.split(";")[0]!.trim().toLowerCase()) ? detected : declared;
}
