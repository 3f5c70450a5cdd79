import { errorFromResponse } from "./errors.ts";
import { type Progress, ResumableUpload, type ResumableUploadOptions } from "./resumable-upload.ts";
import type { Transport } from "./transport.ts";
import type { DownloadUrl, FileObject, FilePage, ListFilesParams, ResumableUploadStatus, UploadTicket } from "./types.ts";

export interface UploadOptions {
  /** Defaults to the File's name, else "upload". */
  filename?: string;
  /** Defaults to the Blob's type; a generic type is replaced by the type the bytes show. */
  contentType?: string;
  project_id?: string;
  /** Called at the start ({0, total}) and once the bytes are stored ({total, total}). */
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

const nameOf = (blob: Blob, given?: string) => given ?? (blob as { name?: string }).name ?? "upload";

export class FilesApi {
  constructor(private readonly t: Transport) {}

  /** One multipart `POST /files`, streamed by the gateway to storage. */
  async upload(blob: Blob, opts: UploadOptions = {}): Promise<FileObject> {
    opts.onProgress?.({ loaded: 0, total: blob.size });
    const form = new FormData();
    // project_id must come before the file part: the gateway reads the fields as they stream.
    if (opts.project_id) form.append("project_id", opts.project_id);
    const part = opts.contentType && opts.contentType !== blob.type ? new Blob([blob], { type: opts.contentType }) : blob;
    form.append("file", part, nameOf(blob, opts.filename));
    const { file } = await this.t.json<{ file: FileObject }>("POST", "/files", { body: form, signal: opts.signal });
    opts.onProgress?.({ loaded: blob.size, total: blob.size });
    return file;
  }

  /** A signed upload: `POST /uploads` for a URL, a PUT of the bytes to it, then `POST /uploads/{id}/confirm`. */
  async uploadSigned(blob: Blob, opts: UploadOptions = {}): Promise<FileObject> {
    opts.onProgress?.({ loaded: 0, total: blob.size });
    const ticket = await this.t.json<UploadTicket>("POST", "/uploads", {
      json: { filename: nameOf(blob, opts.filename), content_type: opts.contentType || blob.type || "application/octet-stream", size: blob.size, project_id: opts.project_id },
      signal: opts.signal,
    });
    // The URL carries its own signature: no bearer token goes to it.
    const put = await this.t.fetchOrThrow(ticket.upload_url, { method: ticket.method, headers: ticket.headers, body: blob, signal: opts.signal });
    if (!put.ok) throw await errorFromResponse(put);
    await put.body?.cancel().catch(() => {});
    const { file } = await this.t.json<{ file: FileObject }>("POST", `/uploads/${ticket.file_id}/confirm`, { json: {}, signal: opts.signal });
    opts.onProgress?.({ loaded: blob.size, total: blob.size });
    return file;
  }

  /**
   * A resumable chunked upload, started at once: `await upload.done` for the file; `pause()` and
   * `resume()` (which sends only the chunks the server is missing); `onProgress` after each chunk.
   */
  uploadResumable(blob: Blob, opts: Partial<ResumableUploadOptions> = {}): ResumableUpload {
    return new ResumableUpload(this.t, blob, { ...opts, filename: nameOf(blob, opts.filename) });
  }

  /** Where a resumable upload stands: its chunks received and missing. */
  uploadStatus(uploadId: string): Promise<ResumableUploadStatus> {
    return this.t.json("GET", `/chunked-upload/${uploadId}`);
  }

  list(params: ListFilesParams = {}): Promise<FilePage> {
    return this.t.json("GET", "/files", { query: params });
  }

  async get(id: string): Promise<FileObject> {
    return (await this.t.json<{ file: FileObject }>("GET", `/files/${id}`)).file;
  }

  /** A signed URL to the bytes, valid for `expiresIn` seconds (60 to 604800, default 3600). */
  downloadUrl(id: string, opts: { expiresIn?: number } = {}): Promise<DownloadUrl> {
    return this.t.json("GET", `/files/${id}/download-url`, { query: { expires_in: opts.expiresIn } });
  }

  /** The file's bytes as a Response (stream its body, or read it with arrayBuffer()/blob()). */
  async download(id: string, opts: { signal?: AbortSignal } = {}): Promise<Response> {
    const { url } = await this.downloadUrl(id);
    const res = await this.t.fetchOrThrow(url, { signal: opts.signal });
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  }

  async delete(id: string): Promise<void> {
    await this.t.request("DELETE", `/files/${id}`);
  }
}
