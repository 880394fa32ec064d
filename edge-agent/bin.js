#!/usr/bin/env node
// `edge-agent` from a checkout: tsx compiles the TypeScript as it loads. A
// device runs the built package instead (packages/edge-agent), which starts
// without compiling anything.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
