import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "./cli.ts";
import { CloudUnreachableError, SyncClient } from "./client.ts";

// A real HTTP server standing where API Gateway's stage would: it records
// the paths it is asked for.
describe("SyncClient under a stage path", () => {
  let server: Server;
  let origin: string;
  const asked: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      asked.push(req.url ?? "");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ access_token: "t", token_type: "Bearer", expires_in: 900 }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each([
    ["/prod/", "/prod/v1/oauth/token"],
    ["/prod", "/prod/v1/oauth/token"],
    ["/restapis/abc123/prod/_user_request_", "/restapis/abc123/prod/_user_request_/v1/oauth/token"],
    ["", "/v1/oauth/token"],
  ])("keeps the path of %j in every request", async (base, expected) => {
    asked.length = 0;
    await new SyncClient({ apiUrl: `${origin}${base}` }).token("id", "secret");
    expect(asked).toEqual([expected]);
  });
});

describe("edge-agent init", () => {
  const dir = mkdtempSync(join(tmpdir(), "edge-agent-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses an --api that is not an http(s) URL, with a usage error", async () => {
    const err: string[] = [];
    const code = await main(
      [
        "--db",
        join(dir, "a.db"),
        "init",
        "--api",
        "localstack:4566",
        "--client-id",
        "i",
        "--client-secret",
        "s",
      ],
      { out: () => {}, err: (t) => err.push(t), isTty: false, env: {} },
    );
    expect(code).not.toBe(0);
    expect(err.join("\n")).toMatch(/--api must be an http\(s\) URL/);
  });
});

describe("edge-agent options", () => {
  const dir = mkdtempSync(join(tmpdir(), "edge-agent-"));
  let server: Server;
  let api: string;
  const secretsSent: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        if (req.url?.endsWith("/v1/oauth/token")) {
          secretsSent.push(new URLSearchParams(body).get("client_secret") ?? "");
        }
        res.statusCode = 401;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ error: "invalid_client" }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ["as the next argument", ["--client-secret", "-Ab3_x"], "-Ab3_x"],
    ["after =", ["--client-secret=-Ab3_x"], "-Ab3_x"],
    ["looking like an option", ["--client-secret", "--json"], "--json"],
  ])("takes a value that starts with - %s", async (_, secretArgs, expected) => {
    secretsSent.length = 0;
    const err: string[] = [];
    const args = ["--db", join(dir, "a.db"), "init", "--api", api, "--client-id", "dev_1"];
    await main([...args, ...secretArgs], {
      out: () => {},
      err: (t) => err.push(t),
      isTty: false,
      env: {},
    });
    expect(err.join("\n")).not.toMatch(/ambiguous|usage/);
    expect(secretsSent).toEqual([expected]);
  });
});

describe("SyncClient reading the cloud's answers", () => {
  let server: Server;
  let api: string;
  let answer: { type: string; body: string } = { type: "text/html", body: "" };
  beforeAll(async () => {
    server = createServer((_, res) => {
      res.setHeader("content-type", answer.type);
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each([
    ["a captive portal's page", "text/html", "<html><body>Sign in to the Wi-Fi</body></html>"],
    ["JSON of another shape", "application/json", '{"reports": "none"}'],
  ])("treats %s as the cloud being unreachable: the changes stay queued", async (_, type, body) => {
    answer = { type, body };
    const client = new SyncClient({ apiUrl: api });
    await expect(client.pull("token", undefined)).rejects.toBeInstanceOf(CloudUnreachableError);
    await expect(client.push("token", [])).rejects.toBeInstanceOf(CloudUnreachableError);
  });
});
