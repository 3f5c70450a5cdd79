import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { pipeline, type Readable } from "node:stream";
import { assertSafeKey, contentDisposition, exactBytes, limitBytes, type Audience, type StorageDriver } from "./driver.ts";

export interface S3Config {
  /** Where this service reaches S3; workers, inside the deployment too, get URLs for it. */
  endpoint?: string;
  /** Where clients reach S3, when that differs (Docker: localhost:<published port>, not the service name); signed into their URLs. */
  publicEndpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/**
 * Where a presigned PUT for `key` lands. S3 takes any number of PUTs until the URL expires, so
 * confirm copies from here to `key` (commitUpload): what was checked and confirmed is out of the URL's reach.
 */
const incomingKey = (key: string) => `incoming/${key}`;

/** Objects in one S3 bucket (AWS, MinIO, R2, s3rver). Clients PUT and GET straight to S3 through presigned URLs. */
export class S3Driver implements StorageDriver {
  readonly name = "s3";
  private readonly client: S3Client;
  /** Signs clients' URLs. The host is part of a SigV4 signature, so it cannot be swapped in afterwards. */
  private readonly publicSigner: S3Client;
  private readonly bucket: string;

  constructor(config: S3Config) {
    this.bucket = config.bucket;
    const clientFor = (endpoint: string | undefined) =>
      new S3Client({
        endpoint,
        region: config.region,
        forcePathStyle: true,
        credentials: config.accessKeyId && config.secretAccessKey ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } : undefined,
        // The SDK's default streaming checksums (aws-chunked bodies) are stored corrupted by s3rver and some other S3 clones.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      });
    this.client = clientFor(config.endpoint);
    this.publicSigner = config.publicEndpoint ? clientFor(config.publicEndpoint) : this.client;
  }

  private signerFor(audience: Audience = "client"): S3Client {
    return audience === "worker" ? this.client : this.publicSigner;
  }

  async putStream(key: string, body: Readable, { maxBytes, contentType }: { maxBytes: number; contentType?: string }): Promise<number> {
    assertSafeKey(key);
    const counter = limitBytes(maxBytes);
    const counted = pipeline(body, counter, () => {});
    // Parts go up while the rest still streams in: at most queueSize × partSize bytes in memory.
    const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key: key, Body: counted, ContentType: contentType }, queueSize: 4, partSize: 5 * 1024 ** 2 });
    try {
      await upload.done();
    } catch (err) {
      // lib-storage aborts the multipart upload itself; a single-part one was never sent.
      await upload.abort().catch(() => {});
      throw counter.errored ?? err;
    }
    return counter.bytes();
  }

  async putBytes(key: string, bytes: Buffer, { contentType }: { contentType?: string } = {}): Promise<void> {
    assertSafeKey(key);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType, ContentLength: bytes.length }));
  }

  async readHead(key: string, n: number): Promise<Buffer> {
    assertSafeKey(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=0-${n - 1}` }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (statusOf(err) === 416) return Buffer.alloc(0); // an empty object has no byte 0
      throw err;
    }
  }

  async size(key: string): Promise<number | undefined> {
    assertSafeKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    assertSafeKey(key);
    // What an unconfirmed upload (or a PUT to a URL still valid after confirm) left goes too.
    await Promise.all([key, incomingKey(key)].map((k) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }))));
  }

  async commitUpload(key: string): Promise<void> {
    assertSafeKey(key);
    const from = incomingKey(key);
    try {
      // One atomic copy (up to 5 GiB, the largest tier's file limit): the bytes confirm checks next are the ones served.
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: `${this.bucket}/${from}` }));
    } catch (err) {
      if (statusOf(err) === 404) return; // nothing was PUT: confirm finds nothing (or what an earlier confirm copied)
      throw err;
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
  }

  async presignPut(key: string, { contentType, size, expiresInSec, audience }: { contentType: string; size?: number; expiresInSec: number; audience?: Audience }) {
    assertSafeKey(key);
    // content-length is signed too, so S3 itself refuses a body of another size.
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: incomingKey(key), ContentType: contentType, ContentLength: size });
    const url = await getSignedUrl(this.signerFor(audience), command, { expiresIn: expiresInSec, signableHeaders: new Set(["content-type", ...(size === undefined ? [] : ["content-length"])]) });
    return { url, headers: { "content-type": contentType } };
  }

  async localSource(key: string): Promise<string> {
    assertSafeKey(key);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: 300 });
  }

  async presignGet(key: string, { expiresInSec, filename, contentType, audience }: { expiresInSec: number; filename: string; contentType: string; audience?: Audience }) {
    assertSafeKey(key);
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: key, ResponseContentType: contentType, ResponseContentDisposition: contentDisposition(filename) });
    return getSignedUrl(this.signerFor(audience), command, { expiresIn: expiresInSec });
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async openStream(key: string): Promise<Readable> {
    assertSafeKey(key);
    const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    return res.Body as Readable;
  }

  async startMultipart(key: string, { contentType }: { contentType: string }): Promise<string> {
    assertSafeKey(key);
    const res = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType }));
    return res.UploadId!;
  }

  async putPart(key: string, uploadId: string, partNumber: number, body: Readable, size: number): Promise<string> {
    assertSafeKey(key);
    // Streamed straight to S3 with its length signed: a body that comes short or long fails the counter, which aborts the request.
    const abort = new AbortController();
    const counted = pipeline(body, exactBytes(size), (err) => err && abort.abort(err));
    try {
      const res = await this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: counted, ContentLength: size }),
        { abortSignal: abort.signal },
      );
      return res.ETag!;
    } catch (err) {
      throw counted.errored ?? body.errored ?? (abort.signal.aborted ? abort.signal.reason : undefined) ?? err;
    }
  }

  async completeMultipart(key: string, uploadId: string, parts: Array<{ partNumber: number; etag: string }>): Promise<void> {
    assertSafeKey(key);
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }),
    );
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    assertSafeKey(key);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      const status = statusOf(err);
      // 404 NoSuchUpload: aborted or completed already. 405/501: a server without abort (s3rver), whose parts stay for its own cleanup.
      if (status !== 404 && status !== 405 && status !== 501) throw err;
    }
  }

  close(): void {
    this.client.destroy();
    if (this.publicSigner !== this.client) this.publicSigner.destroy();
  }
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}
