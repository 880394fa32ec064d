/**
 * What the CDK stack and the functions must agree on, beside the route
 * table (`routes.ts`). Plain values only: infra/ imports this file and
 * routes.ts from functions/, and nothing else, so synth loads no runtime code.
 */

/** Receives before a message moves to the DLQ (DESIGN.md, Failure semantics). */
export const MAX_RECEIVE_COUNT = 5;

/**
 * Batches of changes applied at once: the consumer's event source scales
 * to this many concurrent invocations (its maxConcurrency); the local cloud
 * runs as many receive loops.
 */
export const CONSUMER_CONCURRENCY = 10;

/**
 * The queues' MaximumMessageSize, which is also SQS's limit on a whole
 * SendMessageBatch: ingest sizes its batches by it. An encoded change stays
 * far below it (at most 256 KiB, escaped at most 3×).
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * What the stack writes into the signing-key secret at creation: a key file
 * with no key yet, so no private key ever appears in a template. The migrate
 * function fills it on the first deploy.
 */
export const EMPTY_KEY_FILE = '{"keys":[]}';

/** What the stack writes into the operator secret at creation; the migrate function fills it. */
export const EMPTY_OPERATOR_SECRET = "{}";

/**
 * What a function can be given: the database, sending to the changes queue,
 * reading the queues' depth, the DLQ's list and redrive, the signing keys,
 * the bucket large answers are handed out from.
 */
export type Port = "db" | "queue" | "queueDepth" | "deadLetters" | "keys" | "exports";

/**
 * The ports each function is built with, and nothing else: its deps hold
 * exactly these (functions/deps.ts), and the stack grants exactly the
 * access they need (infra/stacks/api.ts). A function without `keys` never
 * loads the signing-key secret and may not read it.
 */
export const FUNCTION_PORTS = {
  token: ["db", "keys"],
  jwks: ["keys"],
  me: ["db"],
  ingest: ["db", "queue"],
  sync: ["db"],
  health: ["db", "queueDepth"],
  manage: ["db"],
  read: ["db", "queueDepth"],
  dashboard: [],
  audit: ["db", "exports"],
  dlq: ["db", "deadLetters"],
  openapi: [],
  authorizer: ["db", "keys"],
  consume: ["db"],
  retention: ["db"],
} as const satisfies Record<string, readonly Port[]>;

/** Every function built from `functions/<name>.ts` but the migrate custom resource. */
export type FunctionName = keyof typeof FUNCTION_PORTS;
export type PortsOf<F extends FunctionName> = (typeof FUNCTION_PORTS)[F][number];
