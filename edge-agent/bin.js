#!/usr/bin/env node
// The CLI is TypeScript; tsx compiles it on the fly, so no build step is needed.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./cli.ts");
process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  isTty: Boolean(process.stderr.isTTY),
  env: process.env,
});
