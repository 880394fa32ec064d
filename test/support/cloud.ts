import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EdgeAgent, type EdgeAgentOptions } from "../../edge-agent/agent.ts";
import { type LocalCloud, type LocalCloudOptions, startLocalCloud } from "../../local/cloud.ts";
import { createTestDb, type DbTarget, type TestDb } from "./db.ts";

export interface TestCloud {
  cloud: LocalCloud;
  testDb: TestDb;
  dir: string;
  /** POSTs or GETs JSON against the API. */
  api(
    path: string,
    init?: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> },
    // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies by their documented shape.
  ): Promise<{ status: number; body: any; headers: Headers }>;
  adminToken(): Promise<string>;
  createDevice(name: string): Promise<{ id: string; clientId: string; clientSecret: string }>;
  tokenFor(clientId: string, clientSecret: string): Promise<string>;
  /** A new agent with its own SQLite file, registered as a new device. */
  agent(
    name: string,
    options?: EdgeAgentOptions,
  ): Promise<{
    agent: EdgeAgent;
    deviceId: string;
    path: string;
    clientId: string;
    clientSecret: string;
  }>;
  /** Takes the API and queue down (the database stays). */
  down(): Promise<void>;
  /** Brings them back on the same address with an empty queue, like a restarted emulator. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** The local cloud on a fresh test database, on a free port, with files in a temp folder. */
export async function startTestCloud(
  target: DbTarget,
  options: LocalCloudOptions = {},
): Promise<TestCloud> {
  const dir = await mkdtemp(join(tmpdir(), "edge-sync-"));
  const testDb = await createTestDb(target, { migrated: false });
  const cloudOptions: LocalCloudOptions = {
    port: 0,
    dataDir: join(dir, "cloud"),
    db: testDb.db,
    consumers: 2,
    visibilityTimeoutSeconds: 2,
    ...options,
  };
  let cloud = await startLocalCloud(cloudOptions);
  let running = true;
  const agents: EdgeAgent[] = [];

  const url = () => cloud.url;
  const api: TestCloud["api"] = async (path, init = {}) => {
    const response = await fetch(`${url()}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: {
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...init.headers,
      },
      body:
        init.body === undefined
          ? undefined
          : typeof init.body === "string"
            ? init.body
            : JSON.stringify(init.body),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: text ? JSON.parse(text) : undefined,
      headers: response.headers,
    };
  };
  const tokenFor = async (clientId: string, clientSecret: string) => {
    const res = await api("/v1/oauth/token", {
      body: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
    });
    if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.access_token as string;
  };
  const adminToken = () => {
    const { clientId, clientSecret } = cloud.credentials.projects.demo!.admin;
    return tokenFor(clientId, clientSecret);
  };
  const createDevice = async (name: string) => {
    const res = await api("/v1/devices", { token: await adminToken(), body: { name } });
    if (res.status !== 201)
      throw new Error(`create device: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  return {
    get cloud() {
      return cloud;
    },
    testDb,
    dir,
    api,
    adminToken,
    createDevice,
    tokenFor,
    async agent(name, agentOptions) {
      const device = await createDevice(name);
      const path = join(dir, `${name.replace(/\W+/g, "-")}.db`);
      const agent = EdgeAgent.open(path, agentOptions);
      agents.push(agent);
      await agent.init(cloud.url, device.clientId, device.clientSecret);
      return {
        agent,
        deviceId: device.id,
        path,
        clientId: device.clientId,
        clientSecret: device.clientSecret,
      };
    },
    async down() {
      await cloud.stop();
      running = false;
    },
    async up() {
      cloud = await startLocalCloud({ ...cloudOptions, port: Number(new URL(cloud.url).port) });
      running = true;
    },
    async stop() {
      for (const agent of agents) {
        try {
          agent.close();
        } catch {}
      }
      if (running) await cloud.stop();
      await testDb.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Syncs until every change the agent sent has an outcome. The consumer
 * applies asynchronously, so a change pushed in one round is acknowledged in
 * a later one.
 */
export async function syncUntilSettled(agent: EdgeAgent, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await agent.syncOnce();
    const s = agent.status();
    if (s.pending === 0 && s.sent === 0) return;
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
