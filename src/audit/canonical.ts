/**
 * RFC 8785 (JSON Canonicalization Scheme) with the one addition SPEC §3 makes: integers a double
 * cannot hold exactly are written as their original digits.
 *
 * @module
 */
import { isRawNumber, type JsonValue } from "../jsonrpc/json.ts";

/** Raised for values JSON cannot represent (NaN, Infinity). */
export class CanonicalizationError extends Error {
  override name = "CanonicalizationError";
}

/** What can be canonicalized: JSON values, with `undefined` members skipped. */
export type CanonicalInput =
  | JsonValue
  | undefined
  | readonly CanonicalInput[]
  | { readonly [key: string]: CanonicalInput };

function compareKeys(a: string, b: string): number {
  // RFC 8785 §3.2.3 orders member names by their UTF-16 code units, which is what `<` compares.
  return a < b ? -1 : a > b ? 1 : 0;
}

function isArray(value: CanonicalInput): value is readonly CanonicalInput[] {
  return Array.isArray(value);
}

function number(value: number): string {
  if (!Number.isFinite(value)) throw new CanonicalizationError(`not a JSON number: ${value}`);
  // ECMAScript Number-to-String is exactly RFC 8785's number format; -0 becomes 0.
  return Object.is(value, -0) ? "0" : String(value);
}

/**
 * Serializes `value` canonically.
 *
 * @example
 * ```ts
 * canonicalize({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalize(value: CanonicalInput): string {
  if (value === undefined) throw new CanonicalizationError("undefined is not a JSON value");
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return number(value);
    case "string":
      // JSON.stringify's string escaping is the one RFC 8785 prescribes.
      return JSON.stringify(value);
    case "object":
      break;
  }
  if (isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
  if (isRawNumber(value)) return value.rawJSON;
  return "{" + canonicalMembers(value as { readonly [key: string]: CanonicalInput }).join(",") +
    "}";
}

/**
 * The canonical `"name":value` members of an object, in canonical order. Skips `undefined`.
 * Exposed so a signer can insert one more member without serializing the rest twice.
 */
export function canonicalMembers(value: { readonly [key: string]: CanonicalInput }): string[] {
  const keys = Object.keys(value).sort(compareKeys);
  const out: string[] = [];
  for (const key of keys) {
    const member = value[key];
    if (member === undefined) continue;
    out.push(JSON.stringify(key) + ":" + canonicalize(member));
  }
  return out;
}
