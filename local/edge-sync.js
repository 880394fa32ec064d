#!/usr/bin/env node
// `npx edge-sync …` from a checkout: tsx compiles the TypeScript as it loads.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./edge-sync.ts");
process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
});
