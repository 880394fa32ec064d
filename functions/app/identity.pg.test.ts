import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../test/support/db.ts";
import { holdPoint, someoneWaitsForALock } from "../../test/support/overlap.ts";
import { createMember, createProject, LastAdminError, revokeMember } from "./identity.ts";

/*
 * Two admins revoking each other at the same moment, on a server where the
 * two transactions really overlap: the second waits for the first and then
 * finds itself the last admin. Made to overlap on purpose, not by luck: the
 * first holds its transaction open until the second is seen waiting.
 */

let t: TestDb;
beforeAll(async () => {
  t = await createTestDb("postgres");
});
afterAll(() => t.drop());

it("of two admins revoking each other at once, the second waits and is refused: one admin is left", async () => {
  const project = await createProject(t.db, "north");
  const a = await createMember(t.db, project.id, "A", "admin");
  const b = await createMember(t.db, project.id, "B", "admin");

  const point = holdPoint();
  const first = t.db.transaction(async (tx) => {
    const revoked = await revokeMember(tx, project.id, a.id);
    await point.hold();
    return revoked;
  });
  await point.held;
  const second = t.db.transaction((tx) => revokeMember(tx, project.id, b.id));
  const outcome = second.then(
    () => "revoked",
    (error: unknown) => error,
  );
  try {
    await someoneWaitsForALock(t.db);
  } finally {
    point.release();
  }
  expect(await first).toBe(true);
  expect(await outcome).toBeInstanceOf(LastAdminError);

  const working = await t.db.query<{ id: string }>(
    "select id from members where project_id = $1 and role = 'admin' and revoked_at is null",
    [project.id],
  );
  expect(working).toEqual([{ id: b.id }]);
});
