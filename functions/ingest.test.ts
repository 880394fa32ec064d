import { CreateQueueCommand, PurgeQueueCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { createSqsQueue } from "./adapters/queue.ts";
import { create } from "./ingest.ts";

const deviceId = "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f";
const projectId = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";

describe("ingest (POST /v1/changes)", () => {
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let handler: ReturnType<typeof create>;
  beforeAll(async () => {
    env = await handlerDeps();
    handler = create(env.deps);
  });
  afterAll(() => env.stop());
  beforeEach(async () => {
    await env.client.send(new PurgeQueueCommand({ QueueUrl: env.queues.queueUrl }));
  });

  const event = async (patch: (e: APIGatewayProxyEvent) => void = () => {}) => {
    const e = await loadEvent<APIGatewayProxyEvent>("events/api/post-changes.json", {
      sub: deviceId,
      project: projectId,
      token: "unused",
    });
    patch(e);
    return e;
  };
  const withChanges = (changes: unknown[]) => (e: APIGatewayProxyEvent) => {
    e.body = JSON.stringify({ changes });
  };
  const invoke = async (e: APIGatewayProxyEvent) => {
    const res = await handler(e, lambdaContext("ingest", "test"));
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };
  const change = (patch: Record<string, unknown> = {}) => ({
    changeId: crypto.randomUUID(),
    reportId: crypto.randomUUID(),
    op: "upsert",
    hlc: formatHlc({ wall: Date.now(), counter: 0, node: deviceId }),
    fields: { title: "x" },
    ...patch,
  });
  const drain = async () => {
    const out = await env.client.send(
      new ReceiveMessageCommand({
        QueueUrl: env.queues.queueUrl,
        MaxNumberOfMessages: 10,
        MessageSystemAttributeNames: ["All"],
        WaitTimeSeconds: 0,
      }),
    );
    return out.Messages ?? [];
  };

  it("puts each change on the FIFO queue, grouped by report, deduplicated by change id", async () => {
    const e = await event((ev) => {
      // The saved event's HLCs are from its capture day; bring them to now.
      const body = JSON.parse(ev.body!);
      body.changes.forEach((c: { hlc: string }, i: number) => {
        c.hlc = formatHlc({ wall: Date.now(), counter: i, node: deviceId });
      });
      ev.body = JSON.stringify(body);
    });
    const sent = JSON.parse(e.body!).changes as { changeId: string; reportId: string }[];
    const res = await invoke(e);
    expect(res).toEqual({
      status: 202,
      body: { accepted: sent.map((c) => c.changeId), rejected: [], failed: [] },
    });

    const messages = await drain();
    expect(messages).toHaveLength(1); // one group: FIFO hands out its head only
    const [m] = messages;
    expect(m!.Attributes).toMatchObject({
      MessageGroupId: `${projectId}:${sent[0]!.reportId}`,
      MessageDeduplicationId: sent[0]!.changeId,
    });
    expect(JSON.parse(m!.Body!)).toMatchObject({
      projectId,
      deviceId,
      receivedAt: expect.any(String),
      change: { changeId: sent[0]!.changeId },
    });
  });

  it("rejects each bad change with its code and queues the good ones", async () => {
    const good = change();
    const dup = change();
    const res = await invoke(
      await event(
        withChanges([
          good,
          change({ hlc: "not-an-hlc" }),
          change({ hlc: formatHlc({ wall: Date.now(), counter: 0, node: crypto.randomUUID() }) }),
          change({ hlc: formatHlc({ wall: Date.now() + 3_600_000, counter: 0, node: deviceId }) }),
          change({ fields: {} }),
          dup,
          dup,
        ]),
      ),
    );
    expect(res.status).toBe(202);
    expect(res.body.accepted).toEqual([good.changeId, dup.changeId]);
    expect(res.body.rejected.map((r: { code: string }) => r.code)).toEqual([
      "hlc_invalid",
      "hlc_node_mismatch",
      "clock_skew",
      "invalid_change",
      "duplicate_in_batch",
    ]);
    expect(res.body.failed).toEqual([]);
  });

  it("rejects a change over a limit on its own and queues the changes around it", async () => {
    const deep = JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`);
    const [before, tooDeep, tooLarge, badText, after] = [
      change(),
      change({ fields: { deep } }),
      change({ fields: { notes: "x".repeat(40 * 1024) } }),
      change({ fields: { notes: "a\u0000b" } }),
      change(),
    ];
    const res = await invoke(await event(withChanges([before, tooDeep, tooLarge, badText, after])));
    expect(res.status).toBe(202);
    expect(res.body.accepted).toEqual([before.changeId, after.changeId]);
    expect(res.body.rejected).toEqual([
      { changeId: tooDeep.changeId, code: "too_deep", message: expect.any(String) },
      { changeId: tooLarge.changeId, code: "too_large", message: expect.any(String) },
      { changeId: badText.changeId, code: "invalid_text", message: expect.any(String) },
    ]);
  });

  it("carries emoji and noncharacters across the queue unchanged, in an ASCII body", async () => {
    const title = "Pump 3 🚀 \uFFFE\uFFFF é 水";
    const c = change({ fields: { title, nested: { "🔑": [title] } } });
    expect((await invoke(await event(withChanges([c])))).body.accepted).toEqual([c.changeId]);
    const [m] = await drain();
    expect(m!.Body).toMatch(/^[\x20-\x7e]*$/);
    expect(JSON.parse(m!.Body!).change.fields).toEqual(c.fields);
  });

  it("queues ten changes of 200 KiB, more than one SendMessageBatch may carry", async () => {
    const big = Array.from({ length: 10 }, (_, i) =>
      change({
        reportId: crypto.randomUUID(),
        hlc: formatHlc({ wall: Date.now(), counter: i, node: deviceId }),
        fields: Object.fromEntries(
          Array.from({ length: 7 }, (_, f) => [`f${f}`, "y".repeat(30 * 1024)]),
        ),
      }),
    );
    const res = await invoke(await event(withChanges(big)));
    expect(res.body).toEqual({ accepted: big.map((c) => c.changeId), rejected: [], failed: [] });
  });

  it("rejects a change the queue refuses for its content, never reporting it as retryable", async () => {
    const small = await env.client.send(
      new CreateQueueCommand({
        QueueName: "small.fifo",
        Attributes: { FifoQueue: "true", MaximumMessageSize: "1024" },
      }),
    );
    const refusing = create({
      ...env.deps,
      queue: createSqsQueue({ client: env.client, queueUrl: small.QueueUrl! }),
    });
    const [fits, refused] = [change(), change({ fields: { notes: "z".repeat(2048) } })];
    const res = await refusing(
      await event(withChanges([fits, refused])),
      lambdaContext("ingest", "test"),
    );
    expect(JSON.parse(res.body)).toEqual({
      accepted: [fits.changeId],
      rejected: [
        { changeId: refused.changeId, code: "queue_refused", message: expect.any(String) },
      ],
      failed: [],
    });
  });

  it.each([
    [
      "a change without a readable changeId",
      withChanges([change(), { reportId: crypto.randomUUID() }]),
      400,
      "validation_failed",
    ],
    ["no changes", withChanges([]), 400, "validation_failed"],
    [
      "501 changes",
      withChanges(Array.from({ length: 501 }, () => change())),
      400,
      "validation_failed",
    ],
    [
      "a body that is not JSON",
      (e: APIGatewayProxyEvent) => {
        e.body = "{changes:";
      },
      400,
      "invalid_json",
    ],
    [
      "a body over 5 MiB",
      (e: APIGatewayProxyEvent) => {
        e.body = JSON.stringify({
          changes: [change({ fields: { a: "x".repeat(5 * 1024 * 1024) } })],
        });
      },
      413,
      "payload_too_large",
    ],
    [
      "text/plain",
      (e: APIGatewayProxyEvent) => {
        e.headers["Content-Type"] = "text/plain";
      },
      415,
      "unsupported_media_type",
    ],
    [
      "an analyst's token",
      (e: APIGatewayProxyEvent) => {
        e.requestContext.authorizer!.role = "analyst";
      },
      403,
      "forbidden",
    ],
  ])("refuses %s whole, queueing nothing", async (_, patch, status, code) => {
    const res = await invoke(await event(patch));
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(await drain()).toEqual([]);
  });

  it("reports changes the queue did not take under failed, to be retried", async () => {
    const broken = create({
      ...env.deps,
      queue: createSqsQueue({ client: env.client, queueUrl: `${env.queues.queueUrl}-missing` }),
    });
    const c = change();
    const res = await broken(await event(withChanges([c])), lambdaContext("ingest", "test"));
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toEqual({
      accepted: [],
      rejected: [],
      failed: [{ changeId: c.changeId, code: "enqueue_failed", message: expect.any(String) }],
    });
  });
});
