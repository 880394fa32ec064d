import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { beforeAll, describe, expect, it } from "vitest";
import { FUNCTION_PORTS, type FunctionName, type Port } from "../functions/deployment.ts";
import { routes } from "../functions/routes.ts";
import {
  allowStatements,
  json,
  outdirs,
  resources,
  type Synth,
  servedRoutes,
  synth,
} from "../test/support/cdk.ts";
import { buildApp } from "./build.ts";

describe("-c database=aurora-data-api", () => {
  let s: Synth;
  beforeAll(() => {
    s = synth({ database: "aurora-data-api" });
  });

  it("runs Aurora Serverless v2 PostgreSQL 16 with the Data API, encrypted", () => {
    s.stateful.resourceCountIs("AWS::RDS::DBInstance", 1);
    s.stateful.resourceCountIs("AWS::RDS::DBProxy", 0);
    s.stateful.hasResourceProperties("AWS::RDS::DBCluster", {
      Engine: "aurora-postgresql",
      EngineVersion: Match.stringLikeRegexp("^16"),
      EnableHttpEndpoint: true,
      StorageEncrypted: true,
      DeletionProtection: true,
      ServerlessV2ScalingConfiguration: Match.anyValue(),
    });
    s.stateful.hasResourceProperties("AWS::RDS::DBClusterParameterGroup", {
      Parameters: { "rds.force_ssl": "1" },
    });
  });

  it("runs the functions outside the VPC on the Data API, scoped to the cluster; only migrate is inside", () => {
    const withDb = Object.keys(s.functions).filter((name) =>
      (FUNCTION_PORTS[name as FunctionName] as readonly Port[]).includes("db"),
    );
    for (const [name, f] of Object.entries(s.functions)) {
      const props = s.api.toJSON().Resources[s.logicalId(f)].Properties;
      expect(props.VpcConfig, name).toBeUndefined();
      expect("DB_CLUSTER_ARN" in props.Environment.Variables, name).toBe(withDb.includes(name));
    }
    const [, migrate] = resources(s.api, "AWS::Lambda::Function").find(([id]) =>
      id.startsWith("MigrateFunction"),
    )!;
    expect(migrate.Properties.VpcConfig).toBeDefined();
    const dataApi = allowStatements(s.api).filter((st) =>
      st.actions.some((a) => a.startsWith("rds-data:")),
    );
    expect(dataApi).toHaveLength(withDb.length);
    for (const st of dataApi) expect(json(st.resource)).toMatch(/:cluster:.*RefCluster/);
    for (const { actions } of allowStatements(s.api)) {
      for (const action of actions) expect(action).not.toMatch(/(^\*$|:\*$)/);
    }
  });
});

describe("-c target=localstack", () => {
  let s: Synth;
  beforeAll(() => {
    s = synth({ target: "localstack", databaseUrl: "postgres://u:p@db:5432/x" });
  });

  it("has no VPC or RDS and points every function with the database at the compose file's PostgreSQL", () => {
    for (const type of ["AWS::EC2::VPC", "AWS::RDS::DBInstance", "AWS::RDS::DBCluster"]) {
      s.stateful.resourceCountIs(type, 0);
    }
    for (const [name, f] of Object.entries(s.functions)) {
      const props = s.api.toJSON().Resources[s.logicalId(f)].Properties;
      const hasDb = (FUNCTION_PORTS[name as FunctionName] as readonly Port[]).includes("db");
      expect(props.Environment.Variables.DATABASE_URL, name).toBe(
        hasDb ? "postgres://u:p@db:5432/x" : undefined,
      );
      expect(props.VpcConfig, name).toBeUndefined();
    }
  });

  it("keeps the queue, the event source and the routes", () => {
    s.stateful.hasResourceProperties("AWS::SQS::Queue", { QueueName: "changes.fifo" });
    s.api.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    expect(servedRoutes(s.api)).toHaveLength(routes.length);
  });
});

describe("context and cdk-nag", () => {
  it("turns on Multi-AZ and off deletion protection by flag", () => {
    const s = synth({ multiAz: "true", deletionProtection: "false" });
    s.stateful.hasResourceProperties("AWS::RDS::DBInstance", {
      MultiAZ: true,
      DeletionProtection: false,
    });
  });

  it("rejects an unknown database or target instead of guessing", () => {
    expect(() => synth({ database: "mysql" })).toThrow(/database must be rds or aurora-data-api/);
    expect(() => synth({ target: "gcp" })).toThrow(/target must be aws or localstack/);
  });

  it("fails synth on a finding nobody acknowledged", () => {
    const outdir = mkdtempSync(join(tmpdir(), "edge-sync-cdk-"));
    outdirs.push(outdir);
    const app = new App({
      outdir,
      context: { target: "localstack", "aws:cdk:bundling-stacks": [] },
    });
    const { stateful } = buildApp(app);
    // No DLQ, no TLS-only policy, no encryption: what cdk-nag is there to catch.
    new sqs.Queue(stateful, "Careless", { encryption: sqs.QueueEncryption.UNENCRYPTED });
    expect(() => app.synth()).toThrow(
      /AwsSolutions-SQS2[\s\S]*AwsSolutions-SQS3[\s\S]*AwsSolutions-SQS4/,
    );
  });
});
