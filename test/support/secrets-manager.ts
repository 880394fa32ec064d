import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Secrets Manager has no local form here: a stand-in for the two calls the
 * functions make (GetSecretValue, PutSecretValue), speaking the service's
 * JSON 1.1 protocol on 127.0.0.1, so the real SDK client (bundled or not)
 * talks to it through `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
 */
export async function startSecretsManager(secrets: Record<string, string>) {
  const values = new Map(Object.entries(secrets));
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const input = JSON.parse(body || "{}") as { SecretId?: string; SecretString?: string };
    const action = String(req.headers["x-amz-target"] ?? "").replace("secretsmanager.", "");
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(payload));
    };
    const id = input.SecretId ?? "";
    if (!values.has(id)) {
      return reply(400, {
        __type: "ResourceNotFoundException",
        message: "Secrets Manager can't find the specified secret.",
      });
    }
    if (action === "GetSecretValue") {
      return reply(200, {
        ARN: id,
        Name: id,
        SecretString: values.get(id),
        VersionId: randomUUID(),
      });
    }
    if (action === "PutSecretValue" && input.SecretString !== undefined) {
      values.set(id, input.SecretString);
      return reply(200, { ARN: id, Name: id, VersionId: randomUUID() });
    }
    return reply(400, { __type: "InvalidRequestException", message: `unsupported: ${action}` });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    values,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
