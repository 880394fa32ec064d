/**
 * Hybrid logical clocks (Kulkarni et al. 2014, "Logical Physical Clocks").
 *
 * A stamp is wall milliseconds, a counter and the node (device id). Its string
 * form sorts byte-wise in causal order, so PostgreSQL can compare stamps with
 * `COLLATE "C"` and JavaScript with `<`:
 *
 * ```
 * 001763800000000:000003:6f1c2d9e-…
 * ```
 */
export interface Hlc {
  readonly wall: number;
  readonly counter: number;
  readonly node: string;
}

export class HlcError extends Error {
  override name = "HlcError";
}

const WALL_DIGITS = 15;
const COUNTER_DIGITS = 6;
export const MAX_COUNTER = 10 ** COUNTER_DIGITS - 1;
const NODE = "[A-Za-z0-9_-]{1,64}";
const HLC_PATTERN = new RegExp(`^(\\d{${WALL_DIGITS}}):(\\d{${COUNTER_DIGITS}}):(${NODE})$`);

/** Matches the string form of an HLC; used by the change schema. */
export const hlcPattern = HLC_PATTERN;

export function formatHlc({ wall, counter, node }: Hlc): string {
  return `${String(wall).padStart(WALL_DIGITS, "0")}:${String(counter).padStart(COUNTER_DIGITS, "0")}:${node}`;
}

/** Parses the string form, or returns undefined when it is not one. */
export function parseHlc(text: string): Hlc | undefined {
  const match = HLC_PATTERN.exec(text);
  if (!match) return undefined;
  const wall = Number(match[1]);
  if (!Number.isSafeInteger(wall)) return undefined;
  return { wall, counter: Number(match[2]), node: match[3]! };
}

/**
 * The node (device id) of a stamp already known to be well-formed: what
 * follows the fixed-width wall and counter. Cheaper than parsing, for hot
 * paths.
 */
export function hlcNode(text: string): string {
  return text.slice(WALL_DIGITS + COUNTER_DIGITS + 2);
}

/** The wall time (ms) of a stamp already known to be well-formed, without parsing it. */
export function hlcWall(text: string): number {
  return Number(text.slice(0, WALL_DIGITS));
}

/** Byte-wise comparison of string forms, which is causal order. */
export function compareHlc(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function checked(hlc: Hlc): Hlc {
  if (hlc.counter > MAX_COUNTER) {
    throw new HlcError("HLC counter overflow: too many events within one millisecond");
  }
  return hlc;
}

/** Send or local event: the next stamp after `previous` at wall time `nowMs`. */
export function tickHlc(previous: Hlc, nowMs: number): Hlc {
  const wall = Math.max(previous.wall, nowMs);
  const counter = wall === previous.wall ? previous.counter + 1 : 0;
  return checked({ wall, counter, node: previous.node });
}

/** Receive event: merge a remote stamp (or a server time, as counter 0) into the local clock. */
export function receiveHlc(
  previous: Hlc,
  remote: Pick<Hlc, "wall" | "counter">,
  nowMs: number,
): Hlc {
  const wall = Math.max(previous.wall, remote.wall, nowMs);
  let counter = 0;
  if (wall === previous.wall && wall === remote.wall) {
    counter = Math.max(previous.counter, remote.counter) + 1;
  } else if (wall === previous.wall) {
    counter = previous.counter + 1;
  } else if (wall === remote.wall) {
    counter = remote.counter + 1;
  }
  return checked({ wall, counter, node: previous.node });
}

/**
 * How far ahead of the server's clock a stamp is, in milliseconds (negative
 * when behind). Ingest refuses stamps more than `MAX_CLOCK_SKEW_MS` ahead, so
 * a device with a fast clock cannot win every conflict forever.
 */
export function hlcSkewMs(hlc: Hlc, serverNowMs: number): number {
  return hlc.wall - serverNowMs;
}
