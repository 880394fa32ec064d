import { DatabaseResumingException } from "@aws-sdk/client-rds-data";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatHlc } from "../../../core/hlc.ts";
import { DataApiEmulator } from "../../../test/support/data-api-emulator.ts";
import { seedProject } from "../../../test/support/fixtures.ts";
import { applyChanges } from "../../app/apply/apply-changes.ts";
import { verifyAuditChains } from "../../app/audit.ts";
import { listDevices } from "../../app/fleet.ts";
import { pull } from "../../app/pull.ts";
import { listAudit, listConflicts, listReports, projectCounts } from "../../app/read.ts";
import { createDataApiDb, toNamedSql, toSqlParameter } from "./data-api.ts";
import { type Db, isTransientDbError } from "./db.ts";
import { migrate } from "./migrate.ts";
import { pgliteDb } from "./pglite.ts";

const ARNS = {
  resourceArn: "arn:aws:rds:eu-west-1:123456789012:cluster:edge-sync",
  secretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:edge-sync-db",
  database: "edge_sync",
};

describe("Data API parameters", () => {
  it("turns positional placeholders into named ones and keeps casts", () => {
    expect(toNamedSql("select $1::uuid[], $10, x::text from t where a = $2")).toBe(
      "select :p1::uuid[], :p10, x::text from t where a = :p2",
    );
  });

  it("binds each JS value as the Data API needs it, with a type hint where a string is not varchar", () => {
    const id = "0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01";
    const at = new Date("2026-11-22T10:11:12.345Z");
    expect(toSqlParameter("p", id)).toEqual({
      name: "p",
      value: { stringValue: id },
      typeHint: "UUID",
    });
    expect(toSqlParameter("p", at)).toEqual({
      name: "p",
      value: { stringValue: "2026-11-22 10:11:12.345" },
      typeHint: "TIMESTAMP",
    });
    expect(toSqlParameter("p", "2026-11-22T12:11:12.345+02:00").value).toEqual({
      stringValue: "2026-11-22 10:11:12.345",
    });
    expect(toSqlParameter("p", { a: [1, "x"] })).toEqual({
      name: "p",
      value: { stringValue: '{"a":[1,"x"]}' },
      typeHint: "JSON",
    });
    expect(toSqlParameter("p", 7).value).toEqual({ longValue: 7 });
    expect(toSqlParameter("p", 7n).value).toEqual({ longValue: 7 });
    expect(toSqlParameter("p", 0.5).value).toEqual({ doubleValue: 0.5 });
    expect(toSqlParameter("p", false).value).toEqual({ booleanValue: false });
    expect(toSqlParameter("p", null).value).toEqual({ isNull: true });
    expect(toSqlParameter("p", "pump 3")).toEqual({ name: "p", value: { stringValue: "pump 3" } });
    expect(toSqlParameter("p", ["a", 'b"c', "d\\e", null]).value).toEqual({
      stringValue: '{"a","b\\"c","d\\\\e",NULL}',
    });
  });
});

describe("the Data API adapter over an emulated Data API", () => {
  let emulator: DataApiEmulator;
  let db: Db;
  beforeEach(async () => {
    emulator = await DataApiEmulator.create();
    await migrate(pgliteDb(emulator.pglite));
    db = createDataApiDb({ client: emulator, ...ARNS, pageRows: 100 });
  });
  afterEach(() => emulator.close());

  it("reads results typed like the other adapters: times as Date, JSON parsed, int8 as number, arrays", async () => {
    const [row] = await db.query<Record<string, unknown>>(
      `select $1::timestamptz as at, $2::jsonb as doc, 9007199254740991::int8 as big, true as yes,
              $3::text[] as names, null::text as nothing, $4::uuid as id, $5 as plain`,
      [
        new Date("2026-11-22T10:11:12.345Z"),
        { a: [1, { b: null }] },
        ["x", 'y"z', "a,b", "{}"],
        "0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01",
        "0190f1d2",
      ],
    );
    expect(row).toEqual({
      at: new Date("2026-11-22T10:11:12.345Z"),
      doc: { a: [1, { b: null }] },
      big: 9007199254740991,
      yes: true,
      names: ["x", 'y"z', "a,b", "{}"],
      nothing: null,
      id: "0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01",
      plain: "0190f1d2",
    });
  });

  it("runs a transaction under one transaction id, committing it, or rolling it back on a throw", async () => {
    await db.exec("create table t (n int primary key)");
    await db.transaction(async (tx) => {
      await tx.query("insert into t values ($1)", [1]);
      await tx.query("insert into t values ($1)", [2]);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query("insert into t values ($1)", [3]);
        await tx.query("insert into t values ($1)", [1]);
      }),
    ).rejects.toMatchObject({ code: "23505" });
    expect(await db.query("select n from t order by n")).toEqual([{ n: 1 }, { n: 2 }]);
    const inTx = emulator.sent.filter((s) => s.sql.startsWith("insert"));
    expect(inTx.map((s) => s.parameters[0]?.value)).toEqual([
      { longValue: 1 },
      { longValue: 2 },
      { longValue: 3 },
      { longValue: 1 },
    ]);
    expect(new Set(inTx.slice(0, 2).map((s) => s.transactionId)).size).toBe(1);
    expect(inTx[0]!.transactionId).not.toBe(inTx[2]!.transactionId);
  });

  it("reads a result over the response limit through a cursor, page by page, halving pages that are still too large", async () => {
    emulator.responseLimit = 16 * 1024;
    const rows = await db.query<{ n: number; pad: string }>(
      "select n, repeat('x', 200) as pad from generate_series(1, $1::int) as n order by n",
      [1000],
    );
    expect(rows.map((r) => r.n)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    const sql = emulator.sent.map((s) => s.sql);
    expect(sql.some((s) => s.startsWith("declare edge_sync_page scroll cursor for select"))).toBe(
      true,
    );
    // 100 rows of ~230 bytes are over 16 KiB; 50 are not.
    expect(sql).toContain("fetch forward 100 from edge_sync_page");
    expect(sql).toContain("fetch forward 50 from edge_sync_page");
    expect(sql.at(-1)).toBe("close edge_sync_page");
  });

  it("calls a resuming database's error transient, so the batch is retried", () => {
    const resuming = new DatabaseResumingException({ message: "resuming", $metadata: {} });
    expect(isTransientDbError(resuming)).toBe(true);
  });

  it("runs the project's write and read paths, sending only named, typed parameters", async () => {
    const { project, devices } = await seedProject(db, 2);
    const [a, b] = devices.map((d) => d.id) as [string, string];
    const reportId = crypto.randomUUID();
    const now = Date.now();
    const change = (device: string, ms: number, title: string, base?: Record<string, string>) => ({
      projectId: project.id,
      deviceId: device,
      receivedAt: new Date(now).toISOString(),
      change: {
        changeId: crypto.randomUUID(),
        reportId,
        op: "upsert" as const,
        hlc: formatHlc({ wall: ms, counter: 0, node: device }),
        fields: { title },
        ...(base ? { base } : {}),
      },
    });
    const first = change(a, now, "Pump 3");
    await applyChanges(db, [first]);
    const acks = await applyChanges(db, [
      change(a, now + 10, "Pump 3, closed", { title: first.change.hlc }),
      change(b, now + 5, "Pump 3, flooded", { title: first.change.hlc }),
    ]);
    expect(acks.map((ack) => ack.outcome)).toEqual(["applied", "superseded"]);

    const page = await pull(db, {
      projectId: project.id,
      deviceId: b,
      cursor: undefined,
      limit: 10,
    });
    expect(page.reports[0]?.fields).toEqual({ title: "Pump 3, closed" });
    expect(page.conflicts).toHaveLength(1);
    const reports = await listReports(db, project.id, {
      q: "closed",
      updatedAfter: new Date(now - 60_000).toISOString(),
      deleted: "false",
      limit: 10,
    });
    expect(reports.items.map((r) => r.id)).toEqual([reportId]);
    expect((await listConflicts(db, project.id, { limit: 10 })).items).toHaveLength(1);
    expect((await listAudit(db, project.id, { actor: b, limit: 10 })).items).toHaveLength(1);
    const listed = (await listDevices(db, project.id, Date.now())).items;
    expect(listed.map((d) => [d.applied, d.superseded, d.conflicts])).toEqual([
      [2, 0, 1],
      [0, 1, 1],
    ]);
    expect(await projectCounts(db, project.id)).toMatchObject({ reports: 1, conflicts: 1 });
    expect(await verifyAuditChains(db, project.id)).toEqual({
      ok: true,
      checked: 3,
      signed: 0,
      unsigned: 3,
      complete: true,
      nextCursor: null,
    });

    expect(emulator.sent.length).toBeGreaterThan(10);
    for (const { sql, parameters } of emulator.sent) {
      expect(sql).not.toMatch(/(?<![\w$])\$\d/);
      for (const p of parameters) {
        expect(p.name).toMatch(/^p\d+$/);
        expect(sql).toContain(`:${p.name}`);
        const text = p.value?.stringValue;
        if (text && /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(text)) expect(p.typeHint).toBe("UUID");
      }
    }
  });
});
