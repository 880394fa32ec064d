import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { afterAll } from "vitest";
import { buildApp } from "../../infra/build.ts";

// Synthesises the app as `cdk synth` does, cdk-nag included: synth() throws
// on any unacknowledged finding. Only the default variant bundles the
// functions (esbuild, about 7 s); the others check the same code's wiring.
/** Cloud assemblies to delete when the suite ends. */
export const outdirs: string[] = [];
export function synth(context: Record<string, unknown>, { bundle = false } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), "edge-sync-cdk-"));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: {
      ...context,
      "aws:cdk:version-reporting": false,
      ...(bundle ? {} : { "aws:cdk:bundling-stacks": [] }),
    },
  });
  const built = buildApp(app);
  const assembly = app.synth();
  const template = (stack: Stack) =>
    Template.fromJSON(assembly.getStackByName(stack.stackName).template);
  return {
    settings: built.settings,
    functions: built.api.functions,
    assembly,
    stateful: template(built.stateful),
    api: template(built.api),
    logicalId: (construct: { node: { defaultChild?: unknown } }) =>
      built.api.getLogicalId(construct.node.defaultChild as lambda.CfnFunction),
  };
}
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

export type Synth = ReturnType<typeof synth>;
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON.
export type Cfn = any;
export type Resource = { Type: string; Properties: Record<string, Cfn>; DependsOn?: string[] };
export const resources = (t: Template, type: string) =>
  Object.entries(t.findResources(type)) as [string, Resource][];
export const json = (value: unknown) => JSON.stringify(value);

/** Every route the REST API serves: method, path, authorization and target function. */
export function servedRoutes(t: Template) {
  const all = t.toJSON().Resources as Record<string, Resource>;
  const pathOf = (ref: Record<string, Cfn>): string => {
    if (ref["Fn::GetAtt"]?.[1] === "RootResourceId") return "";
    const resource = all[ref.Ref]!.Properties;
    return `${pathOf(resource.ParentId)}/${resource.PathPart}`;
  };
  return resources(t, "AWS::ApiGateway::Method").map(([, { Properties: m }]) => {
    const uri = m.Integration.Uri["Fn::Join"][1] as unknown[];
    const target = uri.find((part) => (part as Cfn)?.["Fn::GetAtt"]) as Cfn;
    return {
      route: `${m.HttpMethod} ${pathOf(m.ResourceId) || "/"}`,
      authorizationType: m.AuthorizationType,
      authorizer: m.AuthorizerId?.Ref as string | undefined,
      integration: m.Integration.Type,
      fn: target["Fn::GetAtt"][0] as string,
    };
  });
}

/** Allow statements of every IAM policy, inline or attached, in a template. */
export function allowStatements(t: Template) {
  const documents = [
    ...resources(t, "AWS::IAM::Policy").map(([, r]) => r.Properties.PolicyDocument),
    ...resources(t, "AWS::IAM::Role").flatMap(([, r]) =>
      (r.Properties.Policies ?? []).map((p: Cfn) => p.PolicyDocument),
    ),
  ];
  return documents
    .flatMap((d) => d.Statement)
    .filter((s: Cfn) => s.Effect === "Allow")
    .map((s: Cfn) => ({ actions: [s.Action].flat() as string[], resource: s.Resource }));
}
