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

// How deep the ordered copy goes before the value is left to the writer.
const COPY_DEPTH_LIMIT = 64;

/** Marks a value the ordered copy cannot stand for. */
const UNSUITABLE = Symbol("unsuitable");

/**
 * `value` with every object's members in RFC 8785 order, for `JSON.stringify` to write: objects
 * already in order, and arrays whose items need no change, are used as they are. `UNSUITABLE`
 * where `JSON.stringify` would not write what RFC 8785 asks or would not keep the order: a number
 * that is not finite, `undefined` in an array, anything but JSON, a member name that starts with
 * a digit (integer-like names are enumerated first, in numeric order) or is `__proto__` (Deno has
 * no `__proto__` setter, but the copy does not lean on that), and nesting deeper than
 * {@link COPY_DEPTH_LIMIT}.
 */
function orderedCopy(value: CanonicalInput, depth: number): CanonicalInput | typeof UNSUITABLE {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : UNSUITABLE;
    case "object":
      break;
    default:
      return UNSUITABLE;
  }
  if (value === null || isRawNumber(value)) return value;
  if (depth >= COPY_DEPTH_LIMIT) return UNSUITABLE;
  if (isArray(value)) {
    let copy: CanonicalInput[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const ordered = orderedCopy(item, depth + 1);
      if (ordered === UNSUITABLE) return UNSUITABLE;
      if (ordered !== item) copy ??= value.slice(0, i);
      copy?.push(ordered);
    }
    return copy ?? value;
  }
  const keys = Object.keys(value);
  const members: CanonicalInput[] = new Array(keys.length);
  let inOrder = true;
  let changed = false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const first = key.charCodeAt(0);
    if ((first >= 0x30 && first <= 0x39) || key === "__proto__") return UNSUITABLE;
    if (i > 0 && keys[i - 1]! > key) inOrder = false;
    const member = value[key];
    if (member === undefined) continue;
    const ordered = orderedCopy(member, depth + 1);
    if (ordered === UNSUITABLE) return UNSUITABLE;
    if (ordered !== member) changed = true;
    members[i] = ordered;
  }
  if (inOrder && !changed) return value;
  const order = keys.map((_, i) => i);
  // By UTF-16 code units, as RFC 8785 §3.2.3 asks; names are distinct.
  if (!inOrder) order.sort((a, b) => keys[a]! < keys[b]! ? -1 : 1);
  const copy: { [key: string]: CanonicalInput } = {};
  for (const i of order) {
    const member = members[i];
    if (member !== undefined) copy[keys[i]!] = member;
  }
  return copy;
}

/**
 * `value` as {@link canonicalize} hands it to `JSON.stringify` (members in order), for writers
 * that put it inside a larger value; `undefined` when `canonicalize` must write it itself.
 */
export function orderedForStringify(value: CanonicalInput): CanonicalInput | undefined {
  const ordered = orderedCopy(value, 0);
  return ordered === UNSUITABLE ? undefined : ordered;
}

/**
 * Serializes `value` canonically. Most values are copied with their members in order (where they
 * are not already) and written by `JSON.stringify`, whose strings and numbers are RFC 8785's and
 * which writes several times faster than building the text piece by piece here. The rest — and
 * the errors for what is not JSON — go to a writer with its own stack, so that a record read from
 * a hostile log file, or any value, can be nested as deep as memory allows without overflowing
 * the call stack.
 *
 * @example
 * ```ts
 * canonicalize({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalize(value: CanonicalInput): string {
  const ordered = orderedCopy(value, 0);
  return ordered === UNSUITABLE ? write(value) : JSON.stringify(ordered);
}

/** Writes `value` piece by piece, without recursion. */
function write(value: CanonicalInput): string {
  if (!isContainer(value)) return scalar(value);
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
