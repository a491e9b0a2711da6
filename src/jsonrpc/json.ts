/**
 * Lossless JSON: parsing that keeps the text of every number a double would change, and the value
 * types used for every audit copy of a message.
 *
 * @module
 */

/**
 * A number kept as its original text (see {@link changedByDouble}), serialized verbatim by
 * `JSON.stringify` and by the canonical form.
 */
export interface RawNumber {
  readonly rawJSON: string;
}

/** Any JSON value as the audit path holds it. */
export type JsonValue = null | boolean | number | string | RawNumber | JsonValue[] | JsonObject;

/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

interface LosslessJson {
  rawJSON(text: string): RawNumber;
  isRawJSON(value: unknown): value is RawNumber;
}

const lossless = JSON as unknown as LosslessJson;

/** True when `value` is a number kept as its text. */
export function isRawNumber(value: unknown): value is RawNumber {
  return lossless.isRawJSON(value);
}

/** Wraps a JSON number's text so it serializes verbatim. */
export function rawNumber(text: string): RawNumber {
  return lossless.rawJSON(text);
}

/**
 * Whether a number's text must be kept because a double would change it: writing the double back
 * in canonical form (ECMAScript's shortest round trip, `-0` as `0`) would denote another decimal
 * value (`-0`, `1E-400`, `1e400`, `0.10000000000000000000000001`), or the text is an integer
 * written as plain digits that no double holds exactly (`100000000000000000000000`, as SPEC §3
 * has always said). `1.50` and `1e20` are not kept: their doubles write back as `1.5` and
 * `100000000000000000000`, the same values.
 *
 * `text` is a JSON number and `value` its double.
 */
export function changedByDouble(text: string, value: number): boolean {
  if (!Number.isFinite(value)) return true;
  // Zero in any spelling: negative zero writes back as `0`; nonzero digits underflowed.
  if (value === 0) return text.charCodeAt(0) === MINUS || NONZERO_BEFORE_EXPONENT.test(text);
  // Plain digits beyond 2^53 are kept unless the double is exactly them, even when it writes back
  // as the same digits (-7000000001000001000 is no double).
  if (!Number.isSafeInteger(value) && DIGITS.test(text) && BigInt(value) !== BigInt(text)) {
    return true;
  }
  const shortest = String(value);
  if (shortest === text) return false;
  return decimal(text) !== decimal(shortest);
}

const MINUS = 0x2d;
const NONZERO_BEFORE_EXPONENT = /^-?[0.]*[1-9]/;
const DIGITS = /^-?\d+$/;
const NUMBER_PARTS = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** A nonzero decimal's value as `<sign><digits>e<exponent>`, without leading or trailing zeros. */
function decimal(text: string): string {
  const m = NUMBER_PARTS.exec(text)!;
  const fraction = m[3] ?? "";
  let digits = (m[2] ?? "") + fraction;
  // A finite nonzero double's text has an exponent far below 2^53, however many digits it has.
  let exponent = Number(m[4] ?? "0") - fraction.length;
  let end = digits.length;
  while (end > 1 && digits.charCodeAt(end - 1) === 0x30) end--;
  exponent += digits.length - end;
  let start = 0;
  while (start < end - 1 && digits.charCodeAt(start) === 0x30) start++;
  digits = digits.slice(start, end);
  return `${m[1]}${digits}e${exponent}`;
}

// A text holds no number `changedByDouble` keeps unless it has one of these, and most messages
// have none; for them the native parser alone is several times faster. Why they suffice: a number
// with at most 15 digits and an exponent of at most two digits has at most 15 significant digits
// and lies between 1e-114 and 1e114, in the normal range, so its double writes back as the same
// decimal (every decimal of 15 significant digits survives a double); and an integer no double
// holds has at least 16 digits. Left are:
// - 16 digits or more: from its first digit, the number has 16 characters of digits and `.`;
// - an exponent of three digits or more (leading zeros count: they only cost a slower parse);
// - negative zero, after the `[`, `,` or `:` that comes before any number inside a container (a
//   number alone is the text's only value, and parseLossless looks at it directly).
// Matches inside strings only cost a slower parse. Every branch begins with a digit or `-`, what
// comes before them looked at behind: the engine then tries a match only at those, where branches
// beginning at `e` (the commonest letter of prose) or at every `,` and `:` cost it five times as
// much on a typical tool result.
const NEEDS_SOURCE = /\d[\d.]{15}|(?<=[eE][+-]?)\d{3}|(?<=[[:,]\s*)-0(?:\.0+)?(?![.\d])/;

/**
 * Parses JSON text, keeping every number a double would change (see {@link changedByDouble}) as
 * a {@link RawNumber} holding its text, and every member name as written where the engine's
 * `JSON.parse` misreads an escaped one (see `hasBackslashName`). Iterative: any depth the text
 * has, the parse survives. Throws `SyntaxError` on invalid JSON, like `JSON.parse`.
 *
 * @example
 * ```ts
 * const v = parseLossless('{"n":12345678901234567890,"z":-0}');
 * console.log(JSON.stringify(v)); // {"n":12345678901234567890,"z":-0}
 * ```
 */
export function parseLossless(text: string): JsonValue {
  // V8's parser is iterative and checks the syntax; its reviver would recurse, so it is not used.
  const value = JSON.parse(text) as JsonValue;
  if (typeof value === "number") {
    const token = text.trim();
    return changedByDouble(token, value) ? lossless.rawJSON(token) : value;
  }
  if (NEEDS_SOURCE.test(text) && keepsNumber(text)) return build(text, true);
  // JSON.parse may misread an escaped member name (see hasBackslashName); `build` decodes every
  // name itself. Most texts hold no backslash at all, and are not walked.
  if (namesMayBeMisread(text, value)) return build(text, true);
  return value;
}

/**
 * Parses JSON text as `JSON.parse` does (numbers as doubles, `SyntaxError` on invalid JSON), but
 * with every member name as written where the engine's `JSON.parse` misreads an escaped one (see
 * `hasBackslashName`). For every JSON text read in the project whose member names matter: stored
 * records, configuration, pins, answers. Iterative, as {@link parseLossless} is.
 *
 * Parsing a lone string literal (`JSON.parse('"\\u0041"')`) needs none of this: the defect is
 * in member names only, so such parses may call `JSON.parse` directly.
 *
 * @example
 * ```ts
 * parseJson('{"a":1,"\\\\":2}'); // after it, JSON.parse alone reads the next name as "\\"
 * console.log(Object.keys(parseJson('{"a":1,"\\u0001":2}'))); // [ "a", "\x01" ]
 * ```
 */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (typeof value !== "object" || value === null) return value;
  // The engine's value is JSON, made of plain objects, arrays and scalars.
  return namesMayBeMisread(text, value as JsonValue) ? build(text, false) : value;
}

/**
 * Whether `value`, parsed from `text` by `JSON.parse` (with or without a reviver), may hold a
 * member name the engine misread: the text has a backslash and a parsed name holds one (see
 * `hasBackslashName`). A caller that parses with a reviver of its own re-reads such a text with
 * {@link parseLossless} or {@link parseJson}. Most texts hold no backslash at all, and are not
 * walked.
 */
export function namesMayBeMisread(text: string, value: JsonValue): boolean {
  return text.includes("\\") && hasBackslashName(value);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NUMBER_AT = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** The index of the quote that closes the string opened at `open`, in valid JSON. */
function stringEnd(text: string, open: number): number {
  let close = text.indexOf('"', open + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(close - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return close;
    close = text.indexOf('"', close + 1);
  }
}

/** Where a string or a number may start: outside strings, a digit or `-` always starts a number. */
const STRING_OR_NUMBER = /["\d-]/g;

/** Whether valid JSON `text` has a number, outside strings, that {@link changedByDouble} keeps. */
function keepsNumber(text: string): boolean {
  const next = STRING_OR_NUMBER;
  next.lastIndex = 0;
  for (let m = next.exec(text); m !== null; m = next.exec(text)) {
    const at = m.index;
    if (text.charCodeAt(at) === QUOTE) {
      next.lastIndex = stringEnd(text, at) + 1;
      continue;
    }
    NUMBER_AT.lastIndex = at;
    const token = NUMBER_AT.exec(text)![0];
    if (changedByDouble(token, Number(token))) return true;
    next.lastIndex = at + token.length;
  }
  return false;
}

/**
 * Builds the value of valid JSON `text` as `JSON.parse` would, with an explicit stack rather than
 * recursion, each string (member names included) decoded on its own. With `keepNumbers`, a number
 * a double would change is kept as its text; without, every number is its double.
 */
function build(text: string, keepNumbers: boolean): JsonValue {
  const parents: (JsonValue[] | JsonObject)[] = [];
  const parentKeys: (string | undefined)[] = [];
  let top: JsonValue[] | JsonObject | undefined;
  // The member name read in `top` whose value comes next; undefined when a name comes next.
  let key: string | undefined;
  let root: JsonValue = null;
  // The next backslash at or after the string being read: one forward search for all strings.
  let backslash = -2;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    let value: JsonValue;
    switch (c) {
      case 0x20: // space, tab, line feed, carriage return, comma, colon
      case 0x09:
      case 0x0a:
      case 0x0d:
      case 0x2c:
      case 0x3a:
        i++;
        continue;
      case 0x5b: // [
      case 0x7b: // {
        if (top !== undefined) {
          parents.push(top);
          parentKeys.push(key);
        }
        top = c === 0x5b ? [] : {};
        key = undefined;
        i++;
        continue;
      case 0x5d: // ]
      case 0x7d: // }
        value = top!;
        top = parents.pop();
        key = parentKeys.pop();
        i++;
        break;
      case QUOTE: {
        const close = stringEnd(text, i);
        if (backslash !== -1 && backslash < i) backslash = text.indexOf("\\", i);
        const s: string = backslash !== -1 && backslash < close
          ? JSON.parse(text.slice(i, close + 1))
          : text.slice(i + 1, close);
        i = close + 1;
        if (top !== undefined && key === undefined && !Array.isArray(top)) {
          key = s;
          continue;
        }
        value = s;
        break;
      }
      case 0x74: // true
        value = true;
        i += 4;
        break;
      case 0x66: // false
        value = false;
        i += 5;
        break;
      case 0x6e: // null
        value = null;
        i += 4;
        break;
      default: {
        NUMBER_AT.lastIndex = i;
        const token = NUMBER_AT.exec(text)![0];
        const number = Number(token);
        value = keepNumbers && changedByDouble(token, number) ? lossless.rawJSON(token) : number;
        i += token.length;
      }
    }
    if (top === undefined) root = value;
    else if (Array.isArray(top)) top.push(value);
    else {
      // A plain assignment to "__proto__" would change the prototype, not add a member.
      if (key === "__proto__") {
        Object.defineProperty(top, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else top[key!] = value;
      key = undefined;
    }
  }
  return root;
}

/**
 * Whether a member name anywhere in `value`, as `JSON.parse` gave it, holds a backslash: the mark
 * of a name V8 may have misread. V8 13.6 to 15.0 at least (Node 24 and 26, Deno 2.9.6; not Node
 * 20's 11.3) can give an escaped name the wrong text (nodejs/node#63785, crbug 521080746): once an
 * object of n members beginning `a`, …, K was read (or, at times, built by code), reading another
 * object of n members that begins `a`, … and then an escaped name as long as K whose source begins
 * with K's characters gives that member the name K, whatever the values. After `{"a":1,"\\":2}`,
 * `{"a":1,"\u0001":2}` reads as `{"a":1,"\\":2}`; after `{"a":1,"\\u00":2}`,
 * `{"a":1,"\u006eame":2}` as `{"a":1,"\\u00":2}`. Strings are never misread, nor (as seen) an
 * object's first name. The wrong name is the first characters of the escaped source, as many as the
 * name has, so it holds the backslash of the source's first escape: a value with no such name was
 * read right.
 */
function hasBackslashName(value: JsonValue): boolean {
  const stack: JsonValue[] = [value];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (typeof v !== "object" || v === null || isRawNumber(v)) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
      continue;
    }
    for (const key in v) {
      if (key.includes("\\")) return true;
      const item = v[key]!;
      if (typeof item === "object" && item !== null) stack.push(item);
    }
  }
  return false;
}

/** True when `value` is a plain JSON object (not an array, not null, not a raw number). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !lossless.isRawJSON(value);
}

/**
 * A value nested deeper than the walk over it allows. Typed, so a caller can name the problem:
 * the engine's own `RangeError` for an exhausted stack says nothing useful, and leaves a half-done
 * job behind. Only walks that recurse throw it, each with its own bound; the walks over messages
 * and records (parsing, redaction, canonical form) are iterative and have none.
 */
export class DepthError extends Error {
  override name = "DepthError";
  constructor(
    /** The deepest nesting allowed. */
    readonly limit: number,
  ) {
    super(`nested deeper than ${limit} levels`);
  }
}

/**
 * How deep {@link asJsonValue} follows a value: far beyond any configuration, and a cycle (which
 * YAML aliases can make) ends here too. 64 frames of recursion are nothing to the stack.
 */
export const AS_JSON_MAX_DEPTH = 64;

/**
 * Narrows a value from elsewhere (parsed YAML, say) to JSON: the same value when it is JSON
 * throughout, else undefined (a non-finite number, a function, a date).
 * @throws {DepthError} when it nests deeper than `limit`, or refers to itself
 */
export function asJsonValue(value: unknown, limit = AS_JSON_MAX_DEPTH): JsonValue | undefined {
  return narrow(value, 0, limit);
}

function narrow(value: unknown, depth: number, limit: number): JsonValue | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (isRawNumber(value)) return value;
  if (typeof value !== "object") return undefined;
  if (depth >= limit) throw new DepthError(limit);
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    for (const item of value) {
      const v = narrow(item, depth + 1, limit);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    const v = narrow(item, depth + 1, limit);
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
