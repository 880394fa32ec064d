import type { Node } from "constructs";

/** What `-c key=value` on the cdk command line chooses. */
export interface Settings {
  /** `rds` (default): RDS PostgreSQL 16 behind RDS Proxy; `aurora-data-api`: Aurora Serverless v2 via the Data API. */
  database: "rds" | "aurora-data-api";
  /** `aws` (default) or `localstack` (no VPC, no RDS: PostgreSQL from docker-compose). */
  target: "aws" | "localstack";
  multiAz: boolean;
  deletionProtection: boolean;
  /** LocalStack only: how the functions reach the compose file's PostgreSQL. */
  databaseUrl: string;
  /** Where alarms go (an e-mail address subscribed to the alarm topic), if anywhere. */
  alarmEmail: string | undefined;
}

const flag = (value: unknown, fallback: boolean) =>
  value === undefined ? fallback : value === true || value === "true";

/** Reads and checks the context; an unknown value is an error, not a silent default. */
export function settingsFrom(node: Node): Settings {
  const database = node.tryGetContext("database") ?? "rds";
  const target = node.tryGetContext("target") ?? "aws";
  if (database !== "rds" && database !== "aurora-data-api") {
    throw new Error(`-c database must be rds or aurora-data-api, not ${database}`);
  }
  if (target !== "aws" && target !== "localstack") {
    throw new Error(`-c target must be aws or localstack, not ${target}`);
  }
  if (target === "localstack" && database !== "rds") {
    throw new Error("-c target=localstack uses the compose file's PostgreSQL; drop -c database");
  }
  return {
    database,
    target,
    multiAz: flag(node.tryGetContext("multiAz"), false),
    deletionProtection: flag(node.tryGetContext("deletionProtection"), target === "aws"),
    databaseUrl:
      node.tryGetContext("databaseUrl") ?? "postgres://edge_sync:edge_sync@postgres:5432/edge_sync",
    alarmEmail: node.tryGetContext("alarmEmail"),
  };
}
