import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import {
  EMPTY_KEY_FILE,
  FUNCTION_PORTS,
  type FunctionName,
  MAX_MESSAGE_BYTES,
  MAX_RECEIVE_COUNT,
  type Port,
} from "../functions/deployment.ts";
import { routes } from "../functions/routes.ts";
import { stagedCode } from "../test/support/bundles.ts";
import {
  allowStatements,
  type Cfn,
  json,
  type Resource,
  resources,
  type Synth,
  servedRoutes,
  synth,
} from "../test/support/cdk.ts";
import { CONSUMER_TIMEOUT } from "./stacks/stateful.ts";

const run = promisify(execFile);

/** A resource policy of that type denies every request not made over TLS. */
const refusesPlainText = (template: Template, type: string) =>
  template.hasResourceProperties(type, {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Effect: "Deny",
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        }),
      ]),
    },
  });

describe("default: RDS PostgreSQL behind RDS Proxy", () => {
  let s: Synth;
  beforeAll(() => {
    s = synth({}, { bundle: true });
  });

  it("puts changes on a high-throughput FIFO queue deduplicated per report, with a DLQ after 5 receives", () => {
    const [dlqId] = resources(s.stateful, "AWS::SQS::Queue").find(
      ([, r]) => r.Properties.QueueName === "changes-dlq.fifo",
    )!;
    s.stateful.hasResourceProperties("AWS::SQS::Queue", {
      QueueName: "changes.fifo",
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: "messageGroup",
      FifoThroughputLimit: "perMessageGroupId",
      RedrivePolicy: {
        deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] },
        maxReceiveCount: MAX_RECEIVE_COUNT,
      },
    });
    expect(MAX_RECEIVE_COUNT).toBe(5);
  });

  it("lets both queues hold a message as large as ingest sends", () => {
    const sizes = resources(s.stateful, "AWS::SQS::Queue").map(
      ([, r]) => r.Properties.MaximumMessageSize,
    );
    expect(sizes).toEqual([MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES]);
  });

  it("keeps a message invisible for at least six consumer timeouts", () => {
    const [, queue] = resources(s.stateful, "AWS::SQS::Queue").find(
      ([, r]) => r.Properties.QueueName === "changes.fifo",
    )!;
    const consume = s.api.toJSON().Resources[s.logicalId(s.functions.consume)];
    expect(consume.Properties.Timeout).toBe(CONSUMER_TIMEOUT.toSeconds());
    expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(
      6 * consume.Properties.Timeout,
    );
  });

  it("feeds the consumer batches of 10 with partial batch failures and capped concurrency", () => {
    s.api.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    s.api.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: s.logicalId(s.functions.consume) },
      EventSourceArn: { "Fn::ImportValue": Match.stringLikeRegexp("GetAttChanges[0-9A-F]+Arn") },
      BatchSize: 10,
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      ScalingConfig: { MaximumConcurrency: Match.anyValue() },
    });
  });

  it("encrypts every queue, the database and the alarm topic, and refuses plain-text transport", () => {
    const queues = resources(s.stateful, "AWS::SQS::Queue");
    expect(queues).toHaveLength(2);
    for (const [id, q] of queues) {
      expect(q.Properties.SqsManagedSseEnabled ?? q.Properties.KmsMasterKeyId).toBeTruthy();
      // A TLS-only policy on each queue.
      const policies = resources(s.stateful, "AWS::SQS::QueuePolicy").filter(([, p]) =>
        json(p.Properties.Queues).includes(`"${id}"`),
      );
      expect(json(policies)).toContain('"aws:SecureTransport":"false"');
    }
    s.stateful.hasResourceProperties("AWS::RDS::DBInstance", {
      StorageEncrypted: true,
      EnableIAMDatabaseAuthentication: true,
      BackupRetentionPeriod: Match.anyValue(),
      EngineVersion: Match.stringLikeRegexp("^16"),
    });
    s.stateful.hasResourceProperties("AWS::RDS::DBParameterGroup", {
      Parameters: { "rds.force_ssl": "1" },
    });
    s.stateful.hasResourceProperties("AWS::RDS::DBProxy", {
      RequireTLS: true,
      Auth: [Match.objectLike({ IAMAuth: "REQUIRED" })],
    });
    const [[, topic]] = resources(s.api, "AWS::SNS::Topic") as [[string, Resource]];
    expect(topic.Properties.KmsMasterKeyId).toBeTruthy();
    refusesPlainText(s.api, "AWS::SNS::TopicPolicy");
    const [, db] = resources(s.stateful, "AWS::RDS::DBInstance")[0]!;
    expect(db.Properties.BackupRetentionPeriod).toBeGreaterThanOrEqual(7);
  });

  it("protects the database from deletion and runs it in one AZ unless told otherwise", () => {
    s.stateful.hasResourceProperties("AWS::RDS::DBInstance", {
      DeletionProtection: true,
      MultiAZ: false,
    });
  });

  it("runs in isolated subnets: no NAT or internet gateway, SQS and Secrets Manager through endpoints", () => {
    s.stateful.resourceCountIs("AWS::EC2::NatGateway", 0);
    s.stateful.resourceCountIs("AWS::EC2::InternetGateway", 0);
    const endpoints = resources(s.stateful, "AWS::EC2::VPCEndpoint").map(([, e]) =>
      json(e.Properties.ServiceName),
    );
    expect(endpoints.some((e) => e.includes(".sqs"))).toBe(true);
    expect(endpoints.some((e) => e.includes(".secretsmanager"))).toBe(true);
    for (const [name, f] of Object.entries(s.functions)) {
      const props = s.api.toJSON().Resources[s.logicalId(f)].Properties;
      expect(props.VpcConfig, name).toBeDefined();
    }
  });

  it("hands large exports out from a private, encrypted bucket that keeps them a day, reached through an endpoint", () => {
    s.stateful.hasResourceProperties("AWS::S3::Bucket", {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
        ],
      },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            ExpirationInDays: 1,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            Status: "Enabled",
          }),
        ],
      },
    });
    refusesPlainText(s.stateful, "AWS::S3::BucketPolicy");
    const endpoints = resources(s.stateful, "AWS::EC2::VPCEndpoint");
    expect(
      endpoints.some(
        ([, e]) =>
          e.Properties.VpcEndpointType === "Gateway" &&
          json(e.Properties.ServiceName).includes(".s3"),
      ),
    ).toBe(true);
  });

  it("grants no function a wildcard action", () => {
    const statements = [...allowStatements(s.api), ...allowStatements(s.stateful)];
    expect(statements.length).toBeGreaterThan(10);
    for (const { actions } of statements) {
      for (const action of actions) expect(action).not.toMatch(/(^\*$|:\*$)/);
    }
  });

  it("grants each function only what its declared ports need: consume cannot read the signing keys", () => {
    const template = s.api.toJSON();
    const actionsOf = (name: FunctionName): string[] => {
      const fnResource = template.Resources[s.logicalId(s.functions[name])];
      const role = fnResource.Properties.Role["Fn::GetAtt"][0];
      return resources(s.api, "AWS::IAM::Policy")
        .filter(([, p]) => json(p.Properties.Roles).includes(role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
        .flatMap((st: Cfn) => [st.Action].flat() as string[]);
    };
    const envOf = (name: FunctionName) =>
      template.Resources[s.logicalId(s.functions[name])].Properties.Environment.Variables;
    for (const [name, ports] of Object.entries(FUNCTION_PORTS) as [
      FunctionName,
      readonly Port[],
    ][]) {
      const actions = actionsOf(name);
      const has = (port: Port) => ports.includes(port);
      expect(actions.includes("secretsmanager:GetSecretValue"), name).toBe(has("keys"));
      expect("KEYS_SECRET_ARN" in envOf(name), name).toBe(has("keys"));
      expect(actions.includes("rds-db:connect"), name).toBe(has("db"));
      expect(actions.includes("s3:PutObject"), name).toBe(has("exports"));
      expect("EXPORT_BUCKET" in envOf(name), name).toBe(has("exports"));
      expect(actions.includes("sqs:SendMessage"), name).toBe(has("queue") || has("deadLetters"));
      // The consumer receives through its event source mapping.
      expect(actions.includes("sqs:ReceiveMessage"), name).toBe(
        has("deadLetters") || name === "consume",
      );
    }
    // The consumer's role can read no secret at all.
    expect(actionsOf("consume").filter((a) => a.startsWith("secretsmanager:"))).toEqual([]);
  });

  it("serves every route of the route table, behind the authorizer unless public", () => {
    const served = servedRoutes(s.api);
    const [[authorizerId, authorizer]] = resources(s.api, "AWS::ApiGateway::Authorizer") as [
      [string, Resource],
    ];
    expect(authorizer.Properties).toMatchObject({
      Type: "TOKEN",
      IdentitySource: "method.request.header.Authorization",
    });
    expect(json(authorizer.Properties.AuthorizerUri)).toContain(
      s.logicalId(s.functions.authorizer),
    );
    expect(served.map((r) => r.route).sort()).toEqual(
      routes.map((r) => `${r.method} ${r.path}`).sort(),
    );
    for (const route of routes) {
      const method = served.find((r) => r.route === `${route.method} ${route.path}`)!;
      expect(method.fn, method.route).toBe(s.logicalId(s.functions[route.fn]));
      expect(method.integration).toBe("AWS_PROXY");
      if (route.roles === "public") {
        expect(method.authorizationType, method.route).toBe("NONE");
      } else {
        expect(method, method.route).toMatchObject({
          authorizationType: "CUSTOM",
          authorizer: authorizerId,
        });
      }
    }
  });

  it("logs access and errors and throttles the stage", () => {
    s.api.hasResourceProperties("AWS::ApiGateway::Stage", {
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
      MethodSettings: [
        Match.objectLike({
          LoggingLevel: "ERROR",
          ThrottlingRateLimit: Match.anyValue(),
          ThrottlingBurstLimit: Match.anyValue(),
        }),
      ],
    });
  });

  it("runs every function on Node.js 22 arm64 with source maps", () => {
    for (const [name, f] of Object.entries(s.functions)) {
      const props = s.api.toJSON().Resources[s.logicalId(f)].Properties;
      expect(props, name).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"] });
      expect(props.Environment.Variables.NODE_OPTIONS, name).toContain("--enable-source-maps");
    }
  });

  it("bundles db/migrations with the migrate function and migrates before the functions update", () => {
    const [migrationsId, migrations] = resources(s.api, "AWS::CloudFormation::CustomResource")[0]!;
    expect(migrations.Properties.migrations).toMatch(/^[0-9a-f]{64}$/);
    for (const [name, f] of Object.entries(s.functions)) {
      const resource = s.api.toJSON().Resources[s.logicalId(f)];
      expect(resource.DependsOn, name).toContain(migrationsId);
    }
    const [, migrate] = resources(s.api, "AWS::Lambda::Function").find(([id]) =>
      id.startsWith("MigrateFunction"),
    )!;
    const bundle = stagedCode(s.assembly.directory, migrate.Properties.Code);
    expect(migrate.Properties.Environment.Variables.MIGRATIONS_DIR).toBe("/var/task/migrations");
    // It writes the first signing key and the operator's credentials there.
    const secrets = resources(s.stateful, "AWS::SecretsManager::Secret");
    const [keysId, keys] = secrets.find(([id]) => id.startsWith("SigningKeys"))!;
    const [operatorId] = secrets.find(([id]) => id.startsWith("OperatorCredentials"))!;
    expect(keys.Properties).toMatchObject({ SecretString: EMPTY_KEY_FILE });
    expect(keys.Properties.GenerateSecretString).toBeUndefined();
    for (const [variable, id] of [
      ["KEYS_SECRET_ARN", keysId],
      ["OPERATOR_SECRET_ARN", operatorId],
    ] as const) {
      expect(json(migrate.Properties.Environment.Variables[variable])).toContain(`Ref${id}`);
      const writes = allowStatements(s.api).filter(
        (st) =>
          st.actions.includes("secretsmanager:PutSecretValue") &&
          json(st.resource).includes(`Ref${id}`),
      );
      expect(writes, variable).toHaveLength(1);
    }
    expect(existsSync(join(bundle, "index.mjs"))).toBe(true);
    expect(readdirSync(join(bundle, "migrations")).sort()).toEqual(
      readdirSync(join(import.meta.dirname, "..", "db", "migrations")).sort(),
    );
  });

  it("bundles every function so it loads on its own, with nothing from node_modules", async () => {
    const bundles = resources(s.api, "AWS::Lambda::Function")
      .filter(([, f]) => f.Properties.Handler === "index.handler")
      .map(([id, f]) => {
        return [
          id,
          join(stagedCode(s.assembly.directory, f.Properties.Code), "index.mjs"),
        ] as const;
      });
    expect(bundles.length).toBe(Object.keys(s.functions).length + 1); // and migrate
    const loads = await Promise.all(
      bundles.map(async ([id, file]) => {
        // A fresh Node, outside the repository: what the Lambda runtime does at init.
        const { stdout } = await run(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            `const m = await import(${JSON.stringify(file)}); console.log(typeof m.handler)`,
          ],
          { cwd: tmpdir(), env: { PATH: process.env.PATH } },
        ).catch((error: { stderr: string }) => ({ stdout: error.stderr.split("\n")[0] ?? "" }));
        return [id, stdout.trim()];
      }),
    );
    for (const [id, result] of loads) expect(result, id).toBe("function");
  });

  it("alarms on the DLQ, the oldest change's age, and each function's errors and throttles", () => {
    const alarms = resources(s.api, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
    const [[topicId]] = resources(s.api, "AWS::SNS::Topic") as [[string, Resource]];
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
    const on = (metric: string, dimension: string) =>
      alarms.filter((a) => a.MetricName === metric && json(a.Dimensions).includes(dimension));
    expect(on("ApproximateNumberOfMessagesVisible", "ChangesDlq")).toHaveLength(1);
    expect(on("ApproximateAgeOfOldestMessage", "GetAttChanges")).toHaveLength(1);
    for (const [name, f] of Object.entries(s.functions)) {
      const ref = `{"Ref":"${s.logicalId(f)}"}`;
      expect(on("Errors", ref), name).toHaveLength(1);
      expect(on("Throttles", ref), name).toHaveLength(1);
    }
  });

  it("matches the reviewed template (asset hashes aside)", async () => {
    const normalise = (t: Template) =>
      `${JSON.stringify(t.toJSON(), null, 2).replace(/[0-9a-f]{64}/g, "<hash>")}\n`;
    await expect(normalise(s.stateful)).toMatchFileSnapshot(
      "__snapshots__/EdgeSyncStateful.template.json",
    );
    await expect(normalise(s.api)).toMatchFileSnapshot("__snapshots__/EdgeSyncApi.template.json");
  });
});
