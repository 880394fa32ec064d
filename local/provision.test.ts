import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCloud, type TestCloud } from "../test/support/cloud.ts";
import { provision } from "./provision.ts";

describe("provision (what deploy:localstack does after deploying)", () => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud("pglite");
  });
  afterAll(() => t.stop());

  it("makes a project as the operator and registers devices that can sign in", async () => {
    const made = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "field trial",
      devices: ["truck a", "truck b"],
    });
    expect(made.devices.map((d) => d.name)).toEqual(["truck a", "truck b"]);
    for (const device of made.devices) {
      const me = await t.api("/v1/me", {
        token: await t.tokenFor(device.clientId, device.clientSecret),
      });
      expect(me.body).toMatchObject({ id: device.id, role: "device", project: made.project.id });
    }
    const admin = await t.api("/v1/me", {
      token: await t.tokenFor(made.project.admin.clientId, made.project.admin.clientSecret),
    });
    expect(admin.body).toMatchObject({ role: "admin", project: made.project.id });
  });

  it("says which call failed when the credentials are wrong", async () => {
    await expect(
      provision(
        t.cloud.url,
        { clientId: "op_nobody", clientSecret: "wrong" },
        {
          project: "x",
          devices: [],
        },
      ),
    ).rejects.toThrow(/v1\/oauth\/token: 401/);
  });
});
