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

type Container = readonly CanonicalInput[] | { readonly [key: string]: CanonicalInput };
/**
 * A container being written: its member names (null for an array), the position of its next
 * member, and what goes before that member.
 */
interface Frame {
  node: Container;
  keys: string[] | null;
  at: number;
  separator: string;
}

function isArray(value: Container): value is readonly CanonicalInput[] {
  return Array.isArray(value);
}

function scalar(value: CanonicalInput): string {
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
      if (isRawNumber(value)) return value.rawJSON;
  }
  throw new CanonicalizationError(`not a JSON value: ${typeof value}`);
}

function isContainer(value: CanonicalInput): value is Container {
  return typeof value === "object" && value !== null && !isRawNumber(value);
}

/** The member names of an object in RFC 8785 §3.2.3 order: by UTF-16 code units, the default. */
function sortedKeys(value: { readonly [key: string]: CanonicalInput }): string[] {
  const keys = Object.keys(value);
  if (keys.length > 1) keys.sort();
  return keys;
}

// How deep the recursive writer goes before it hands a container to the iterative one.
const RECURSION_LIMIT = 64;

/**
 * Serializes `value` canonically. Values nested up to {@link RECURSION_LIMIT} deep (every
 * message in practice) are written by plain recursion, the fastest form in V8; anything deeper by
 * an iterative writer with its own stack, so that a record read from a hostile log file, or any
 * value, can be nested as deep as memory allows without overflowing the call stack.
 *
 * @example
 * ```ts
 * canonicalize({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalize(value: CanonicalInput): string {
  return write(value, 0);
}

function write(value: CanonicalInput, depth: number): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return number(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      return scalar(value);
  }
  if (value === null) return "null";
  if (isRawNumber(value)) return value.rawJSON;
  if (depth >= RECURSION_LIMIT) return writeDeep(value);
  if (isArray(value)) {
    const n = value.length;
    if (n === 0) return "[]";
    let out = "[" + write(value[0], depth + 1);
    for (let i = 1; i < n; i++) out += "," + write(value[i], depth + 1);
    return out + "]";
  }
  const keys = sortedKeys(value);
  let out = "{";
  let separator = "";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const member = value[key];
    if (member === undefined) continue;
    out += separator + quoteKey(key) + ":" + write(member, depth + 1);
    separator = ",";
  }
  return out + "}";
}

/** The iterative writer, for containers nested deeper than the recursive one goes. */
function writeDeep(value: Container): string {
  // The containers being written around the current one, outermost first; made when the first
  // container nests in another.
  let stack: Frame[] | undefined;
  let node: Container = value;
  let keys = isArray(node) ? null : sortedKeys(node);
  let at = 0;
  let separator = "";
  let out = keys === null ? "[" : "{";
  for (;;) {
    // Scalars are written in place; the first container met is entered, else this one closes.
    let child: Container | null = null;
    if (isArray(node)) {
      while (at < node.length) {
        const item = node[at++];
        out += separator;
        separator = ",";
        if (isContainer(item)) {
          child = item;
          break;
        }
        out += scalar(item);
      }
      if (child === null) out += "]";
    } else {
      const k = keys!;
      while (at < k.length) {
        const key = k[at++]!;
        const member = node[key];
        if (member === undefined) continue;
        out += separator + quoteKey(key) + ":";
        separator = ",";
        if (isContainer(member)) {
          child = member;
          break;
        }
        out += scalar(member);
      }
      if (child === null) out += "}";
    }
    if (child !== null) {
      (stack ??= []).push({ node, keys, at, separator });
      node = child;
      keys = isArray(node) ? null : sortedKeys(node);
      at = 0;
      separator = "";
      out += keys === null ? "[" : "{";
      continue;
    }
    const parent = stack?.pop();
    if (parent === undefined) return out;
    ({ node, keys, at, separator } = parent);
  }
}
