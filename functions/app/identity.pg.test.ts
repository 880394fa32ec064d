import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../test/support/db.ts";
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

/** Waits, within a bound, until a backend of this database waits for a row lock. */
async function someoneWaitsForALock(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await t.db.query<{ waiting: number }>(
      `select count(*)::int as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`,
    );
    if (row!.waiting > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the second revocation never waited for the first");
}

it("of two admins revoking each other at once, the second waits and is refused: one admin is left", async () => {
  const project = await createProject(t.db, "north");
  const a = await createMember(t.db, project.id, "A", "admin");
  const b = await createMember(t.db, project.id, "B", "admin");

  let holding!: () => void;
  const held = new Promise<void>((resolve) => {
    holding = resolve;
  });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const first = t.db.transaction(async (tx) => {
    const revoked = await revokeMember(tx, project.id, a.id);
    holding();
    await released;
    return revoked;
  });
  await held;
  const second = t.db.transaction((tx) => revokeMember(tx, project.id, b.id));
  const outcome = second.then(
    () => "revoked",
    (error: unknown) => error,
  );
  try {
    await someoneWaitsForALock();
  } finally {
    release();
  }
  expect(await first).toBe(true);
  expect(await outcome).toBeInstanceOf(LastAdminError);

  const working = await t.db.query<{ id: string }>(
    "select id from members where project_id = $1 and role = 'admin' and revoked_at is null",
    [project.id],
  );
  expect(working).toEqual([{ id: b.id }]);
});
