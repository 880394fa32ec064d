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

  it("fails an unreadable message and every one after it, in FIFO order, applying those before", async () => {
    const event = await batch();
    const ids = changeIds(event);
    event.Records[1]!.body = "{not json";
    const consume = create(env.deps);
    const result = await consume(event, lambdaContext("consume", "t"));
    expect(result.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      event.Records[1]!.messageId,
      event.Records[2]!.messageId,
    ]);
    // The first was applied; the third waits for its turn behind the second.
    expect((await audited(ids)).map((r) => r.change_id)).toEqual([ids[0]]);
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
