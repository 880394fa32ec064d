import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { SyncClient } from "../edge-agent/client.ts";
import { startLocalCloud } from "./cloud.ts";

process.env.POWERTOOLS_LOG_LEVEL ??= "SILENT";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const dir = await mkdtemp(join(tmpdir(), "edge-sync-demo-"));
const cloud = await startLocalCloud({
  port: 0,
  dataDir: join(dir, "cloud"),
  databaseUrl: process.env.DATABASE_URL || undefined,
});
const say = (text: string) => console.log(text);

async function api(path: string, token: string, body?: unknown) {
  const res = await fetch(`${cloud.url}${path}`, {
    method: body ? "POST" : "GET",
    headers: {
      authorization: `Bearer ${token}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return res.json();
}

/** Syncs until the agent's changes all have an outcome (the consumer runs asynchronously). */
async function settle(agent: EdgeAgent) {
  for (let i = 0; i < 100; i++) {
    await agent.syncOnce();
    const s = agent.status();
    if (s.pending === 0 && s.sent === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("changes were not acknowledged in time");
}

let exitCode = 1;
try {
  say(`local cloud at ${cloud.url} (${cloud.deps.db.kind})`);
  const { clientId, clientSecret } = cloud.credentials.projects.demo!.admin;
  const admin = (await new SyncClient({ apiUrl: cloud.url }).token(clientId, clientSecret))
    .accessToken;

  const sites = ["clinic", "truck", "lab"] as const;
  const agents = {} as Record<(typeof sites)[number], EdgeAgent>;
  for (const site of sites) {
    const device = (await api("/v1/devices", admin, { name: site })) as {
      clientId: string;
      clientSecret: string;
    };
    agents[site] = EdgeAgent.open(join(dir, `${site}.db`));
    await agents[site].init(cloud.url, device.clientId, device.clientSecret);
  }
  const { clinic, truck, lab } = agents;
  say("3 devices registered: clinic, truck, lab");

  const report = clinic.create({ title: "Water pump 3 leaking", severity: 2, status: "open" });
  await settle(clinic);
  await truck.syncOnce();
  await lab.syncOnce();
  say(`clinic created report ${report.id.slice(0, 8)}…; all three synced it`);

  say("truck and lab go offline and edit the same report:");
  truck.update(report.id, { severity: 4, notes: "valve cracked" });
  say('  truck: severity=4, notes="valve cracked"');
  await new Promise((r) => setTimeout(r, 50));
  lab.update(report.id, { severity: 3, status: "in progress" });
  say('  lab:   severity=3, status="in progress" (a later edit)');
  say(`  queued offline: truck ${truck.status().pending}, lab ${lab.status().pending}`);

  say("both come back online and sync");
  await settle(truck);
  await settle(lab);
  for (const agent of [clinic, truck, lab]) await agent.syncOnce();

  const conflicts = lab.conflicts();
  for (const c of conflicts) {
    const name = (id: string) =>
      id === truck.status().deviceId ? "truck" : id === lab.status().deviceId ? "lab" : id;
    say(
      `conflict on ${c.field}: ${name(c.winner.deviceId)}'s ${JSON.stringify(c.winner.value)} won over ${name(c.loser.deviceId)}'s ${JSON.stringify(c.loser.value)} (later HLC wins)`,
    );
  }
  const outcomes = (a: EdgeAgent) => {
    const s = a.status();
    return `${s.applied} applied, ${s.partial} partial, ${s.superseded} superseded, ${s.rejected} rejected`;
  };
  say(`outcomes: truck ${outcomes(truck)}; lab ${outcomes(lab)}`);

  const rows = await cloud.deps.db.query<{ fields: unknown; clocks: unknown }>(
    "select fields, clocks from reports where id = $1",
    [report.id],
  );
  const cloudState = JSON.stringify({ fields: rows[0]?.fields, clocks: rows[0]?.clocks });
  const states = sites.map((s) => {
    const r = agents[s].get(report.id)!;
    return JSON.stringify({ fields: r.fields, clocks: r.clocks });
  });
  say(`final report: ${JSON.stringify(rows[0]?.fields)}`);
  const converged =
    states.every((s) => s === cloudState) &&
    conflicts.length > 0 &&
    truck.conflicts().length === conflicts.length;
  say(
    converged ? "converged: clinic, truck, lab and the cloud hold the same state" : "NOT converged",
  );
  for (const agent of Object.values(agents)) agent.close();
  exitCode = converged ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${(error as Error).message}`);
} finally {
  await cloud.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
