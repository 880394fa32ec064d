import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: [
      "node_modules/**",
      "cdk.out/**",
      ".local/**",
      // Suites that need a PostgreSQL server (DATABASE_URL) and nothing else:
      // `npm run test:pg`, or `npm test` with DATABASE_URL set.
      ...(process.env.DATABASE_URL ? [] : ["**/*.pg.test.ts"]),
      // Installing the packed agent compiles better-sqlite3 (over a minute):
      // `npm run test:package`.
      ...(process.env.EDGE_SYNC_PACKAGE_TEST ? [] : ["**/*.package.test.ts"]),
    ],
    globalSetup: ["test/support/build-agent.ts"],
    // Bounds on a hang, not on speed: CI may share the machine with other
    // work, and a test that takes three times as long there is still right.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    // Every core: by default vitest keeps one free, which on a 2-core machine
    // runs the files one at a time (351 s here; 236 s on both). The tests
    // hold up on a loaded machine by design. Against a PostgreSQL server
    // (DATABASE_URL) one file at a time: every test database shares its
    // transaction ids, and a pull returns nothing at or above the oldest
    // transaction still running anywhere on the server (the gap-free cursor),
    // so another file's long transaction would hold back this file's pulls.
    maxWorkers: process.env.DATABASE_URL ? 1 : "100%",
    env: {
      POWERTOOLS_LOG_LEVEL: "SILENT",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  },
});
