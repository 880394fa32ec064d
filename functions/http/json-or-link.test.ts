import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeSyncError } from "../../core/errors.ts";
import { ExportLinkSchema } from "../../core/wire-custody.ts";
import { ensureExportBucket } from "../../local/s3.ts";
import { type EmbeddedSqs, startEmbeddedSqs } from "../../local/sqs.ts";
import {
  createS3Exports,
  EXPORT_LINK_SECONDS,
  type Exports,
  NO_EXPORTS,
} from "../adapters/exports.ts";
import { jsonOrLink, MAX_INLINE_BYTES } from "./middleware.ts";

describe("an answer that may be too large for a Lambda response", () => {
  let s3: EmbeddedSqs;
  let exports: Exports & { close(): void };
  beforeAll(async () => {
    s3 = await startEmbeddedSqs();
    const bucket = await ensureExportBucket(s3.endpoint);
    exports = createS3Exports({ region: "us-east-1", bucket, endpoint: s3.endpoint });
  });
  afterAll(async () => {
    exports.close();
    await s3.stop();
  });

  /** A document whose JSON is `bytes` long, of `"` characters (each escaped in the response). */
  const quotes = (bytes: number) => ({ q: '"'.repeat((bytes - 8) / 2) });

  it("is answered inline while the response, as Lambda counts it, fits", async () => {
    const body = { note: "x".repeat(MAX_INLINE_BYTES - 1024) };
    const result = await jsonOrLink(exports, "evidence", body, Date.now);
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body)).toEqual(body);
  });

  it("counts escaping: a body under the limit whose escaped form is over it gets a link", async () => {
    const body = quotes(MAX_INLINE_BYTES * 0.6);
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(MAX_INLINE_BYTES);
    const result = await jsonOrLink(exports, "evidence", body, Date.now);
    expect(result.statusCode).toBe(303);
  });

  it("hands a large one out by a link that gives back exactly the document, in parts when larger than one", async () => {
    for (const bytes of [7 * 1024 * 1024, 20 * 1024 * 1024]) {
      const body = { note: "y".repeat(bytes) };
      const result = await jsonOrLink(exports, "evidence", body, Date.now);
      expect(result.statusCode).toBe(303);
      const link = ExportLinkSchema.parse(JSON.parse(result.body));
      expect(result.headers?.location).toBe(link.url);
      const download = await fetch(link.url);
      expect(download.status).toBe(200);
      const text = await download.text();
      expect(text).toBe(JSON.stringify(body));
      expect(link.bytes).toBe(Buffer.byteLength(text));
    }
  });

  it("promises a link no longer than the credentials that sign it last", async () => {
    const expiration = new Date(Date.now() + 5 * 60 * 1000);
    const shortLived = createS3Exports({
      region: "us-east-1",
      bucket: await ensureExportBucket(s3.endpoint),
      endpoint: s3.endpoint,
      credentials: async () => ({
        accessKeyId: "local",
        secretAccessKey: "local",
        sessionToken: "session",
        expiration,
      }),
    });
    try {
      const result = await jsonOrLink(
        shortLived,
        "evidence",
        quotes(MAX_INLINE_BYTES * 2),
        Date.now,
      );
      const link = ExportLinkSchema.parse(JSON.parse(result.body));
      expect(Date.parse(link.expiresAt)).toBeLessThanOrEqual(expiration.getTime());
      const signedFor = Number(new URL(link.url).searchParams.get("X-Amz-Expires"));
      expect(signedFor).toBeGreaterThan(0);
      expect(signedFor).toBeLessThanOrEqual(5 * 60);
      // Without an expiry of their own, a link is signed for the full 15 minutes.
      const long = await jsonOrLink(exports, "evidence", quotes(MAX_INLINE_BYTES * 2), Date.now);
      expect(
        new URL(ExportLinkSchema.parse(JSON.parse(long.body)).url).searchParams.get(
          "X-Amz-Expires",
        ),
      ).toBe(String(EXPORT_LINK_SECONDS));
    } finally {
      shortLived.close();
    }
  });

  it("without an export bucket, refuses a large one with a clear error", async () => {
    const refused = jsonOrLink(NO_EXPORTS, "evidence", { note: "z".repeat(7e6) }, Date.now);
    await expect(refused).rejects.toBeInstanceOf(EdgeSyncError);
    await expect(refused).rejects.toMatchObject({ code: "too_large", statusCode: 413 });
  });
});
