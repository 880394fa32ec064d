import pkg from "../packages/edge-agent/package.json" with { type: "json" };

/** This agent's version, as released: its package's version. */
export const AGENT_VERSION: string = pkg.version;

/**
 * How the agent names itself on every request, so the cloud can tell which
 * versions and platforms are in the field (`GET /v1/devices`).
 */
export const USER_AGENT = `edge-agent/${AGENT_VERSION} (${process.platform}-${process.arch}; node/${process.versions.node})`;
