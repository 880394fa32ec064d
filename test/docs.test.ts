import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { routes } from "../functions/routes.ts";

const root = join(import.meta.dirname, "..");
const read = (file: string) => readFile(join(root, file), "utf8");

describe("the docs in the repository", () => {
  it("name every route of the route table in the API reference", async () => {
    const api = await read("docs/api.md");
    // The route as the reference writes it: path parameters as {name}, the
    // public files as their path.
    const missing = routes
      .filter((r) => !api.includes(`${r.method} ${r.path}`) && !r.path.startsWith("/dashboard."))
      .map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
  });

  it("link only to files that exist in the repository", async () => {
    for (const file of ["README.md", "docs/design.md", "docs/api.md", "docs/architecture.md"]) {
      const text = await read(file);
      const links = [...text.matchAll(/\]\((?!https?:|#)([^)#\s]+)/g)].map((m) => m[1]!);
      for (const link of links) {
        const target = join(root, file.includes("/") ? "docs" : "", link);
        expect(target.startsWith(root), `${file} → ${link} leaves the repository`).toBe(true);
        await expect(
          readFile(target).then(() => true),
          `${file} → ${link}`,
        ).resolves.toBe(true);
      }
    }
  });
});
