/**
 * A lossless reader of JSON with comments (VS Code's JSONC: `//` and `/* *\/` comments, trailing
 * commas): every node keeps its source span, so an edit can touch only the bytes it must and leave
 * comments, key order, spacing and line endings as they were.
 *
 * Stricter than `JSON.parse` where a client would read a file differently from us: duplicate keys
 * (a client silently takes one of them) and strings holding a lone surrogate (half a character,
 * which no client can pass on as text) are refused. Everything `JSON.parse` refuses is refused too,
 * apart from the comments and trailing commas the options allow.
 *
 * @module
 */

/** A range of a document's text: UTF-16 offsets into {@link JsoncDocument.text}, end exclusive. */
export interface Span {
  start: number;
  end: number;
}

/** A parsed value with its span (for a string, the span includes the quotes). */
export type JsoncNode =
  | { kind: "object"; span: Span; members: JsoncMember[] }
  | { kind: "array"; span: Span; items: JsoncNode[] }
  | { kind: "string"; span: Span; value: string }
  | { kind: "number"; span: Span; value: number; raw: string }
  | { kind: "boolean"; span: Span; value: boolean }
  | { kind: "null"; span: Span };

/** An object node. */
export type JsoncObject = Extract<JsoncNode, { kind: "object" }>;
/** An array node. */
export type JsoncArray = Extract<JsoncNode, { kind: "array" }>;

/** One member of an object. */
export interface JsoncMember {
  key: string;
  /** The key's string, quotes included. */
  keySpan: Span;
  value: JsoncNode;
  /** From the key's opening quote through the value's end (no comma, no comments after it). */
  span: Span;
}

/** A parsed file, with the style an edit should follow. */
export interface JsoncDocument {
  /** The text as read, less a leading byte order mark (see {@link bom}); every span points here. */
  text: string;
  /** A byte order mark (U+FEFF) led the text; writing the file back should keep it. */
  bom: boolean;
  /** The file's dominant line ending ("\n" when it has none). */
  newline: "\n" | "\r\n";
  /** The file's indent unit, from how its members and items are indented ("  " when unknown). */
  indent: string;
  /**
   * Arrays of strings, numbers, booleans and nulls are mostly written on one line in this file
   * (`"args": ["-y", "pkg"]`), so a new one should be too.
   */
  inlineScalarArrays: boolean;
  root: JsoncNode;
}

/** A file that is not the JSON (with comments) it should be: where, and why. */
export class JsoncError extends Error {
  override name = "JsoncError";
  /** 1-based line and column (columns count UTF-16 units, as editors do). */
  readonly line: number;
  readonly column: number;
  /** Offset into the text (less a byte order mark) where the problem is. */
  readonly offset: number;
  readonly reason: string;
  constructor(text: string, offset: number, reason: string) {
    const { line, column } = lineColumn(text, offset);
    super(`line ${line}, column ${column}: ${reason}`);
    this.line = line;
    this.column = column;
    this.offset = offset;
    this.reason = reason;
  }
}

/** How {@link parseJsonc} reads. */
export interface JsoncOptions {
  /** Allow `//` and `/* *\/` comments (default true). */
  comments?: boolean;
  /** Allow a comma after an object's last member or an array's last item (default true). */
  trailingCommas?: boolean;
  /** The deepest nesting of objects and arrays allowed (default 64, at most 1000). */
  maxDepth?: number;
  /** The largest file allowed, in UTF-8 bytes (default 16 MiB). */
  maxBytes?: number;
}

const DEFAULT_MAX_DEPTH = 64;
/** Parsing recurses once per level: a cap a caller cannot raise keeps the stack safe. */
const MAX_DEPTH_LIMIT = 1000;
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
const BOM = 0xfeff;

/**
 * Parses `text` (a file's whole text, a leading byte order mark allowed).
 *
 * @example
 * ```ts
 * const doc = parseJsonc('{\n  // servers\n  "mcpServers": {},\n}\n');
 * console.log(toPlain(doc.root)); // { mcpServers: {} }
 * ```
 * @throws {JsoncError} naming the line, column and reason when the text is not JSON(C)
 * @throws {RangeError} when an option is out of range
 */
export function parseJsonc(text: string, options: JsoncOptions = {}): JsoncDocument {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1 || maxDepth > MAX_DEPTH_LIMIT) {
    throw new RangeError(`maxDepth must be an integer from 1 to ${MAX_DEPTH_LIMIT}`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError("maxBytes must be a non-negative integer");
  }
  const bom = text.charCodeAt(0) === BOM;
  const body = bom ? text.slice(1) : text;
  const bytes = utf8Length(text, maxBytes);
  if (bytes > maxBytes) {
    throw new JsoncError(body, 0, `file too large: over ${maxBytes} bytes`);
  }
  const parser = new Parser(body, {
    comments: options.comments ?? true,
    trailingCommas: options.trailingCommas ?? true,
    maxDepth,
  });
  const root = parser.parseDocument();
  return {
    text: body,
    bom,
    newline: detectNewline(body),
    indent: parser.indentUnit(),
    inlineScalarArrays: parser.inlineScalarArrays(),
    root,
  };
}

/**
 * The plain JSON value of a node, as `JSON.parse` would give it (a `__proto__` key is an own
 * property, never a prototype).
 */
export function toPlain(node: JsoncNode): unknown {
  switch (node.kind) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const member of node.members) {
        Object.defineProperty(out, member.key, {
          value: toPlain(member.value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    case "array":
      return node.items.map(toPlain);
    case "string":
    case "number":
    case "boolean":
      return node.value;
    case "null":
      return null;
    default:
      return unreachable(node);
  }
}

/** The member of an object node named `key`, if any (keys are unique: the parser refuses repeats). */
export function memberOf(node: JsoncNode, key: string): JsoncMember | undefined {
  if (node.kind !== "object") return undefined;
  return node.members.find((member) => member.key === key);
}

/**
 * The 1-based line and column of `offset` in `text`. A line ends at "\n", "\r\n" or a lone "\r";
 * columns count UTF-16 units.
 */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const end = Math.max(0, Math.min(offset, text.length));
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === LF || (c === CR && text.charCodeAt(i + 1) !== LF)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;
const SPACE = 0x20;
const QUOTE = 0x22;
const SLASH = 0x2f;
const STAR = 0x2a;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

interface ParserOptions {
  comments: boolean;
  trailingCommas: boolean;
  maxDepth: number;
}

/** One pass over the text; recursion is one frame per nesting level, capped by `maxDepth`. */
class Parser {
  readonly #text: string;
  readonly #options: ParserOptions;
  #pos = 0;
  /** How often each indent unit explains a member's or item's indentation. */
  readonly #indentVotes = new Map<string, number>();
  #inlineArrays = 0;
  #multilineArrays = 0;

  constructor(text: string, options: ParserOptions) {
    this.#text = text;
    this.#options = options;
  }

  parseDocument(): JsoncNode {
    this.#skip();
    if (this.#pos >= this.#text.length) {
      const reason = this.#text.trim() === ""
        ? "empty file"
        : "empty file (only comments; a JSON value is needed)";
      throw new JsoncError(this.#text, 0, reason);
    }
    const root = this.#value(0);
    this.#skip();
    if (this.#pos < this.#text.length) {
      throw this.#error(
        this.#pos,
        `unexpected ${this.#describe(this.#pos)} after the top-level value ` +
          "(a file holds one value: a second value, or a missing comma inside it?)",
      );
    }
    return root;
  }

  indentUnit(): string {
    let best = "  ";
    let bestVotes = 0;
    for (const [unit, votes] of this.#indentVotes) {
      if (votes > bestVotes || (votes === bestVotes && unit.length < best.length)) {
        best = unit;
        bestVotes = votes;
      }
    }
    return best;
  }

  inlineScalarArrays(): boolean {
    return this.#inlineArrays > this.#multilineArrays;
  }

  #error(offset: number, reason: string): JsoncError {
    return new JsoncError(this.#text, offset, reason);
  }

  /** Skips whitespace and (when allowed) comments. */
  #skip(): void {
    const text = this.#text;
    while (this.#pos < text.length) {
      const c = text.charCodeAt(this.#pos);
      if (c === SPACE || c === LF || c === CR || c === TAB) {
        this.#pos++;
      } else if (c === SLASH) {
        const next = text.charCodeAt(this.#pos + 1);
        if (next !== SLASH && next !== STAR) {
          throw this.#error(this.#pos, "unexpected '/' (a comment starts with // or /*)");
        }
        if (!this.#options.comments) {
          throw this.#error(this.#pos, "comments are not allowed in this file");
        }
        if (next === SLASH) {
          let end = this.#pos + 2;
          while (end < text.length) {
            const d = text.charCodeAt(end);
            if (d === LF || d === CR) break;
            end++;
          }
          this.#pos = end;
        } else {
          const close = text.indexOf("*/", this.#pos + 2);
          if (close < 0) throw this.#error(this.#pos, "unterminated comment (/* without */)");
          this.#pos = close + 2;
        }
      } else {
        return;
      }
    }
  }

  #value(depth: number): JsoncNode {
    this.#skip();
    const text = this.#text;
    const start = this.#pos;
    if (start >= text.length) {
      throw this.#error(start, "unexpected end of file: a value was expected");
    }
    const c = text.charCodeAt(start);
    if (c === OPEN_BRACE) return this.#object(depth + 1);
    if (c === OPEN_BRACKET) return this.#array(depth + 1);
    if (c === QUOTE) {
      const { value, span } = this.#string();
      return { kind: "string", span, value };
    }
    if (c === MINUS || (c >= ZERO && c <= NINE)) return this.#number();
    for (const [word, node] of LITERALS) {
      if (text.startsWith(word, start) && !isWordChar(text.charCodeAt(start + word.length))) {
        this.#pos = start + word.length;
        const span = { start, end: this.#pos };
        return node.kind === "null"
          ? { kind: "null", span }
          : { kind: "boolean", span, value: node.value };
      }
    }
    throw this.#error(start, this.#badValueReason(start));
  }

  #badValueReason(at: number): string {
    const text = this.#text;
    const c = text.charCodeAt(at);
    if (c === 0x27) return "single quotes are not JSON: use double quotes";
    if (c === 0x2b) return "a number cannot start with '+'";
    if (c === 0x2e) return "a number needs a digit before its decimal point";
    if (c === COMMA) return "a value was expected, found ',' (an extra comma?)";
    if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      return `a value was expected, found '${text[at]}'`;
    }
    if (isWordChar(c)) {
      let end = at;
      while (end < text.length && isWordChar(text.charCodeAt(end)) && end - at < 40) end++;
      const word = text.slice(at, end);
      if (word === "NaN" || word === "Infinity") {
        return `${word} is not JSON (use null, a number or a string)`;
      }
      return `unexpected word '${word}' (strings need double quotes; literals are true, false, null)`;
    }
    return `unexpected ${this.#describe(at)}: a value was expected`;
  }

  /** A character for a message: quoted when printable, else its code point and what JSON allows. */
  #describe(at: number): string {
    const code = this.#text.codePointAt(at) ?? 0;
    const hex = "U+" + code.toString(16).toUpperCase().padStart(4, "0");
    if (
      code < 0x20 || (code >= 0x7f && code <= 0xa0) || code === BOM ||
      /\s/u.test(String.fromCodePoint(code))
    ) {
      return `character ${hex} (JSON allows only spaces, tabs and line breaks between values)`;
    }
    return `'${String.fromCodePoint(code)}'`;
  }

  #object(depth: number): JsoncNode {
    const text = this.#text;
    const start = this.#pos;
    if (depth > this.#options.maxDepth) {
      throw this.#error(start, `nesting deeper than ${this.#options.maxDepth} levels`);
    }
    this.#pos++;
    const members: JsoncMember[] = [];
    const seen = new Map<string, number>();
    this.#skip();
    if (text.charCodeAt(this.#pos) === CLOSE_BRACE) {
      this.#pos++;
      return { kind: "object", span: { start, end: this.#pos }, members };
    }
    while (true) {
      this.#skip();
      const at = this.#pos;
      if (at >= text.length) throw this.#unterminated(start, "object");
      if (text.charCodeAt(at) !== QUOTE) {
        const c = text.charCodeAt(at);
        if (c === 0x27) throw this.#error(at, "single quotes are not JSON: use double quotes");
        if (c === COMMA) throw this.#error(at, "a key was expected, found ',' (an extra comma?)");
        if (c === CLOSE_BRACE) throw this.#error(at, "a key was expected, found '}'");
        throw this.#error(
          at,
          `a key was expected, found ${this.#describe(at)} (keys need double quotes)`,
        );
      }
      this.#voteIndent(at, depth);
      const { value: key, span: keySpan } = this.#string();
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        const { line } = lineColumn(text, earlier);
        throw this.#error(at, `duplicate key ${JSON.stringify(key)} (also at line ${line})`);
      }
      seen.set(key, at);
      this.#skip();
      if (text.charCodeAt(this.#pos) !== COLON) {
        if (this.#pos >= text.length) throw this.#unterminated(start, "object");
        throw this.#error(
          this.#pos,
          `expected ':' after the key ${JSON.stringify(key)}, found ${this.#describe(this.#pos)}`,
        );
      }
      this.#pos++;
      const value = this.#value(depth);
      members.push({ key, keySpan, value, span: { start: keySpan.start, end: value.span.end } });
      this.#skip();
      const next = text.charCodeAt(this.#pos);
      if (next === CLOSE_BRACE) break;
      if (this.#pos >= text.length) throw this.#unterminated(start, "object");
      if (next !== COMMA) {
        throw this.#error(
          this.#pos,
          `expected ',' or '}' after the value of ${JSON.stringify(key)}, ` +
            `found ${this.#describe(this.#pos)}`,
        );
      }
      const comma = this.#pos;
      this.#pos++;
      this.#skip();
      if (text.charCodeAt(this.#pos) === CLOSE_BRACE) {
        if (!this.#options.trailingCommas) {
          throw this.#error(comma, "trailing comma after the last member");
        }
        break;
      }
    }
    this.#pos++;
    return { kind: "object", span: { start, end: this.#pos }, members };
  }

  #array(depth: number): JsoncNode {
    const text = this.#text;
    const start = this.#pos;
    if (depth > this.#options.maxDepth) {
      throw this.#error(start, `nesting deeper than ${this.#options.maxDepth} levels`);
    }
    this.#pos++;
    const items: JsoncNode[] = [];
    this.#skip();
    if (text.charCodeAt(this.#pos) !== CLOSE_BRACKET) {
      while (true) {
        this.#skip();
        if (this.#pos >= text.length) throw this.#unterminated(start, "array");
        if (text.charCodeAt(this.#pos) === COMMA) {
          throw this.#error(this.#pos, "a value was expected, found ',' (an extra comma?)");
        }
        this.#voteIndent(this.#pos, depth);
        items.push(this.#value(depth));
        this.#skip();
        const next = text.charCodeAt(this.#pos);
        if (next === CLOSE_BRACKET) break;
        if (this.#pos >= text.length) throw this.#unterminated(start, "array");
        if (next !== COMMA) {
          throw this.#error(
            this.#pos,
            `expected ',' or ']' after an array item, found ${this.#describe(this.#pos)}`,
          );
        }
        const comma = this.#pos;
        this.#pos++;
        this.#skip();
        if (text.charCodeAt(this.#pos) === CLOSE_BRACKET) {
          if (!this.#options.trailingCommas) {
            throw this.#error(comma, "trailing comma after the last item");
          }
          break;
        }
      }
    }
    this.#pos++;
    const span = { start, end: this.#pos };
    if (items.length > 0 && items.every(isScalar)) {
      const breaks = text.indexOf("\n", start);
      if (breaks >= 0 && breaks < span.end) this.#multilineArrays++;
      else this.#inlineArrays++;
    }
    return { kind: "array", span, items };
  }

  #unterminated(start: number, what: "object" | "array"): JsoncError {
    const { line, column } = lineColumn(this.#text, start);
    return this.#error(
      this.#text.length,
      `unexpected end of file: the ${what} opened at line ${line}, column ${column} is not closed`,
    );
  }

  /** Reads the string at the cursor (on its opening quote). */
  #string(): { value: string; span: Span } {
    const text = this.#text;
    const start = this.#pos;
    let i = start + 1;
    let value = "";
    let runStart = i;
    while (true) {
      if (i >= text.length) {
        throw this.#error(start, "unterminated string (no closing double quote)");
      }
      const c = text.charCodeAt(i);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        value += text.slice(runStart, i);
        const e = text[i + 1];
        if (e === undefined) {
          throw this.#error(start, "unterminated string (no closing double quote)");
        }
        if (e === "u") {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
            throw this.#error(i, "bad escape: \\u needs four hex digits");
          }
          value += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else {
          const decoded = ESCAPES[e];
          if (decoded === undefined) {
            throw this.#error(
              i,
              `bad escape \\${e} in a string (JSON knows \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`,
            );
          }
          value += decoded;
          i += 2;
        }
        runStart = i;
        continue;
      }
      if (c < 0x20) {
        if (c === LF || c === CR) {
          throw this.#error(start, "unterminated string (a string cannot span lines; write \\n)");
        }
        const hex = c.toString(16).toUpperCase().padStart(4, "0");
        throw this.#error(
          i,
          `control character U+${hex} in a string: write it escaped (\\u${hex})`,
        );
      }
      i++;
    }
    value += text.slice(runStart, i);
    this.#pos = i + 1;
    if (!value.isWellFormed()) {
      throw this.#error(
        start,
        "string holds a lone surrogate (half of a UTF-16 pair, such as \\ud800 alone), " +
          "which no client can pass on as text",
      );
    }
    return { value, span: { start, end: this.#pos } };
  }

  #number(): JsoncNode {
    const text = this.#text;
    const start = this.#pos;
    let i = start;
    if (text.charCodeAt(i) === MINUS) i++;
    const first = text.charCodeAt(i);
    if (first === ZERO) {
      i++;
      const after = text.charCodeAt(i);
      if (after >= ZERO && after <= NINE) throw this.#error(start, "leading zero in a number");
      if (after === 0x78 || after === 0x58) throw this.#error(start, "hex numbers are not JSON");
    } else if (first > ZERO && first <= NINE) {
      while (isDigit(text.charCodeAt(i))) i++;
    } else if (text.startsWith("Infinity", i)) {
      throw this.#error(start, "-Infinity is not JSON (use null, a number or a string)");
    } else {
      throw this.#error(i, "expected a digit after '-'");
    }
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!isDigit(text.charCodeAt(i))) {
        throw this.#error(i, "expected a digit after the decimal point");
      }
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const sign = text.charCodeAt(i);
      if (sign === 0x2b || sign === MINUS) i++;
      if (!isDigit(text.charCodeAt(i))) throw this.#error(i, "expected a digit in the exponent");
      while (isDigit(text.charCodeAt(i))) i++;
    }
    this.#pos = i;
    const raw = text.slice(start, i);
    return { kind: "number", span: { start, end: i }, value: Number(raw), raw };
  }

  /**
   * Notes how the member or item at `at` (inside a container at nesting `depth`) is indented, if it
   * starts its line: its indentation divided by its depth is a vote for an indent unit.
   */
  #voteIndent(at: number, depth: number): void {
    const text = this.#text;
    let i = at;
    while (i > 0) {
      const c = text.charCodeAt(i - 1);
      if (c !== SPACE && c !== TAB) break;
      i--;
    }
    if (i > 0) {
      const c = text.charCodeAt(i - 1);
      if (c !== LF && c !== CR) return;
    }
    const ws = text.slice(i, at);
    if (ws.length === 0 || ws.length % depth !== 0) return;
    const unit = ws.slice(0, ws.length / depth);
    if (unit.repeat(depth) !== ws || (unit.includes(" ") && unit.includes("\t"))) return;
    this.#indentVotes.set(unit, (this.#indentVotes.get(unit) ?? 0) + 1);
  }
}

const LITERALS: ReadonlyArray<
  readonly [string, { kind: "boolean"; value: boolean } | { kind: "null" }]
> = [
  ["true", { kind: "boolean", value: true }],
  ["false", { kind: "boolean", value: false }],
  ["null", { kind: "null" }],
];

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

function isWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= ZERO && c <= NINE) ||
    c === 0x5f || c === 0x24;
}

function isScalar(node: JsoncNode): boolean {
  return node.kind !== "object" && node.kind !== "array";
}

/** "\r\n" when most line endings are, else "\n". */
function detectNewline(text: string): "\n" | "\r\n" {
  let crlf = 0;
  let lf = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    if (i > 0 && text.charCodeAt(i - 1) === CR) crlf++;
    else lf++;
  }
  return crlf > lf ? "\r\n" : "\n";
}

/** The UTF-8 length of `text`, counted no further than just past `cap`. */
function utf8Length(text: string, cap: number): number {
  if (text.length > cap) return text.length;
  if (text.length * 3 <= cap) return text.length;
  let bytes = 0;
  for (let i = 0; i < text.length && bytes <= cap; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function unreachable(value: never): never {
  throw new Error(`unexpected node ${JSON.stringify(value)}`);
}
