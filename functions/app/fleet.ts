import * as z from "zod";
import { NotFoundError } from "../../core/errors.ts";
import type { Device, DeviceState, ScopeSetting } from "../../core/wire-fleet.ts";
import type { Queryable } from "../adapters/db/db.ts";
import { decode, keysetPage, type Page } from "./listing.ts";
import { iso } from "./read.ts";
import { type DeviceTally, deviceTallies } from "./tallies.ts";

/** A device with no request for this long is `silent`. */
export const SILENT_AFTER_MS = 15 * 60_000;
/** Pushes in a row that failed before a device counts as `failing`. */
export const FAILING_AFTER_PUSHES = 3;

interface DeviceHealth {
  revokedAt: string | null;
  lastSeenAt: string | null;
  lastRequestRefused: boolean;
  failedPushes: number;
  accepted: number;
  outcomes: number;
}

/**
 * Where a device stands, most urgent first: a refused last request or a run
 * of failed pushes is `failing` even while the device keeps calling, and
 * silence is only `silent` for a device that is otherwise fine.
 */
export function deviceState(d: DeviceHealth, nowMs: number): DeviceState {
  if (d.revokedAt) return "revoked";
  if (!d.lastSeenAt) return "never_seen";
  if (d.lastRequestRefused || d.failedPushes >= FAILING_AFTER_PUSHES) return "failing";
  if (nowMs - Date.parse(d.lastSeenAt) > SILENT_AFTER_MS) return "silent";
  if (d.accepted > d.outcomes) return "behind";
  return "in_sync";
}

interface DeviceRow {
  id: string;
  name: string;
  client_id: string;
  created_at: Date;
  revoked_at: Date | null;
  last_seen_at: Date | null;
  last_push_at: Date | null;
  last_pull_at: Date | null;
  accepted: number;
  applied: number;
  partial: number;
  superseded: number;
  rejected: number;
  conflicts: number;
  last_request_refused: boolean;
  failed_pushes: number;
  last_error_at: Date | null;
  last_error_code: string | null;
  last_error_message: string | null;
  agent_version: string | null;
  platform: string | null;
  scopes: string[];
}

/**
 * The project's devices with their sync counters and health, oldest first,
 * in pages (a page also ends where its devices reach the API's size bound,
 * so a fleet of any size is answered); their changes by outcome and their
 * conflicts from tallies (`tallies.ts`), so no call counts a device's
 * whole history again.
 */
export async function listDevices(
  db: Queryable,
  projectId: string,
  nowMs: number,
  { limit = 10_000, cursor }: { limit?: number; cursor?: string | undefined } = {},
): Promise<Page<Device>> {
  const after = decode(cursor, z.tuple([z.string(), z.uuid()]));
  const rows = await db.query<Omit<DeviceRow, keyof DeviceTally> & { page_key: string }>(
    `select d.id, d.name, d.client_id, d.created_at, d.revoked_at, d.last_seen_at, d.last_push_at, d.last_pull_at,
            d.accepted, d.last_request_refused, d.failed_pushes, d.last_error_at, d.last_error_code,
            d.last_error_message, d.agent_version, d.platform, d.scopes, d.created_at::text as page_key
       from devices d
      where d.project_id = $1 ${after ? "and (d.created_at, d.id) > ($3::timestamptz, $4::uuid)" : ""}
      order by d.created_at, d.id
      limit $2`,
    [projectId, limit + 1, ...(after ?? [])],
  );
  // After the devices' rows: a change accepted before them and applied
  // since counts as applied, not as a device behind.
  const tallies = await deviceTallies(db, projectId);
  const none: DeviceTally = { applied: 0, partial: 0, superseded: 0, rejected: 0, conflicts: 0 };
  return keysetPage(
    rows,
    limit,
    ({ page_key: _, ...row }) => toDeviceView({ ...row, ...(tallies.get(row.id) ?? none) }, nowMs),
    (row) => [row.page_key, row.id],
  );
}

/**
 * Every setting of a device's scopes, oldest first, with who made it
 * (`device_scope_log`): which devices could hold which sites' reports, and
 * since when.
 *
 * @throws NotFoundError when the project has no such device.
 */
export async function deviceScopeHistory(
  db: Queryable,
  projectId: string,
  deviceId: string,
  query: { limit: number; cursor?: string },
): Promise<Page<ScopeSetting>> {
  const after = decode(query.cursor, z.tuple([z.number().int().positive()]));
  const rows = await db.query<{
    version: number;
    scopes: string[];
    set_by: string | null;
    set_at: Date;
  }>(
    `select l.version, l.scopes, l.set_by, l.set_at
       from device_scope_log l join devices d on d.id = l.device_id
      where d.id = $1 and d.project_id = $2 and l.version > $3
      order by l.version limit ${query.limit + 1}`,
    [deviceId, projectId, after?.[0] ?? 0],
  );
  if (rows.length === 0 && !after) {
    const [device] = await db.query("select 1 from devices where id = $1 and project_id = $2", [
      deviceId,
      projectId,
    ]);
    if (!device) throw new NotFoundError("No such device.");
  }
  return keysetPage(
    rows,
    query.limit,
    (r) => ({
      version: r.version,
      scopes: r.scopes,
      setBy: r.set_by,
      setAt: r.set_at.toISOString(),
    }),
    (r) => [r.version],
  );
}

function toDeviceView(r: DeviceRow, nowMs: number): Device {
  const revokedAt = iso(r.revoked_at);
  const lastSeenAt = iso(r.last_seen_at);
  const accepted = Number(r.accepted);
  const outcomes = r.applied + r.partial + r.superseded + r.rejected;
  return {
    id: r.id,
    name: r.name,
    clientId: r.client_id,
    createdAt: r.created_at.toISOString(),
    revokedAt,
    lastSeenAt,
    lastPushAt: iso(r.last_push_at),
    lastPullAt: iso(r.last_pull_at),
    accepted,
    applied: r.applied,
    partial: r.partial,
    superseded: r.superseded,
    rejected: r.rejected,
    conflicts: r.conflicts,
    state: deviceState(
      {
        revokedAt,
        lastSeenAt,
        accepted,
        outcomes,
        lastRequestRefused: r.last_request_refused,
        failedPushes: r.failed_pushes,
      },
      nowMs,
    ),
    lastErrorAt: iso(r.last_error_at),
    lastErrorCode: r.last_error_code,
    lastErrorMessage: r.last_error_message,
    agentVersion: r.agent_version,
    platform: r.platform,
    scopes: r.scopes,
  };
}

/** What the agent says of itself: `edge-agent/<version> (<platform>; node/<version>)`. */
export function parseUserAgent(
  userAgent: string | undefined,
): { agentVersion: string; platform: string | null } | undefined {
  const match = /^edge-agent\/([\w.+-]{1,40})(?: \(([\x20-\x7e]{1,100}?)\))?/.exec(userAgent ?? "");
  if (!match) return undefined;
  return { agentVersion: match[1]!, platform: match[2] ?? null };
}

export interface DeviceRequest {
  kind: "push" | "pull";
  /** Answered with 2xx (a push may still have left changes unqueued). */
  answered: boolean;
  /** Changes the queue took. */
  accepted: number;
  /** Why the request was refused or failed; absent when all went through. */
  error?: { code: string; message: string; refused: boolean };
  userAgent?: string;
}

/**
 * Records one request of a device: when it was seen, its counters, its last
 * error and its agent. One statement; best effort, like every bookkeeping
 * write after the work itself is done.
 */
export async function recordDeviceRequest(
  db: Queryable,
  deviceId: string,
  request: DeviceRequest,
): Promise<void> {
  const agent = parseUserAgent(request.userAgent);
  const failedPush = request.kind === "push" && request.error !== undefined;
  await db.query(
    `update devices set
       last_seen_at = now(),
       last_push_at = case when $2::text = 'push' and $3::boolean then now() else last_push_at end,
       last_pull_at = case when $2::text = 'pull' and $3::boolean then now() else last_pull_at end,
       accepted = accepted + $4::int,
       last_request_refused = $5::boolean,
       failed_pushes = case when $2::text <> 'push' then failed_pushes when $6::boolean then failed_pushes + 1 else 0 end,
       last_error_at = case when $7::text is null then last_error_at else now() end,
       last_error_code = coalesce($7::text, last_error_code),
       last_error_message = case when $7::text is null then last_error_message else $8::text end,
       agent_version = coalesce($9::text, agent_version),
       platform = coalesce($10::text, platform)
     where id = $1`,
    [
      deviceId,
      request.kind,
      request.answered,
      request.accepted,
      request.error?.refused ?? false,
      failedPush,
      request.error?.code ?? null,
      request.error?.message ?? null,
      agent?.agentVersion ?? null,
      agent?.platform ?? null,
    ],
  );
}
