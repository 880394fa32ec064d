/**
 * What the CDK stack and the functions must agree on, beside the route
 * table (`routes.ts`). Plain values only: infra/ imports this file and
 * routes.ts from functions/, and nothing else, so synth loads no runtime code.
 */

/** Receives before a message moves to the DLQ (DESIGN.md, Failure semantics). */
export const MAX_RECEIVE_COUNT = 5;

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
