/**
 * The one rule for what the proxy may forward: bytes that every official MCP SDK reads as the
 * same single message the proxy reads and records. Anything else is a violation: recorded, answered
 * `-32600` where an id can be found, and never forwarded, whatever the guardrails.
 *
 * How each SDK frames stdio (read from their sources), against the proxy's `LineSplitter`, which
 * ends a line at `\n` and drops one `\r` just before it:
 *
 * | SDK: reader | line ends at | `\r\n` | invalid UTF-8 | values per line |
 * |---|---|---|---|---|
 * | TypeScript: `shared/stdio.ts` `ReadBuffer` | `\n` | one `\r` dropped | U+FFFD | one `JSON.parse`; 10 MiB cap closes |
 * | Python server: `mcp/server/stdio.py` (`TextIOWrapper`, universal newlines) | `\n`, `\r`, `\r\n` | one end | U+FFFD (`errors="replace"`) | one, pydantic; trailing space ok; reads NaN |
 * | Python client: `mcp/client/stdio.py` | `\n` (`split("\n")`) | `\r` is JSON space | error | one |
 * | Go: `mcp/transport.go` `ioConn` | none: `json.Decoder` streams values | - | U+FFFD in strings | `{A}\r{B}` is two, a value over lines is one; a byte after a value other than `\n`/`\r` ends the connection; reads a last value without `\n` |
 * | Java: `StdioServerTransportProvider.java`, `StdioClientTransport.java` | `\n`, `\r`, `\r\n` | one end | U+FFFD | Jackson `readValue` ignores what follows: `{A}{B}` is A; no `jsonrpc` check |
 * | Kotlin: `shared/ReadBuffer.kt` | `\n` | one `\r` dropped | U+FFFD | on failure retries from the first `{`: `junk{A}` is A |
 * | C#: `Server/StreamServerTransport.cs`, `Client/StreamClientSessionTransport.cs` | `\n`, `\r`, `\r\n` | one end | U+FFFD; a BOM at stream start picks the encoding | one; client trims Unicode space; depth 64 |
 * | Rust: `rmcp/src/transport/async_rw.rs` | `\n` | one `\r` dropped | error | one, after dropping a UTF-8 BOM; depth 128; reads a last line without `\n` |
 * | Swift: `Transports/StdioTransport.swift` | `\n` | `\r` is JSON space | error | one, `JSONDecoder` (detects UTF-16/32) |
 * | Ruby: `server/transports/stdio_transport.rb`, `client/stdio.rb` | `\n` (`gets`) | `strip` | as sent | one, after `strip` (also `\v`, `\f`, NUL) |
 * | PHP: `Server/Transport/StdioTransport.php`, `Client/Transport/StdioTransport.php` | `\n` (`fgets`) | `trim` | error | one, after `trim` (also `\v`, NUL); depth 512 |
 *
 * None ends a line at U+2028, U+2029, U+0085, VT, FF or NUL. Size caps (TypeScript 10 MiB, Kotlin
 * 16 MiB, Ruby 4 MiB, Java and PHP configurable) close the session or discard up to the next `\n`:
 * none reads the rest of a long line as a new message.
 *
 * The class of differences, and the {@link ViolationCode} that stops each:
 * - a `\r` anywhere but just before the final `\n`: a line end to Python, Java and C#, white space
 *   to us and to the rest (`carriage_return`; `line_feed` for content a bridge turns into a line);
 * - anything but exactly one strict JSON text (RFC 8259, as `JSON.parse` reads it): Go, Java,
 *   Kotlin, Rust, Ruby, PHP, C# and Python each accept some of it and read a message we would not
 *   see (`not_json`, `blank`); white space is allowed before the value, where every reader skips
 *   it, but not after it, where Go ends the connection (`trailing_whitespace`);
 * - invalid UTF-8: replaced by some, refused by others (`invalid_utf8`);
 * - a last line without `\n`: read by Go, Rust, Python, Java, C#, Ruby, PHP; never by TypeScript,
 *   Kotlin, Swift (`unterminated`);
 * - JSON that is not JSON-RPC 2.0 as we classify it: Java reads a call without `"jsonrpc"`, and
 *   the record could only call it invalid (`not_jsonrpc`);
 * - nesting deeper than `proxy.max_json_depth`: our own parsing and walking must not see it
 *   (`max_json_depth`); the SDKs' own lower limits make them refuse such a message, not misread it.
 *
 * An HTTP body or SSE event holds one message without line framing: there `\r` and `\n` are JSON
 * white space to every SDK, and only the rules from "anything but exactly one JSON text" on apply.
 *
 * @module
 */
import {
  classifyValue,
  decodeText,
  type JsonRpcId,
  type Message,
  parseText,
  type WireMessage,
} from "./message.ts";
import type { JsonValue } from "./json.ts";

/** The proxy's default for `proxy.max_json_depth`. */
export const DEFAULT_MAX_JSON_DEPTH = 1000;

/** Which rule a message breaks. */
export type ViolationCode =
  | "unterminated"
  | "carriage_return"
  | "line_feed"
  | "trailing_whitespace"
  | "max_json_depth"
  | "invalid_utf8"
  | "blank"
  | "not_json"
  | "too_deep_to_parse"
  | "not_jsonrpc";

/** Why a message must not be forwarded. */
export interface Violation {
  code: ViolationCode;
  /** One line for a person. */
  reason: string;
  /** The message's id, when it was read far enough to know it; else found from its bytes. */
  id: JsonRpcId | undefined;
  /** Whether the message, read far enough, is a request (so that its sender awaits an answer). */
  request: boolean | undefined;
}

/** How the bytes were framed, and the limits they are held to. */
export interface WireRules {
  /** `line`: one stdio line without its terminator; `body`: an HTTP body or SSE event's data. */
  framing: "line" | "body";
  /** Deepest nesting of arrays and objects allowed (`proxy.max_json_depth`). */
  maxDepth: number;
  /** For a line: false when the input ended before its `\n`. */
  terminated?: boolean;
}

/** What bytes are: one message or a batch the proxy reads as every SDK does, or a violation. */
export type Reading =
  | { kind: "messages"; messages: WireMessage[]; batch: boolean; values: JsonValue[] }
  | { kind: "violation"; violation: Violation };

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** True when `text` holds only spaces and tabs (a line holds no `\r` or `\n` by then). */
function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== TAB) return false;
  }
  return true;
}

function violation(code: ViolationCode, reason: string): Violation {
  return { code, reason, id: undefined, request: undefined };
}

/**
 * The deepest nesting of `text` as JSON, counting only brackets outside strings, or -1 as soon
 * as it passes `limit`. One pass, no allocation, no recursion: it runs before anything parses or
 * walks the message. String contents, most of a typical message, are skipped with the string's
 * native `indexOf`; the text need not be valid JSON (the parse after it says whether it is).
 *
 * @example
 * ```ts
 * jsonDepth('{"a":[["]]]"]]}', 10); // 3
 * jsonDepth('{"a":[["]]]"]]}', 2); // -1
 * ```
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // To the closing quote: the next quote not escaped by an odd run of backslashes.
      let j = i;
      while (true) {
        j = text.indexOf('"', j + 1);
        if (j === -1) return deepest;
        let k = j - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if (((j - 1 - k) & 1) === 0) break;
      }
      i = j;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > deepest) {
        if (depth > limit) return -1;
        deepest = depth;
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return deepest;
}

/**
 * The rules checked on the text before it is parsed: framing (for a line) and depth. Cheap where
 * it can be: `\r` and `\n` are found by the string's native search, and a message no longer than
 * the depth limit cannot be nested deeper than it.
 */
function checkText(text: string, rules: WireRules): Violation | null {
  if (rules.framing === "line") {
    if (text.includes("\r")) {
      return violation(
        "carriage_return",
        "a \\r inside the line, which some MCP SDKs read as a line end",
      );
    }
    if (text.includes("\n")) return violation("line_feed", "a \\n inside the message");
    const last = text.charCodeAt(text.length - 1);
    if ((last === SPACE || last === TAB) && !isBlank(text)) {
      return violation(
        "trailing_whitespace",
        "white space after the message, which the Go SDK reads as trailing data",
      );
    }
  }
  if (text.length > rules.maxDepth && jsonDepth(text, rules.maxDepth) === -1) {
    return violation(
      "max_json_depth",
      `nested deeper than proxy.max_json_depth (${rules.maxDepth})`,
    );
  }
  return null;
}

/** The id and request-ness of the first message that is not JSON-RPC. */
function notJsonRpc(invalid: Extract<Message, { kind: "invalid" }>, value: JsonValue): Violation {
  const request = typeof value === "object" && value !== null && !Array.isArray(value) &&
    "method" in value;
  return {
    code: "not_jsonrpc",
    reason: `not a JSON-RPC 2.0 message: ${invalid.reason}`,
    id: invalid.id,
    request,
  };
}

/**
 * Reads bytes as the proxy forwards them: one JSON-RPC message or batch that every official MCP
 * SDK reads alike, or the {@link Violation} that says why they must not go on. Never throws. Strict
 * UTF-8 decoding comes first, then the framing and depth checks on the text, so that deep input
 * never reaches the parser.
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}');
 * readWire(bytes, { framing: "line", maxDepth: 1000 }).kind; // "messages"
 * const smuggled = new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}\r{}');
 * readWire(smuggled, { framing: "line", maxDepth: 1000 }).kind; // "violation"
 * ```
 */
export function readWire(bytes: Uint8Array, rules: WireRules): Reading {
  if (rules.framing === "line" && rules.terminated === false) {
    return {
      kind: "violation",
      violation: violation("unterminated", "the input ended before the line's \\n"),
    };
  }
  const text = decodeText(bytes);
  if (text === null) {
    return { kind: "violation", violation: violation("invalid_utf8", "invalid UTF-8") };
  }
  const broken = checkText(text, rules);
  if (broken !== null) return { kind: "violation", violation: broken };
  const parsed = parseText(text);
  if (!("value" in parsed)) {
    return { kind: "violation", violation: violation(parsed.code, parsed.reason) };
  }
  const value = parsed.value;
  if (!Array.isArray(value)) {
    const message = classifyValue(value);
    if (message.kind === "invalid") {
      return { kind: "violation", violation: notJsonRpc(message, value) };
    }
    return { kind: "messages", messages: [message], batch: false, values: [value] };
  }
  if (value.length === 0) {
    return { kind: "violation", violation: violation("not_jsonrpc", "an empty batch") };
  }
  const messages: WireMessage[] = [];
  for (const item of value) {
    const message = classifyValue(item);
    if (message.kind === "invalid") {
      // A batch is read whole or not at all: its members' ids are not searched for.
      const v = notJsonRpc(message, item);
      return {
        kind: "violation",
        violation: { ...v, reason: `a batch member is ${v.reason}`, id: undefined },
      };
    }
    messages.push(message);
  }
  return { kind: "messages", messages, batch: true, values: value };
}

/**
 * One message from an HTTP body or SSE event as one stdio line: white space at either end dropped,
 * and each `\r` or `\n` between tokens (JSON white space, which a stdio peer would read as a line
 * end) turned into a space. One inside a string, where JSON allows none, is left for
 * {@link readWire} to refuse: the bytes are never made valid by this. Returns `json` itself when
 * nothing changes.
 *
 * @example
 * ```ts
 * const body = new TextEncoder().encode('{\r\n  "jsonrpc": "2.0"\r\n}\r\n');
 * new TextDecoder().decode(toLine(body)); // '{    "jsonrpc": "2.0"  }'
 * ```
 */
export function toLine(json: Uint8Array): Uint8Array {
  const isSpace = (b: number | undefined): boolean =>
    b === SPACE || b === TAB || b === CR || b === LF;
  let start = 0;
  let end = json.length;
  while (start < end && isSpace(json[start])) start++;
  while (end > start && isSpace(json[end - 1])) end--;
  const trimmed = start === 0 && end === json.length ? json : json.subarray(start, end);
  if (trimmed.indexOf(CR) === -1 && trimmed.indexOf(LF) === -1) return trimmed;
  const out = trimmed.slice();
  let inString = false;
  for (let i = 0; i < out.length; i++) {
    const b = out[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === CR || b === LF) {
      out[i] = SPACE;
    }
  }
  return out;
}
