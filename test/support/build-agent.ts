import { buildAgentPackage } from "../../packages/edge-agent/build.ts";

/**
 * Vitest global setup: the agent's CLI built once, as a device runs it
 * (`packages/edge-agent/dist/cli.js`), for the tests that start it as a
 * process (`test/support/cli.ts`): it starts in a third of the time tsx
 * takes to compile the TypeScript, and the tests run what ships.
 */
export default async function setup(): Promise<void> {
  await buildAgentPackage({ types: false });
}
