import { Worker } from "node:worker_threads";

/**
 * A worker thread running a TypeScript module: tsx is registered in the
 * thread first, as the local cloud and the benchmarks run under tsx or
 * vitest, whose loaders a new thread does not inherit.
 */
export function typeScriptWorker(module: URL, workerData: unknown): Worker {
  return new Worker(
    `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
       .then(({ register }) => { register(); return import(${JSON.stringify(module.href)}); })`,
    { eval: true, workerData },
  );
}
