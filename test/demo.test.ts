import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("npm run demo", () => {
  it("tells the story of an offline conflict in under 40 lines and exits 0 when all converged", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "local/demo.ts"], {
      env: { ...process.env, DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.stderr.on("data", (c) => {
      out += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines.length).toBeLessThan(40);
    expect(out).toMatch(/conflict on severity: \w+'s \S+ won over \w+'s \S+/);
    expect(out).toMatch(/converged: clinic, truck, lab and the cloud hold the same state/);
  }, 180_000);
});
