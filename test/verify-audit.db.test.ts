import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { provision } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

const CLI = join(import.meta.dirname, "../local/edge-sync.js");

/** `npx edge-sync verify-audit …`, as an auditor runs it. */
async function verifyAudit(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [CLI, "verify-audit", ...args],
      { env: { ...process.env, ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each(dbTargets())("edge-sync verify-audit (%s)", (target) => {
  let t: TestCloud;
  let admin: { clientId: string; clientSecret: string };
  let entries: { seq: number }[];
  // The cloud's clock, and what the API is asked while `watching`.
  let clockAhead = 0;
  let watching: { tokens: number; parts: number } | undefined;
  beforeAll(async () => {
    t = await startTestCloud(target, {
      now: () => Date.now() + clockAhead,
      around: async (request, next) => {
        if (watching && request.resource === "/v1/oauth/token") watching.tokens++;
        const answer = await next();
        // After the first part, 16 minutes pass: the token (15) runs out.
        if (watching && request.resource === "/v1/audit/verify" && ++watching.parts === 1)
          clockAhead += 16 * 60_000;
        return answer;
      },
    });
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "audited",
      devices: ["tablet"],
    });
    admin = project.admin;
    const agent = EdgeAgent.open(join(t.dir, "tablet.db"));
    await agent.init(t.cloud.url, devices[0]!.clientId, devices[0]!.clientSecret);
    const report = agent.create({ title: "Boiler room" });
    for (let i = 1; i <= 4; i++) agent.update(report.id, { checks: i });
    await syncUntilSettled(agent);
    agent.close();
    entries = await t.testDb.db.query<{ seq: number }>(
      "select seq from audit_log where project_id = $1 order by seq",
      [project.id],
    );
  });
  afterAll(() => t.stop());

  const client = () => ["--client-id", admin.clientId, "--client-secret", admin.clientSecret];

  it("checks the whole log in as many parts as it takes and sums them", async () => {
    const run = await verifyAudit(["--api", t.cloud.url, ...client(), "--limit", "2"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      "VALID audit log: 5 entries in 3 part(s), 5 signed by their devices, 0 unsigned",
    );
    expect(run.stderr).toContain("checked 4 entries so far");
  });

  it("gets a new token when its token runs out between two parts", async () => {
    watching = { tokens: 0, parts: 0 };
    const run = await verifyAudit(["--api", t.cloud.url, ...client(), "--limit", "2"]);
    expect(run.stdout).toContain("VALID audit log: 5 entries in 3 part(s)");
    expect(run.code).toBe(0);
    // The second part was refused once (its token had expired), then asked again.
    expect(watching).toEqual({ tokens: 2, parts: 3 });
    watching = undefined;
  });

  it("takes the client from the environment", async () => {
    const run = await verifyAudit(["--api", t.cloud.url], {
      EDGE_SYNC_CLIENT_ID: admin.clientId,
      EDGE_SYNC_CLIENT_SECRET: admin.clientSecret,
    });
    expect(run).toMatchObject({
      code: 0,
      stdout: expect.stringContaining("5 entries in 1 part(s)"),
    });
  });

  it("exits 1 with a reason when misused or refused", async () => {
    expect((await verifyAudit(["--api", t.cloud.url])).code).toBe(1);
    expect((await verifyAudit(["--api", t.cloud.url, ...client(), "--limit", "0"])).code).toBe(1);
    const refused = await verifyAudit([
      "--api",
      t.cloud.url,
      "--client-id",
      admin.clientId,
      "--client-secret",
      "wrong",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/could not finish: .*401/);
  });

  it("exits 3 and names the first bad entry when a row was changed in the database", async () => {
    const tampered = entries[2]!.seq;
    await t.testDb.db.transaction(async (tx) => {
      await tx.exec("alter table audit_log disable trigger audit_log_append_only");
      await tx.query("update audit_log set hlc = hlc || '0' where seq = $1", [tampered]);
      await tx.exec("alter table audit_log enable trigger audit_log_append_only");
    });
    const run = await verifyAudit(["--api", t.cloud.url, ...client(), "--limit", "1"]);
    expect(run.code).toBe(3);
    expect(run.stdout).toContain(`INVALID audit log: 5 entries in 5 part(s)`);
    expect(run.stdout).toContain(`the first bad entry is seq ${tampered}:`);
  });
});
