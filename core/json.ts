/** Any value JSON can carry. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

export type JsonObject = { [key: string]: JsonValue };

const encoder = new TextEncoder();

/** Size in bytes of a value's JSON serialization (UTF-8). */
export function jsonByteLength(value: unknown): number {
  return encoder.encode(JSON.stringify(value)).byteLength;
}

/**
 * Whether a value nests arrays and objects more than `limit` deep. Iterative,
 * so a hostile value cannot exhaust the stack while being checked.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== "object") continue;
    if (depth + 1 > limit) return true;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Whether PostgreSQL can store the text: no NUL character and no lone UTF-16
 * surrogate (neither exists in its text or jsonb types). A value that cannot
 * be stored must be refused at the door, or it would fail every batch it is in.
 */
export function storableText(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

/** Whether every string (keys included) in a JSON value is storable. */
export function storableJson(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === "string") {
      if (!storableText(current)) return false;
    } else if (current !== null && typeof current === "object") {
      for (const [key, child] of Object.entries(current)) {
        if (!storableText(key)) return false;
        stack.push(child);
      }
    }
  }
  return true;
}

/**
 * Whether a value is JSON: null, a boolean, a finite number, a string, or
 * arrays and plain objects of those. Iterative, like the walks above.
 */
export function isJsonValue(value: unknown): value is JsonValue {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (current === null || typeof current === "string" || typeof current === "boolean") continue;
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return false;
      continue;
    }
    const plain =
      typeof current === "object" &&
      (Array.isArray(current) ||
        [Object.prototype, null].includes(Object.getPrototypeOf(current) as object | null));
    if (!plain) return false;
    for (const child of Object.values(current)) stack.push(child);
  }
  return true;
}
