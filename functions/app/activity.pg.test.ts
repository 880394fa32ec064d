import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../test/support/db.ts";
import { holdPoint, someoneWaitsForALock } from "../../test/support/overlap.ts";
import { recordActivity, verifyActivity } from "./activity.ts";
import { createProject } from "./identity.ts";

/*
 * Two admins acting at the same moment, on a server where the two
 * transactions really overlap: the second waits for the first and then
 * follows its entry, so the chain does not fork. Made to overlap on
 * purpose: the first holds its transaction open until the second is seen
 * waiting.
 */

let t: TestDb;
beforeAll(async () => {
  t = await createTestDb("postgres");
});
afterAll(() => t.drop());

it("of two appends at once, the second waits and follows the first: one chain", async () => {
  const project = await createProject(t.db, "ward");
  const act = (name: string) => ({
    action: "member.add" as const,
    actor: { type: "member" as const, id: crypto.randomUUID() },
    targetId: crypto.randomUUID(),
    details: { name },
  });
  await t.db.transaction((tx) => recordActivity(tx, project.id, act("first"), Date.now()));

  const point = holdPoint();
  const first = t.db.transaction(async (tx) => {
    await recordActivity(tx, project.id, act("A"), Date.now());
    await point.hold();
  });
  await point.held;
  const second = t.db.transaction((tx) => recordActivity(tx, project.id, act("B"), Date.now()));
  try {
    await someoneWaitsForALock(t.db);
  } finally {
    point.release();
  }
  await first;
  await second;
  expect(await verifyActivity(t.db, project.id)).toEqual({ ok: true, checked: 3 });
});
