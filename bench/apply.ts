import type { Change } from "../core/change.ts";
import { formatHlc } from "../core/hlc.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { migrate } from "../functions/adapters/db/migrate.ts";
import { createPostgresDb } from "../functions/adapters/db/postgres.ts";
import { type ApplyItem, applyChanges } from "../functions/app/apply/apply-changes.ts";
import { createDevice, createProject } from "../functions/app/identity.ts";
import type { BenchResult } from "./main.ts";

const TOTAL_CHANGES = Number(process.env.BENCH_APPLY_CHANGES ?? 20000);

function changesFor(deviceId: string, count: number, startWall: number): Change[] {
  return Array.from({ length: count }, (_, i) => ({
    changeId: crypto.randomUUID(),
    reportId: crypto.randomUUID(),
    op: "upsert" as const,
    hlc: formatHlc({ wall: startWall + i, counter: 0, node: deviceId }),
    fields: { title: `Report ${i}`, severity: i % 5, notes: "checked on site, pump replaced" },
  }));
}

/**
 * The floor applyChanges is compared with: the same report and audit rows it
 * writes for these changes, built beforehand, then serialised and written
 * with one plain set-based insert per table in a transaction of the same
 * size: no locking, no reads, no merging, no hashing.
 */
function rawRows(projectId: string, deviceId: string, batch: Change[]) {
  const now = new Date().toISOString();
  const fieldsOf = (c: Change) => (c.op === "upsert" ? c.fields : {});
  const reports = batch.map((c) => ({
    project_id: projectId,
    id: c.reportId,
    fields: fieldsOf(c),
    clocks: Object.fromEntries(Object.keys(fieldsOf(c)).map((f) => [f, c.hlc])),
    writers: Object.fromEntries(Object.keys(fieldsOf(c)).map((f) => [f, c.changeId])),
    deleted_hlc: null,
    version: 1,
    created_by: deviceId,
    updated_by: deviceId,
  }));
  const audit = batch.map((c) => ({
    project_id: projectId,
    change_id: c.changeId,
    report_id: c.reportId,
    actor_type: "device",
    actor_id: deviceId,
    op: c.op,
    hlc: c.hlc,
    outcome: "applied",
    code: null,
    message: null,
    fields_applied: Object.keys(fieldsOf(c)),
    fields_superseded: [],
    before: Object.fromEntries(Object.keys(fieldsOf(c)).map((f) => [f, null])),
    after: fieldsOf(c),
    received_at: now,
    applied_at: now,
    prev_hash: null,
    hash: "0".repeat(64),
  }));
  return { reports, audit };
}

/** Serialising the rows is part of writing them, as it is for applyChanges. */
async function rawInsert(db: Db, rows: ReturnType<typeof rawRows>): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(
      `insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by)
       select * from jsonb_to_recordset($1::jsonb) as r(project_id uuid, id uuid, fields jsonb, clocks jsonb,
              writers jsonb, deleted_hlc text, version integer, created_by uuid, updated_by uuid)`,
      [JSON.stringify(rows.reports)],
    );
    await tx.query(
      `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash)
       select * from jsonb_to_recordset($1::jsonb) as r(project_id uuid, change_id uuid, report_id uuid,
              actor_type text, actor_id uuid, op text, hlc text, outcome text, code text, message text,
              fields_applied text[], fields_superseded text[], before jsonb, after jsonb, received_at timestamptz,
              applied_at timestamptz, prev_hash text, hash text)`,
      [JSON.stringify(rows.audit)],
    );
  });
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** applyChanges throughput on real PostgreSQL beside raw set-based inserts of the same rows. */
export async function benchApply(): Promise<BenchResult[]> {
  const connectionString = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test";
  const schema = `bench_${Date.now()}`;
  const admin = createPostgresDb({ connectionString });
  await admin.exec(`create schema ${schema}`);
  await admin.exec("create extension if not exists pg_trgm schema public");
  const db = createPostgresDb({ connectionString, schema, max: 2 });
  const results: BenchResult[] = [];
  try {
    await migrate(db);
    const project = await createProject(db, "bench");
    const device = await createDevice(db, project.id, "bench");
    for (const batchSize of [10, 100]) {
      const changes = changesFor(device.id, TOTAL_CHANGES, 1_000_000 * batchSize);
      const raw = changesFor(device.id, TOTAL_CHANGES, 2_000_000 * batchSize);
      const batches = (list: Change[]) =>
        Array.from({ length: Math.ceil(list.length / batchSize) }, (_, i) =>
          list.slice(i * batchSize, (i + 1) * batchSize),
        );
      // Warm both paths (plans, connections) before measuring.
      await applyChanges(
        db,
        changes.slice(0, batchSize).map(
          (change) =>
            ({
              projectId: project.id,
              deviceId: device.id,
              receivedAt: new Date().toISOString(),
              change,
            }) satisfies ApplyItem,
        ),
      );
      await rawInsert(db, rawRows(project.id, device.id, raw.slice(0, batchSize)));

      let applyMs = 0;
      let rawMs = 0;
      const applyBatches = batches(changes.slice(batchSize));
      const rawBatches = batches(raw.slice(batchSize)).map((b) =>
        rawRows(project.id, device.id, b),
      );
      // Interleaved, so both see the same table sizes and machine load.
      for (let i = 0; i < applyBatches.length; i++) {
        const receivedAt = new Date().toISOString();
        applyMs += await timed(() =>
          applyChanges(
            db,
            applyBatches[i]!.map((change) => ({
              projectId: project.id,
              deviceId: device.id,
              receivedAt,
              change,
            })),
          ).then(() => {}),
        );
        rawMs += await timed(() => rawInsert(db, rawBatches[i]!));
      }
      const n = applyBatches.flat().length;
      const applyRate = (n / applyMs) * 1000;
      const rawRate = (n / rawMs) * 1000;
      results.push({
        name: `applyChanges, batch ${batchSize}`,
        value: Math.round(applyRate),
        unit: "changes/s",
        baseline: Math.round(rawRate),
        ratio: applyRate / rawRate,
        target: 0.7,
      });
    }
  } finally {
    await db.close();
    await admin.exec(`drop schema ${schema} cascade`);
    await admin.close();
  }
  return results;
}
