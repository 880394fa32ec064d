import type { Change } from "../change.ts";
import type { ReportState } from "../merge.ts";

/**
 * The specification of the merged state, written without any notion of
 * order: a report with a delete is a tombstone at its greatest delete stamp;
 * otherwise each field holds the value of the upsert with the greatest HLC
 * among those that name it.
 */
export function referenceState(changes: Change[]): Map<string, ReportState> {
  const byReport = new Map<string, Change[]>();
  for (const c of new Map(changes.map((c) => [c.changeId, c])).values()) {
    byReport.set(c.reportId, [...(byReport.get(c.reportId) ?? []), c]);
  }
  const states = new Map<string, ReportState>();
  for (const [reportId, list] of byReport) {
    const deletes = list.filter((c) => c.op === "delete").map((c) => c.hlc);
    if (deletes.length) {
      states.set(reportId, {
        fields: {},
        clocks: {},
        writers: {},
        deletedHlc: deletes.sort().at(-1)!,
      });
      continue;
    }
    const state: ReportState = { fields: {}, clocks: {}, writers: {}, deletedHlc: null };
    for (const c of list) {
      if (c.op !== "upsert") continue;
      for (const [field, value] of Object.entries(c.fields)) {
        const clock = state.clocks[field];
        if (clock === undefined || clock < c.hlc) {
          state.fields[field] = value;
          state.clocks[field] = c.hlc;
          state.writers[field] = c.changeId;
        }
      }
    }
    states.set(reportId, state);
  }
  return states;
}
