import type { TestCloud } from "./cloud.ts";

export interface Actor {
  role: "device" | "analyst" | "auditor" | "admin" | "operator";
  id: string;
  token: string;
}

/**
 * Every role in the demo project, and a second project (made by the
 * operator) with its own admin, device and analyst: the cast of the
 * authorization and hostile-input suites.
 */
export async function actors(t: TestCloud) {
  const { credentials } = t.cloud;
  const admin = await t.tokenFor(
    credentials.projects.demo!.admin.clientId,
    credentials.projects.demo!.admin.clientSecret,
  );
  const operator = await t.tokenFor(
    credentials.operator.clientId,
    credentials.operator.clientSecret,
  );
  const adminMe = (await t.api("/v1/me", { token: admin })).body;
  const member = async (token: string, role: string) => {
    const res = await t.api("/v1/members", { token, body: { name: `a ${role}`, role } });
    if (res.status !== 201) throw new Error(`member: ${res.status} ${JSON.stringify(res.body)}`);
    return {
      id: res.body.id as string,
      token: await t.tokenFor(res.body.clientId, res.body.clientSecret),
    };
  };
  const device = async (token: string) => {
    const res = await t.api("/v1/devices", { token, body: { name: "a device" } });
    if (res.status !== 201) throw new Error(`device: ${res.status} ${JSON.stringify(res.body)}`);
    return {
      id: res.body.id as string,
      token: await t.tokenFor(res.body.clientId, res.body.clientSecret),
    };
  };

  const ownDevice = await device(admin);
  const own: Record<Actor["role"], Actor> = {
    device: { role: "device", ...ownDevice },
    analyst: { role: "analyst", ...(await member(admin, "analyst")) },
    auditor: { role: "auditor", ...(await member(admin, "auditor")) },
    admin: { role: "admin", id: adminMe.id, token: admin },
    operator: {
      role: "operator",
      id: (await t.api("/v1/me", { token: operator })).body.id,
      token: operator,
    },
  };

  const created = await t.api("/v1/projects", {
    token: operator,
    body: { name: `other ${crypto.randomUUID().slice(0, 6)}` },
  });
  if (created.status !== 201)
    throw new Error(`project: ${created.status} ${JSON.stringify(created.body)}`);
  const otherAdmin = await t.tokenFor(created.body.admin.clientId, created.body.admin.clientSecret);
  const otherDevice = await device(otherAdmin);
  const otherAnalyst = await member(otherAdmin, "analyst");
  // A report in the other project, written by its device.
  const otherReportId = crypto.randomUUID();
  const pushed = await t.api("/v1/changes", {
    token: otherDevice.token,
    body: {
      changes: [
        {
          changeId: crypto.randomUUID(),
          reportId: otherReportId,
          op: "upsert",
          hlc: `${String(Date.now()).padStart(15, "0")}:000000:${otherDevice.id}`,
          fields: { title: "the other project's secret report" },
        },
      ],
    },
  });
  if (pushed.body.accepted?.length !== 1) throw new Error(`push: ${JSON.stringify(pushed.body)}`);
  // Applied before any test looks: the consumer runs on its own time.
  for (const deadline = Date.now() + 60_000; ; ) {
    const rows = await t.testDb.db.query("select 1 from reports where id = $1", [otherReportId]);
    if (rows.length === 1) break;
    if (Date.now() > deadline) throw new Error("the other project's report was never applied");
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ownProject: credentials.projects.demo!.id,
    own,
    other: {
      projectId: created.body.id as string,
      reportId: otherReportId,
      admin: {
        role: "admin" as const,
        id: (await t.api("/v1/me", { token: otherAdmin })).body.id as string,
        token: otherAdmin,
      },
      device: { role: "device" as const, ...otherDevice },
      analyst: { role: "analyst" as const, ...otherAnalyst },
    },
  };
}
