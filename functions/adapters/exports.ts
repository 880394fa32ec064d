import { randomUUID } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { EdgeSyncError } from "../../core/errors.ts";

/**
 * How long a download link works, at most. The object itself lives a day
 * (the bucket's lifecycle rule).
 */
export const EXPORT_LINK_SECONDS = 15 * 60;

/**
 * Larger documents go up in parts of this size: S3 takes 5 GB in one PUT,
 * but emulators take far less (fauxqs 11 MiB), and a failed part is all
 * that is sent again.
 */
const PART_BYTES = 8 * 1024 * 1024;

/** A document parked for download: where, until when, how big. */
export interface ExportLink {
  url: string;
  expiresAt: string;
  bytes: number;
}

/**
 * Where answers too large for a Lambda response go: S3 on AWS, fauxqs's S3
 * locally. A document is written once under a name no one can guess and
 * handed out as a presigned GET link, so the caller downloads it without
 * credentials of its own and no one else can list or find it.
 */
export interface Exports {
  /** Stores a JSON document; throws when it cannot (the caller answers 5xx). */
  park(kind: string, json: string, now: () => number): Promise<ExportLink>;
}

export interface S3ExportsOptions {
  region: string;
  bucket: string;
  /** An S3 endpoint of its own (fauxqs, LocalStack): path-style addresses, local credentials. */
  endpoint?: string;
  /** Credentials other than the default chain's (or the local ones an endpoint gets). */
  credentials?: S3ClientConfig["credentials"];
}

/** An S3 client; with an endpoint of its own (fauxqs, LocalStack), path-style and local credentials. */
export function createS3Client(
  region: string,
  endpoint?: string,
  credentials?: S3ClientConfig["credentials"],
): S3Client {
  return new S3Client({
    region,
    ...(endpoint
      ? {
          endpoint,
          forcePathStyle: true,
          credentials: { accessKeyId: "local", secretAccessKey: "local" },
        }
      : {}),
    ...(credentials ? { credentials } : {}),
  });
}

export function createS3Exports({
  region,
  bucket,
  endpoint,
  credentials,
}: S3ExportsOptions): Exports & {
  close(): void;
} {
  const client = createS3Client(region, endpoint, credentials);
  const object = (key: string) => ({ Bucket: bucket, Key: key });
  const put = async (key: string, body: Buffer) => {
    const type = "application/json; charset=utf-8";
    if (body.byteLength <= PART_BYTES) {
      await client.send(new PutObjectCommand({ ...object(key), Body: body, ContentType: type }));
      return;
    }
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ ...object(key), ContentType: type }),
    );
    try {
      const parts: { ETag: string | undefined; PartNumber: number }[] = [];
      for (let at = 0; at < body.byteLength; at += PART_BYTES) {
        const PartNumber = parts.length + 1;
        const { ETag } = await client.send(
          new UploadPartCommand({
            ...object(key),
            UploadId,
            PartNumber,
            Body: body.subarray(at, at + PART_BYTES),
          }),
        );
        parts.push({ ETag, PartNumber });
      }
      await client.send(
        new CompleteMultipartUploadCommand({
          ...object(key),
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (error) {
      // The bucket's lifecycle rule clears what an abort that fails leaves.
      await client
        .send(new AbortMultipartUploadCommand({ ...object(key), UploadId }))
        .catch(() => {});
      throw error;
    }
  };
  return {
    async park(kind, json, now) {
      const key = `${kind}/${randomUUID()}.json`;
      const body = Buffer.from(json);
      await put(key, body);
      // A link signed with temporary credentials (a Lambda's role) stops
      // working when they expire, whatever it says: it promises no longer
      // than they last. The SDK renews credentials 5 minutes before they
      // expire, so a link works for at least that long.
      const { expiration } = await client.config.credentials();
      const left = expiration ? Math.floor((expiration.getTime() - now()) / 1000) : Infinity;
      const expiresIn = Math.max(1, Math.min(EXPORT_LINK_SECONDS, left));
      const url = await getSignedUrl(client, new GetObjectCommand(object(key)), { expiresIn });
      const expiresAt = new Date(now() + expiresIn * 1000).toISOString();
      return { url, expiresAt, bytes: body.byteLength };
    },
    close: () => client.destroy(),
  };
}

/** Without a bucket (EXPORT_BUCKET unset) a large answer is refused, clearly. */
export const NO_EXPORTS: Exports = {
  async park(_kind, json) {
    throw new EdgeSyncError(
      "too_large",
      `The answer is ${Buffer.byteLength(json)} bytes, more than a response can carry, and this deployment has no export bucket (EXPORT_BUCKET) to hand it out from.`,
      413,
    );
  },
};
