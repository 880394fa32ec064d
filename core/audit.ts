import { hash, randomBytes } from "node:crypto";
import type { Op } from "./change.ts";
import type { JsonObject, JsonValue } from "./json.ts";
import type { Outcome } from "./merge.ts";

/**
 * Canonical JSON: object keys sorted by code point at every depth, no
 * whitespace, numbers and strings as JSON.stringify writes them. Two equal
 * values always give the same bytes, so their hashes compare.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i ? "," : "") + canonicalJson(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  // Default sort compares UTF-16 code units, the same order for every run.
  const keys = Object.keys(record).sort();
  let out = "{";
  for (const key of keys) {
    const v = record[key];
    if (v === undefined) continue;
    out += `${out.length > 1 ? "," : ""}${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

export const sha256 = (text: string): string => hash("sha256", text, "hex");

const NULL_DIGEST = sha256("null");

/**
 * Where the salts of an audit row's values come from. A value enters the
 * chain as the digest of its salt and itself, so the digest an erasure
 * keeps says nothing of the value once the salt is gone: without salts, a
 * value of a few likely ones (a diagnosis, a date of birth, a score) could
 * be found again by hashing each guess. Each row has a secret `seed`; a
 * value's salt is derived from it and the value's label, "before:<field>"
 * or "after:<field>" (what the device signed shares its after value's
 * salt). An erasure replaces the seed with the salts of the values it keeps
 * (`salts`), so the erased ones can never be recomputed. A row written
 * before salts has neither: its digests are of the values alone.
 */
export interface ValueSalts {
  /** 16 random bytes, base64url; null once erased into `salts`, or before salts. */
  seed?: string | null;
  /** The salts of the values an erasure kept, by label. */
  salts?: Record<string, string>;
}

/**
 * Random bytes drawn 4 kB at a time, as `crypto.randomUUID` draws them: one
 * call to the generator costs about as much as 20 seeds cut from its
 * output, and every change's audit row takes a seed. Bytes are zeroed once
 * used, so the pool never holds a seed already given out. The first draw is
 * at first use, not at load: a snapshot of an initialised function holds
 * none of its bytes.
 */
const seeds = { pool: Buffer.alloc(0), at: 0 };

/** A new row's seed: 16 random bytes, base64url. */
export function newSeed(): string {
  if (seeds.at + 16 > seeds.pool.length) {
    seeds.pool = randomBytes(4096);
    seeds.at = 0;
  }
  const seed = seeds.pool.toString("base64url", seeds.at, seeds.at + 16);
  seeds.pool.fill(0, seeds.at, seeds.at + 16);
  seeds.at += 16;
  return seed;
}

/** The label a value's salt is derived for: what a device signed is salted as the value it applied. */
export const saltLabel = (side: "before" | "after" | "signed", field: string): string =>
  `${side === "before" ? "before" : "after"}:${field}`;

/** The salt of one value of a row, or undefined for a row from before salts. */
export function saltOf(row: ValueSalts, label: string): string | undefined {
  // The seed is 22 characters: seed and label are read apart unambiguously.
  return (
    row.salts?.[label] ?? (row.seed ? hash("sha256", row.seed + label, "base64url") : undefined)
  );
}

/** The digest a field value enters the chain as: of its salt and its canonical JSON. */
export const valueDigest = (value: JsonValue, salt?: string): string =>
  salt !== undefined
    ? // A salt is 43 characters: salt and value are read apart unambiguously.
      sha256(salt + canonicalJson(value))
    : // A row from before salts; null is every new field's "before": computed once.
      value === null
      ? NULL_DIGEST
      : sha256(canonicalJson(value));

/** Digests of every value of one side of a row (before, after, or what was signed). */
export function digests(
  values: JsonObject,
  row: ValueSalts = {},
  side: "before" | "after" | "signed" = "after",
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in values) out[key] = valueDigest(values[key]!, saltOf(row, saltLabel(side, key)));
  return out;
}

/** What an audit row's hash covers. Values appear only as digests. */
export interface AuditHashInput {
  prevHash: string | null;
  projectId: string;
  changeId: string;
  reportId: string | null;
  actor: { type: string; id: string };
  op: string | null;
  hlc: string | null;
  outcome: string;
  code: string | null;
  fieldsApplied: string[];
  fieldsSuperseded: string[];
  beforeDigests: Record<string, string>;
  afterDigests: Record<string, string>;
  receivedAt: string;
  appliedAt: string;
  /** Hashed for an erasure's own entry only (its reason); older entries never had it. */
  message?: string | null;
}

const sortedPairs = (map: Record<string, string>): [string, string][] =>
  Object.keys(map)
    .sort()
    .map((k) => [k, map[k]!]);

/**
 * The hash of one audit row, chained to the previous row of the same report:
 * SHA-256 of a JSON array with every part in a fixed order (digest maps as
 * key-sorted pairs), which is as unambiguous as canonical JSON and cheaper.
 * Because values enter as digests, a value can later be erased (for a
 * data-protection request) and the chain still verifies.
 */
export function auditHash(input: AuditHashInput): string {
  return sha256(
    JSON.stringify([
      "edge-sync.audit.v1",
      input.prevHash,
      input.projectId,
      input.changeId,
      input.reportId,
      input.actor.type,
      input.actor.id,
      input.op,
      input.hlc,
      input.outcome,
      input.code,
      input.fieldsApplied,
      input.fieldsSuperseded,
      sortedPairs(input.beforeDigests),
      sortedPairs(input.afterDigests),
      input.receivedAt,
      input.appliedAt,
      ...(input.op === "erase" ? [input.message ?? null] : []),
    ]),
  );
}

/**
 * One audit row, in the one shape the writer, the verifier and the evidence
 * check share. Values are kept whole here; the hash covers their digests.
 */
export interface AuditRecord extends ValueSalts {
  projectId: string;
  changeId: string;
  /** Null only for a change whose report could not be read. */
  reportId: string | null;
  actor: { type: "device" | "member"; id: string };
  /** A change's op, or `erase` for an erasure's own entry. */
  op: Op | "erase" | null;
  hlc: string | null;
  outcome: Outcome;
  code: string | null;
  message: string | null;
  fieldsApplied: string[];
  fieldsSuperseded: string[];
  before: JsonObject;
  after: JsonObject;
  /** ISO 8601, milliseconds, UTC: as it reads back from timestamptz. */
  receivedAt: string;
  appliedAt: string;
  prevHash: string | null;
  /**
   * The device's signature of the change, null when unsigned. Not part of
   * the hash: it stands on its own, checked against the device's key.
   */
  sig: string | null;
  /** What the signature covers beyond the row's own columns; null when unsigned. */
  signedChange: SignedChange | null;
}

/** The parts of a signed change an audit row keeps for its signature to be checked. */
export interface SignedChange {
  fields: JsonObject | null;
  base: Record<string, string | null> | null;
  scope: string | null;
}

/** The digests of a row's before and after values. */
export interface RecordDigests {
  before: Record<string, string>;
  after: Record<string, string>;
}

/**
 * The hash of one audit row: the one mapping from a row to what its hash
 * covers, used by the writer and the verifier alike, so the two can never
 * disagree. `valueDigests` are the row's own unless given (the writer has
 * them already; the verifier substitutes the digests of erased values).
 */
export function hashAuditRecord(
  record: AuditRecord,
  valueDigests: RecordDigests = {
    before: digests(record.before, record, "before"),
    after: digests(record.after, record, "after"),
  },
): string {
  return auditHash({
    prevHash: record.prevHash,
    projectId: record.projectId,
    changeId: record.changeId,
    reportId: record.reportId,
    actor: record.actor,
    op: record.op,
    hlc: record.hlc,
    outcome: record.outcome,
    code: record.code,
    fieldsApplied: record.fieldsApplied,
    fieldsSuperseded: record.fieldsSuperseded,
    beforeDigests: valueDigests.before,
    afterDigests: valueDigests.after,
    receivedAt: record.receivedAt,
    appliedAt: record.appliedAt,
    message: record.message,
  });
}
