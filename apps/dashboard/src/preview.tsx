import { useEffect, useState } from "preact/hooks";
import { cutroom, describeError } from "./api.ts";

/** A stored file shown by what it is: an img, video or audio element on its signed download URL. */
export function Preview({ fileId, contentType, filename }: { fileId: string; contentType: string; filename: string }) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    cutroom.files
      .downloadUrl(fileId)
      .then((d) => setUrl(d.url))
      .catch((err) => setError(describeError(err)));
  }, [fileId]);
  if (error) return <p class="error">{error}</p>;
  if (!url) return <p class="muted">loading {filename}…</p>;
  const kind = contentType.split("/")[0];
  return (
    <figure class="preview">
      {kind === "image" && <img src={url} alt={filename} data-file-id={fileId} />}
      {/* biome-ignore lint/a11y/useMediaCaption: a job's output has no captions to offer */}
      {kind === "video" && <video src={url} controls preload="metadata" data-file-id={fileId} />}
      {/* biome-ignore lint/a11y/useMediaCaption: a job's output has no captions to offer */}
      {kind === "audio" && <audio src={url} controls preload="metadata" data-file-id={fileId} />}
      <figcaption>
        <a href={url} download={filename}>
          {filename}
        </a>{" "}
        <span class="muted">{contentType}</span>
      </figcaption>
    </figure>
  );
}
