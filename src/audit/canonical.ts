/**
 * RFC 8785 (JSON Canonicalization Scheme) with the one addition SPEC §3 makes: a number that a
 * lossless parse kept as its text (a `RawNumber`: an integer a double cannot hold, and every
 * number whose double would write back as another decimal value — `-0`, `1E-400`, `1e400`,
 * `0.10000000000000000000000001`) is written as that text. So the record says what the message
 * said, and a record read back with `parseLossless` canonicalizes to the same bytes.
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

function number(value: number): string {
  if (!Number.isFinite(value)) throw new CanonicalizationError(`not a JSON number: ${value}`);
  // ECMAScript Number-to-String is exactly RFC 8785's number format; -0 becomes 0.
  return Object.is(value, -0) ? "0" : String(value);
}

// Member names repeat from message to message; their quoted forms are worth keeping.
const quotedKeys = new Map<string, string>();
const QUOTED_KEYS_LIMIT = 8192;

/** `JSON.stringify(key)`, cached. */
export function quoteKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (quotedKeys.size >= QUOTED_KEYS_LIMIT) quotedKeys.clear();
    quotedKeys.set(key, quoted);
  }
  return quoted;
}

function object(value: { readonly [key: string]: CanonicalInput }): string {
  const keys = Object.keys(value);
  // RFC 8785 §3.2.3 orders member names by UTF-16 code units: the default sort order.
  if (keys.length > 1) keys.sort();
  let out = "{";
  for (const key of keys) {
    const member = value[key];
    if (member === undefined) continue;
    if (out.length > 1) out += ",";
    out += quoteKey(key) + ":" + canonicalize(member);
  }
  return out + "}";
}

function isArray(value: CanonicalInput): value is readonly CanonicalInput[] {
  return Array.isArray(value);
}

function array(value: readonly CanonicalInput[]): string {
  let out = "[";
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ",";
    out += canonicalize(value[i]);
  }
  return out + "]";
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
  switch (typeof value) {
    case "string":
      // JSON.stringify's string escaping is the one RFC 8785 prescribes.
      return JSON.stringify(value);
    case "number":
      return number(value);
    case "boolean":
      return value ? "true" : "false";
    case "undefined":
      throw new CanonicalizationError("undefined is not a JSON value");
    case "object":
      if (value === null) return "null";
      if (isArray(value)) return array(value);
      if (isRawNumber(value)) return value.rawJSON;
      return object(value);
  }
  throw new CanonicalizationError(`not a JSON value: ${typeof value}`);
}
