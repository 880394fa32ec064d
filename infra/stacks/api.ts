import { join } from "node:path";
import { CfnOutput, Duration, Fn, Stack, type StackProps, Validations } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sns from "aws-cdk-lib/aws-sns";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import {
  CONSUMER_CONCURRENCY,
  FUNCTION_PORTS,
  type FunctionName,
  type Port,
} from "../../functions/deployment.ts";
import {
  type ApiFunction,
  AUTHORIZER_CACHE_TTL_SECONDS,
  apiFunctions,
  type GatewayResponse,
  gatewayResponses,
  routes,
  SECURITY_HEADERS,
} from "../../functions/routes.ts";
import type { Settings } from "../settings.ts";
import { addAlarms } from "./alarms.ts";
import { addMigrations } from "./migrations.ts";
import {
  CONSUMER_TIMEOUT,
  type DatabaseAccess,
  DB_APP_USER,
  DB_NAME,
  EXPORT_BUCKET_EXPORT,
} from "./stateful.ts";

const ROOT = join(import.meta.dirname, "..", "..");

export interface ApiStackProps extends StackProps {
  settings: Settings;
  queue: sqs.IQueue;
  dlq: sqs.IQueue;
  signingKeys: secretsmanager.ISecret;
  operatorCredentials: secretsmanager.ISecret;
  database: DatabaseAccess;
}

/**
 * The stateless side: one function per file in `functions/`, the REST API
 * built from the route table with the TOKEN authorizer, the consumer on the
 * FIFO queue, the migration custom resource and the alarms.
 */
export class ApiStack extends Stack {
  readonly api: apigateway.RestApi;
  readonly functions: Record<FunctionName, nodejs.NodejsFunction>;
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    const { database } = props;
    const exports = s3.Bucket.fromBucketName(this, "Exports", Fn.importValue(EXPORT_BUCKET_EXPORT));

    const databaseEnv: Record<string, string> =
      database.kind === "rds-proxy"
        ? { DB_HOST: database.proxy.endpoint, DB_USER: DB_APP_USER, DB_NAME }
        : database.kind === "data-api"
          ? {
              DB_CLUSTER_ARN: database.cluster.clusterArn,
              DB_SECRET_ARN: database.appSecret.secretArn,
              DB_NAME,
            }
          : { DATABASE_URL: database.url };
    // Each function gets the settings of its declared ports only: one
    // without `keys` is not even told where the signing keys are.
    const environmentFor = (name: string): Record<string, string> => {
      const ports: readonly Port[] = FUNCTION_PORTS[name as FunctionName] ?? [];
      return {
        ...(ports.includes("db") ? databaseEnv : {}),
        QUEUE_URL: props.queue.queueUrl,
        DLQ_URL: props.dlq.queueUrl,
        ...(ports.includes("keys") ? { KEYS_SECRET_ARN: props.signingKeys.secretArn } : {}),
        ...(ports.includes("exports") ? { EXPORT_BUCKET: exports.bucketName } : {}),
        NODE_OPTIONS: "--enable-source-maps",
        POWERTOOLS_SERVICE_NAME: "edge-sync",
      };
    };

    // Only the RDS Proxy variant puts the API functions in the VPC; the Data
    // API is reached over HTTPS, and LocalStack has no VPC to speak of.
    const network = (vpc: ec2.IVpc, sg: ec2.ISecurityGroup) => ({
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [sg],
    });
    const apiNetwork =
      database.kind === "rds-proxy" ? network(database.vpc, database.functionsSecurityGroup) : {};

    const fn = (
      name: string,
      options: Partial<nodejs.NodejsFunctionProps> = {},
    ): nodejs.NodejsFunction => {
      const f = new nodejs.NodejsFunction(
        this,
        `${name[0]!.toUpperCase()}${name.slice(1)}Function`,
        {
          entry: join(ROOT, "functions", `${name}.ts`),
          handler: "handler",
          runtime: lambda.Runtime.NODEJS_22_X,
          architecture: lambda.Architecture.ARM_64,
          memorySize: 512,
          timeout: Duration.seconds(10),
          environment: environmentFor(name),
          logGroup: new logs.LogGroup(this, `${name}Logs`, {
            retention: logs.RetentionDays.ONE_MONTH,
          }),
          ...apiNetwork,
          ...options,
          bundling: {
            minify: true,
            sourceMap: true,
            target: "node22",
            format: nodejs.OutputFormat.ESM,
            mainFields: ["module", "main"],
            // Bundled CommonJS dependencies still call require().
            banner:
              "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
            // The AWS SDK is bundled at the versions the tests ran, not taken
            // from the runtime (which lacks @aws-sdk/rds-signer, and whose
            // version moves under us). PGlite is the local cloud's only.
            externalModules: ["@electric-sql/pglite"],
            ...options.bundling,
          },
          depsLockFilePath: join(ROOT, "package-lock.json"),
          projectRoot: ROOT,
        },
      );
      Validations.of(f).acknowledge(
        {
          id: "AwsSolutions::AwsSolutions-L1",
          reason:
            "Node.js 22 is the runtime the project targets and tests; moving up is a deliberate change.",
        },
        {
          id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
          reason: "Lets the function write its own logs and nothing else; AWS keeps it current.",
        },
        {
          id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
          reason:
            "Lets a function in the VPC manage its network interfaces; Lambda requires exactly these rights.",
        },
      );
      return f;
    };

    const api = Object.fromEntries(
      apiFunctions.map((name) => [
        name,
        // Audit's work is CPU (a signature check per entry verified) and
        // memory (an evidence bundle is built whole): 1,769 MB is one full
        // vCPU, so a part of a verification checks three times the entries
        // it would at 512 MB, for about the same cost per entry. A report's
        // whole history may take longer than 10 s to export: it gets up to
        // API Gateway's 29 s.
        fn(name, name === "audit" ? { memorySize: 1769, timeout: Duration.seconds(28) } : {}),
      ]),
    ) as Record<ApiFunction, nodejs.NodejsFunction>;
    const authorizerFn = fn("authorizer");
    const consumeFn = fn("consume", { timeout: CONSUMER_TIMEOUT });
    const retentionFn = fn("retention", { timeout: Duration.minutes(5) });
    this.functions = {
      ...api,
      authorizer: authorizerFn,
      consume: consumeFn,
      retention: retentionFn,
    };

    for (const [name, f] of Object.entries(this.functions)) {
      this.grantPorts(f, FUNCTION_PORTS[name as FunctionName], props, exports);
    }
    consumeFn.addEventSource(
      new SqsEventSource(props.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: CONSUMER_CONCURRENCY,
      }),
    );

    // Deleted reports past their project's retention are erased every hour.
    new events.Rule(this, "RetentionSchedule", {
      description: "Erases the values of deleted reports past their project's retention",
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [new targets.LambdaFunction(retentionFn, { retryAttempts: 2 })],
    });

    // New code goes live only once the schema it expects is in place.
    const migrations = addMigrations(this, props, fn);
    for (const f of Object.values(this.functions)) f.node.addDependency(migrations);
    this.api = this.restApi(api, authorizerFn);
    const { topic, alarms } = addAlarms(this, {
      dlq: props.dlq,
      queue: props.queue,
      functions: this.functions,
      email: props.settings.alarmEmail,
    });
    this.alarms = alarms;
    this.outputs(props, topic);
  }

  /** Exactly the access a function's declared ports need (functions/deployment.ts). */
  private grantPorts(
    f: nodejs.NodejsFunction,
    ports: readonly Port[],
    props: ApiStackProps,
    exports: s3.IBucket,
  ): void {
    const { database } = props;
    if (ports.includes("db") && database.kind === "rds-proxy")
      database.proxy.grantConnect(f, DB_APP_USER);
    if (ports.includes("db") && database.kind === "data-api") {
      database.appSecret.grantRead(f);
      f.addToRolePolicy(
        new iam.PolicyStatement({
          actions: [
            "rds-data:ExecuteStatement",
            "rds-data:BatchExecuteStatement",
            "rds-data:BeginTransaction",
            "rds-data:CommitTransaction",
            "rds-data:RollbackTransaction",
          ],
          resources: [database.cluster.clusterArn],
        }),
      );
    }
    if (ports.includes("keys")) props.signingKeys.grantRead(f);
    if (ports.includes("queue")) props.queue.grantSendMessages(f);
    if (ports.includes("queueDepth"))
      f.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ["sqs:GetQueueAttributes"],
          resources: [props.queue.queueArn, props.dlq.queueArn],
        }),
      );
    if (ports.includes("deadLetters")) {
      // Listing and redrive: receive from the DLQ, hand back or delete, and
      // send the chosen changes back to the changes queue.
      props.dlq.grantConsumeMessages(f);
      props.queue.grantSendMessages(f);
    }
    if (ports.includes("exports")) {
      // Write an export (in parts when large) and sign the link that reads it back.
      f.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
          resources: [exports.arnForObjects("*")],
        }),
      );
      Validations.of(f).acknowledge({
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${EXPORT_BUCKET_EXPORT}/*]`,
        reason:
          "Each export gets a new random name, so the function must write and read any object of the export bucket, and nothing else.",
      });
    }
  }

  /** Runs `db/migrations` on every deploy that changes them, before the API serves. */
  private restApi(
    functions: Record<ApiFunction, nodejs.NodejsFunction>,
    authorizerFn: nodejs.NodejsFunction,
  ): apigateway.RestApi {
    const accessLogs = new logs.LogGroup(this, "ApiAccessLogs", {
      retention: logs.RetentionDays.THREE_MONTHS,
    });
    const api = new apigateway.RestApi(this, "Api", {
      restApiName: "edge-sync",
      cloudWatchRole: true,
      deployOptions: {
        stageName: "prod",
        throttlingRateLimit: 200,
        throttlingBurstLimit: 400,
        accessLogDestination: new apigateway.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        metricsEnabled: true,
      },
      endpointTypes: [apigateway.EndpointType.REGIONAL],
    });
    Validations.of(api).acknowledge(
      {
        id: "AwsSolutions::AwsSolutions-APIG2",
        reason:
          "Every handler validates its query and body with the zod schemas the OpenAPI document is built from; a gateway model would be a second, drifting copy.",
      },
      {
        id: "AwsSolutions::AwsSolutions-APIG3",
        reason:
          "No WAF: tokens are required on every data route and stage throttling caps load; WAF inspects only the first 64 KB of a body, and change batches are larger.",
      },
      {
        id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        reason:
          "The account-level role API Gateway needs to write execution logs; AWS's policy is that.",
      },
    );
    const authorizer = new apigateway.TokenAuthorizer(this, "Authorizer", {
      handler: authorizerFn,
      identitySource: apigateway.IdentitySource.header("Authorization"),
      resultsCacheTtl: Duration.seconds(AUTHORIZER_CACHE_TTL_SECONDS),
    });
    for (const route of routes) {
      const method = api.root
        .resourceForPath(route.path)
        .addMethod(
          route.method,
          new apigateway.LambdaIntegration(functions[route.fn]),
          route.roles === "public"
            ? {}
            : { authorizer, authorizationType: apigateway.AuthorizationType.CUSTOM },
        );
      if (route.roles === "public") {
        for (const id of ["AwsSolutions::AwsSolutions-APIG4", "AwsSolutions::AwsSolutions-COG4"]) {
          Validations.of(method).acknowledge({
            id,
            reason: `${route.method} ${route.path} is public by contract (CONTRACT.md "Public"/"Identity").`,
          });
        }
      } else {
        Validations.of(method).acknowledge({
          id: "AwsSolutions::AwsSolutions-COG4",
          reason:
            "Callers are devices and service members with the project's own OAuth client credentials, checked by the Lambda TOKEN authorizer; there is no Cognito user pool.",
        });
      }
    }
    // API Gateway's own answers, in the API's error shape (routes.ts).
    for (const [type, { status, code, message }] of Object.entries(gatewayResponses)) {
      api.addGatewayResponse(`Gateway${type}`, {
        type: apigateway.ResponseType.of(type as GatewayResponse),
        statusCode: String(status),
        // Gateway response header values are quoted literals.
        responseHeaders: Object.fromEntries(
          Object.entries(SECURITY_HEADERS).map(([k, v]) => [k, `'${v}'`]),
        ),
        templates: { "application/json": JSON.stringify({ error: { code, message } }) },
      });
    }
    return api;
  }

  /** The outputs an operator needs after a deploy. */
  private outputs(props: ApiStackProps, alarmTopic: sns.ITopic) {
    new CfnOutput(this, "ApiUrl", { value: this.api.url });
    new CfnOutput(this, "AlarmTopic", { value: alarmTopic.topicArn });
    new CfnOutput(this, "SigningKeysSecret", {
      value: props.signingKeys.secretArn,
      description: "KEYS_SECRET_ARN for npm run keys:rotate",
    });
    new CfnOutput(this, "OperatorSecret", {
      value: props.operatorCredentials.secretArn,
      description: "The platform operator's client credentials (written on the first deploy)",
    });
  }
}
