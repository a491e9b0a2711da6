/**
 * Where a JSON text breaks the grammar, and why, in our own words. A parser's own message quotes
 * the text around the fault (V8: `Unexpected token ''', "{"audit": {"s"... is not valid JSON`),
 * and a configuration error is printed at startup, shown by `doctor` and stored, signed, in the
 * `audit/reload` record of a rejected reload: text next to a secret must never reach one. The
 * reasons here name the kind of fault and at most a structural character of JSON's own.
 *
 * @module
 */

/** A fault in a JSON text: its UTF-16 offset and what is wrong there. */
export interface JsonSyntaxFault {
  offset: number;
  reason: string;
}

/** Line and column (both from 1) of a UTF-16 offset in `text`; a `\r\n` ends one line. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: end - start + 1 };
}

const STRUCTURAL = new Set(["{", "}", "[", "]", ",", ":", '"']);
const WORDS = ["true", "false", "null"];
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const SPACE = /[ \t\n\r]*/y;

/** What the character at `at` is, told without showing it unless it is JSON's own punctuation. */
function found(text: string, at: number): string {
  if (at >= text.length) return "the end of the text";
  const c = text[at]!;
  if (c === "/") return "a comment, which JSON does not allow";
  if (c === "'") return "a single-quoted string (JSON strings use double quotes)";
  if (STRUCTURAL.has(c)) return `"${c}"`;
  if (/[A-Za-z_$]/.test(c)) return "an unquoted word (JSON strings use double quotes)";
  if (/[\d.+-]/.test(c)) return "a malformed number";
  return `an unexpected character (U+${c.codePointAt(0)!.toString(16).toUpperCase()})`;
}

/**
 * The first fault of `text` as JSON (RFC 8259), or undefined when it is valid. Iterative: any
 * depth of nesting is walked without recursion.
 *
 * @example
 * ```ts
 * jsonSyntaxFault('{"a": 1,}'); // { offset: 8, reason: 'expected a key in double quotes, found "}" ...' }
 * ```
 */
export function jsonSyntaxFault(text: string): JsonSyntaxFault | undefined {
  /** Open containers: `{` or `[`. */
  const stack: string[] = [];
  let at = 0;
  const skip = () => {
    SPACE.lastIndex = at;
    SPACE.exec(text);
    at = SPACE.lastIndex;
  };
  const fault = (reason: string): JsonSyntaxFault => ({ offset: at, reason });

  /** Reads a string at `at` (its opening quote); a fault or undefined. */
  const string = (): JsonSyntaxFault | undefined => {
    const start = at;
    at++;
    while (at < text.length) {
      const c = text.charCodeAt(at);
      if (c === 0x22) {
        at++;
        return undefined;
      }
      if (c < 0x20) return fault("a control character inside a string (write it as an escape)");
      if (c === 0x5c) {
        const e = text[at + 1];
        if (e === "u") {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(at + 2, at + 6))) {
            return fault("an invalid \\u escape in a string (four hex digits are needed)");
          }
          at += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          return fault("an invalid escape in a string");
        }
        at += 2;
        continue;
      }
      at++;
    }
    at = start;
    return fault("a string that is not closed");
  };

  /** Reads one value that is not a container, or opens one. */
  const value = (): JsonSyntaxFault | "open" | undefined => {
    const c = text[at];
    if (c === "{" || c === "[") {
      stack.push(c);
      at++;
      return "open";
    }
    if (c === '"') return string();
    for (const word of WORDS) {
      if (text.startsWith(word, at)) {
        at += word.length;
        if (!/[A-Za-z0-9_$]/.test(text[at] ?? "")) return undefined;
        at -= word.length;
      }
    }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
      NUMBER.lastIndex = at;
      if (NUMBER.exec(text) !== null && !/[\d.eE+-]/.test(text[NUMBER.lastIndex] ?? "")) {
        at = NUMBER.lastIndex;
        return undefined;
      }
      return fault("a malformed number");
    }
    return fault(`expected a value, found ${found(text, at)}`);
  };

  skip();
  if (at >= text.length) return fault("the file holds no JSON value");
  // After a value: close containers, or go on with the next member or item.
  let expectValue = true;
  for (;;) {
    if (expectValue) {
      const top = stack.at(-1);
      if (top === "{") {
        // At a member: its key, then ':'.
        if (text[at] !== '"') {
          return fault(`expected a key in double quotes, found ${found(text, at)}`);
        }
        const bad = string();
        if (bad) return bad;
        skip();
        if (text[at] !== ":") return fault(`expected ":" after a key, found ${found(text, at)}`);
        at++;
        skip();
      }
      const read = value();
      if (read === "open") {
        skip();
        const close = stack.at(-1) === "{" ? "}" : "]";
        if (text[at] === close) {
          stack.pop();
          at++;
        } else {
          continue;
        }
      } else if (read !== undefined) {
        return read;
      }
      expectValue = false;
    }
    skip();
    const top = stack.at(-1);
    if (top === undefined) {
      if (at < text.length) {
        return fault(`expected the end of the text after the value, found ${found(text, at)}`);
      }
      return undefined;
    }
    const close = top === "{" ? "}" : "]";
    if (text[at] === close) {
      stack.pop();
      at++;
      continue;
    }
    if (text[at] !== ",") {
      return fault(`expected "," or "${close}", found ${found(text, at)}`);
    }
    at++;
    skip();
    if (text[at] === close) {
      return fault(`a comma before "${close}", which JSON does not allow`);
    }
    expectValue = true;
  }
}
