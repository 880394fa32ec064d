import * as z from "zod";
import { JsonValueSchema } from "./change.ts";
import { storableText } from "./json.ts";

/** The pieces the wire schemas (wire.ts, wire-custody.ts) are built from. */

export const uuid = z.uuid();
export const time = z.iso.datetime({ offset: true, message: "must be an ISO 8601 time" });
export const stamp = z.iso.datetime().meta({ description: "ISO 8601 time, UTC." });
export const count = z.number().int().min(0);
export const cursor = z.string().max(512).meta({ description: "Opaque; pass back as returned." });
export const limit = (max: number, fallback: number) =>
  z.coerce
    .number()
    .int()
    .min(1)
    .max(max)
    .default(fallback)
    .meta({ description: `Page size, 1 to ${max}.` });
export const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine(storableText, { message: "holds a NUL character or a lone surrogate" });

export const jsonObject = z.record(z.string(), JsonValueSchema);
export const outcome = z.enum(["applied", "partial", "superseded", "rejected"]);
