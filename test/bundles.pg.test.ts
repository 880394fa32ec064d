import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  APIGatewayTokenAuthorizerEvent,
  CloudFormationCustomResourceEvent,
  SQSBatchResponse,
  SQSEvent,
} from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { keyRingFrom } from "../functions/adapters/auth/keys.ts";
import { verifySecret } from "../functions/adapters/auth/secrets.ts";
import { readMigrations } from "../functions/adapters/db/migrate.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { findPrincipalByClientId } from "../functions/app/identity.ts";
import { EMPTY_KEY_FILE, EMPTY_OPERATOR_SECRET } from "../functions/deployment.ts";
import type { Handler } from "../functions/deps.ts";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { startPoller } from "../local/poller.ts";
import { ensureQueues, startEmbeddedSqs } from "../local/sqs.ts";
import { bundleFunctions } from "./support/bundles.ts";
import { createTestDb, type TestDb } from "./support/db.ts";
import { seedProject } from "./support/fixtures.ts";
import { startSecretsManager } from "./support/secrets-manager.ts";

// The deploy artefacts themselves, not the sources: each function as esbuild
// bundled it for Lambda, loaded as the runtime loads it, configured only by
// environment variables, against PostgreSQL, an SQS API and a stand-in for
// Secrets Manager, from the first deploy's migration to a synced change. Runs where
// DATABASE_URL is set (`npm run test:pg`): every bundle opens its own
// connection, which an embedded single-session database cannot share.
describe("bundled functions, configured as on Lambda", () => {
  let t: TestDb;
  let dir: string;
  let stopSqs: () => Promise<void>;
  const saved = { ...process.env };
  let bundles: Record<string, string>;
  let secretsManager: Awaited<ReturnType<typeof startSecretsManager>>;
  const KEYS = "arn:aws:secretsmanager:us-east-1:000000000000:secret:SigningKeys-AbCdEf";
  const OPERATOR = "arn:aws:secretsmanager:us-east-1:000000000000:secret:Operator-AbCdEf";
  // biome-ignore lint/suspicious/noExplicitAny: each bundle's handler takes its own event type.
  const load = async (name: string): Promise<Handler<any, any>> =>
    (await import(pathToFileURL(bundles[name]!).href)).handler;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-sync-bundles-"));
    bundles = bundleFunctions(join(dir, "cdk.out"));
    // A new deployment: an empty database, the secrets as the stack creates them.
    t = await createTestDb("postgres", { migrated: false });
    secretsManager = await startSecretsManager({
      [KEYS]: EMPTY_KEY_FILE,
      [OPERATOR]: EMPTY_OPERATOR_SECRET,
    });
    const sqs = await startEmbeddedSqs();
    stopSqs = sqs.stop;
    const queues = await ensureQueues(createSqsClient("us-east-1", sqs.endpoint), 5);
    Object.assign(process.env, {
      DATABASE_URL: t.url,
      QUEUE_URL: queues.queueUrl,
      DLQ_URL: queues.dlqUrl,
      SQS_ENDPOINT: sqs.endpoint,
      AWS_REGION: "us-east-1",
      DATA_DIR: dir,
      KEYS_SECRET_ARN: KEYS,
      OPERATOR_SECRET_ARN: OPERATOR,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsManager.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      MIGRATIONS_DIR: join(dirname(bundles.migrate!), "migrations"),
    });
  });
  afterAll(async () => {
    process.env = saved;
    await stopSqs?.();
    await secretsManager?.stop();
    await t?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("migrate prepares the new deployment on Create, and changes nothing on a repeat Update", async () => {
    const migrate = await load("migrate");
    const event = await loadEvent<CloudFormationCustomResourceEvent>(
      "events/cfn/create-migrations.json",
      { migrations: "a".repeat(64) },
    );
    const created = await migrate(event, lambdaContext("migrate", "bundle"));
    const names = (await readMigrations()).map((m) => m.name);
    expect(created).toEqual({
      PhysicalResourceId: "edge-sync-migrations",
      Data: { applied: names.join(",") },
    });
    const keys = secretsManager.values.get(KEYS)!;
    expect((await keyRingFrom(JSON.parse(keys))).jwks.keys).toHaveLength(1);
    const operator = JSON.parse(secretsManager.values.get(OPERATOR)!);
    const principal = await findPrincipalByClientId(t.db, operator.clientId);
    expect(principal).toMatchObject({ role: "operator", project_id: null });
    expect(await verifySecret(operator.clientSecret, principal!.secret_hash)).toBe(true);

    const updated = await migrate(
      { ...event, RequestType: "Update", PhysicalResourceId: "edge-sync-migrations" },
      lambdaContext("migrate", "bundle"),
    );
    expect(updated).toEqual({ PhysicalResourceId: "edge-sync-migrations", Data: { applied: "" } });
    expect(secretsManager.values.get(KEYS)).toBe(keys);
    expect(JSON.parse(secretsManager.values.get(OPERATOR)!)).toEqual(operator);
  });

  it("issue a token, authorize it, take a change, merge it from the queue and sync it back", async () => {
    const { project, devices } = await seedProject(t.db, 1);
    const device = devices[0]!;
    const context = (name: string) => lambdaContext(name, "bundle");

    const token = (await (
      await load("token")
    )(
      await loadEvent<APIGatewayProxyEvent>("events/api/post-token.json", {
        clientId: device.clientId,
        clientSecret: device.clientSecret,
      }),
      context("token"),
    )) as APIGatewayProxyResult;
    expect(token.statusCode).toBe(200);
    const accessToken = JSON.parse(token.body).access_token as string;

    const policy = await (await load("authorizer"))(
      await loadEvent<APIGatewayTokenAuthorizerEvent>("events/authorizer/token.json", {
        token: accessToken,
      }),
      context("authorizer"),
    );
    expect(policy).toMatchObject({
      principalId: device.id,
      policyDocument: { Statement: [expect.objectContaining({ Effect: "Allow" })] },
      context: { project: project.id, role: "device" },
    });

    const reportId = crypto.randomUUID();
    const ingestEvent = await loadEvent<APIGatewayProxyEvent>("events/api/post-changes.json", {
      token: accessToken,
      sub: device.id,
      project: project.id,
    });
    const changeId = crypto.randomUUID();
    ingestEvent.body = JSON.stringify({
      changes: [
        {
          changeId,
          reportId,
          op: "upsert",
          hlc: formatHlc({ wall: Date.now(), counter: 0, node: device.id }),
          fields: { title: "Pump 3 leaking", severity: 3 },
        },
      ],
    });
    const ingested = (await (
      await load("ingest")
    )(ingestEvent, context("ingest"))) as APIGatewayProxyResult;
    expect(ingested.statusCode).toBe(202);
    expect(JSON.parse(ingested.body)).toMatchObject({
      accepted: [changeId],
      rejected: [],
      failed: [],
    });

    // The event source mapping, as the local cloud runs it, feeding the bundled consumer.
    const consume: Handler<SQSEvent, SQSBatchResponse> = await load("consume");
    const outcomes: SQSBatchResponse[] = [];
    const poller = startPoller({
      client: createSqsClient("us-east-1", process.env.SQS_ENDPOINT),
      queueUrl: process.env.QUEUE_URL!,
      queueArn: "arn:aws:sqs:us-east-1:000000000000:changes.fifo",
      region: "us-east-1",
      loops: 1,
      waitTimeSeconds: 1,
      handler: async (event, ctx) => {
        const response = await consume(event, ctx);
        outcomes.push(response);
        return response;
      },
    });
    const deadline = Date.now() + 60_000;
    while (outcomes.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    await poller.stop();
    expect(outcomes).toEqual([{ batchItemFailures: [] }]);

    const synced = (await (
      await load("sync")
    )(
      await loadEvent<APIGatewayProxyEvent>("events/api/get-sync.json", {
        token: accessToken,
        sub: device.id,
        project: project.id,
      }),
      context("sync"),
    )) as APIGatewayProxyResult;
    expect(synced.statusCode).toBe(200);
    const page = JSON.parse(synced.body);
    expect(page.reports).toEqual([
      expect.objectContaining({ id: reportId, fields: { title: "Pump 3 leaking", severity: 3 } }),
    ]);
    expect(page.acks).toEqual([expect.objectContaining({ changeId, outcome: "applied" })]);
  });
});
