import { App } from "aws-cdk-lib";
import { ApiStack } from "./stacks/api.ts";
import { StatefulStack } from "./stacks/stateful.ts";

const app = new App();
const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
const stateful = new StatefulStack(app, "EdgeSyncStateful", { env });
new ApiStack(app, "EdgeSyncApi", {
  env,
  queue: stateful.queue,
  dlq: stateful.dlq,
  signingKeys: stateful.signingKeys,
  databaseUrl:
    app.node.tryGetContext("databaseUrl") ?? "postgres://edge_sync@localhost:5432/edge_sync",
});
app.synth();
