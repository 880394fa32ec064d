import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { createS3Client } from "../functions/adapters/exports.ts";

/** The bucket the local cloud hands large answers out from (the stack's export bucket). */
export const EXPORT_BUCKET = "edge-sync-exports";

/**
 * Creates the export bucket on an S3 endpoint of its own (fauxqs serves S3
 * beside SQS on the same port). Idempotent: a bucket already there is kept.
 */
export async function ensureExportBucket(endpoint: string, region = "us-east-1"): Promise<string> {
  const client = createS3Client(region, endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: EXPORT_BUCKET })).catch((error) => {
      const name = (error as Error).name;
      if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") throw error;
    });
    return EXPORT_BUCKET;
  } finally {
    client.destroy();
  }
}
