import { Duration, type Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sqs from "aws-cdk-lib/aws-sqs";

export interface AlarmSources {
  dlq: sqs.IQueue;
  queue: sqs.IQueue;
  functions: Record<string, lambda.IFunction>;
  /** Where alarms are mailed, if anywhere; the topic is an output either way. */
  email?: string;
}

/**
 * The stack's alarms, on one SNS topic: the DLQ not empty, changes waiting
 * too long, any function failing or throttled.
 */
export function addAlarms(
  stack: Stack,
  { dlq, queue, functions, email }: AlarmSources,
): { topic: sns.Topic; alarms: cloudwatch.Alarm[] } {
  const topic = new sns.Topic(stack, "Alarms", {
    displayName: "edge-sync alarms",
    enforceSSL: true,
    masterKey: kms.Alias.fromAliasName(stack, "SnsKey", "alias/aws/sns"),
  });
  if (email) topic.addSubscription(new subscriptions.EmailSubscription(email));
  const alarms: cloudwatch.Alarm[] = [];
  const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, what: string) => {
    const a = new cloudwatch.Alarm(stack, id, {
      metric,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: what,
    });
    a.addAlarmAction(new actions.SnsAction(topic));
    alarms.push(a);
  };
  alarm(
    "DlqNotEmpty",
    dlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
    1,
    "A change failed 5 times and is in the DLQ: inspect it, fix, redrive.",
  );
  alarm(
    "ChangesWaiting",
    queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1) }),
    300,
    "The oldest change has waited 5 minutes: the consumer is failing or starved.",
  );
  for (const [name, f] of Object.entries(functions)) {
    const period = Duration.minutes(5);
    alarm(`${name}Errors`, f.metricErrors({ period }), 1, `${name} function errors`);
    alarm(`${name}Throttles`, f.metricThrottles({ period }), 1, `${name} function throttled`);
  }
  return { topic, alarms };
}
