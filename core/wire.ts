import * as z from "zod";
import {
  ChangeSchema,
  HlcSchema,
  JsonValueSchema,
  MAX_CHANGES_PER_REQUEST,
  REJECTION_CODES,
  ScopeNameSchema,
} from "./change.ts";
import {
  count,
  cursor,
  jsonObject,
  limit,
  outcome,
  stamp,
  text,
  time,
  uuid,
} from "./wire-blocks.ts";

/*
 * The wire contract: every request and response of the API as a zod schema,
 * and the types inferred from them (end of file), so there is one definition
 * of each shape. The handlers parse requests with them, the agent parses the
 * cloud's answers with them, and the OpenAPI document
 * (functions/http/openapi.ts) is generated from them; the contract test checks
 * real responses against that document. Those of chain of custody and
 * data protection are in wire-custody.ts, those of fleet operations and
 * management in wire-fleet.ts.
 */

// ---- requests ----------------------------------------------------------------

export const TokenRequestSchema = z
  .object({
    grant_type: z.literal("client_credentials"),
    client_id: z.string().max(128).optional(),
    client_secret: z.string().max(1024).optional(),
  })
  .meta({
    id: "TokenRequest",
    description:
      "Client credentials in the body, or client_id and client_secret as HTTP Basic auth instead.",
  });

/** What the ingest handler checks first; each change is then checked on its own. */
export const ChangeBatchSchema = z.strictObject({
  changes: z.array(z.unknown()).min(1).max(MAX_CHANGES_PER_REQUEST),
});

/** The documented form of the batch: the shape each change must have to be accepted. */
export const ChangeBatchDocSchema = z
  .strictObject({ changes: z.array(ChangeSchema).min(1).max(MAX_CHANGES_PER_REQUEST) })
  .meta({ id: "ChangeBatch" });

export const SyncQuerySchema = z.strictObject({
  cursor: z
    .string()
    .max(1024)
    .optional()
    .meta({ description: "As returned; none: from the start." }),
  limit: limit(1000, 500),
});

export const ReportQuerySchema = z.strictObject({
  q: text(200).optional().meta({ description: "Case-insensitive substring of any string field." }),
  scope: ScopeNameSchema.optional().meta({ description: "Only the reports of this scope." }),
  updatedAfter: time.optional(),
  updatedBefore: time.optional(),
  deleted: z.enum(["false", "true", "any"]).default("false"),
  limit: limit(200, 50),
  cursor: cursor.optional(),
});

export const ConflictQuerySchema = z.strictObject({
  reportId: uuid.optional(),
  after: time.optional(),
  limit: limit(200, 50),
  cursor: cursor.optional(),
});

export const AuditQuerySchema = z.strictObject({
  actor: uuid.optional().meta({ description: "Device or member id." }),
  reportId: uuid.optional(),
  after: time.optional(),
  before: time.optional(),
  limit: limit(200, 50),
  cursor: cursor.optional(),
});

export const HistoryQuerySchema = z.strictObject({
  limit: limit(1000, 1000),
  cursor: cursor.optional(),
});

export const NoQuerySchema = z.strictObject({});

// ---- responses ---------------------------------------------------------------

export const ApiErrorSchema = z
  .object({
    error: z.object({
      code: z.string().regex(/^[a-z_]+$/),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: "Error", description: "Every error but the token route's." });

export const TokenResponseSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int().positive(),
  })
  .meta({ id: "TokenResponse" });

export const OAuthErrorSchema = z
  .object({
    error: z.enum(["invalid_request", "unsupported_grant_type", "invalid_client", "rate_limited"]),
    error_description: z.string().optional(),
  })
  .meta({ id: "OAuthError", description: "RFC 6749 §5.2 error response." });

export const JwksSchema = z
  .object({
    keys: z.array(
      z.looseObject({
        kty: z.literal("EC"),
        crv: z.literal("P-256"),
        x: z.string(),
        y: z.string(),
        kid: z.string(),
        alg: z.literal("ES256"),
        use: z.literal("sig"),
      }),
    ),
  })
  .meta({ id: "Jwks" });

export const HealthSchema = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    checks: z.object({ db: z.enum(["ok", "error"]), queue: z.enum(["ok", "error"]) }),
  })
  .meta({ id: "Health" });

export const MeSchema = z
  .object({
    id: uuid,
    name: z.string(),
    role: z.enum(["device", "analyst", "auditor", "admin", "operator"]),
    project: uuid.nullable().meta({ description: "Null for the platform operator." }),
    scopes: z
      .array(z.string())
      .optional()
      .meta({ description: "A device's scopes; none: the whole project." }),
  })
  .meta({ id: "Me" });

export const ReportSchema = z
  .object({
    id: uuid,
    fields: jsonObject,
    clocks: z.record(z.string(), HlcSchema),
    deleted: z.boolean(),
    version: count.meta({ description: "How many changes were applied." }),
    createdAt: stamp,
    updatedAt: stamp,
    createdBy: uuid.nullable(),
    updatedBy: uuid.nullable(),
    erased: z.array(z.string()).optional().meta({
      description: "Fields whose values a data-protection erasure removed (present when any).",
    }),
    scope: z.string().optional().meta({
      description: "The report's scope, fixed when it was created (present when it has one).",
    }),
  })
  .meta({ id: "Report" });

const conflictSide = z.object({
  changeId: uuid,
  deviceId: uuid,
  hlc: HlcSchema,
  value: JsonValueSchema,
  erased: z.literal(true).optional().meta({
    description: "Present when a data-protection erasure removed this value (`value` is null).",
  }),
});
export const ConflictSchema = z
  .object({
    id: uuid,
    reportId: uuid,
    field: z.string(),
    detectedAt: stamp,
    winner: conflictSide,
    loser: conflictSide,
  })
  .meta({ id: "Conflict" });

export const AuditEntrySchema = z
  .object({
    seq: count,
    changeId: uuid,
    reportId: uuid,
    actor: z.object({ type: z.enum(["device", "member"]), id: uuid }),
    op: z.enum(["upsert", "delete", "erase"]).meta({
      description:
        "`erase`: a data-protection erasure of the report's `fieldsApplied`, by a member.",
    }),
    hlc: HlcSchema.nullable().meta({ description: "Null for an erasure." }),
    outcome,
    fieldsApplied: z.array(z.string()),
    fieldsSuperseded: z.array(z.string()),
    before: jsonObject,
    after: jsonObject,
    receivedAt: stamp,
    appliedAt: stamp,
    prevHash: z.string().nullable(),
    hash: z.string().nullable(),
    code: z.string().optional(),
    sig: z.string().nullable().meta({
      description:
        "The device's signature of the change (base64url); null for a change of a device without a registered key: unsigned.",
    }),
    reason: z.string().optional().meta({ description: "Why, for an erasure (`op: erase`)." }),
    erased: z.array(z.string()).optional().meta({
      description:
        'The values of this entry a data-protection erasure removed (null in `before`/`after`), as "before:<field>" or "after:<field>" (present when any).',
    }),
  })
  .meta({ id: "AuditEntry" });

export const SyncPageSchema = z
  .object({
    reports: z.array(ReportSchema),
    acks: z.array(
      z.object({
        changeId: uuid,
        outcome,
        code: z.string().optional(),
        message: z.string().optional(),
      }),
    ),
    conflicts: z.array(ConflictSchema),
    erasures: z
      .array(
        z.object({
          id: uuid,
          reportId: uuid,
          fields: z.array(z.string()),
          requestedAt: stamp,
          requestedBy: uuid.optional(),
        }),
      )
      .optional()
      .meta({
        description:
          "Data-protection erasures since the cursor: remove these fields' values from the local copy and outbox (values written before `requestedAt`). One requested by the nil id is retention's: remove every value of the report, whenever written.",
      }),
    evict: z.array(uuid).optional().meta({
      description:
        "Reports that left this device's scopes since the cursor: drop them once this device's own changes to them are acknowledged.",
    }),
    scopes: z.array(z.string()).optional().meta({
      description: "This device's scopes as of this page; none: the whole project.",
    }),
    cursor: z.string(),
    hasMore: z.boolean(),
    serverTime: z.number().int().meta({ description: "The cloud's clock, epoch milliseconds." }),
  })
  .meta({ id: "SyncPage" });

export const IngestResultSchema = z
  .object({
    accepted: z.array(uuid).meta({ description: "In the queue." }),
    rejected: z
      .array(
        z.object({
          changeId: uuid,
          code: z.enum(REJECTION_CODES),
          message: z.string(),
        }),
      )
      .meta({ description: "Never retry these." }),
    failed: z
      .array(z.object({ changeId: uuid, code: z.string(), message: z.string() }))
      .meta({ description: "Transient; retry these." }),
  })
  .meta({ id: "IngestResult" });

const page = <T extends z.ZodType>(item: T, id: string) =>
  z
    .object({
      items: z.array(item),
      nextCursor: z.string().nullable().meta({ description: "Null on the last page." }),
    })
    .meta({ id });

export const ReportPageSchema = page(ReportSchema, "ReportPage");
export const ConflictPageSchema = page(ConflictSchema, "ConflictPage");
export const AuditPageSchema = page(AuditEntrySchema, "AuditPage");
export const HistorySchema = page(AuditEntrySchema, "History");

// ---- the types, inferred from the schemas -------------------------------------

export type TokenResponse = z.output<typeof TokenResponseSchema>;
export type Me = z.output<typeof MeSchema>;
export type Report = z.output<typeof ReportSchema>;
export type Conflict = z.output<typeof ConflictSchema>;
export type AuditEntry = z.output<typeof AuditEntrySchema>;
export type SyncPage = z.output<typeof SyncPageSchema>;
export type Ack = SyncPage["acks"][number];
export type IngestResult = z.output<typeof IngestResultSchema>;
