import { parentPort, workerData } from "node:worker_threads";
import type { Change } from "../core/change.ts";
import { formatHlc } from "../core/hlc.ts";
import { apiClient } from "../local/provision.ts";
import { fieldsFor, unseen } from "./db.ts";

/** Asks a device to push `count` new reports in one request. */
export interface PushRequest {
  request: number;
  device: { id: string; token: string };
  count: number;
}

/** The changes pushed, when, and how long the cloud took to answer. */
export interface PushAnswer {
  request: number;
  changeIds: string[];
  sentAt: number;
  answeredIn: number;
  error?: string;
}

/**
 * The simulated devices of `bench/e2e.ts`, in a thread of their own so that
 * building and sending their requests does not take turns with the cloud
 * they measure. Each request pushes new reports with three fields.
 */
const api = apiClient(workerData.url as string);
const walls = new Map<string, number>();

parentPort!.on("message", async ({ request, device, count }: PushRequest) => {
  let wall = walls.get(device.id) ?? Date.now();
  const changes: Change[] = Array.from({ length: count }, () => {
    wall += 1;
    const fields = fieldsFor(wall, 3);
    return {
      changeId: crypto.randomUUID(),
      reportId: crypto.randomUUID(),
      op: "upsert",
      hlc: formatHlc({ wall, counter: 0, node: device.id }),
      fields,
      base: unseen(fields),
    };
  });
  walls.set(device.id, wall);
  const sentAt = Date.now();
  const answer: PushAnswer = { request, changeIds: [], sentAt, answeredIn: 0 };
  try {
    const { accepted } = await api.post<{ accepted: string[] }>("v1/changes", device.token, {
      changes,
    });
    answer.answeredIn = Date.now() - sentAt;
    answer.changeIds = changes.map((c) => c.changeId);
    if (accepted.length !== count)
      answer.error = `the cloud accepted ${accepted.length} of ${count}`;
  } catch (error) {
    answer.error = String(error);
  }
  parentPort!.postMessage(answer);
});
