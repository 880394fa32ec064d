import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
} from "@aws-sdk/client-sqs";
import { formatHlc } from "../core/hlc.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { startLocalCloud } from "../local/cloud.ts";
import { apiClient, provision } from "../local/provision.ts";
import { startEmbeddedSqs } from "../local/sqs.ts";
import { typeScriptWorker } from "../local/typescript-worker.ts";
import { benchDb, fieldsFor } from "./db.ts";
import type { PushAnswer, PushRequest } from "./e2e-devices.ts";
import type { BenchResult } from "./main.ts";

const DEVICES = 20;
/** Seconds of sustained load (`BENCH_E2E_SECONDS`). */
const SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 60);
/** Changes a device sends per request under sustained load. */
const PUSH = 100;
/** The fixed rate latency is measured at, over a quarter of the time. */
const PACED_RATE = 500;
/** Changes accepted but not yet applied above which sustained pushes wait. */
const BACKLOG = 2_000;

interface Device {
  id: string;
  token: string;
}

/**
 * The whole local cloud on PostgreSQL (API Gateway emulator, ingest,
 * embedded SQS, four consumers) under 20 devices pushing over HTTP: the
 * rate changes are applied at while every device pushes as fast as it is
 * answered, and the time from a change's push to its audit row at a fixed
 * 500 changes/s. The anchor is the embedded queue on its own: SendMessageBatch,
 * ReceiveMessage and DeleteMessageBatch of as many messages, the same sizes,
 * through the same SDK, with no database and no HTTP API around it.
 */
export async function benchE2e(): Promise<BenchResult[]> {
  const bench = await benchDb(12);
  const dataDir = await mkdtemp(join(tmpdir(), "edge-sync-bench-"));
  const cloud = await startLocalCloud({ db: bench.db, dataDir, port: 0 });
  let stopDevices = async (): Promise<unknown> => undefined;
  try {
    const api = apiClient(cloud.url);
    const provisioned = await provision(cloud.url, cloud.credentials.operator, {
      project: "bench",
      devices: Array.from({ length: DEVICES }, (_, i) => `device ${i + 1}`),
    });
    const devices: Device[] = await Promise.all(
      provisioned.devices.map(async (d) => ({ id: d.id, token: await api.token(d) })),
    );
    const answered: number[] = [];
    const pushing = typeScriptWorker(new URL("./e2e-devices.ts", import.meta.url), {
      url: cloud.url,
    });
    stopDevices = () => pushing.terminate();
    const waiting = new Map<number, (answer: PushAnswer) => void>();
    pushing.on("message", (answer: PushAnswer) => waiting.get(answer.request)?.(answer));
    let requests = 0;
    const push = async (device: Device, count: number, sentAt?: Map<string, number>) => {
      const request = ++requests;
      const answer = await new Promise<PushAnswer>((resolve) => {
        waiting.set(request, resolve);
        pushing.postMessage({ request, device, count } satisfies PushRequest);
      });
      waiting.delete(request);
      if (answer.error) throw new Error(answer.error);
      if (sentAt) {
        for (const id of answer.changeIds) sentAt.set(id, answer.sentAt);
        answered.push(answer.answeredIn);
      }
    };
    const applied = async () =>
      (await bench.db.query<{ n: number }>("select count(*)::int as n from audit_log"))[0]!.n;
    // Ten times a second: the project's last seq, one probe of
    // audit_project_seq, where count(*) or a max(seq) over every project
    // would read the whole growing table, and the probe would load the
    // database it measures (each change is one row; a seq a retried batch
    // used and left is a rare gap).
    const lastSeq = async () =>
      (
        await bench.db.query<{ n: number }>(
          `select coalesce((select seq from audit_log where project_id = $1 order by seq desc limit 1), 0)::int as n`,
          [provisioned.project.id],
        )
      )[0]!.n;
    const drained = async (expected: number) => {
      const deadline = Date.now() + 300_000;
      for (let n = await applied(); n < expected; n = await applied()) {
        if (Date.now() > deadline)
          throw new Error(`${n} of ${expected} changes applied after 5 min`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    // Sustained: every device pushes as fast as it is answered while the
    // backlog (accepted, not yet applied) stays under a second or so of work:
    // the rate the cloud keeps up with, not the rate its queue fills at.
    const before = await applied();
    const seqBefore = await lastSeq();
    let sent = 0;
    let backlog = 0;
    const watch = setInterval(async () => {
      backlog = sent - ((await lastSeq()) - seqBefore);
    }, 100);
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      devices.map(async (device) => {
        while (Date.now() < until) {
          if (backlog > BACKLOG) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          await push(device, PUSH);
          sent += PUSH;
        }
      }),
    );
    clearInterval(watch);
    const appliedInTime = (await applied()) - before;
    await drained(before + sent);

    // Paced: 500 changes/s in all, each device pushing every 200 ms.
    const sentAt = new Map<string, number>();
    const ticks = Math.round((SECONDS / 4) * 5);
    const perPush = PACED_RATE / 5 / DEVICES;
    const started = Date.now();
    for (let tick = 0; tick < ticks; tick++) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + tick * 200 - Date.now())));
      await Promise.all(devices.map((device) => push(device, perPush, sentAt)));
    }
    await drained(before + sent + sentAt.size);
    const rows = await bench.db.query<{ change_id: string; at: number }>(
      "select change_id, (extract(epoch from applied_at) * 1000)::float8 as at from audit_log where change_id = any($1::uuid[])",
      [[...sentAt.keys()]],
    );
    const latencies = rows.map((r) => r.at - sentAt.get(r.change_id)!);
    const percentile = (p: number, of: number[]) =>
      of.sort((a, b) => a - b)[Math.ceil(of.length * p) - 1]!;

    const queueRate = await queueAlone(sent);
    const rate = appliedInTime / SECONDS;
    return [
      {
        name: `end to end, ${DEVICES} devices over HTTP, sustained for ${SECONDS} s`,
        value: Math.round(rate),
        unit: "changes/s",
        baseline: Math.round(queueRate),
        ratio: rate / queueRate,
        min: 2000,
      },
      // Beside how long the push itself took to be answered (accepted and queued).
      ...[0.5, 0.95, 0.99].map((p) => ({
        name: `end to end, push to applied at ${PACED_RATE} changes/s, p${p * 100}`,
        value: Math.round(percentile(p, latencies)),
        unit: "ms",
        baseline: Math.round(percentile(p, answered)),
        ratio: percentile(p, answered) / percentile(p, latencies),
        ...(p === 0.99 ? { max: 1000 } : {}),
      })),
    ];
  } finally {
    await stopDevices();
    await cloud.stop();
    await bench.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * The embedded queue alone: `count` messages of a change's size sent ten at
 * a time by four senders while four receivers take ten at a time and delete
 * them, as the cloud's ingest and consumers do.
 */
async function queueAlone(count: number): Promise<number> {
  const sqs = await startEmbeddedSqs();
  const client = createSqsClient("us-east-1", sqs.endpoint);
  try {
    const { QueueUrl } = await client.send(
      new CreateQueueCommand({
        QueueName: "bench.fifo",
        Attributes: {
          FifoQueue: "true",
          DeduplicationScope: "messageGroup",
          FifoThroughputLimit: "perMessageGroupId",
        },
      }),
    );
    const body = JSON.stringify({
      projectId: crypto.randomUUID(),
      deviceId: crypto.randomUUID(),
      receivedAt: new Date().toISOString(),
      change: {
        changeId: crypto.randomUUID(),
        reportId: crypto.randomUUID(),
        op: "upsert",
        hlc: formatHlc({ wall: 1, counter: 0, node: crypto.randomUUID() }),
        fields: fieldsFor(1, 3),
      },
    });
    const started = performance.now();
    let received = 0;
    const senders = Array.from({ length: 4 }, async (_, s) => {
      for (let i = s * 10; i < count; i += 40) {
        await client.send(
          new SendMessageBatchCommand({
            QueueUrl,
            Entries: Array.from({ length: Math.min(10, count - i) }, (_, k) => ({
              Id: String(k),
              MessageBody: body,
              MessageGroupId: crypto.randomUUID(),
              MessageDeduplicationId: crypto.randomUUID(),
            })),
          }),
        );
      }
    });
    const receivers = Array.from({ length: 4 }, async () => {
      while (received < count) {
        const { Messages = [] } = await client.send(
          new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
        );
        if (Messages.length === 0) continue;
        received += Messages.length;
        await client.send(
          new DeleteMessageBatchCommand({
            QueueUrl,
            Entries: Messages.map((m, k) => ({ Id: String(k), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
    });
    await Promise.all([...senders, ...receivers]);
    return (count / (performance.now() - started)) * 1000;
  } finally {
    client.destroy();
    await sqs.stop();
  }
}
