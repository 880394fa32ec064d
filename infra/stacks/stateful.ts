import {
  CfnOutput,
  Duration,
  RemovalPolicy,
  SecretValue,
  Stack,
  type StackProps,
  Validations,
} from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import * as rds from "aws-cdk-lib/aws-rds";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import {
  EMPTY_KEY_FILE,
  EMPTY_OPERATOR_SECRET,
  MAX_MESSAGE_BYTES,
  MAX_RECEIVE_COUNT,
} from "../../functions/deployment.ts";
import type { Settings } from "../settings.ts";

/** The consumer's timeout; SQS visibility must be at least six times it (AWS guidance). */
export const CONSUMER_TIMEOUT = Duration.seconds(30);
export const DB_NAME = "edge_sync";
const VPC_CIDR = "10.40.0.0/16";
/** The CloudFormation export that names the export bucket. */
export const EXPORT_BUCKET_EXPORT = "EdgeSyncExportBucket";
/** The role the functions connect as; the migrate function creates it. */
export const DB_APP_USER = "edge_sync_app";

/** How the stateless stack reaches the database. */
export type DatabaseAccess =
  | {
      kind: "rds-proxy";
      vpc: ec2.IVpc;
      /** The API functions' group: may reach the proxy. */
      functionsSecurityGroup: ec2.ISecurityGroup;
      /** The migrate function's group: may reach the database itself. */
      migrateSecurityGroup: ec2.ISecurityGroup;
      proxy: rds.DatabaseProxy;
      masterSecret: secretsmanager.ISecret;
      appSecret: secretsmanager.ISecret;
    }
  | {
      kind: "data-api";
      vpc: ec2.IVpc;
      migrateSecurityGroup: ec2.ISecurityGroup;
      cluster: rds.DatabaseCluster;
      masterSecret: secretsmanager.ISecret;
      appSecret: secretsmanager.ISecret;
    }
  | { kind: "url"; url: string };

export interface StatefulStackProps extends StackProps {
  settings: Settings;
}

/**
 * What holds data and must outlive deployments of the code: the changes
 * queue with its DLQ, the JWT signing keys, the export bucket, and the
 * database in a VPC of isolated subnets (no NAT; SQS, Secrets Manager and
 * S3 through endpoints).
 */
export class StatefulStack extends Stack {
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
  readonly signingKeys: secretsmanager.Secret;
  /** The first platform operator's client credentials (CONTRACT.md: shown nowhere else). */
  readonly operatorCredentials: secretsmanager.Secret;
  readonly database: DatabaseAccess;
  /** Answers too large for a response, handed out by link (functions/adapters/exports.ts). */
  readonly exports: s3.IBucket;

  constructor(scope: Construct, id: string, props: StatefulStackProps) {
    super(scope, id, props);
    const { settings } = props;
    this.dlq = new sqs.Queue(this, "ChangesDlq", {
      queueName: "changes-dlq.fifo",
      fifo: true,
      retentionPeriod: Duration.days(14),
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.dlq).acknowledge({
      id: "AwsSolutions::AwsSolutions-SQS3",
      reason: "This is the dead-letter queue of the changes queue; it has none of its own.",
    });
    this.queue = new sqs.Queue(this, "Changes", {
      queueName: "changes.fifo",
      fifo: true,
      // Deduplication by the change id ingest sets, never by content: two
      // identical edits are still two changes.
      contentBasedDeduplication: false,
      // High-throughput FIFO: order and deduplication per report (message group).
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      visibilityTimeout: Duration.seconds(CONSUMER_TIMEOUT.toSeconds() * 6),
      retentionPeriod: Duration.days(14),
      // What ingest's byte-bounded batches assume.
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.dlq, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    // The key file document (functions/adapters/auth/keys.ts); written by the key
    // rotation command, read by the token and authorizer functions.
    // Created empty: the migrate function writes the first key on the first
    // deploy, so no private key is ever in a template.
    this.signingKeys = new secretsmanager.Secret(this, "SigningKeys", {
      description: "edge-sync ES256 JWT signing keys (JSON key file)",
      secretStringValue: SecretValue.unsafePlainText(EMPTY_KEY_FILE),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.signingKeys).acknowledge({
      id: "AwsSolutions::AwsSolutions-SMG4",
      reason:
        "Rotated by `npm run keys:rotate`, which adds a key and keeps the old one for a 20-minute grace; a rotation Lambda cannot keep that overlap.",
    });

    this.operatorCredentials = new secretsmanager.Secret(this, "OperatorCredentials", {
      description:
        "edge-sync platform operator client credentials, written by the first deploy's migrate function",
      secretStringValue: SecretValue.unsafePlainText(EMPTY_OPERATOR_SECRET),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.operatorCredentials).acknowledge({
      id: "AwsSolutions::AwsSolutions-SMG4",
      reason:
        "Client credentials the API stores only as a scrypt hash; a rotation Lambda cannot change them. Replace the operator through the API and delete this value instead.",
    });

    // An exported document is read within minutes through a link that
    // works for 15; the object is gone the next day, so a value erased
    // after its export does not stay here.
    this.exports = new s3.Bucket(this, "Exports", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { expiration: Duration.days(1), abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    // Exported under a name of its own, so the API stack's grant names it
    // the same way in every synth (functions get its name, not a token).
    new CfnOutput(this, "ExportBucketName", {
      value: this.exports.bucketName,
      exportName: EXPORT_BUCKET_EXPORT,
    });
    Validations.of(this.exports).acknowledge({
      id: "AwsSolutions::AwsSolutions-S1",
      reason:
        "Holds each export for a day; the audit function logs every export with its caller, and the object is only reachable through the link it hands out.",
    });

    if (settings.target === "localstack") {
      // LocalStack's free tier has no RDS: PostgreSQL runs in a container.
      this.database = { kind: "url", url: settings.databaseUrl };
      return;
    }

    const vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: "isolated", subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
      flowLogs: {
        rejected: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(
            new logs.LogGroup(this, "FlowLogs", { retention: logs.RetentionDays.ONE_MONTH }),
          ),
          trafficType: ec2.FlowLogTrafficType.REJECT,
        },
      },
    });
    for (const [name, service] of [
      ["Sqs", ec2.InterfaceVpcEndpointAwsService.SQS],
      ["SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
    ] as const) {
      const securityGroup = new ec2.SecurityGroup(this, `${name}EndpointSg`, {
        vpc,
        description: `${name} endpoint: HTTPS from inside the VPC`,
        allowAllOutbound: false,
      });
      securityGroup.addIngressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "the VPC");
      vpc.addInterfaceEndpoint(`${name}Endpoint`, {
        service,
        privateDnsEnabled: true,
        open: false,
        securityGroups: [securityGroup],
      });
    }
    // The export bucket, through a gateway endpoint (no charge, no network interface).
    vpc.addGatewayEndpoint("S3Endpoint", { service: ec2.GatewayVpcEndpointAwsService.S3 });

    const appSecret = new rds.DatabaseSecret(this, "AppSecret", {
      username: DB_APP_USER,
    });
    Validations.of(appSecret).acknowledge({
      id: "AwsSolutions::AwsSolutions-SMG4",
      reason:
        "The migrate function sets this role's password from the secret on every deploy; to rotate it, put a new value and deploy.",
    });
    const migrateSecurityGroup = new ec2.SecurityGroup(this, "MigrateSg", {
      vpc,
      description: "edge-sync migrate function: out to PostgreSQL and the VPC endpoints",
    });
    const retain = settings.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY;

    if (settings.database === "aurora-data-api") {
      const clusterSecurityGroup = new ec2.SecurityGroup(this, "ClusterSg", {
        vpc,
        description:
          "Aurora cluster: reached by the migrate function only (the rest via the Data API)",
        allowAllOutbound: false,
      });
      clusterSecurityGroup.addIngressRule(migrateSecurityGroup, ec2.Port.tcp(5432), "migrate");
      const clusterEngine = rds.DatabaseClusterEngine.auroraPostgres({
        version: rds.AuroraPostgresEngineVersion.VER_16_11,
      });
      const cluster = new rds.DatabaseCluster(this, "Cluster", {
        engine: clusterEngine,
        writer: rds.ClusterInstance.serverlessV2("Writer"),
        readers: settings.multiAz
          ? [rds.ClusterInstance.serverlessV2("Reader", { scaleWithWriter: true })]
          : [],
        serverlessV2MinCapacity: 0.5,
        serverlessV2MaxCapacity: 8,
        enableDataApi: true,
        vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        securityGroups: [clusterSecurityGroup],
        credentials: rds.Credentials.fromGeneratedSecret("edge_sync_admin"),
        defaultDatabaseName: DB_NAME,
        storageEncrypted: true,
        iamAuthentication: true,
        deletionProtection: settings.deletionProtection,
        removalPolicy: retain,
        backup: { retention: Duration.days(7) },
        cloudwatchLogsExports: ["postgresql"],
        parameterGroup: forceSsl(this, "ClusterParameters", clusterEngine),
      });
      rotateAndAcknowledgePort(cluster, "the migrate function's security group");
      this.database = {
        kind: "data-api",
        vpc,
        cluster,
        migrateSecurityGroup,
        masterSecret: cluster.secret!,
        appSecret,
      };
      return;
    }

    const instanceSecurityGroup = new ec2.SecurityGroup(this, "DbSg", {
      vpc,
      description: "PostgreSQL: reached by RDS Proxy and the migrate function",
      allowAllOutbound: false,
    });
    const proxySecurityGroup = new ec2.SecurityGroup(this, "ProxySg", {
      vpc,
      description: "RDS Proxy: reached by the functions",
      allowAllOutbound: false,
    });
    const functionsSecurityGroup = new ec2.SecurityGroup(this, "FunctionsSg", {
      vpc,
      description: "edge-sync functions: out to RDS Proxy and the VPC endpoints",
    });
    instanceSecurityGroup.addIngressRule(proxySecurityGroup, ec2.Port.tcp(5432), "from RDS Proxy");
    instanceSecurityGroup.addIngressRule(migrateSecurityGroup, ec2.Port.tcp(5432), "migrate");
    proxySecurityGroup.addIngressRule(functionsSecurityGroup, ec2.Port.tcp(5432), "functions");
    proxySecurityGroup.addEgressRule(instanceSecurityGroup, ec2.Port.tcp(5432), "to PostgreSQL");
    const engine = rds.DatabaseInstanceEngine.postgres({
      version: rds.PostgresEngineVersion.VER_16,
    });
    const instance = new rds.DatabaseInstance(this, "Database", {
      engine,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [instanceSecurityGroup],
      credentials: rds.Credentials.fromGeneratedSecret("edge_sync_admin"),
      databaseName: DB_NAME,
      storageEncrypted: true,
      allocatedStorage: 20,
      maxAllocatedStorage: 200,
      multiAz: settings.multiAz,
      iamAuthentication: true,
      deletionProtection: settings.deletionProtection,
      removalPolicy: retain,
      backupRetention: Duration.days(7),
      cloudwatchLogsExports: ["postgresql"],
      autoMinorVersionUpgrade: true,
      parameterGroup: forceSsl(this, "Parameters", engine),
    });
    rotateAndAcknowledgePort(instance, "RDS Proxy and the migrate function");
    if (!settings.multiAz) {
      Validations.of(instance).acknowledge({
        id: "AwsSolutions::AwsSolutions-RDS3",
        reason: "Multi-AZ is the `-c multiAz=true` flag: off for trial and staging deployments.",
      });
    }
    if (!settings.deletionProtection) {
      Validations.of(instance).acknowledge({
        id: "AwsSolutions::AwsSolutions-RDS10",
        reason:
          "Deletion protection is on unless `-c deletionProtection=false` (throwaway stacks).",
      });
    }
    const proxy = instance.addProxy("Proxy", {
      secrets: [appSecret],
      vpc,
      securityGroups: [proxySecurityGroup],
      iamAuth: true,
      requireTLS: true,
      debugLogging: false,
    });
    this.database = {
      kind: "rds-proxy",
      vpc,
      proxy,
      functionsSecurityGroup,
      migrateSecurityGroup,
      masterSecret: instance.secret!,
      appSecret,
    };
  }
}

/** A parameter group that refuses connections without TLS. */
function forceSsl(scope: Construct, id: string, engine: rds.IEngine): rds.ParameterGroup {
  return new rds.ParameterGroup(scope, id, { engine, parameters: { "rds.force_ssl": "1" } });
}

/** Rotates the master secret, and says why the default port is fine. */
function rotateAndAcknowledgePort(
  database: rds.DatabaseInstance | rds.DatabaseCluster,
  reachableFrom: string,
): void {
  database.addRotationSingleUser();
  Validations.of(database).acknowledge({
    id: "AwsSolutions::AwsSolutions-RDS11",
    reason: `The port is reachable only from ${reachableFrom}, inside isolated subnets; a non-default port adds nothing.`,
  });
}
