import { spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { LOCALSTACK_ACCOUNT, localstackApiUrls } from "./localstack.ts";
import { type ClientCredentials, type Provisioned, provision } from "./provision.ts";

/**
 * `npm run deploy:localstack [-- <cdk deploy options>]`: deploys the CDK app
 * with `-c target=localstack` to the LocalStack of docker-compose.yml, then,
 * on the first deploy, creates a project and two devices as the stack's
 * platform operator. Writes `.local/localstack.json` (every credential, mode
 * 0600) and `.local/localstack.env` (for the compose file's agents).
 *
 * `npm run destroy:localstack` removes the stacks again.
 *
 * LOCALSTACK_ENDPOINT (default http://127.0.0.1:4566) says where LocalStack
 * listens; an IP address keeps S3 asset uploads path-style, with no DNS.
 */

const endpoint = (process.env.LOCALSTACK_ENDPOINT ?? "http://127.0.0.1:4566").replace(/\/$/, "");
const region = process.env.AWS_REGION ?? "us-east-1";
const dataDir = process.env.DATA_DIR ?? ".local";
const outputsFile = join(dataDir, "localstack-outputs.json");
const credentialsFile = join(dataDir, "localstack.json");
const envFile = join(dataDir, "localstack.env");
// Its own cloud assembly, so a synth or deploy for AWS can run alongside.
const output = ["--output", join(dataDir, "cdk.out.localstack")];

function run(command: string, args: string[], env: NodeJS.ProcessEnv) {
  console.log(`\n$ ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { stdio: "inherit", env });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

async function main() {
  try {
    const health = await fetch(`${endpoint}/_localstack/health`);
    if (!health.ok) throw new Error(`HTTP ${health.status}`);
  } catch (error) {
    console.error(
      `LocalStack is not answering at ${endpoint} (${(error as Error).message}).\nStart it with: docker compose up -d`,
    );
    process.exit(2);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    CDK_DEFAULT_ACCOUNT: LOCALSTACK_ACCOUNT,
    CDK_DEFAULT_REGION: region,
  };
  // A profile or session token from the shell would send the CLI to AWS.
  for (const name of ["AWS_PROFILE", "AWS_SESSION_TOKEN"]) delete env[name];
  const cdk = join("node_modules", ".bin", "cdk");
  const context = ["-c", "target=localstack"];
  if (process.argv[2] === "destroy") {
    run(cdk, ["destroy", "--all", ...context, ...output, "--force", ...process.argv.slice(3)], env);
    return;
  }
  run(cdk, ["bootstrap", `aws://${LOCALSTACK_ACCOUNT}/${region}`, ...context], env);
  await mkdir(dataDir, { recursive: true });
  run(
    cdk,
    [
      "deploy",
      "--all",
      ...context,
      ...output,
      "--require-approval",
      "never",
      "--outputs-file",
      outputsFile,
      ...process.argv.slice(2),
    ],
    env,
  );

  const outputs = JSON.parse(await readFile(outputsFile, "utf8"));
  const urls = localstackApiUrls(outputs.EdgeSyncApi.ApiUrl, endpoint);
  let saved: { apiUrl: string; operator?: ClientCredentials } & Partial<Provisioned> = {
    apiUrl: urls.host,
  };
  try {
    saved = JSON.parse(await readFile(credentialsFile, "utf8"));
  } catch {}
  if (saved.apiUrl !== urls.host || !saved.devices) {
    const secrets = new SecretsManagerClient({
      endpoint,
      region,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    const secret = await secrets.send(
      new GetSecretValueCommand({ SecretId: outputs.EdgeSyncApi.OperatorSecret }),
    );
    secrets.destroy();
    // The secret is filled only when the migration creates the operator: a
    // database kept from an earlier deployment already has one.
    const fromSecret = JSON.parse(secret.SecretString ?? "{}") as Partial<ClientCredentials>;
    const operator = fromSecret.clientId ? (fromSecret as ClientCredentials) : saved.operator;
    if (!operator) {
      console.error(
        `The database already has a platform operator from an earlier deployment, and ${credentialsFile} does not hold its credentials.\nStart from an empty database: docker compose down -v && docker compose up -d`,
      );
      process.exit(1);
    }
    const made = await provision(urls.host, operator, {
      project: "localstack",
      devices: ["agent a", "agent b"],
    });
    saved = { apiUrl: urls.host, ...made };
    await writeFile(credentialsFile, `${JSON.stringify({ ...saved, operator }, null, 2)}\n`, {
      mode: 0o600,
    });
  }
  const [a, b] = saved.devices!;
  await writeFile(
    envFile,
    [
      `EDGE_AGENT_API=${urls.compose}`,
      `AGENT_A_CLIENT_ID=${a!.clientId}`,
      `AGENT_A_CLIENT_SECRET=${a!.clientSecret}`,
      `AGENT_B_CLIENT_ID=${b!.clientId}`,
      `AGENT_B_CLIENT_SECRET=${b!.clientSecret}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  console.log(`
edge-sync on LocalStack
  API and dashboard   ${urls.host}
  credentials         ${credentialsFile} (operator, project admin, two devices)
  agents              docker compose --env-file ${envFile} --profile agents up -d`);
}

await main();
