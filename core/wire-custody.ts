import * as z from "zod";
import { ReportSchema } from "./wire.ts";
import { count, cursor, jsonObject, limit, outcome, stamp, uuid } from "./wire-blocks.ts";

/*
 * The wire contract of chain of custody and data protection (DESIGN.md):
 * audit verification, device keys, erasure, legal hold, retention, evidence
 * bundles. Built on wire.ts, which never imports this file back.
 */

export const AuditVerifySchema = z
  .object({
    ok: z.boolean(),
    checked: count,
    signed: count.meta({ description: "Entries whose device signature was checked." }),
    unsigned: count.meta({
      description: "Entries of devices that had no signing key when they sent them.",
    }),
    firstBadSeq: count.optional(),
    problem: z
      .string()
      .optional()
      .meta({ description: "What is wrong with the entry `firstBadSeq` names." }),
    complete: z.boolean().meta({
      description:
        "Whether every entry has been checked. A project too large to check within one call is checked in parts: then `ok` speaks of the entries checked so far, and `nextCursor` goes on.",
    }),
    nextCursor: cursor
      .nullable()
      .meta({ description: "Where the next part starts; null once every entry is checked." }),
    activity: z
      .object({
        ok: z.boolean(),
        checked: count,
        firstBadSeq: count.optional(),
        problem: z.string().optional(),
      })
      .optional()
      .meta({
        description:
          "The project's activity log (`GET /v1/activity`), its whole chain checked in the first part (the call without a cursor); `ok` is false if it does not hold.",
      }),
  })
  .meta({ id: "AuditVerify" });

export const AuditVerifyQuerySchema = z.strictObject({
  limit: limit(1_000_000, 1_000_000).meta({
    description:
      "Entries to check at most in this call, 1 to 1,000,000. A call also stops after about 5 seconds, so it ends well within the function's time.",
  }),
  cursor: cursor.optional(),
});

export const PublicJwkSchema = z
  .object({ kty: z.enum(["OKP", "EC"]), crv: z.enum(["Ed25519", "P-256"]), x: z.string() })
  .catchall(z.unknown())
  .meta({ id: "PublicJwk", description: "An Ed25519 (OKP) or P-256 (EC) public key as a JWK." });
export const DeviceKeyRequestSchema = z
  .object({ publicKey: PublicJwkSchema })
  .meta({ id: "DeviceKeyRequest" });
export const DeviceKeySchema = z
  .object({ publicKey: PublicJwkSchema, registeredAt: stamp })
  .meta({ id: "DeviceKey" });

export const ErasureRequestSchema = z
  .strictObject({
    reportId: uuid,
    fields: z
      .array(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/))
      .min(1)
      .max(64)
      .optional()
      .meta({ description: "Every field the report ever had when absent." }),
    reason: z.string().min(1).max(1000),
  })
  .meta({ id: "ErasureRequest" });
/**
 * Who asks for the erasures retention makes: the service itself. Such an
 * erasure removes a deleted report for good: values written to it later, at
 * any time, are erased too, by the cloud as they arrive
 * (functions/app/apply/erased-fields.ts) and by the agent
 * (edge-agent/local-removal.ts).
 */
export const RETENTION_ACTOR = "00000000-0000-0000-0000-000000000000";
export const ErasureSchema = z
  .object({
    id: uuid,
    reportId: uuid,
    fields: z.array(z.string()),
    reason: z.string(),
    requestedBy: uuid,
    requestedAt: stamp,
    devicesPending: count.meta({
      description:
        "Devices of the project (not revoked, registered before it) that have not erased their copy yet.",
    }),
    devicesDone: count,
  })
  .meta({ id: "Erasure" });
export type Erasure = z.output<typeof ErasureSchema>;
export const HoldRequestSchema = z
  .strictObject({
    reason: z.string().min(1).max(1000).meta({
      description:
        "Why the report is held. Kept in the activity log, which nothing erases: name the case, not a person.",
    }),
  })
  .meta({ id: "HoldRequest" });
export const HoldSchema = z
  .object({ reportId: uuid, reason: z.string(), heldBy: uuid, heldAt: stamp })
  .meta({ id: "Hold" });
export const ProjectSettingsSchema = z
  .strictObject({
    retainDeletedDays: z.number().int().min(0).max(36500).nullable().meta({
      description:
        "Days after which deleted reports' values are erased (an erasure with reason `retention`); null keeps them.",
    }),
  })
  .meta({ id: "ProjectSettings" });
export const ProjectSchema = z
  .object({ id: uuid, retainDeletedDays: z.number().int().nullable() })
  .meta({ id: "Project" });

/**
 * v2: entries carry their values' salts (`seed`, `salts`). A v1 bundle,
 * exported before salts, has none and still verifies.
 */
export const EVIDENCE_FORMAT = "edge-sync.evidence.v2";
const EVIDENCE_FORMATS = ["edge-sync.evidence.v1", EVIDENCE_FORMAT] as const;

/** One audit entry in an evidence bundle: everything its hash and signature cover. */
export const EvidenceEntrySchema = z
  .object({
    seq: count,
    projectId: uuid,
    changeId: uuid,
    reportId: uuid.nullable(),
    actor: z.object({ type: z.enum(["device", "member"]), id: uuid }),
    op: z.enum(["upsert", "delete", "erase"]).nullable(),
    hlc: z.string().nullable(),
    outcome,
    code: z.string().nullable(),
    message: z.string().nullable(),
    fieldsApplied: z.array(z.string()),
    fieldsSuperseded: z.array(z.string()),
    before: jsonObject,
    after: jsonObject,
    erasedDigests: z.record(z.string(), z.string()).meta({
      description:
        'Digests of erased values, by "before:<field>", "after:<field>" or "signed:<field>".',
    }),
    seed: z.string().nullable().optional().meta({
      description:
        "The secret the salts of the entry's values derive from; null once an erasure replaced it with `salts`, or for an entry from before salts.",
    }),
    salts: z.record(z.string(), z.string()).optional().meta({
      description:
        'The salts of the values an erasure kept, by "before:<field>" or "after:<field>" (none of an erased value).',
    }),
    receivedAt: stamp,
    appliedAt: stamp,
    prevHash: z.string().nullable(),
    hash: z.string().nullable(),
    sig: z.string().nullable(),
    signedChange: z
      .object({
        fields: jsonObject.nullable(),
        base: z.record(z.string(), z.string().nullable()).nullable(),
        scope: z.string().nullable(),
      })
      .nullable()
      .meta({ description: "What the signature covers beyond the entry's own columns." }),
  })
  .meta({ id: "EvidenceEntry" });

export const EvidenceBundleSchema = z
  .object({
    format: z.enum(EVIDENCE_FORMATS),
    exportedAt: stamp,
    projectId: uuid,
    report: ReportSchema,
    history: z.array(EvidenceEntrySchema).meta({ description: "Oldest first." }),
    chainHead: z
      .string()
      .nullable()
      .meta({ description: "The hash of the report's last entry, as the database records it." }),
    devices: z
      .record(uuid, z.object({ publicKey: PublicJwkSchema, registeredAt: stamp }))
      .meta({ description: "The public keys of the devices that signed entries." }),
  })
  .meta({
    id: "EvidenceBundle",
    description:
      "One report's whole history with hashes and signatures and the signing devices' keys: `npx edge-sync verify-evidence FILE` checks it offline.",
  });

/** Where an answer too large for a response is handed out (303 See Other). */
export const ExportLinkSchema = z
  .object({
    url: z.url().meta({ description: "Download it with a plain GET, no Authorization header." }),
    expiresAt: stamp.meta({
      description:
        "When the link stops working: 15 minutes, or sooner when the credentials that signed it expire.",
    }),
    bytes: z.number().int().meta({ description: "The document's size." }),
  })
  .meta({ id: "ExportLink" });
export type EvidenceBundle = z.output<typeof EvidenceBundleSchema>;

export type AuditVerify = z.output<typeof AuditVerifySchema>;
