import { createHash } from "node:crypto";
import type { JsonObject, JsonValue } from "./json.ts";

/**
 * Canonical JSON: object keys sorted by code point at every depth, no
 * whitespace, numbers and strings as JSON.stringify writes them. Two equal
 * values always give the same bytes, so their hashes compare.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** The digest a field value enters the chain as. */
export const valueDigest = (value: JsonValue): string => sha256(canonicalJson(value));

/** Digests of every value of a before/after map. */
export function digests(values: JsonObject): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, valueDigest(v)]));
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
}

/**
 * The hash of one audit row, chained to the previous row of the same report.
 * Because values enter as digests, a value can later be erased (for a
 * data-protection request) and the chain still verifies from the stored
 * digests.
 */
export function auditHash(input: AuditHashInput): string {
  return sha256(canonicalJson(input));
}
