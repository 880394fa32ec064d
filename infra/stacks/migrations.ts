import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CustomResource, Duration, type Stack, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as cr from "aws-cdk-lib/custom-resources";
import { type DatabaseAccess, DB_NAME } from "./stateful.ts";

const MIGRATIONS = join(import.meta.dirname, "..", "..", "db", "migrations");

/** Changes whenever a migration file does, so the custom resource runs again. */
function migrationsHash(): string {
  const hash = createHash("sha256");
  for (const name of readdirSync(MIGRATIONS).sort()) {
    hash.update(name).update(readFileSync(join(MIGRATIONS, name)));
  }
  return hash.digest("hex");
}

export interface MigrationProps {
  database: DatabaseAccess;
  signingKeys: secretsmanager.ISecret;
  operatorCredentials: secretsmanager.ISecret;
}

/**
 * The migrate function (the schema, the first signing key, the operator's
 * credentials) run by a custom resource on every deploy that changes a
 * migration file. New code goes live only after it.
 */
export function addMigrations(
  stack: Stack,
  props: MigrationProps,
  fn: (name: string, options?: Partial<nodejs.NodejsFunctionProps>) => nodejs.NodejsFunction,
): CustomResource {
  const { database } = props;
  const bundling: nodejs.BundlingOptions = {
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (inputDir: string, outputDir: string) => [
        `cp -r "${inputDir}/db/migrations" "${outputDir}/migrations"`,
      ],
    },
  };
  const migrateEnv: Record<string, string> = {
    MIGRATIONS_DIR: "/var/task/migrations",
    DB_NAME,
    KEYS_SECRET_ARN: props.signingKeys.secretArn,
    OPERATOR_SECRET_ARN: props.operatorCredentials.secretArn,
  };
  let network: Partial<nodejs.NodejsFunctionProps> = {};
  if (database.kind === "url") {
    migrateEnv.DATABASE_URL = database.url;
  } else {
    migrateEnv.DB_MASTER_SECRET_ARN = database.masterSecret.secretArn;
    migrateEnv.DB_APP_SECRET_ARN = database.appSecret.secretArn;
    network = {
      vpc: database.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [database.migrateSecurityGroup],
    };
  }
  const migrateFn = fn("migrate", {
    ...network,
    timeout: Duration.minutes(5),
    environment: migrateEnv,
    bundling,
  });
  // It writes the first signing key and the operator's credentials.
  props.signingKeys.grantWrite(migrateFn);
  props.operatorCredentials.grantRead(migrateFn);
  props.operatorCredentials.grantWrite(migrateFn);
  if (database.kind !== "url") {
    database.masterSecret.grantRead(migrateFn);
    database.appSecret.grantRead(migrateFn);
  }
  const provider = new cr.Provider(stack, "MigrateProvider", {
    onEventHandler: migrateFn,
    logGroup: new logs.LogGroup(stack, "MigrateProviderLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
    }),
  });
  Validations.of(provider).acknowledge(
    {
      id: "AwsSolutions::AwsSolutions-L1",
      reason: "The custom-resource framework function's runtime is chosen by aws-cdk-lib.",
    },
    {
      id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
      reason:
        "The framework function writes only its own logs; the managed policy is exactly that.",
    },
    {
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${stack.getLogicalId(migrateFn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
      reason: "The framework invokes the migrate function's versions and aliases, nothing else.",
    },
  );
  return new CustomResource(stack, "Migrations", {
    serviceToken: provider.serviceToken,
    properties: { migrations: migrationsHash() },
  });
}
