/** The account LocalStack answers as. */
export const LOCALSTACK_ACCOUNT = "000000000000";

/**
 * The API's address on LocalStack, from this host and from a container on
 * the compose network, given the `ApiUrl` the stack outputs (whose
 * execute-api host only AWS resolves).
 */
export function localstackApiUrls(apiUrl: string, hostEndpoint: string) {
  const match = /^https:\/\/([a-z0-9]+)\.execute-api\.[^/]+\/([^/]+)\/?$/.exec(apiUrl);
  if (!match) throw new Error(`not a REST API stage URL: ${apiUrl}`);
  const [, id, stage] = match;
  const path = `/restapis/${id}/${stage}/_user_request_/`;
  return { host: `${hostEndpoint}${path}`, compose: `http://localstack:4566${path}` };
}
