// @ts-check
/**
 * JSON as the server sent it: `JSON.parse`, but with every member name as written. V8's
 * `JSON.parse` (Chromium's as Deno's: nodejs/node#63785, crbug 521080746) can misread an escaped
 * member name after reading a similar object: after `{"a":1,"\\":2}`, the params
 * `{"a":1,"\u0001":2}` of a later record read as `{"a":1,"\\":2}`, and the page would show a name
 * the traffic never held. Such a name always holds the backslash of its source's first escape, so
 * a text with a backslash whose parsed names hold one is read again here, each string decoded on
 * its own (a lone string is never misread). The page cannot import `src/`; this is the page's copy
 * of `parseJson` in `src/jsonrpc/json.ts`, and `tests/dashboard_json_test.ts` holds the two to
 * the same documents.
 *
 * Every JSON the page reads goes through {@link parseJson}; `tests/json_parse_sites_test.ts` fails
 * on a `JSON.parse(` or `.json()` elsewhere in the page.
 *
 * @module
 */

/**
 * Parses JSON text as `JSON.parse` does (throws `SyntaxError` on invalid JSON), with every member
 * name as written. Iterative: any depth the text has, the parse survives.
 * @param {string} text
 * @returns {unknown}
 */
export function parseJson(text) {
  /** @type {unknown} */
  const value = JSON.parse(text);
  if (typeof value !== "object" || value === null) return value;
  return text.includes("\\") && hasBackslashName(value) ? build(text) : value;
}

/**
 * Whether a member name anywhere in `value`, as `JSON.parse` gave it, holds a backslash: the mark
 * of a name V8 may have misread.
 * @param {object} value
 * @returns {boolean}
 */
function hasBackslashName(value) {
  /** @type {unknown[]} */
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === "object" && item !== null) stack.push(item);
      continue;
    }
    for (const [key, item] of Object.entries(v)) {
      if (key.includes("\\")) return true;
      if (typeof item === "object" && item !== null) stack.push(item);
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NUMBER_AT = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * The index of the quote that closes the string opened at `open`, in valid JSON.
 * @param {string} text
 * @param {number} open
 * @returns {number}
 */
function stringEnd(text, open) {
  let close = text.indexOf('"', open + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(close - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return close;
    close = text.indexOf('"', close + 1);
  }
}

/**
 * Builds the value of `text`, which `JSON.parse` has just read (so it is valid JSON), as
 * `JSON.parse` would, with an explicit stack rather than recursion and each string decoded on its
 * own.
 * @param {string} text
 * @returns {unknown}
 */
function build(text) {
  /** @type {(unknown[] | Record<string, unknown>)[]} */
  const parents = [];
  /** @type {(string | undefined)[]} */
  const parentKeys = [];
  /** @type {unknown[] | Record<string, unknown> | undefined} */
  let top;
  // The member name read in `top` whose value comes next; undefined when a name comes next.
  /** @type {string | undefined} */
  let key;
  /** @type {unknown} */
  let root = null;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    /** @type {unknown} */
    let value;
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
        value = top;
        top = parents.pop();
        key = parentKeys.pop();
        i++;
        break;
      case QUOTE: {
        const close = stringEnd(text, i);
        const raw = text.slice(i, close + 1);
        // A lone string literal: JSON.parse reads it right.
        /** @type {string} */
        const s = raw.includes("\\") ? JSON.parse(raw) : raw.slice(1, -1);
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
        const token = NUMBER_AT.exec(text)?.[0] ?? "";
        value = Number(token);
        i += Math.max(1, token.length);
      }
    }
    if (top === undefined) root = value;
    else if (Array.isArray(top)) top.push(value);
    else if (key !== undefined) {
      // A plain assignment to "__proto__" would change the prototype, not add a member.
      Object.defineProperty(top, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      key = undefined;
    }
  }
  return root;
}
