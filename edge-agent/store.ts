import Database from "better-sqlite3";

/**
 * Schema migrations, by `PRAGMA user_version`. Each runs in one transaction
 * with the version bump, so a crash mid-migration leaves the old schema.
 */
const MIGRATIONS: string[] = [
  `create table meta (key text primary key, value text not null);
   -- The local view: server state with this device's unacknowledged changes on top.
   create table reports (
     id text primary key,
     fields text not null,
     clocks text not null,
     deleted_hlc text,
     version integer not null default 0,
     created_at text not null,
     updated_at text not null,
     created_by text,
     updated_by text,
     -- The last state pulled from the cloud, null until the first pull.
     server text
   );
   -- Transactional outbox: written in the same transaction as the report.
   create table outbox (
     seq integer primary key autoincrement,
     change_id text not null unique,
     report_id text not null,
     op text not null check (op in ('upsert', 'delete')),
     hlc text not null,
     fields text,
     base text,
     state text not null default 'pending'
       check (state in ('pending', 'sent', 'applied', 'partial', 'superseded', 'rejected')),
     created_at text not null,
     sent_at text,
     attempts integer not null default 0,
     code text,
     message text,
     acked_at text
   );
   create index outbox_state on outbox (state, seq);
   create index outbox_report on outbox (report_id, seq);
   create table conflicts (
     id text primary key,
     report_id text not null,
     detected_at text not null,
     body text not null
   );`,
  // At most one sync round at a time across processes. A holder that died is
  // recognised by its pid (same machine) or by the lease running out.
  `create table sync_lock (
     id integer primary key check (id = 1),
     owner text not null,
     pid integer not null,
     expires_at integer not null
   );`,
  // A change the cloud refused for clock skew is sent again, re-stamped from
  // the corrected clock, as a new change; this names it.
  "alter table outbox add column replaced_by text;",
  // The device's signature of the change (core/signature.ts), null for a
  // device without a key.
  "alter table outbox add column sig text;",
  // Scopes: a report's (fixed at creation, sent with every change to it),
  // and whether it left this device's scopes, to be dropped once none of
  // this device's changes to it is unacknowledged.
  `alter table reports add column scope text;
   alter table reports add column evicted integer not null default 0;
   alter table outbox add column scope text;
   create index reports_evicted on reports (id) where evicted = 1;`,
];

/** Opens (creating if needed) the agent's SQLite file in WAL mode and migrates it. */
export function openStore(path: string): Database.Database {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // FULL: a write the CLI reported done survives power loss, not only a crash.
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  // What SQLite frees (an erased value's old row, a deleted page) is
  // overwritten with zeros, not left readable in the file.
  db.pragma("secure_delete = ON");
  db.pragma("foreign_keys = ON");
  const version = db.pragma("user_version", { simple: true }) as number;
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}
