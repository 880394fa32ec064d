import type { SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { createTestDb, dbTargets, type TestDb } from "../test/support/db.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { seedProject } from "../test/support/fixtures.ts";
import { create } from "./consume.ts";

describe.each(dbTargets())("consume (SQS FIFO) on %s", (target) => {
  let t: TestDb;
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let vars: Record<string, string>;
  beforeAll(async () => {
    t = await createTestDb(target);
    env = await handlerDeps(t.db);
    const { project, devices } = await seedProject(t.db, 1);
    vars = { project: project.id, sub: devices[0]!.id };
  });
  afterAll(async () => {
    await env.stop();
    await t.drop();
  });

  /** The sample batch with fresh change and report ids, so each test applies its own changes. */
  const batch = async () => {
    const event = await loadEvent<SQSEvent>("events/sqs/changes-fifo.json", vars);
    const reports = new Map<string, string>();
    for (const record of event.Records) {
      const body = JSON.parse(record.body);
      const reportId = reports.get(body.change.reportId) ?? crypto.randomUUID();
      reports.set(body.change.reportId, reportId);
      body.change.changeId = crypto.randomUUID();
      body.change.reportId = reportId;
      record.body = JSON.stringify(body);
      record.attributes.MessageGroupId = `${vars.project}:${reportId}`;
      record.attributes.MessageDeduplicationId = body.change.changeId;
    }
    return event;
  };
  const changeIds = (event: SQSEvent) =>
    event.Records.map((r) => JSON.parse(r.body).change.changeId as string);
  const audited = async (ids: string[]) =>
    await t.db.query<{ change_id: string; outcome: string }>(
      "select change_id, outcome from audit_log where change_id = any($1::uuid[]) order by seq",
      [ids],
    );

  it("applies the whole batch and reports no failures", async () => {
    const event = await batch();
    const consume = create(env.deps);
    expect(await consume(event, lambdaContext("consume", "t"))).toEqual({ batchItemFailures: [] });
    expect((await audited(changeIds(event))).map((r) => r.outcome)).toEqual([
      "applied",
      "applied",
      "applied",
    ]);
  });

  // The sample batch: records 0 and 1 edit one report, record 2 another.
  it("fails an unreadable message and what follows it in its report, applying every other", async () => {
    const event = await batch();
    const ids = changeIds(event);
    event.Records[0]!.body = "{not json";
    const consume = create(env.deps);
    const result = await consume(event, lambdaContext("consume", "t"));
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      event.Records[0]!.messageId,
      event.Records[1]!.messageId,
    ]);
    // The second waits for its turn behind the first; the other report goes ahead.
    expect((await audited(ids)).map((r) => r.change_id)).toEqual([ids[2]]);
  });

  it("lets a change the database keeps refusing hold back only its own report", async () => {
    const event = await batch();
    const ids = changeIds(event);
    const stuck = JSON.parse(event.Records[0]!.body).change.reportId;
    await t.db.exec(`
      create function refuse_report() returns trigger language plpgsql as $$
        begin raise exception 'storage fault'; end $$;
      create trigger refuse_report before insert or update on reports for each row
        when (new.id = '${stuck}') execute function refuse_report();`);
    try {
      const result = await create(env.deps)(event, lambdaContext("consume", "t"));
      expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
        event.Records[0]!.messageId,
        event.Records[1]!.messageId,
      ]);
      expect((await audited(ids)).map((r) => r.change_id)).toEqual([ids[2]]);
    } finally {
      await t.db.exec("drop trigger refuse_report on reports; drop function refuse_report();");
    }
    // Redelivered once the fault is gone, the held-back changes apply in order.
    const retry = { Records: event.Records.slice(0, 2) };
    expect(await create(env.deps)(retry, lambdaContext("consume", "t"))).toEqual({
      batchItemFailures: [],
    });
    expect((await audited(ids)).map((r) => r.change_id)).toEqual([ids[2], ids[0], ids[1]]);
  });

  it("records a readable change that breaks the schema as rejected and acknowledges it", async () => {
    const event = await batch();
    const body = JSON.parse(event.Records[0]!.body);
    body.change.fields = { "not a field": 1 };
    event.Records[0]!.body = JSON.stringify(body);
    const consume = create(env.deps);
    expect(await consume(event, lambdaContext("consume", "t"))).toEqual({ batchItemFailures: [] });
    expect((await audited(changeIds(event))).map((r) => r.outcome)).toEqual([
      "rejected",
      "applied",
      "applied",
    ]);
  });

  it("fails every message when the database is down, so SQS redelivers them in order", async () => {
    const event = await batch();
    const broken = await createTestDb(target);
    await broken.drop();
    const consume = create({ ...env.deps, db: broken.db });
    const result = await consume(event, lambdaContext("consume", "t"));
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(
      event.Records.map((r) => r.messageId),
    );
  });

  it("is idempotent across redelivery of the same messages", async () => {
    const event = await batch();
    const consume = create(env.deps);
    await consume(event, lambdaContext("consume", "t"));
    await consume(event, lambdaContext("consume", "t"));
    expect(await audited(changeIds(event))).toHaveLength(3);
    const hlcs = event.Records.map((r) => JSON.parse(r.body).change.hlc);
    expect(hlcs[0]).toBe(formatHlc({ wall: 1_795_352_400_000, counter: 0, node: vars.sub! }));
  });
});
