import { writeFile } from "node:fs/promises";
import { buildOpenApiDocument } from "../functions/http/openapi.ts";
import pkg from "../package.json" with { type: "json" };

/**
 * `npm run openapi [-- FILE]`: writes the OpenAPI document the API serves at
 * `/v1/openapi.json` to FILE, or prints it.
 */
const text = `${JSON.stringify(buildOpenApiDocument(pkg.version), null, 2)}\n`;
const file = process.argv[2];
if (file) await writeFile(file, text);
else process.stdout.write(text);
