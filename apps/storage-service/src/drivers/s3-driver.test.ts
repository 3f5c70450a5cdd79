import { describe, it } from "vitest";
import { Env } from "../env.ts";
import { describeDriverContract } from "./driver-contract.ts";
import { S3Driver } from "./s3-driver.ts";

// `npm test` starts s3rver and sets S3_*; without it there is no S3 to test against.
const env = Env.parse(process.env);
if (env.S3_ENDPOINT && env.S3_BUCKET) {
  describeDriverContract("s3", async () => {
    const driver = new S3Driver({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      bucket: env.S3_BUCKET!,
      accessKeyId: env.S3_ACCESS_KEY_ID,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    });
    return { driver, close: async () => driver.close() };
  }, { verifiesSignatures: false });
} else {
  describe("s3 driver", () => {
    it.skip("S3_ENDPOINT is not set: run with `npm test`, which starts s3rver", () => {});
  });
}
