import * as z from "zod";
import { ScopeNameSchema } from "./change.ts";
import { storableText } from "./json.ts";
import { MAX_SCOPES_PER_DEVICE } from "./limits.ts";
import { count, cursor, limit, stamp, uuid } from "./wire-blocks.ts";

/*
 * The wire contract of fleet operations and management: devices (their
 * health and scopes), members, projects, the dead-letter queue, status.
 * Built on wire-blocks.ts like wire.ts.
 */

const name = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .refine(storableText, { message: "holds a NUL character or a lone surrogate" });
export const NameSchema = z.strictObject({ name });
const scopes = z
  .array(ScopeNameSchema)
  .max(MAX_SCOPES_PER_DEVICE)
  .transform((list) => [...new Set(list)].sort())
  .meta({ description: "The scopes the device may sync; none: the whole project." });
export const DeviceRequestSchema = z
  .strictObject({ name, scopes: scopes.optional() })
  .meta({ id: "DeviceRequest" });
export const DeviceScopesRequestSchema = z
  .strictObject({ scopes })
  .meta({ id: "DeviceScopesRequest" });
export const MemberRequestSchema = z.strictObject({
  name,
  role: z.enum(["analyst", "auditor", "admin"]),
});

export const RedriveRequestSchema = z
  .strictObject({
    messageIds: z
      .array(z.string().min(1).max(100))
      .min(1)
      .max(100)
      .optional()
      .meta({ description: "The dead letters to move; all of the project's when absent." }),
  })
  .meta({ id: "RedriveRequest" });

export const DeviceSchema = z
  .object({
    id: uuid,
    name: z.string(),
    clientId: z.string(),
    createdAt: stamp,
    revokedAt: stamp.nullable(),
    lastSeenAt: stamp.nullable(),
    lastPushAt: stamp.nullable(),
    lastPullAt: stamp.nullable(),
    accepted: count,
    applied: count,
    partial: count,
    superseded: count,
    rejected: count,
    conflicts: count,
    state: z.enum(["never_seen", "in_sync", "behind", "failing", "silent", "revoked"]).meta({
      description:
        "failing: its last request was refused, or its last 3 pushes failed; silent: nothing for 15 minutes; behind: changes accepted, not yet applied.",
    }),
    lastErrorAt: stamp.nullable().meta({ description: "Its last refused or failed request." }),
    lastErrorCode: z.string().nullable(),
    lastErrorMessage: z.string().nullable(),
    agentVersion: z.string().nullable().meta({ description: "From the agent's User-Agent." }),
    platform: z.string().nullable(),
    scopes: z.array(z.string()).meta({
      description: "The scopes the device may sync; none: the whole project.",
    }),
  })
  .meta({ id: "Device" });
export const DeviceScopesSchema = z
  .object({ id: uuid, scopes: z.array(z.string()) })
  .meta({ id: "DeviceScopes" });
export const ScopeSettingSchema = z
  .object({
    version: count.meta({ description: "1 for the first setting, then one more for each." }),
    scopes: z.array(z.string()).meta({ description: "None: the whole project." }),
    setBy: uuid.nullable().meta({ description: "The admin who set them." }),
    setAt: stamp,
  })
  .meta({ id: "ScopeSetting" });
export const ScopeHistorySchema = z
  .object({
    items: z.array(ScopeSettingSchema).meta({
      description:
        "Oldest first. Before the first, from the device's createdAt, it synced the whole project; a device registered with scopes has its first at createdAt.",
    }),
    nextCursor: z.string().nullable().meta({ description: "Null on the last page." }),
  })
  .meta({ id: "ScopeHistory" });
export type ScopeSetting = z.output<typeof ScopeSettingSchema>;
export const DeviceListSchema = z
  .object({
    items: z.array(DeviceSchema).meta({ description: "Oldest first." }),
    nextCursor: z.string().nullable().meta({
      description:
        "Null when every device is in the answer: a page ends at `limit` or where its devices reach the API's size bound (thousands of devices).",
    }),
  })
  .meta({ id: "DeviceList" });

export const DeviceQuerySchema = z.strictObject({
  limit: limit(10_000, 10_000),
  cursor: cursor.optional(),
});

/** An analyst, auditor or admin of a project, as `GET /v1/members` lists them. */
export const MemberSchema = z
  .object({
    id: uuid,
    name: z.string(),
    role: MemberRequestSchema.shape.role,
    clientId: z.string(),
    createdAt: stamp,
    revokedAt: stamp.nullable().meta({
      description: "When an admin revoked the member; null while their credentials work.",
    }),
  })
  .meta({ id: "Member" });
export const MemberListSchema = z
  .object({
    items: z.array(MemberSchema).meta({ description: "Oldest first, revoked ones too." }),
    nextCursor: z.string().nullable().meta({ description: "Null on the last page." }),
  })
  .meta({ id: "MemberList" });
export type Member = z.output<typeof MemberSchema>;
export const MemberQuerySchema = z.strictObject({
  limit: limit(1000, 1000),
  cursor: cursor.optional(),
});

export const ACTIVITY_ACTIONS = [
  "project.create",
  "device.register",
  "device.scopes",
  "device.revoke",
  "member.add",
  "member.revoke",
  "hold.place",
  "hold.lift",
  "retention.set",
  "evidence.export",
  "dlq.redrive",
] as const;
export const ActivityEntrySchema = z
  .object({
    seq: count,
    projectId: uuid,
    at: stamp,
    actor: z.object({ type: z.enum(["member", "operator"]), id: uuid }),
    action: z.enum(ACTIVITY_ACTIONS),
    targetId: uuid.nullable().meta({
      description: "The device, member or report acted on; the project for its own settings.",
    }),
    details: z.record(z.string(), z.json()).meta({
      description:
        "What was set: a name and role or scopes, a hold's reason, days of retention; never a secret.",
    }),
    prevHash: z.string().nullable(),
    hash: z.string(),
  })
  .meta({ id: "ActivityEntry" });
export type ActivityEntry = z.output<typeof ActivityEntrySchema>;
export type ActivityAction = ActivityEntry["action"];
export const ActivityListSchema = z
  .object({
    items: z
      .array(ActivityEntrySchema)
      .meta({ description: "In the order asked for: oldest first by default." }),
    nextCursor: z.string().nullable().meta({ description: "Null on the last page." }),
  })
  .meta({ id: "ActivityList" });
export const ActivityQuerySchema = MemberQuerySchema.extend({
  order: z.enum(["oldest", "newest"]).default("oldest").meta({
    description:
      "oldest first (the default, the chain's order) or newest first; a cursor keeps its order.",
  }),
  action: z.enum(ACTIVITY_ACTIONS).optional().meta({ description: "Only this action's entries." }),
  actorId: uuid.optional().meta({ description: "Only what this member or operator did." }),
  targetId: uuid
    .optional()
    .meta({ description: "Only what was done to this device, member or report." }),
});

export const DeadLetterSchema = z
  .object({
    messageId: z.string(),
    changeId: uuid.nullable(),
    reportId: uuid.nullable(),
    deviceId: uuid.nullable(),
    receiveCount: count,
    sentAt: stamp,
    reason: z.string(),
  })
  .meta({ id: "DeadLetter" });
export const DeadLetterListSchema = z
  .object({ items: z.array(DeadLetterSchema) })
  .meta({ id: "DeadLetterList" });
export const RedriveResultSchema = z
  .object({ moved: count.meta({ description: "Changes put back on the changes queue." }) })
  .meta({ id: "RedriveResult" });

export const QueueDepthSchema = z.object({ visible: count, inFlight: count, dlq: count });
export const StatusSchema = z
  .object({
    queue: QueueDepthSchema,
    lastAppliedAt: stamp.nullable(),
    reports: count,
    conflicts: count,
    devices: count,
  })
  .meta({ id: "Status" });

export const IssuedCredentialsSchema = z
  .object({
    id: uuid,
    name: z.string(),
    clientId: z.string(),
    clientSecret: z.string().meta({ description: "Shown only here." }),
  })
  .meta({ id: "IssuedCredentials" });
export const CreatedDeviceSchema = IssuedCredentialsSchema.extend({
  scopes: z.array(z.string()).meta({ description: "Its scopes; none: the whole project." }),
}).meta({ id: "CreatedDevice" });
export const CreatedMemberSchema = IssuedCredentialsSchema.extend({
  role: MemberRequestSchema.shape.role,
}).meta({ id: "CreatedMember" });
export const CreatedProjectSchema = z
  .object({
    id: uuid,
    name: z.string(),
    admin: z.object({ clientId: z.string(), clientSecret: z.string() }),
  })
  .meta({ id: "CreatedProject" });

export type Device = z.output<typeof DeviceSchema>;
export type DeviceState = Device["state"];
export type DeadLetter = z.output<typeof DeadLetterSchema>;
export type QueueDepth = z.output<typeof QueueDepthSchema>;
export type IssuedCredentials = z.output<typeof IssuedCredentialsSchema>;
