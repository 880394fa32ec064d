// The `edge-agent` command: the CLI bound to this process's streams and exit code.
import { main } from "./cli.ts";

process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  isTty: Boolean(process.stderr.isTTY),
  env: process.env,
});
