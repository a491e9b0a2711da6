/**
 * Lossless JSON: parsing that keeps integers a double cannot hold, and the value types used for
 * every audit copy of a message.
 *
 * @module
 */

/** An integer literal kept as its original digits, serialized verbatim by `JSON.stringify`. */
export interface RawNumber {
  readonly rawJSON: string;
}

/** Any JSON value as the audit path holds it. */
export type JsonValue = null | boolean | number | string | RawNumber | JsonValue[] | JsonObject;

/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

interface ParseContext {
  source?: string;
}

interface LosslessJson {
  rawJSON(text: string): RawNumber;
  isRawJSON(value: unknown): value is RawNumber;
  parse(
    text: string,
    reviver: (this: unknown, key: string, value: unknown, context: ParseContext) => unknown,
  ): unknown;
}

const lossless = JSON as unknown as LosslessJson;

/** True when `value` is an integer kept as its digits. */
export function isRawNumber(value: unknown): value is RawNumber {
  return lossless.isRawJSON(value);
}

/** Wraps integer digits so they serialize verbatim. */
export function rawNumber(digits: string): RawNumber {
  return lossless.rawJSON(digits);
}

// Any integer a double cannot hold has at least 16 digits, and any number beyond the double range
// a three-digit exponent; most messages have neither, and for them the native parser without a
// reviver is several times faster.
const NEEDS_SOURCE = /\d{16}|[eE][+-]?\d{3}/;
const INTEGER = /^-?\d+$/;

function keepDigits(this: unknown, _key: string, value: unknown, context: ParseContext): unknown {
  if (typeof value !== "number" || Number.isSafeInteger(value)) return value;
  const source = context.source;
  if (source === undefined) return value;
  // Beyond the double range (1e400): JSON allows it, a double cannot hold it; keep the text.
  if (!Number.isFinite(value)) return lossless.rawJSON(source);
  if (!INTEGER.test(source)) return value;
  if (BigInt(value) === BigInt(source)) return value;
  return lossless.rawJSON(source);
}

/**
 * Parses JSON text, keeping every integer whose digits a double cannot hold, and every number
 * beyond the double range, as a {@link RawNumber}.
 * Throws `SyntaxError` on invalid JSON, like `JSON.parse`.
 *
 * @example
 * ```ts
 * const v = parseLossless('{"n":12345678901234567890}');
 * console.log(JSON.stringify(v)); // {"n":12345678901234567890}
 * ```
 */
export function parseLossless(text: string): JsonValue {
  if (!NEEDS_SOURCE.test(text)) return JSON.parse(text) as JsonValue;
  return lossless.parse(text, keepDigits) as JsonValue;
}

/** True when `value` is a plain JSON object (not an array, not null, not a raw number). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !lossless.isRawJSON(value);
}

/**
 * Narrows a value from elsewhere (parsed YAML, say) to JSON: the same value when it is JSON
 * throughout, else undefined (a non-finite number, a function, a date, a cycle too deep).
 */
export function asJsonValue(value: unknown, depth = 0): JsonValue | undefined {
  if (depth > 64) return undefined;
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (isRawNumber(value)) return value;
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    for (const item of value) {
      const v = asJsonValue(item, depth + 1);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }
  if (typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) {
    return undefined;
  }
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    const v = asJsonValue(item, depth + 1);
    if (v === undefined) return undefined;
    Object.defineProperty(out, key, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
