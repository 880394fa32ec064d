import type { KeyObject } from "node:crypto";
import * as z from "zod";
import { hlcPattern, hlcSkewMs, parseHlc } from "./hlc.ts";
import { isJsonValue, type JsonValue } from "./json.ts";
import {
  breachedLimit,
  FIELD_NAME,
  MAX_CHANGES_PER_REQUEST,
  MAX_FIELDS_PER_CHANGE,
  MAX_SCOPE_LENGTH,
  SCOPE_NAME,
} from "./limits.ts";
import { contentOf, SIGNATURE_PATTERN, verifyChange } from "./signature.ts";

export { MAX_CHANGES_PER_REQUEST };

const uuid = z.uuid({ message: "must be a UUID" });
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
// The nil UUID is reserved: pull cursors use it as "before every report".
const reportId = uuid.refine((id) => id !== NIL_UUID, { message: "may not be the nil UUID" });
/**
 * Any JSON value, checked but never rebuilt: a schema that copies objects key
 * by key would turn a `__proto__` key into a prototype and drop it silently.
 */
export const JsonValueSchema: z.ZodType<JsonValue> = z
  .custom<JsonValue>(isJsonValue, { message: "must be a JSON value" })
  .meta({ id: "JsonValue", description: "Any JSON value.", override: {} });
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
const FIELD_NAME_RULE = "is not a valid field name (a letter, then up to 63 letters, digits or _)";
const fieldName = z.string().regex(FIELD_NAME, { message: FIELD_NAME_RULE });
/** A record's bad key is reported by its rule, not as zod's "Invalid key in record". */
const keyedByFieldName = {
  error: (issue: { code?: string }) => (issue.code === "invalid_key" ? FIELD_NAME_RULE : undefined),
};

// Sizes, depth and text are checked before this schema (`breachedLimit`).
const fields = z
  .record(fieldName, jsonValue, keyedByFieldName)
  .refine((f) => Object.keys(f).length >= 1 && Object.keys(f).length <= MAX_FIELDS_PER_CHANGE, {
    message: `must name 1 to ${MAX_FIELDS_PER_CHANGE} fields`,
  });

const base = z.record(fieldName, hlc.nullable(), keyedByFieldName);
export const ScopeNameSchema = z
  .string()
  .max(MAX_SCOPE_LENGTH, { message: "must be 1 to 128 characters" })
  .regex(SCOPE_NAME, { message: "must be 1 to 128 characters, none a control character" })
  .refine((s) => s.isWellFormed(), { message: "holds a lone surrogate" })
  .meta({ id: "Scope", description: "A scope's name, such as a site id.", example: "site-042" });
/** The report's scope (DESIGN.md, "Scopes"): fixed by the change that creates it. */
const scope = ScopeNameSchema;
/** The device's signature of the change (`core/signature.ts`), once it has registered a key. */
const sig = z.string().regex(SIGNATURE_PATTERN, { message: "must be a base64url signature" });

const upsert = z.strictObject({
  changeId: uuid,
  reportId,
  op: z.literal("upsert"),
  hlc,
  fields,
  base: base.optional(),
  scope: scope.optional(),
  sig: sig.optional(),
});

const remove = z.strictObject({
  changeId: uuid,
  reportId,
  op: z.literal("delete"),
  hlc,
  fields: z.undefined({ message: "a delete carries no fields" }).optional(),
  base: base.optional(),
  scope: scope.optional(),
  sig: sig.optional(),
});

/**
 * A change as a device sends it (CONTRACT.md "Change"): its shape. Its limits
 * (size, depth, text) are `breachedLimit`'s; `checkShape` applies both.
 */
export const ChangeSchema = z.discriminatedUnion("op", [upsert, remove]);

export type Change = z.infer<typeof ChangeSchema>;
export type Op = Change["op"];

/** The SQS message body: the change plus who sent it and when, from the token. */
export const ChangeMessageSchema = z.strictObject({
  projectId: uuid,
  deviceId: uuid,
  receivedAt: z.iso.datetime(),
  change: ChangeSchema,
  /** Ingest could not read the device's key: the consumer checks the signature. */
  keyUnchecked: z.literal(true).optional(),
});
export type ChangeMessage = z.infer<typeof ChangeMessageSchema>;

/** Why a single change is refused; the codes are part of the public contract. */
export const REJECTION_CODES = [
  "invalid_change",
  "hlc_invalid",
  "hlc_node_mismatch",
  "clock_skew",
  "duplicate_in_batch",
  "too_large",
  "too_deep",
  "invalid_text",
  // A report outside the device's scopes, or a scope other than the report's.
  "scope_forbidden",
  // Missing or wrong for a device that registered a signing key.
  "signature_invalid",
  // The queue refused the message for its content: retrying cannot cure it.
  "queue_refused",
] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

export interface Rejection {
  changeId: string;
  code: RejectionCode;
  message: string;
}

/** A raw change's id under `key`, when it is a UUID string (its other checks come later). */
function readableId(raw: unknown, key: "changeId" | "reportId"): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const id = (raw as Record<string, unknown>)[key];
  return uuid.safeParse(id).success ? (id as string) : undefined;
}

/** Reads a change id the way the contract requires it: a UUID string, or nothing. */
export const readableChangeId = (raw: unknown) => readableId(raw, "changeId");

/** A raw change's report id, when it is a UUID string. */
export const readableReportId = (raw: unknown) => readableId(raw, "reportId");

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
  /**
   * The device's registered public key: every change must then be signed
   * with it. Null: the device has none. Undefined: not known (the database
   * could not be read), so the signature is left to the consumer.
   */
  publicKey?: KeyObject | null;
}

/**
 * What a change must be wherever it is checked, by the agent before it
 * stores a write and by ingest before it queues one: within every limit, an
 * HLC, and of the Change shape. Returns the change or why it is refused.
 */
export function checkShape(
  raw: unknown,
): { change: Change } | { code: RejectionCode; message: string } {
  const breach = breachedLimit(raw);
  if (breach) return breach;
  const rawHlc = (raw as { hlc?: unknown }).hlc;
  if (typeof rawHlc !== "string" || !parseHlc(rawHlc)) {
    return { code: "hlc_invalid", message: "hlc must be wall:counter:node" };
  }
  const parsed = ChangeSchema.safeParse(raw);
  if (!parsed.success) return { code: "invalid_change", message: describeIssues(parsed.error) };
  return { change: parsed.data };
}

/** Why a change of a device with a signing key is refused for its signature, if it is. */
export function signatureRejection(change: Change, publicKey: KeyObject): Rejection | undefined {
  const { sig } = change;
  if (sig && verifyChange(publicKey, contentOf(change), sig)) return undefined;
  return {
    changeId: change.changeId,
    code: "signature_invalid",
    message: sig
      ? "sig is not this device's signature of the change"
      : "this device registered a signing key: every change must carry its sig",
  };
}

/**
 * Validates one raw change as ingest does: its shape and limits, then the
 * guards that need the caller and the server's clock. Returns the change, or
 * the rejection to report for it (never throws).
 */
export function checkChange(
  raw: unknown,
  changeId: string,
  { deviceId, serverNowMs, maxClockSkewMs, publicKey }: ChangeCheckContext,
): { change: Change } | { rejection: Rejection } {
  const shaped = checkShape(raw);
  if (!("change" in shaped)) return { rejection: { changeId, ...shaped } };
  if (publicKey) {
    const rejection = signatureRejection(shaped.change, publicKey);
    if (rejection) return { rejection };
  }
  const stamp = parseHlc(shaped.change.hlc)!;
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
  return shaped;
}

/**
 * Why a change is refused for its scope, if it is (DESIGN.md, "Scopes"). A
 * report's scope is fixed by the change that creates it, so a change naming
 * another is refused; a device with scopes writes only in them, and names
 * the scope of a report the cloud does not hold yet.
 *
 * @param deviceScopes the device's scopes; none: the whole project.
 * @param reportScope the report's scope as stored; undefined when it is not
 *   (yet) stored, or not known.
 */
export function scopeRejection(
  change: Change,
  deviceScopes: readonly string[],
  reportScope: string | null | undefined,
): Rejection | undefined {
  const refuse = (message: string): Rejection => ({
    changeId: change.changeId,
    code: "scope_forbidden",
    message,
  });
  if (change.scope !== undefined && reportScope !== undefined && change.scope !== reportScope) {
    return refuse(
      reportScope === null
        ? `report ${change.reportId} has no scope; a report's scope is set when it is created`
        : `report ${change.reportId} is in scope ${reportScope}, not ${change.scope}`,
    );
  }
  if (deviceScopes.length === 0) return undefined;
  const scopeOf = change.scope ?? reportScope;
  if (scopeOf === undefined || scopeOf === null) {
    return refuse(
      `this device syncs only scopes ${deviceScopes.join(", ")}: a new report must name one of them`,
    );
  }
  if (!deviceScopes.includes(scopeOf)) {
    return refuse(`scope ${scopeOf} is not one of this device's scopes`);
  }
  return undefined;
}
