import type { Conflict, Report } from "../core/types.ts";

/* What the CLI prints for people (with --json it prints the documents themselves). */

/** "1 report", "2 reports". */
export const counted = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** A report: its id, version and time, then a field a line. */
export function formatReport(r: Report): string {
  const lines = [
    `${r.id}${r.deleted ? " (deleted)" : ""}  version ${r.version}  updated ${r.updatedAt}`,
  ];
  for (const [k, v] of Object.entries(r.fields)) lines.push(`  ${k} = ${JSON.stringify(v)}`);
  return lines.join("\n");
}

/** One conflict on a line; this device's side is named as such, the other by its device id. */
export function formatConflict(c: Conflict, self: string | null): string {
  const side = (s: Conflict["winner"]) =>
    `${JSON.stringify(s.value)} (${s.deviceId === self ? "this device" : s.deviceId})`;
  return `${c.reportId} ${c.field}: kept ${side(c.winner)} over ${side(c.loser)} at ${c.detectedAt}`;
}
