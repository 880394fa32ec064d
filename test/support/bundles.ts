import { join } from "node:path";
import { App } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { buildApp } from "../../infra/build.ts";

/** Where a synthesised function's code was staged: the asset folder its zip is named after. */
export const stagedCode = (assemblyDir: string, code: { S3Key: string }) =>
  join(assemblyDir, `asset.${code.S3Key.replace(/\.zip$/, "")}`);

/**
 * Synthesises the CDK app into `outdir`, bundling every function as a deploy
 * does, and returns each function's bundle (`index.mjs`) by name, the
 * migration custom resource's (`migrate`) included.
 */
export function bundleFunctions(outdir: string) {
  const app = new App({
    outdir,
    context: { target: "localstack", "aws:cdk:version-reporting": false },
  });
  const { api } = buildApp(app);
  const assembly = app.synth();
  const template = assembly.getStackByName(api.stackName).template;
  const migrate = api.node.findChild("MigrateFunction") as lambda.Function;
  return Object.fromEntries(
    Object.entries({ ...api.functions, migrate }).map(([name, f]) => {
      const id = api.getLogicalId(f.node.defaultChild as lambda.CfnFunction);
      const code = template.Resources[id].Properties.Code;
      return [name, join(stagedCode(assembly.directory, code), "index.mjs")];
    }),
  ) as Record<keyof typeof api.functions | "migrate", string>;
}
