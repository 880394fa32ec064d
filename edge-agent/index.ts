/**
 * The edge agent as a library, for apps that embed it (`@edge-sync/edge-agent`):
 * open a database, write and read reports offline, hear of writes and sync
 * rounds (`subscribe`), sync once or in a loop, read its status and back it
 * up. The CLI (`edge-agent`) is a thin layer over it.
 *
 * @example
 * import { EdgeAgent } from "@edge-sync/edge-agent";
 * const agent = EdgeAgent.open("site.db");
 * await agent.init("https://api.example.org/prod/", clientId, clientSecret);
 * agent.subscribe((e) => e.type === "sync_failed" && console.warn(e.error.message));
 * const report = agent.create({ title: "Pump 3 leaking", severity: 3 });
 * const stop = new AbortController();
 * await agent.run({ intervalMs: 10_000, signal: stop.signal, onRound: console.log });
 */

export type { Conflict, Report } from "../core/wire.ts";
export { EdgeAgent } from "./agent.ts";
export { CloudRequestError, CloudUnreachableError } from "./client.ts";
export * from "./types.ts";
