import type { Change } from "../core/change.ts";
import { formatHlc } from "../core/hlc.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "../functions/app/apply/apply-changes.ts";
import { type BenchDb, benchDb, type Device, fieldsFor, timed, unseen } from "./db.ts";
import type { BenchResult } from "./main.ts";

/**
 * Changes per cell and per side (`BENCH_APPLY_CHANGES`). Enough that the
 * trigram index's pending-list merges (a batch of about 60 ms, every 3,500
 * or so reports written) fall on both sides of a pair several times a cell,
 * not on one side by luck.
 */
const CHANGES = Number(process.env.BENCH_APPLY_CHANGES ?? 12_000);
/** Existing reports each side's updates go to. */
const POOL = 2000;
const CONSUMERS = [1, 4];
const BATCHES = [10, 100];

/** One consumer's work for one round: a batch of changes by two devices. */
export interface Work {
  kind: "new" | "update";
  changes: { device: Device; change: Change }[];
}

/**
 * A way of writing a batch of changes. Every side gets the same workload
 * shape (its own reports, so the sides never lock each other's rows).
 */
interface Side {
  name: string;
  write(db: Db, work: Work, receivedAt: string): Promise<void>;
}

/** The project's path: load, merge, hash, write (`functions/app/apply`). */
export const applySide: Side = {
  name: "applyChanges",
  async write(db, { changes }, receivedAt) {
    await applyChanges(
      db,
      changes.map(
        ({ device, change }): ApplyItem => ({
          projectId: device.projectId,
          deviceId: device.id,
          receivedAt,
          change,
        }),
      ),
    );
  },
};

/** The rows a batch writes, without reading, merging or hashing anything. */
function rowsOf({ kind, changes }: Work, receivedAt: string) {
  const reports = new Map<string, Record<string, unknown>>();
  const audit = changes.map(({ device, change }) => {
    // A new report's first row starts its chain (no predecessor), as applyChanges writes it.
    const starts = kind === "new" && !reports.has(change.reportId);
    const fields = change.op === "upsert" ? change.fields : {};
    const keys = Object.keys(fields);
    const report = reports.get(change.reportId) ?? {
      project_id: device.projectId,
      id: change.reportId,
      fields: {},
      clocks: {},
      writers: {},
      version: 0,
      created_by: device.id,
    };
    Object.assign(report.fields as object, fields);
    for (const k of keys) {
      (report.clocks as Record<string, string>)[k] = change.hlc;
      (report.writers as Record<string, string>)[k] = change.changeId;
    }
    report.version = (report.version as number) + 1;
    report.updated_by = device.id;
    report.head = "f".repeat(64);
    reports.set(change.reportId, report);
    return {
      project_id: device.projectId,
      change_id: change.changeId,
      report_id: change.reportId,
      actor_type: "device",
      actor_id: device.id,
      op: change.op,
      hlc: change.hlc,
      outcome: "applied",
      fields_applied: keys,
      before: Object.fromEntries(keys.map((k) => [k, null])),
      after: fields,
      received_at: receivedAt,
      prev_hash: starts ? null : "e".repeat(64),
      hash: "f".repeat(64),
      // The seed of the row's value salts, as long as applyChanges' own.
      seed: "s".repeat(22),
    };
  });
  return { reports: [...reports.values()], audit };
}

const AUDIT_COLUMNS = `project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, fields_applied,
  before, after, received_at, applied_at, prev_hash, hash, seed`;
const AUDIT_RECORD = `project_id uuid, change_id uuid, report_id uuid, actor_type text, actor_id uuid, op text,
  hlc text, outcome text, fields_applied text[], before jsonb, after jsonb, received_at timestamptz,
  prev_hash text, hash text, seed text`;
const REPORT_RECORD = `project_id uuid, id uuid, fields jsonb, clocks jsonb, writers jsonb, version integer,
  created_by uuid, updated_by uuid, head text`;

/**
 * Anchor (a): the same report (with its chain head) and audit rows written
 * into the project's own tables with one set-based statement per table
 * (reports inserted, or updated by merging the batch's fields in), in a
 * transaction.
 */
export const rawSide: Side = {
  name: "(a) raw writes, own schema",
  async write(db, work, receivedAt) {
    const { reports, audit } = rowsOf(work, receivedAt);
    await db.transaction(async (tx) => {
      if (work.kind === "new") {
        await tx.query(
          `insert into reports (project_id, id, fields, clocks, writers, version, created_by, updated_by, chain_head)
           select project_id, id, fields, clocks, writers, version, created_by, updated_by, head
             from jsonb_to_recordset($1::jsonb) as r(${REPORT_RECORD})`,
          [JSON.stringify(reports)],
        );
      } else {
        // Upserts, so the rows are found through the primary keys however
        // young the tables are (an update joined to the batch would be
        // planned as a hash over the whole table).
        await tx.query(
          `insert into reports (project_id, id, fields, clocks, writers, version, created_by, updated_by, chain_head)
           select project_id, id, fields, clocks, writers, version, created_by, updated_by, head
             from jsonb_to_recordset($1::jsonb) as r(${REPORT_RECORD})
           on conflict (id, project_id) do update
              set fields = reports.fields || excluded.fields, clocks = reports.clocks || excluded.clocks,
                  writers = reports.writers || excluded.writers,
                  version = reports.version + excluded.version, updated_by = excluded.updated_by,
                  chain_head = excluded.chain_head, updated_at = now(), xid = pg_current_xact_id()`,
          [JSON.stringify(reports)],
        );
      }
      await tx.query(
        `insert into audit_log (${AUDIT_COLUMNS})
         select ${AUDIT_COLUMNS.replace("applied_at", "now()")}
           from jsonb_to_recordset($1::jsonb) as a(${AUDIT_RECORD})`,
        [JSON.stringify(audit)],
      );
    });
  },
};

/** Anchor (b): the same rows into a lean schema: two tables, primary keys only. */
const leanSide: Side = {
  name: "(b) raw writes, lean schema",
  async write(db, work, receivedAt) {
    const { reports, audit } = rowsOf(work, receivedAt);
    await db.transaction(async (tx) => {
      await tx.query(
        `insert into lean_reports (project_id, id, fields, clocks, writers, version, created_by, updated_by)
         select project_id, id, fields, clocks, writers, version, created_by, updated_by
           from jsonb_to_recordset($1::jsonb) as r(${REPORT_RECORD})
         on conflict (project_id, id) do update
            set fields = lean_reports.fields || excluded.fields, clocks = lean_reports.clocks || excluded.clocks,
                writers = lean_reports.writers || excluded.writers,
                version = lean_reports.version + excluded.version,
                updated_by = excluded.updated_by, updated_at = now()`,
        [JSON.stringify(reports)],
      );
      await tx.query(
        `insert into lean_audit (${AUDIT_COLUMNS})
         select ${AUDIT_COLUMNS.replace("applied_at", "now()")}
           from jsonb_to_recordset($1::jsonb) as a(${AUDIT_RECORD})`,
        [JSON.stringify(audit)],
      );
    });
  },
};

/** Anchor (c): what a first prototype does: one autocommit insert per change. */
const naiveSide: Side = {
  name: "(c) naive insert per change",
  async write(db, { changes }, receivedAt) {
    for (const { device, change } of changes) {
      await db.query(
        `insert into naive_changes (change_id, project_id, report_id, device_id, hlc, fields, received_at)
         values ($1, $2, $3, $4, $5, $6, $7)`,
        [
          change.changeId,
          device.projectId,
          change.reportId,
          device.id,
          change.hlc,
          JSON.stringify(change.op === "upsert" ? change.fields : {}),
          receivedAt,
        ],
      );
    }
  },
};

export const ANCHOR_TABLES = `
  create table lean_reports (
    project_id uuid not null, id uuid not null, fields jsonb not null, clocks jsonb not null,
    writers jsonb not null, deleted_hlc text, version integer not null, created_by uuid, updated_by uuid,
    created_at timestamptz not null default now(), updated_at timestamptz not null default now(),
    primary key (project_id, id));
  create table lean_audit (
    seq bigint generated always as identity primary key, project_id uuid not null, change_id uuid not null,
    report_id uuid, actor_type text not null, actor_id uuid not null, op text, hlc text, outcome text not null,
    fields_applied text[] not null default '{}', before jsonb not null, after jsonb not null,
    received_at timestamptz not null, applied_at timestamptz not null, prev_hash text, hash text, seed text);
  create table naive_changes (
    change_id uuid primary key, project_id uuid not null, report_id uuid not null, device_id uuid not null,
    hlc text not null, fields jsonb not null, received_at timestamptz not null);`;

/**
 * A workload for one side: `rounds` batches per consumer. New reports (each
 * change's base names its fields as unseen, as the agent's first write of a
 * report does), or edits of one to three fields of the consumer's own share of a pool of
 * existing reports, by two devices: one edit in ten carries an older clock
 * (its fields lose), one in five names a base its device did not see (a
 * conflict when the other device wrote last).
 */
export class Workload {
  private wall = 2_000_000_000_000;
  constructor(
    private readonly devices: Device[],
    private readonly pool: string[] = [],
  ) {}

  rounds(kind: Work["kind"], batch: number, consumers: number, changes = CHANGES): Work[][] {
    const rounds = Math.ceil(changes / (batch * consumers));
    const shares = Array.from({ length: consumers }, (_, consumer) =>
      this.pool.filter((_, i) => i % consumers === consumer),
    );
    return Array.from({ length: rounds }, () =>
      shares.map((share) =>
        kind === "new"
          ? this.work("new", batch, () => crypto.randomUUID())
          : this.work("update", batch, () => share[Math.floor(Math.random() * share.length)]!),
      ),
    );
  }

  /** Makes the reports `work` creates part of the pool later edits go to. */
  adopt(work: Work): void {
    for (const { change } of work.changes) this.pool.push(change.reportId);
  }

  /** `count` new reports, in batches of 100, for the pool once written. */
  seeding(count: number): Work[] {
    return Array.from({ length: Math.ceil(count / 100) }, (_, b) =>
      this.work("new", Math.min(100, count - b * 100), () => crypto.randomUUID()),
    );
  }

  /** Batches alternating between new reports and edits of the pool, which takes the new ones in. */
  mixed(changes: number, batch: number): Work[] {
    return Array.from({ length: Math.ceil(changes / batch) }, (_, i) => {
      const [[work]] = this.rounds(i % 2 ? "update" : "new", batch, 1, batch) as [[Work]];
      if (work.kind === "new") this.adopt(work);
      return work;
    });
  }

  private work(kind: Work["kind"], size: number, reportId: (i: number) => string): Work {
    const changes = Array.from({ length: size }, (_, i) => {
      const device = this.devices[i % 2]!;
      this.wall += 1;
      const stale = kind === "update" && i % 10 === 3;
      const fields = fieldsFor(this.wall, kind === "new" ? 3 : 1 + (i % 3));
      const change: Change = {
        changeId: crypto.randomUUID(),
        reportId: reportId(i),
        op: "upsert",
        hlc: formatHlc({ wall: this.wall - (stale ? 10_000_000 : 0), counter: 0, node: device.id }),
        fields,
        ...(kind === "new"
          ? { base: unseen(fields) }
          : i % 5 === 1
            ? { base: { title: formatHlc({ wall: 1, counter: 0, node: device.id }) } }
            : {}),
      };
      return { device, change };
    });
    return { kind, changes };
  }
}

/**
 * applyChanges beside its three anchors, in a matrix: new reports or
 * updates, batches of 10 and 100, one or four consumers (disjoint reports,
 * as SQS FIFO message groups guarantee), on a database created for the run
 * and never analysed. The four sides take turns round by round, so all see
 * the same table sizes and machine load.
 */
export async function benchApply(): Promise<BenchResult[]> {
  const bench = await benchDb(5);
  try {
    await bench.db.exec(ANCHOR_TABLES);
    const sides = await Promise.all(
      [applySide, rawSide, leanSide, naiveSide].map(async (side) => ({
        side,
        workload: await seedSide(bench, side),
        ms: 0,
      })),
    );
    const results: BenchResult[] = [];
    for (const kind of ["new", "update"] as const) {
      for (const batch of BATCHES) {
        for (const consumers of CONSUMERS) {
          const rounds = sides.map(({ workload }) => workload.rounds(kind, batch, consumers));
          for (const s of sides) s.ms = 0;
          for (let round = 0; round < rounds[0]!.length; round++) {
            const receivedAt = new Date().toISOString();
            // A different side first each round: none always runs on a cold cache.
            for (let k = 0; k < sides.length; k++) {
              const index = (round + k) % sides.length;
              const s = sides[index]!;
              s.ms += await timed(() =>
                Promise.all(
                  rounds[index]![round]!.map((work) => s.side.write(bench.db, work, receivedAt)),
                ),
              );
            }
          }
          const n = rounds[0]!.flat().reduce((sum, w) => sum + w.changes.length, 0);
          const rate = (ms: number) => (n / ms) * 1000;
          const [apply, raw, lean, naive] = sides.map((s) => rate(s.ms)) as [
            number,
            number,
            number,
            number,
          ];
          const cell = `${kind === "new" ? "new reports" : "updates"}, batch ${batch}, ${consumers} consumer${consumers > 1 ? "s" : ""}`;
          results.push(
            result(`applyChanges vs (a), ${cell}`, apply, raw, 0.7, "changes/s"),
            result(`applyChanges vs (c), ${cell}`, apply, naive, 1, "changes/s"),
            result(`(a) vs (b), ${cell}`, raw, lean, 0.6, "changes/s"),
          );
        }
      }
    }
    return results;
  } finally {
    await bench.drop();
  }
}

/** Each side's two devices and pool of existing reports, written its own way. */
async function seedSide(bench: BenchDb, side: Side): Promise<Workload> {
  const workload = new Workload(await bench.devices(2));
  for (const work of workload.seeding(POOL)) {
    await side.write(bench.db, work, new Date().toISOString());
    workload.adopt(work);
  }
  return workload;
}

export function result(
  name: string,
  value: number,
  baseline: number,
  target: number,
  unit: string,
): BenchResult {
  return {
    name,
    value: Math.round(value),
    unit,
    baseline: Math.round(baseline),
    ratio: value / baseline,
    target,
  };
}
