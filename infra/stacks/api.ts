import { join } from "node:path";
import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import {
  type ApiFunction,
  AUTHORIZER_CACHE_TTL_SECONDS,
  apiFunctions,
  type GatewayResponse,
  gatewayResponses,
  routes,
  SECURITY_HEADERS,
} from "../../functions/routes.ts";
import { CONSUMER_TIMEOUT } from "./stateful.ts";

const ROOT = join(import.meta.dirname, "..", "..");

export interface ApiStackProps extends StackProps {
  queue: sqs.IQueue;
  dlq: sqs.IQueue;
  signingKeys: secretsmanager.ISecret;
  /** How functions reach PostgreSQL (a connection string secret in the production stack). */
  databaseUrl: string;
}

/**
 * The stateless side: one function per file in `functions/`, the REST API
 * built from the route table with the TOKEN authorizer, and the consumer on
 * the FIFO queue.
 */
export class ApiStack extends Stack {
  readonly api: apigateway.RestApi;
  readonly functions: Record<ApiFunction | "authorizer" | "consume", nodejs.NodejsFunction>;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);
    const environment = {
      DATABASE_URL: props.databaseUrl,
      QUEUE_URL: props.queue.queueUrl,
      DLQ_URL: props.dlq.queueUrl,
      KEYS_SECRET_ARN: props.signingKeys.secretArn,
      NODE_OPTIONS: "--enable-source-maps",
      POWERTOOLS_SERVICE_NAME: "edge-sync",
    };
    const fn = (name: string, timeout = Duration.seconds(10)) =>
      new nodejs.NodejsFunction(this, `${name[0]!.toUpperCase()}${name.slice(1)}Function`, {
        entry: join(ROOT, "functions", `${name}.ts`),
        handler: "handler",
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 512,
        timeout,
        environment,
        logGroup: new logs.LogGroup(this, `${name}Logs`, {
          retention: logs.RetentionDays.ONE_MONTH,
        }),
        bundling: {
          minify: true,
          sourceMap: true,
          target: "node22",
          // The runtime ships the AWS SDK v3; PGlite is the local cloud's only.
          externalModules: ["@aws-sdk/*", "@electric-sql/pglite"],
        },
        depsLockFilePath: join(ROOT, "package-lock.json"),
        projectRoot: ROOT,
      });

    const functions = Object.fromEntries(apiFunctions.map((name) => [name, fn(name)])) as Record<
      ApiFunction,
      nodejs.NodejsFunction
    >;
    const authorizerFn = fn("authorizer");
    const consumeFn = fn("consume", CONSUMER_TIMEOUT);
    this.functions = { ...functions, authorizer: authorizerFn, consume: consumeFn };

    for (const f of Object.values(this.functions)) props.signingKeys.grantRead(f);
    props.queue.grantSendMessages(functions.ingest);
    consumeFn.addEventSource(
      new SqsEventSource(props.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: 10,
      }),
    );

    this.api = new apigateway.RestApi(this, "Api", {
      restApiName: "edge-sync",
      deployOptions: { stageName: "prod", throttlingRateLimit: 200, throttlingBurstLimit: 400 },
      endpointTypes: [apigateway.EndpointType.REGIONAL],
    });
    const authorizer = new apigateway.TokenAuthorizer(this, "Authorizer", {
      handler: authorizerFn,
      identitySource: apigateway.IdentitySource.header("Authorization"),
      resultsCacheTtl: Duration.seconds(AUTHORIZER_CACHE_TTL_SECONDS),
    });
    for (const route of routes) {
      this.api.root
        .resourceForPath(route.path)
        .addMethod(
          route.method,
          new apigateway.LambdaIntegration(functions[route.fn]),
          route.roles === "public"
            ? {}
            : { authorizer, authorizationType: apigateway.AuthorizationType.CUSTOM },
        );
    }
    // API Gateway's own answers, in the API's error shape (routes.ts).
    for (const [type, { status, code, message }] of Object.entries(gatewayResponses)) {
      this.api.addGatewayResponse(`Gateway${type}`, {
        type: apigateway.ResponseType.of(type as GatewayResponse),
        statusCode: String(status),
        // Gateway response header values are quoted literals.
        responseHeaders: Object.fromEntries(
          Object.entries(SECURITY_HEADERS).map(([k, v]) => [k, `'${v}'`]),
        ),
        templates: { "application/json": JSON.stringify({ error: { code, message } }) },
      });
    }
  }
}
