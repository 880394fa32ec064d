import { z } from "zod";
import { hlcPattern, hlcSkewMs, parseHlc } from "./hlc.ts";
import { type JsonValue, jsonByteLength, nestsDeeperThan, storableJson } from "./json.ts";

export const MAX_CHANGES_PER_REQUEST = 500;
export const MAX_FIELDS_PER_CHANGE = 64;
export const MAX_FIELD_BYTES = 32 * 1024;
export const MAX_CHANGE_BYTES = 256 * 1024;
export const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** How deep a field value may nest arrays and objects. */
export const MAX_VALUE_DEPTH = 16;

const uuid = z.uuid({ message: "must be a UUID" });
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
// The nil UUID is reserved: pull cursors use it as "before every report".
const reportId = uuid.refine((id) => id !== NIL_UUID, { message: "may not be the nil UUID" });
/** Any JSON value; named so the OpenAPI document can refer to it. */
export const JsonValueSchema: z.ZodType<JsonValue> = z
  .lazy(() =>
    z.union([
      z.string(),
      z.number(),
      z.boolean(),
      z.null(),
      z.array(JsonValueSchema),
      z.record(z.string(), JsonValueSchema),
    ]),
  )
  .meta({ id: "JsonValue", description: "Any JSON value." });
const jsonValue = JsonValueSchema;
export const HlcSchema = z
  .string()
  .regex(hlcPattern, { message: "must be an HLC (wall:counter:node)" })
  .meta({
    id: "Hlc",
    description:
      "Hybrid logical clock: 15-digit wall milliseconds, 6-digit counter, node (the device id), colon-separated.",
    example: "001763800000000:000000:0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01",
  });
const hlc = HlcSchema;
const fieldName = z.string().regex(FIELD_NAME, { message: "is not a valid field name" });

const fields = z
  .record(fieldName, jsonValue)
  .refine((f) => Object.keys(f).length >= 1 && Object.keys(f).length <= MAX_FIELDS_PER_CHANGE, {
    message: `must name 1 to ${MAX_FIELDS_PER_CHANGE} fields`,
  })
  .superRefine((f, ctx) => {
    for (const [name, value] of Object.entries(f)) {
      if (!storableJson(value)) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `field ${name} holds a NUL character or a lone surrogate`,
        });
      }
      if (jsonByteLength(value) > MAX_FIELD_BYTES) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `field ${name} is larger than ${MAX_FIELD_BYTES} bytes`,
        });
      }
    }
  });

const base = z.record(fieldName, hlc.nullable());

const upsert = z.strictObject({
  changeId: uuid,
  reportId,
  op: z.literal("upsert"),
  hlc,
  fields,
  base: base.optional(),
});

const remove = z.strictObject({
  changeId: uuid,
  reportId,
  op: z.literal("delete"),
  hlc,
  fields: z.undefined({ message: "a delete carries no fields" }).optional(),
  base: base.optional(),
});

/** A change as a device sends it (CONTRACT.md "Change"). */
export const ChangeSchema = z
  .discriminatedUnion("op", [upsert, remove])
  .refine((c) => jsonByteLength(c) <= MAX_CHANGE_BYTES, {
    message: `a change may be at most ${MAX_CHANGE_BYTES} bytes`,
  });

export type Change = z.infer<typeof ChangeSchema>;
export type Op = Change["op"];

/** The SQS message body: the change plus who sent it and when, from the token. */
export const ChangeMessageSchema = z.strictObject({
  projectId: uuid,
  deviceId: uuid,
  receivedAt: z.iso.datetime(),
  change: ChangeSchema,
});
export type ChangeMessage = z.infer<typeof ChangeMessageSchema>;

/** Why a single change is refused; the codes are part of the public contract. */
export type RejectionCode =
  | "invalid_change"
  | "hlc_invalid"
  | "hlc_node_mismatch"
  | "clock_skew"
  | "duplicate_in_batch";

export interface Rejection {
  changeId: string;
  code: RejectionCode;
  message: string;
}

/** Reads a change id the way the contract requires it: a UUID string, or nothing. */
export function readableChangeId(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const id = (raw as { changeId?: unknown }).changeId;
  return uuid.safeParse(id).success ? (id as string) : undefined;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) =>
      issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message,
    )
    .join("; ");
}

export interface ChangeCheckContext {
  deviceId: string;
  serverNowMs: number;
  maxClockSkewMs: number;
}

/**
 * Validates one raw change against the schema and the ingest guards. Returns
 * the change, or the rejection to report for it (never throws).
 */
export function checkChange(
  raw: unknown,
  changeId: string,
  { deviceId, serverNowMs, maxClockSkewMs }: ChangeCheckContext,
): { change: Change } | { rejection: Rejection } {
  // Checked before the schema, whose recursive walk a hostile depth could overflow.
  // The change and its fields object are two levels; values may add MAX_VALUE_DEPTH.
  if (nestsDeeperThan(raw, MAX_VALUE_DEPTH + 2)) {
    return {
      rejection: {
        changeId,
        code: "invalid_change",
        message: `field values may nest at most ${MAX_VALUE_DEPTH} levels`,
      },
    };
  }
  const rawHlc = (raw as { hlc?: unknown }).hlc;
  if (typeof rawHlc !== "string" || !parseHlc(rawHlc)) {
    return {
      rejection: { changeId, code: "hlc_invalid", message: "hlc must be wall:counter:node" },
    };
  }
  const parsed = ChangeSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      rejection: { changeId, code: "invalid_change", message: describeIssues(parsed.error) },
    };
  }
  const stamp = parseHlc(parsed.data.hlc)!;
  if (stamp.node !== deviceId) {
    return {
      rejection: {
        changeId,
        code: "hlc_node_mismatch",
        message: "the HLC node must be the authenticated device's id",
      },
    };
  }
  const skew = hlcSkewMs(stamp, serverNowMs);
  if (skew > maxClockSkewMs) {
    return {
      rejection: {
        changeId,
        code: "clock_skew",
        message: `the HLC is ${skew} ms ahead of server time (limit ${maxClockSkewMs} ms)`,
      },
    };
  }
  return { change: parsed.data };
}
