import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "../functions/app/apply/apply-changes.ts";
import { listReports, type ReportQuery } from "../functions/app/read.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { createTestDb, dbTargets, type TestDb } from "./support/db.ts";
import { seedProject } from "./support/fixtures.ts";

describe.each(dbTargets())("read API (%s)", (target) => {
  let t: TestCloud;
  let admin: string;
  let projectId: string;
  let deviceId: string;
  let wall = Date.now() - 60_000;
  beforeAll(async () => {
    t = await startTestCloud(target);
    admin = await t.adminToken();
    projectId = t.cloud.credentials.projects.demo!.id;
    deviceId = (await t.createDevice("seeder")).id;
  });
  afterAll(() => t.stop());

  const upsert = (reportId: string, fields: Record<string, unknown>): ApplyItem => ({
    projectId,
    deviceId,
    receivedAt: new Date().toISOString(),
    change: {
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall: ++wall, counter: 0, node: deviceId }),
      fields: fields as never,
    },
  });
  const get = (path: string) => t.api(path, { token: admin });

  it("finds reports by a case-insensitive substring of any string field, with LIKE's wildcards taken literally", async () => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    const c = crypto.randomUUID();
    await applyChanges(t.testDb.db, [
      upsert(a, { title: "Pump 3 LEAKING near gate", site: "Nørth" }),
      upsert(b, { title: "gate sensor", note: "100%_sure" }),
      upsert(c, { title: "unrelated", count: 7 }),
    ]);
    const ids = async (q: string) =>
      (await get(`/v1/reports?q=${encodeURIComponent(q)}&limit=200`)).body.items.map(
        (r: { id: string }) => r.id,
      );
    expect((await ids("leaking")).sort()).toEqual([a]);
    expect((await ids("GATE")).sort()).toEqual([a, b].sort());
    expect(await ids("nørth")).toEqual([a]);
    expect(await ids("0%_s")).toEqual([b]);
    expect(await ids("%")).toEqual([b]); // a literal percent sign, not "anything"
    expect(await ids("7")).toEqual([]); // numbers are not searched
  });

  it("matches q against each string value as written: quotes, backslashes and control characters, never the stored text's escapes or separators", async () => {
    const quoted = crypto.randomUUID();
    const tabbed = crypto.randomUUID();
    const listed = crypto.randomUUID();
    await applyChanges(t.testDb.db, [
      upsert(quoted, { title: 'valve "V-7" at C:\\plant', note: "kept" }),
      upsert(tabbed, { title: "kx\tky", note: "first line\nsecond line" }),
      upsert(listed, { title: "zzstart", tags: ["zzinside"], zzkey: "value" }),
    ]);
    const ids = async (q: string) =>
      (await get(`/v1/reports?q=${encodeURIComponent(q)}&limit=200`)).body.items.map(
        (r: { id: string }) => r.id,
      );
    expect(await ids('"v-7"')).toEqual([quoted]);
    expect(await ids("c:\\plant")).toEqual([quoted]);
    expect(await ids("kx\tky")).toEqual([tabbed]);
    expect(await ids("line\nsecond")).toEqual([tabbed]);
    // What JSON escaping and the array around the values would add.
    expect(await ids("tky")).toEqual([]); // "\t" escaped
    expect(await ids("nsecond")).toEqual([]); // "\n" escaped
    expect(await ids('plant", "')).toEqual([]); // between two values
    expect(await ids('["zzstart')).toEqual([]);
    // Only top-level string values are searched: no array contents, no keys.
    expect(await ids("zzstart")).toEqual([listed]);
    expect(await ids("zzinside")).toEqual([]);
    expect(await ids("zzkey")).toEqual([]);
  });

  it("filters by update time and by deletion, and returns one report or 404", async () => {
    const kept = crypto.randomUUID();
    const gone = crypto.randomUUID();
    const since = new Date(Date.now() - 1_000).toISOString();
    await applyChanges(t.testDb.db, [
      upsert(kept, { title: "kept" }),
      upsert(gone, { title: "gone" }),
    ]);
    await applyChanges(t.testDb.db, [
      {
        projectId,
        deviceId,
        receivedAt: new Date().toISOString(),
        change: {
          changeId: crypto.randomUUID(),
          reportId: gone,
          op: "delete",
          hlc: formatHlc({ wall: ++wall, counter: 0, node: deviceId }),
        },
      },
    ]);
    const all = (
      await get(`/v1/reports?updatedAfter=${since}&deleted=any&limit=200`)
    ).body.items.map((r: { id: string }) => r.id);
    expect(all).toEqual(expect.arrayContaining([kept, gone]));
    const live = (await get(`/v1/reports?updatedAfter=${since}&limit=200`)).body.items.map(
      (r: { id: string }) => r.id,
    );
    expect(live).toContain(kept);
    expect(live).not.toContain(gone);
    const deleted = (await get(`/v1/reports?deleted=true&limit=200`)).body.items.map(
      (r: { id: string }) => r.id,
    );
    expect(deleted).toEqual([gone]);
    const future = (
      await get(`/v1/reports?updatedAfter=${new Date(Date.now() + 60_000).toISOString()}`)
    ).body.items;
    expect(future).toEqual([]);
    expect((await get(`/v1/reports/${kept}`)).body).toMatchObject({
      id: kept,
      fields: { title: "kept" },
      deleted: false,
    });
    expect((await get(`/v1/reports/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await get("/v1/reports?updatedAfter=yesterday")).body.error.code).toBe(
      "validation_failed",
    );
  });

  it("walks every page and sees each existing report exactly once while new reports are written", async () => {
    const existing = Array.from({ length: 45 }, () => crypto.randomUUID());
    for (let i = 0; i < existing.length; i += 15) {
      await applyChanges(
        t.testDb.db,
        existing.slice(i, i + 15).map((id) => upsert(id, { title: `walk ${id}` })),
      );
    }
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await applyChanges(t.testDb.db, [upsert(crypto.randomUUID(), { title: "walk new" })]);
        // Edits move reports' update times, never their place in the listing.
        await applyChanges(t.testDb.db, [
          upsert(existing[Math.floor(Math.random() * existing.length)]!, { edited: wall }),
        ]);
        // PGlite answers within microtasks: yield, or this loop starves the API.
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/v1/reports?q=walk&limit=7${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...res.body.items.map((r: { id: string }) => r.id));
      cursor = res.body.nextCursor;
      pages++;
      await new Promise((r) => setTimeout(r, 5));
    } while (cursor);
    writing = false;
    await writer;
    expect(pages).toBeGreaterThan(5);
    expect(new Set(seen).size).toBe(seen.length); // nothing twice
    for (const id of existing) expect(seen).toContain(id); // nothing missed
  });

  it("shows a report's history oldest first, the devices with their counters, the status and the audit log", async () => {
    const { agent, deviceId: site } = await t.agent("counted site");
    const report = agent.create({ title: "history" });
    agent.update(report.id, { title: "history, edited" });
    await syncUntilSettled(agent);

    const history = (await get(`/v1/reports/${report.id}/history`)).body.items;
    expect(history.map((h: { op: string; outcome: string }) => h.outcome)).toEqual([
      "applied",
      "applied",
    ]);
    expect(history[0]).toMatchObject({
      actor: { type: "device", id: site },
      op: "upsert",
      after: { title: "history" },
    });
    expect(history[1]).toMatchObject({
      before: { title: "history" },
      after: { title: "history, edited" },
      prevHash: history[0].hash,
    });
    expect(history[0].seq).toBeLessThan(history[1].seq);

    const devices = (await get("/v1/devices")).body.items;
    expect(devices.find((d: { id: string }) => d.id === site)).toMatchObject({
      name: "counted site",
      accepted: 2,
      applied: 2,
      rejected: 0,
      lastPushAt: expect.any(String),
      lastPullAt: expect.any(String),
      revokedAt: null,
    });

    const status = (await get("/v1/status")).body;
    expect(status).toMatchObject({
      queue: { visible: expect.any(Number), inFlight: expect.any(Number), dlq: 0 },
      lastAppliedAt: expect.any(String),
      reports: expect.any(Number),
      devices: expect.any(Number),
    });

    const audit = (await get(`/v1/audit?actor=${site}&limit=1`)).body;
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0].reportId).toBe(report.id);
    const older = (await get(`/v1/audit?actor=${site}&limit=1&cursor=${audit.nextCursor}`)).body;
    expect(older.items[0].seq).toBeLessThan(audit.items[0].seq);
  });

  it("lists the devices oldest first, in pages that together hold each device once", async () => {
    for (const name of ["paged a", "paged b", "paged c"]) await t.createDevice(name);
    const whole = (await get("/v1/devices")).body;
    expect(whole.nextCursor).toBeNull();
    expect(whole.items.length).toBeGreaterThanOrEqual(4);
    const walked: string[] = [];
    let cursor = "";
    do {
      const page = (await get(`/v1/devices?limit=2${cursor && `&cursor=${cursor}`}`)).body;
      expect(page.items.length).toBeLessThanOrEqual(2);
      walked.push(...page.items.map((d: { id: string }) => d.id));
      cursor = page.nextCursor ?? "";
    } while (cursor);
    expect(walked).toEqual(whole.items.map((d: { id: string }) => d.id));
    // Oldest first: the three just registered come last, in order.
    expect(whole.items.slice(-3).map((d: { name: string }) => d.name)).toEqual([
      "paged a",
      "paged b",
      "paged c",
    ]);
    expect((await get("/v1/devices?cursor=forged")).status).toBe(400);
  });

  it("ends a page of history, reports or audit entries before it would pass Lambda's 6 MB answer", async () => {
    // Changes near the 256 KiB limit: each audit entry holds two of them
    // (before and after), each report one.
    const large = (i: number) =>
      Object.fromEntries(
        Array.from({ length: 8 }, (_, f) => [`f${f}`, `${i} `.padEnd(30 * 1024, "x")]),
      );
    const since = new Date(Date.now() - 1_000).toISOString();
    const edited = crypto.randomUUID();
    for (let i = 0; i < 16; i++) await applyChanges(t.testDb.db, [upsert(edited, large(i))]);
    const others = Array.from({ length: 24 }, () => crypto.randomUUID());
    await applyChanges(
      t.testDb.db,
      others.map((id, i) => upsert(id, large(100 + i))),
    );

    const all = async (path: string) => {
      const items: { after: { f0: string }; id: string; reportId: string }[] = [];
      let pages = 0;
      let cursor: string | null = null;
      do {
        const answer = await get(`${path}${cursor ? `&cursor=${cursor}` : ""}`);
        expect(answer.status, path).toBe(200);
        items.push(...answer.body.items);
        cursor = answer.body.nextCursor;
        pages++;
      } while (cursor);
      return { items, pages };
    };
    const history = await all(`/v1/reports/${edited}/history?limit=1000`);
    expect(history.pages).toBeGreaterThan(1);
    expect(history.items.map((h) => Number.parseInt(h.after.f0, 10))).toEqual(
      Array.from({ length: 16 }, (_, i) => i),
    );
    const listed = await all(`/v1/reports?updatedAfter=${since}&limit=200`);
    expect(listed.pages).toBeGreaterThan(1);
    const ours = new Set<string>([edited, ...others]);
    expect(
      listed.items
        .map((r) => r.id)
        .filter((id) => ours.has(id))
        .sort(),
    ).toEqual([...ours].sort());
    const audit = await all(`/v1/audit?after=${since}&limit=200`);
    expect(audit.pages).toBeGreaterThan(1);
    expect(audit.items.filter((a) => ours.has(a.reportId))).toHaveLength(40);
  });
});

// A large table is only meaningful on the server, whose planner the index choice is for.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "read API at 100,000 reports (%s)",
  (target) => {
    let db: TestDb;
    let projectId: string;
    beforeAll(async () => {
      db = await createTestDb(target);
      projectId = (await seedProject(db.db, 0)).project.id;
      await db.db.query(
        `insert into reports (project_id, id, fields, clocks, version, created_at, updated_at)
       select $1, gen_random_uuid(),
              jsonb_build_object('title', 'report ' || g || ' at site ' || (g % 977), 'severity', g % 5),
              '{}', 1, now() - make_interval(secs => g), now() - make_interval(secs => g)
         from generate_series(1, 100000) as g`,
        [projectId],
      );
    });
    afterAll(() => db.drop());

    /**
     * The plans of the exact statements listReports runs, each under the
     * settings it runs with: the walk along the listing index and, when the
     * walk came back short, the lookup through the filters' own indexes.
     */
    async function plans(query: Partial<ReportQuery>): Promise<string[]> {
      const found: string[] = [];
      const explaining: Db = {
        ...db.db,
        transaction: (fn) =>
          db.db.transaction((tx) =>
            fn({
              ...tx,
              async query(sql, params) {
                if (sql.startsWith("select set_config")) return tx.query(sql, params);
                const rows = await tx.query<{ "QUERY PLAN": string }>(`explain ${sql}`, params);
                found.push(rows.map((r) => r["QUERY PLAN"]).join("\n"));
                return tx.query(sql, params);
              },
            }),
          ),
      };
      await listReports(explaining, projectId, { deleted: "false", limit: 50, ...query });
      return found;
    }

    const queries: [string, Partial<ReportQuery>][] = [
      ["the first page", {}],
      // Matches one report in a hundred: the trigram index finds them.
      ["q", { q: "site 42" }],
      // Matches one in twenty of the newest reports: the walk finds a page.
      ["a short q", { q: "t 9" }],
      ["updatedAfter", { updatedAfter: new Date(Date.now() - 3_600_000).toISOString() }],
      [
        "updatedAfter and updatedBefore",
        {
          updatedAfter: new Date(Date.now() - 7_200_000).toISOString(),
          updatedBefore: new Date(Date.now() - 3_600_000).toISOString(),
        },
      ],
      [
        "q and a date range",
        { q: "report 1", updatedAfter: new Date(Date.now() - 3_600_000).toISOString() },
      ],
    ];

    /**
     * The walk reads along the listing index and sorts nothing. The lookup
     * reads no table whole; a `q` alone is served by the one index over the
     * project and the text (no bitmap of the whole project ANDed in); and
     * only the candidates' keys are sorted: the rows are then read by key,
     * in that order (no sort above the join), so at most a page of them.
     */
    function expectIndexed(name: string, query: Partial<ReportQuery>, [walk, lookup]: string[]) {
      expect(walk, name).toMatch(/Index Scan using reports_listing/);
      expect(walk, name).not.toMatch(/Sort|Seq Scan/);
      if (!lookup) return;
      expect(lookup, `${name}: ${lookup}`).not.toMatch(/Seq Scan on reports/);
      if (query.q && !query.updatedAfter)
        expect(lookup, `${name}: ${lookup}`).toMatch(
          /^(?![\s\S]*BitmapAnd)[\s\S]*Bitmap Index Scan on reports_search/,
        );
      const join = lookup.indexOf("Nested Loop");
      expect(join, `${name}: ${lookup}`).toBeGreaterThan(0);
      expect(lookup.indexOf("Sort"), `${name}: ${lookup}`).toBeGreaterThan(join);
    }

    it("pages through a q too rare for the newest reports, newest first, each match once, none of another project", async () => {
      // "site 42" (and 420–429) is in about 1 title in 90: some 22 of each
      // 2,000 rows walked, short of a page of 25, so every page comes from
      // the candidates' lookup.
      const other = (await seedProject(db.db, 0)).project.id;
      await db.db.query(
        `insert into reports (project_id, id, fields, clocks, version)
         values ($1, gen_random_uuid(), '{"title": "report at site 42"}', '{}', 1)`,
        [other],
      );
      const expected = (
        await db.db.query<{ id: string }>(
          `select id from reports where project_id = $1 and lower(fields->>'title') like '%site 42%'
            order by created_at desc, id desc`,
          [projectId],
        )
      ).map((r) => r.id);
      expect(expected.length).toBeGreaterThan(100);
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listReports(db.db, projectId, {
          q: "SITE 42",
          deleted: "false",
          limit: 25,
          cursor,
        });
        seen.push(...page.items.map((r) => r.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(expected);
    });

    // Never analysed first (a new, restored or bulk-loaded database), then analysed.
    it.each(queries)("serves %s from indexes, never analysed", async (name, query) => {
      expectIndexed(name, query, await plans(query));
    });

    it("serves every query from indexes once analysed", async () => {
      await db.db.exec("analyze reports");
      for (const [name, query] of queries) expectIndexed(name, query, await plans(query));
    });
  },
);
