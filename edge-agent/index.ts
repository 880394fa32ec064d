/**
 * The edge agent as a library, for apps that embed it (`edge-sync/agent`):
 * open a database, write and read reports offline, sync once or in a loop,
 * and read its status. The CLI (`edge-agent`) is a thin layer over it.
 *
 * @example
 * import { EdgeAgent } from "edge-sync/agent";
 * const agent = EdgeAgent.open("site.db");
 * await agent.init("https://api.example.org/prod/", clientId, clientSecret);
 * const report = agent.create({ title: "Pump 3 leaking", severity: 3 });
 * const stop = new AbortController();
 * await agent.run({ intervalMs: 10_000, signal: stop.signal, onRound: console.log });
 */

export type { Conflict, Report } from "../core/wire.ts";
export { EdgeAgent } from "./agent.ts";
export { CloudRequestError, CloudUnreachableError } from "./client.ts";
export * from "./types.ts";
