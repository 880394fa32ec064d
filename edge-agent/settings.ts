import type { Statements } from "./statements.ts";

/** What the agent keeps about itself, each under its own name and type. */
export interface SettingValues {
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  deviceId: string;
  projectId: string;
  token: string;
  /** Epoch milliseconds. */
  tokenExpiresAt: number;
  /** The device clock's last stamp. */
  hlc: string;
  /** The cloud's clock minus this device's, learnt on the last pull. */
  clockOffsetMs: number;
  /** Where the next pull starts. */
  cursor: string;
  lastSyncAt: string;
  lastError: string;
  /** This device's private signing key, a JWK. */
  signingKey: string;
  /** "true" once the cloud holds the public part. */
  keyRegistered: string;
  /** This device's scopes as the cloud last said, a JSON array; none: the whole project. */
  scopes: string;
}

type Key = keyof SettingValues;
const NUMBERS = new Set<Key>(["tokenExpiresAt", "clockOffsetMs"]);

/** The agent's settings, a typed record over the `meta` table. */
export class Settings {
  constructor(private readonly statements: Statements) {}

  get<K extends Key>(key: K): SettingValues[K] | null {
    const row = this.statements.sql("select value from meta where key = ?").get(key) as
      | { value: string }
      | undefined;
    if (row === undefined) return null;
    return (NUMBERS.has(key) ? Number(row.value) : row.value) as SettingValues[K];
  }

  /** Sets (or, with null, removes) each given setting; call inside a transaction to set several at once. */
  /** Forgets everything: the database is as before `init`. */
  clear(): void {
    this.statements.sql("delete from meta").run();
  }

  set(values: { [K in Key]?: SettingValues[K] | null }): void {
    for (const [key, value] of Object.entries(values)) {
      if (value === null || value === undefined)
        this.statements.sql("delete from meta where key = ?").run(key);
      else
        this.statements
          .sql(
            "insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
          )
          .run(key, String(value));
    }
  }
}
