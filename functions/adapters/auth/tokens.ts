import { errors, jwtVerify, SignJWT } from "jose";
import * as z from "zod";
import { UnauthorizedError } from "../../../core/errors.ts";
import { type Principal, ROLES } from "../../../core/types.ts";
import type { KeyRing } from "./keys.ts";

export interface TokenSettings {
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

/** Signs an access token for a principal (ES256, `kid` in the header). */
export async function issueToken(
  keys: KeyRing,
  settings: TokenSettings,
  principal: Principal,
  nowMs = Date.now(),
): Promise<string> {
  const iat = Math.floor(nowMs / 1000);
  return new SignJWT({ project: principal.project, role: principal.role })
    .setProtectedHeader({ alg: "ES256", kid: keys.signing.kid, typ: "JWT" })
    .setSubject(principal.sub)
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + settings.ttlSeconds)
    .setJti(crypto.randomUUID())
    .sign(keys.signing.key);
}

const ClaimsSchema = z.object({
  sub: z.uuid(),
  project: z.uuid().nullable(),
  role: z.enum(ROLES as [Principal["role"], ...Principal["role"][]]),
  jti: z.string().min(1),
});

/** Small allowance for clocks of different machines. */
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * Verifies a bearer token: ES256 only, a known `kid`, issuer, audience,
 * expiry and not-before, against `now` (epoch ms), the clock tokens are
 * issued with. Throws `UnauthorizedError` for any failure.
 */
export async function verifyToken(
  keys: KeyRing,
  settings: Omit<TokenSettings, "ttlSeconds">,
  token: string,
  now: number,
): Promise<Principal & { exp: number }> {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keys.resolveKey, {
      algorithms: ["ES256"],
      currentDate: new Date(now),
      issuer: settings.issuer,
      audience: settings.audience,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["exp", "iat", "sub", "jti"],
    });
    if (!protectedHeader.kid) throw new UnauthorizedError("The token has no key id.");
    const claims = ClaimsSchema.parse(payload);
    return { sub: claims.sub, project: claims.project, role: claims.role, exp: payload.exp! };
  } catch (error) {
    if (error instanceof UnauthorizedError) throw error;
    if (error instanceof errors.JWTExpired) throw new UnauthorizedError("The token has expired.");
    throw new UnauthorizedError("The token is not valid.");
  }
}
