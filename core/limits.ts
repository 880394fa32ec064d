import { jsonByteLength, nestsDeeperThan, storableJson } from "./json.ts";

/**
 * Every limit the cloud puts on what a device sends (CONTRACT.md "Sync").
 * Ingest enforces them per change; the agent checks the same ones before it
 * stores a write, so a change it queued can never be refused for them later.
 */
export const MAX_CHANGES_PER_REQUEST = 500;
/** A push body; larger is refused whole (413). */
export const MAX_REQUEST_BYTES = 5 * 1024 * 1024;
export const MAX_FIELDS_PER_CHANGE = 64;
/** One field's value, serialized as JSON (UTF-8). */
export const MAX_FIELD_BYTES = 32 * 1024;
/** One change, serialized as JSON (UTF-8). */
export const MAX_CHANGE_BYTES = 256 * 1024;
/** How deep a field value may nest arrays and objects. */
export const MAX_VALUE_DEPTH = 16;
export const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/**
 * A scope's name (a site id, say): 1 to 128 characters, no control
 * characters. Names compare exactly, character by character.
 */
export const SCOPE_NAME = /^[^\p{Cc}]{1,128}$/u;
export const MAX_SCOPE_LENGTH = 128;
/** How many scopes one device may be given. */
export const MAX_SCOPES_PER_DEVICE = 500;

/** The codes a change refused for a limit gets; part of the public contract. */
export type LimitCode = "too_deep" | "invalid_text" | "too_large";

export interface LimitBreach {
  code: LimitCode;
  message: string;
}

/**
 * The limits a change's content can break whatever its shape: depth, text
 * PostgreSQL cannot store, and size. Checked before any schema, so a hostile
 * value is measured by iterative walks only (never a recursive one that its
 * depth could overflow). Returns the first breach, or undefined.
 */
export function breachedLimit(change: unknown): LimitBreach | undefined {
  // The change and its fields object are two levels; values add the rest.
  if (nestsDeeperThan(change, MAX_VALUE_DEPTH + 2)) {
    return { code: "too_deep", message: `field values may nest at most ${MAX_VALUE_DEPTH} levels` };
  }
  if (!storableJson(change)) {
    return {
      code: "invalid_text",
      message: "text may not hold a NUL character (U+0000) or a lone surrogate",
    };
  }
  const size = jsonByteLength(change);
  if (size > MAX_CHANGE_BYTES) {
    return {
      code: "too_large",
      message: `the change is ${size} bytes; a change may be at most ${MAX_CHANGE_BYTES}`,
    };
  }
  const fields = (change as { fields?: unknown } | null)?.fields;
  if (fields !== null && typeof fields === "object") {
    for (const [name, value] of Object.entries(fields)) {
      const bytes = jsonByteLength(value);
      if (bytes > MAX_FIELD_BYTES) {
        return {
          code: "too_large",
          message: `field ${name} is ${bytes} bytes; a field may be at most ${MAX_FIELD_BYTES}`,
        };
      }
    }
  }
  return undefined;
}
