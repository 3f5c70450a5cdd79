/** `POST /api/v1/files` with a hand-made multipart body (a buffer, or a stream sent as it is produced). */
export const postMultipart = (baseUrl: string, token: string, body: NonNullable<RequestInit["body"]>, boundary: string, signal?: AbortSignal) =>
  fetch(`${baseUrl}/api/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: "half",
    signal,
  } as RequestInit);

/** The head of a `file` part, up to where its bytes start. */
export const filePartHead = (boundary: string, contentType: string, filename = "a.png") =>
  Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\ncontent-type: ${contentType}\r\n\r\n`);
