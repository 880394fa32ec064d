import { type App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { settingsFrom } from "./settings.ts";
import { ApiStack } from "./stacks/api.ts";
import { StatefulStack } from "./stacks/stateful.ts";

/** The two stacks, as the context (`-c database=…`, `-c target=…`) chooses, checked by cdk-nag. */
export function buildApp(app: App) {
  const settings = settingsFrom(app.node);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const env =
    settings.target === "localstack"
      ? { account: "000000000000", region: process.env.AWS_REGION ?? "us-east-1" }
      : { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  const stateful = new StatefulStack(app, "EdgeSyncStateful", { env, settings });
  const api = new ApiStack(app, "EdgeSyncApi", {
    env,
    settings,
    queue: stateful.queue,
    dlq: stateful.dlq,
    signingKeys: stateful.signingKeys,
    operatorCredentials: stateful.operatorCredentials,
    database: stateful.database,
  });
  // The export bucket reaches the API stack by its export's name (stateful.ts).
  api.addDependency(stateful);
  return { settings, stateful, api };
}
