import type { FileObject } from "@cutroom/sdk";
import { useState } from "preact/hooks";
import { describeError, uploadWithProgress } from "../api.ts";
import { Link } from "../router.tsx";

export function Upload() {
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [uploaded, setUploaded] = useState<FileObject | null>(null);
  const [error, setError] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setError("");
    setUploaded(null);
    setProgress(0);
    try {
      setUploaded(await uploadWithProgress(file, setProgress));
    } catch (err) {
      setError(describeError(err));
      setProgress(null);
    }
  };
  return (
    <form class="card" onSubmit={submit}>
      <h1>Upload a file</h1>
      <div class="field">
        <label for="file">Image, video or audio</label>
        <input id="file" type="file" accept="image/*,video/*,audio/*" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
      </div>
      <button type="submit" disabled={!file || (progress !== null && progress < 1 && !uploaded && !error)}>
        Upload
      </button>
      {progress !== null && (
        <p>
          <progress id="upload-progress" max={1} value={progress} /> <span>{Math.round(progress * 100)}%</span>
        </p>
      )}
      {error && <p class="error">{error}</p>}
      {uploaded && (
        <p class="ok" id="uploaded">
          Uploaded <strong>{uploaded.filename}</strong> ({uploaded.content_type}, {uploaded.size} bytes).{" "}
          <Link to={`/new?file_id=${uploaded.id}`}>Run a job on it</Link>
        </p>
      )}
    </form>
  );
}
