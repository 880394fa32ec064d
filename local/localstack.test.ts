import { describe, expect, it } from "vitest";
import { localstackApiUrls } from "./localstack.ts";

describe("localstackApiUrls", () => {
  it("turns the stack's execute-api URL into LocalStack's path-style addresses", () => {
    expect(
      localstackApiUrls(
        "https://k3x9q2abcd.execute-api.us-east-1.amazonaws.com/prod/",
        "http://127.0.0.1:4566",
      ),
    ).toEqual({
      host: "http://127.0.0.1:4566/restapis/k3x9q2abcd/prod/_user_request_/",
      compose: "http://localstack:4566/restapis/k3x9q2abcd/prod/_user_request_/",
    });
  });

  it("refuses anything that is not a stage URL", () => {
    expect(() => localstackApiUrls("http://127.0.0.1:3000/", "http://127.0.0.1:4566")).toThrow(
      /not a REST API stage URL/,
    );
  });
});
