import { afterAll, describe, expect, it } from "vitest";
import { createPostgresDb } from "./postgres.ts";

// Runs where DATABASE_URL is set (`npm run test:pg`): the pool is the server's.
describe("the PostgreSQL adapter's pool", () => {
  const db = createPostgresDb({ connectionString: process.env.DATABASE_URL, max: 1 });
  afterAll(() => db.close());
  const backend = async () =>
    (await db.query<{ pid: number }>("select pg_backend_pid() as pid"))[0]!.pid;

  it("keeps its connection after a statement the server refuses, and the next statement runs on it", async () => {
    const before = await backend();
    await expect(db.query("select 1 / 0")).rejects.toMatchObject({ code: "22012" });
    await expect(
      db.query("insert into no_such_table values (1)", [], { name: "refused_named" }),
    ).rejects.toMatchObject({ code: "42P01" });
    expect(await backend()).toBe(before);
  });

  it("replaces a connection that ended", async () => {
    const before = await backend();
    await expect(db.query("select pg_terminate_backend(pg_backend_pid())")).rejects.toMatchObject({
      code: "57P01",
    });
    const after = await backend();
    expect(after).not.toBe(before);
    expect((await db.query<{ one: number }>("select 1 as one"))[0]!.one).toBe(1);
  });
});

describe("a connection string with settings of its own", () => {
  it("keeps them, and the adapter's schema and settings too", async () => {
    const url = new URL(process.env.DATABASE_URL!);
    url.searchParams.set("options", "-c statement_timeout=4321 -c search_path=elsewhere");
    const db = createPostgresDb({ connectionString: url.toString(), schema: "app_schema", max: 1 });
    try {
      const [row] = await db.query<{ timeout: string; path: string; jit: string }>(
        `select current_setting('statement_timeout') as timeout,
                current_setting('search_path') as path, current_setting('jit') as jit`,
      );
      expect(row).toEqual({ timeout: "4321ms", path: "app_schema,public", jit: "off" });
    } finally {
      await db.close();
    }
  });
});
