import { Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

/** The consumer's timeout; SQS visibility must be at least six times it (AWS guidance). */
export const CONSUMER_TIMEOUT = Duration.seconds(30);
/** Receives before a message moves to the DLQ (DESIGN.md). */
export const MAX_RECEIVE_COUNT = 5;

/**
 * What holds data and must outlive deployments of the code: the changes
 * queue with its DLQ, and the JWT signing keys. (The database joins it with
 * the production stack.)
 */
export class StatefulStack extends Stack {
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
  readonly signingKeys: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.dlq = new sqs.Queue(this, "ChangesDlq", {
      queueName: "changes-dlq.fifo",
      fifo: true,
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
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
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.dlq, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    // The key file document (functions/lib/auth/keys.ts); written by the key
    // rotation command, read by the token and authorizer functions.
    this.signingKeys = new secretsmanager.Secret(this, "SigningKeys", {
      description: "edge-sync ES256 JWT signing keys (JSON key file)",
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
