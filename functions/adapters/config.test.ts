import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

const base = { QUEUE_URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/changes.fifo" };
const cluster = "arn:aws:rds:eu-west-1:123456789012:cluster:edge-sync";
const secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db";

describe("which database the environment names", () => {
  it("takes a URL first, then the Data API, then RDS Proxy with IAM auth, else PGlite", () => {
    expect(loadConfig({ ...base, DATABASE_URL: "postgres://x@h/db" }).database).toEqual({
      kind: "url",
      url: "postgres://x@h/db",
    });
    expect(
      loadConfig({ ...base, DB_CLUSTER_ARN: cluster, DB_SECRET_ARN: secret }).database,
    ).toEqual({ kind: "data-api", clusterArn: cluster, secretArn: secret, name: "edge_sync" });
    expect(
      loadConfig({ ...base, DB_HOST: "proxy.example", DB_USER: "edge_sync_app" }).database,
    ).toEqual({
      kind: "rds-iam",
      host: "proxy.example",
      port: 5432,
      user: "edge_sync_app",
      name: "edge_sync",
    });
    expect(loadConfig(base).database).toEqual({ kind: "pglite" });
  });

  it("refuses half a configuration, naming what is missing", () => {
    expect(() => loadConfig({ ...base, DB_CLUSTER_ARN: cluster })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, DB_HOST: "proxy.example" })).toThrow(/DB_USER/);
  });
});
