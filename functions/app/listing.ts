import type * as z from "zod";
import { ValidationError } from "../../core/errors.ts";
import type { Db } from "../adapters/db/db.ts";
import { PAGE_BYTES } from "./pull.ts";

/*
 * How the read routes page through a table: keyset pages under a size cap,
 * opaque cursors, and WHERE clauses whose plans do not depend on statistics.
 */

/** A page of a listing; `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** A cursor for a key, opaque to the client; `decode` reads it back. */
export const encode = (key: unknown[]) => Buffer.from(JSON.stringify(key)).toString("base64url");

/**
 * A page from `limit + 1` rows: the extra row only says there is more, and
 * the last row kept gives the next cursor's key. A page also ends where its
 * items would pass PAGE_BYTES as JSON (it always has one): an answer comes
 * through Lambda, which refuses a response over 6 MB, and a report can hold
 * 2 MiB, an audit entry twice a change's 256 KiB.
 */
export function keysetPage<R, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
  key: (row: R) => unknown[],
): Page<T> {
  const items: T[] = [];
  let budget = PAGE_BYTES;
  let last: R | undefined;
  for (const row of rows.slice(0, limit)) {
    const item = map(row);
    const bytes = Buffer.byteLength(JSON.stringify(item));
    if (items.length > 0 && bytes > budget) break;
    budget -= bytes;
    items.push(item);
    last = row;
  }
  return {
    items,
    nextCursor: rows.length > items.length && last ? encode(key(last)) : null,
  };
}

/** Rows a listing walks newest first along its index before a filter's own index takes over. */
const WALK = 2000;

/** Planner settings for the walk, for its transaction only: an ordered index scan, stopped early. */
const ALONG_THE_INDEX =
  "set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)";
/**
 * Then, for selective filters: their own indexes (bitmap scans), sorted, and
 * still no sequential scan. Sampled statistics can put a `q` matching one
 * report in a hundred at one in twenty-five, where reading the whole
 * project would be the cheaper guess; it is never cheap at 100,000 reports.
 */
const BY_THE_FILTERS =
  "set_config('enable_sort', 'on', true), set_config('enable_bitmapscan', 'on', true)";

/**
 * One page of a table, newest first by (time, id) as a keyset, so a walk
 * through the pages sees every row once even while rows are added. The time
 * is selected as text under another name (`page_key`), never as itself:
 * ORDER BY must bind to the column, and the cursor keeps full precision.
 *
 * The plan does not depend on statistics (a new, restored or bulk-loaded
 * database has none, and its planner would sort the whole project for one
 * page). First the newest WALK rows past the cursor are read along the
 * (project, time, id) index and filtered: a page without filters, or with
 * filters most rows pass (a common word), ends there. If that leaves the
 * page short, the filters are selective: the rows matching them are found
 * through their own indexes (trigrams, update time), only their keys kept
 * and sorted, and then read newest first by primary key, each put to the
 * checks, until the page is full. Thousands of candidates cost a sort of
 * keys; only the page's rows are read whole and checked.
 */
export async function newestFirst<R, T>(
  db: Db,
  where: Where,
  after: [string, string] | undefined,
  limit: number,
  {
    table,
    columns,
    time,
    map,
  }: { table: string; columns: string; time: string; map: (row: R) => T },
): Promise<Page<T>> {
  if (after)
    where.add((p) => `(${time}, id) < (${p(after[0])}::timestamptz, ${p(after[1])}::uuid)`);
  const select = `select ${columns}, ${time}::text as page_key`;
  const order = `order by ${time} desc, id desc`;
  const rows = await db.transaction(async (tx) => {
    await tx.query(`select ${ALONG_THE_INDEX}`);
    type Row = R & { id: string; page_key: string };
    const walked = await tx.query<Row>(
      where.filters
        ? `${select} from (select * from ${table} where ${where.base} ${order} limit ${WALK}) as newest
            where ${where.filters} and ${where.checks} ${order} limit ${limit + 1}`
        : `${select} from ${table} where ${where.base} ${order} limit ${limit + 1}`,
      where.params,
    );
    if (walked.length > limit || !where.filters) return walked;
    await tx.query(`select ${BY_THE_FILTERS}`);
    // The candidates' keys, sorted; then each row by its key (`limit 1`
    // keeps that a lookup per candidate), in that order, until the page is full.
    return tx.query<Row>(
      `with candidates as materialized
         (select ${time} as candidate_time, id as candidate from ${table} where ${where.candidates})
       ${select}
         from (select * from candidates order by candidate_time desc, candidate desc) as c
         cross join lateral (select * from ${table} where ${where.base} and id = c.candidate limit 1) as found
        where ${where.checks}
        order by c.candidate_time desc, c.candidate desc limit ${limit + 1}`,
      where.params,
    );
  });
  return keysetPage(rows, limit, map, (r) => [r.page_key, r.id]);
}

/** A cursor this API returned, read back; anything else is a validation error. */
export function decode<T>(cursor: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (!cursor) return undefined;
  try {
    return schema.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new ValidationError("cursor is not one this API returned.");
  }
}

/**
 * Collects WHERE conditions and their parameters, numbering placeholders:
 * the base (the project, then the cursor and the like) apart from the
 * filters a query adds, and apart from checks, which no index serves and
 * which are put only to rows already in page order.
 */
export class Where {
  readonly params: unknown[] = [];
  /** The project's placeholder. */
  readonly project: string;
  private readonly baseParts: string[];
  private readonly filterParts: string[] = [];
  private readonly checkParts: string[] = [];
  private projectInFilters = false;
  constructor(projectId: string) {
    this.project = `$${this.params.push(projectId)}`;
    this.baseParts = [`project_id = ${this.project}`];
  }
  private push(parts: string[], sql: (p: (value: unknown) => string) => string): this {
    parts.push(sql((value) => `$${this.params.push(value)}`));
    return this;
  }
  add(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.baseParts, sql);
  }
  filter(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.filterParts, sql);
  }
  /**
   * A filter that names the project itself, in a form only its own index
   * serves: finding candidates, the base's `project_id = …` is then left
   * out, so the planner cannot read the whole project from a btree instead.
   */
  filterWithProject(sql: (p: (value: unknown) => string) => string): this {
    this.projectInFilters = true;
    return this.filter(sql);
  }
  check(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.checkParts, sql);
  }
  get base(): string {
    return this.baseParts.join(" and ");
  }
  /** What a candidate must match: the base and the filters, the project stated once. */
  get candidates(): string {
    const base = this.projectInFilters ? this.baseParts.slice(1) : this.baseParts;
    return [...base, ...this.filterParts].join(" and ");
  }
  /** The filters, or the empty string when there are none. */
  get filters(): string {
    return this.filterParts.join(" and ");
  }
  /** The checks, or `true` when there are none. */
  get checks(): string {
    return this.checkParts.join(" and ") || "true";
  }
  get sql(): string {
    return [...this.baseParts, ...this.filterParts, ...this.checkParts].join(" and ");
  }
}
