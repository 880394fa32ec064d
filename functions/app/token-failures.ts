import type { Queryable } from "../adapters/db/db.ts";

/** Failed token requests a client may make per window before it must wait. */
export const MAX_TOKEN_FAILURES = 10;
export const TOKEN_FAILURE_WINDOW_SECONDS = 15 * 60;

/**
 * Seconds the client must wait before trying again, or 0. A window opens at
 * a client's first failure and lasts TOKEN_FAILURE_WINDOW_SECONDS.
 */
export async function tokenRetryAfterSeconds(db: Queryable, clientId: string): Promise<number> {
  const [row] = await db.query<{ wait: number }>(
    `select ceil(extract(epoch from window_start + make_interval(secs => $2) - now()))::int as wait
       from token_failures where client_id = $1 and failures >= $3`,
    [clientId, TOKEN_FAILURE_WINDOW_SECONDS, MAX_TOKEN_FAILURES],
  );
  return Math.max(0, row?.wait ?? 0);
}

/** Counts a failure of an existing client, opening a new window when the last one is over. */
export async function recordTokenFailure(db: Queryable, clientId: string): Promise<void> {
  await db.query(
    `insert into token_failures (client_id, failures, window_start) values ($1, 1, now())
     on conflict (client_id) do update set
       failures = case when token_failures.window_start < now() - make_interval(secs => $2) then 1
                       else token_failures.failures + 1 end,
       window_start = case when token_failures.window_start < now() - make_interval(secs => $2) then now()
                           else token_failures.window_start end`,
    [clientId, TOKEN_FAILURE_WINDOW_SECONDS],
  );
}

export async function clearTokenFailures(db: Queryable, clientId: string): Promise<void> {
  await db.query("delete from token_failures where client_id = $1", [clientId]);
}
