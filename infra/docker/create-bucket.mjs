// One-shot: creates storage-service's bucket (S3_BUCKET) on S3_ENDPOINT unless it exists, with the
// same S3_* settings storage-service reads. Plain S3 API, so it works on any S3-compatible server.
import { CreateBucketCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";

const { S3_ENDPOINT, S3_REGION = "us-east-1", S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY } = process.env;
if (!S3_BUCKET) {
  console.error("create-bucket: S3_BUCKET is not set");
  process.exit(1);
}
const s3 = new S3Client({
  endpoint: S3_ENDPOINT,
  region: S3_REGION,
  forcePathStyle: true,
  credentials: S3_ACCESS_KEY_ID && S3_SECRET_ACCESS_KEY ? { accessKeyId: S3_ACCESS_KEY_ID, secretAccessKey: S3_SECRET_ACCESS_KEY } : undefined,
});

// The server may take a few seconds after its port opens before it takes requests.
for (let attempt = 1; ; attempt++) {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: S3_BUCKET }));
    console.log(`bucket ${S3_BUCKET} is there`);
    break;
  } catch (err) {
    if (err?.$metadata?.httpStatusCode === 404 || err?.name === "NotFound" || err?.name === "NoSuchBucket") {
      await s3.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
      console.log(`created bucket ${S3_BUCKET}`);
      break;
    }
    if (attempt >= 30) {
      console.error(`create-bucket: ${S3_ENDPOINT ?? "S3"} did not answer: ${err?.message ?? err}`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
s3.destroy();
