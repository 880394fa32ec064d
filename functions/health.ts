import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";

const CHECK_TIMEOUT_MS = 2_000;

async function check(work: () => Promise<unknown>): Promise<"ok" | "error"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timeout")), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([work(), timeout]);
    return "ok";
  } catch {
    return "error";
  } finally {
    clearTimeout(timer);
  }
}

/** `GET /v1/health`: 200 when the database and the queue answer, else 503. */
export const create = (deps: DepsOf<"health">) =>
  apiRoute(deps, { public: true }).handler(async () => {
    const [db, queue] = await Promise.all([
      check(() => deps.db.query("select 1")),
      check(() => deps.queueDepth.depth()),
    ]);
    const ok = db === "ok" && queue === "ok";
    return json(ok ? 200 : 503, { status: ok ? "ok" : "unavailable", checks: { db, queue } });
  });

export const handler = lambdaHandler("health", create);
