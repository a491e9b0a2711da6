import assert from "node:assert/strict";
import {
  DEFAULT_MAX_JSON_DEPTH,
  jsonDepth,
  readWire,
  toLine,
  type ViolationCode,
} from "./framing.ts";
import { parseLossless } from "./json.ts";
import { calledTool } from "./message.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const cat = (...parts: (string | number[])[]): Uint8Array =>
  new Uint8Array(parts.flatMap((p) => typeof p === "string" ? [...enc.encode(p)] : p));
const line = { framing: "line", maxDepth: DEFAULT_MAX_JSON_DEPTH } as const;
const body = { framing: "body", maxDepth: DEFAULT_MAX_JSON_DEPTH } as const;

const PING = '{"jsonrpc":"2.0","id":2,"method":"ping"}';
const CALL =
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}';

/**
 * Every member of the class found in the SDKs' readers (see the table in framing.ts), as a line:
 * what it is, its bytes, and the rule that stops it. Each is read by some official SDK as a message
 * other than what the proxy would record.
 */
const LINE_VARIANTS: [string, Uint8Array, ViolationCode][] = [
  [
    "the issue's line: a call inside a ping's params, between bare CRs",
    cat(`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":\r${CALL}\r}}`),
    "carriage_return",
  ],
  ["a bare CR between two messages", cat(`${PING}\r${CALL}`), "carriage_return"],
  ["a CR at the start of the line", cat(`\r${CALL}`), "carriage_return"],
  ["a CR before the line's CRLF", cat(`${CALL}\r`), "carriage_return"],
  ["a CR inside a string", cat(`{"jsonrpc":"2.0","id":1,"method":"a\rb"}`), "carriage_return"],
  ["a LF inside the content (a bridge's line)", cat(`${PING}\n${CALL}`), "line_feed"],
  ["two values on one line (Go reads both, Java the first)", cat(`${PING}${CALL}`), "not_json"],
  ["two values apart by a space", cat(`${PING} ${CALL}`), "not_json"],
  [
    "a value split over lines (Go reads it whole): its first line",
    cat(`{"jsonrpc":"2.0",`),
    "not_json",
  ],
  ["a value split over lines: a later line", cat(`"id":3,"method":"tools/call"}`), "not_json"],
  ["junk before a value (Kotlin retries from the first brace)", cat(`log: ${CALL}`), "not_json"],
  ["a UTF-8 BOM (Rust drops it)", cat([0xef, 0xbb, 0xbf], CALL), "not_json"],
  ["a trailing VT (Ruby and PHP strip it)", cat(`${CALL}\v`), "not_json"],
  ["a trailing NUL (PHP trims it)", cat(CALL, [0]), "not_json"],
  ["a trailing form feed", cat(`${CALL}\f`), "not_json"],
  ["a leading no-break space (the C# client trims it)", cat(`\u00a0${CALL}`), "not_json"],
  ["a U+2028 outside strings", cat(`${CALL}\u2028`), "not_json"],
  ["a NEL outside strings", cat(`${CALL}\u0085`), "not_json"],
  [
    "NaN (Python reads it)",
    cat(
      `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_file","arguments":{"n":NaN}}}`,
    ),
    "not_json",
  ],
  ["trailing garbage (Jackson ignores it)", cat(`${CALL}}`), "not_json"],
  ["a trailing comma", cat(`{"jsonrpc":"2.0","id":1,"method":"ping",}`), "not_json"],
  ["a comment", cat(`/*x*/${CALL}`), "not_json"],
  ["a space after the value (Go: invalid trailing data)", cat(`${CALL} `), "trailing_whitespace"],
  ["a tab after the value", cat(`${CALL}\t`), "trailing_whitespace"],
  [
    "an invalid UTF-8 byte in a string (U+FFFD to Node, Go, Java)",
    cat(CALL.slice(0, 40), [0xff], CALL.slice(40)),
    "invalid_utf8",
  ],
  [
    "an overlong encoding",
    cat('{"jsonrpc":"2.0","id":1,"method":"', [0xc0, 0xaf], '"}'),
    "invalid_utf8",
  ],
  [
    "a UTF-8-encoded surrogate",
    cat('{"jsonrpc":"2.0","id":1,"method":"', [0xed, 0xa0, 0x80], '"}'),
    "invalid_utf8",
  ],
  [
    "a cut multi-byte character",
    cat('{"jsonrpc":"2.0","id":1,"method":"', [0xe2, 0x82], '"}'),
    "invalid_utf8",
  ],
  ["a UTF-16LE BOM (a C# reader switches encoding)", cat([0xff, 0xfe], CALL), "invalid_utf8"],
  [
    "UTF-16LE text (Swift detects it)",
    new Uint8Array([...CALL].flatMap((c) => [c.charCodeAt(0), 0])),
    "not_json",
  ],
  ["an empty line", cat(""), "blank"],
  ["a line of spaces", cat("  \t "), "blank"],
  [
    "no jsonrpc member (Java reads the call)",
    cat(`{"id":3,"method":"tools/call","params":{"name":"rm"}}`),
    "not_jsonrpc",
  ],
  ['jsonrpc "1.0"', cat(`{"jsonrpc":"1.0","id":3,"method":"tools/call"}`), "not_jsonrpc"],
  [
    "a batch with a member that is not JSON-RPC",
    cat(`[${PING},{"id":3,"method":"tools/call"}]`),
    "not_jsonrpc",
  ],
  ["an empty batch", cat("[]"), "not_jsonrpc"],
  ["a bare JSON string holding a message", cat(JSON.stringify(CALL)), "not_jsonrpc"],
  [
    "nesting one past the limit",
    cat(
      `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${"[".repeat(999)}${"]".repeat(999)}}}`,
    ),
    "max_json_depth",
  ],
];

for (const [what, bytes, code] of LINE_VARIANTS) {
  Deno.test(`as a stdio line, ${what} is a violation (${code})`, () => {
    const r = readWire(bytes, line);
    assert.equal(r.kind, "violation", what);
    assert.equal(r.kind === "violation" && r.violation.code, code, what);
  });
}

Deno.test("lines every SDK reads as the proxy does pass: plain, leading space, CRLF-stripped, raw U+2028 in a string", () => {
  for (
    const text of [
      PING,
      CALL,
      `  ${PING}`,
      `\t${PING}`,
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"s":"a\u2028b\u0085c\u00a0d"}}',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"s":"\\r\\n escaped is fine"}}',
      `[${PING},${CALL}]`,
      '{"jsonrpc":"2.0","id":12345678901234567890,"result":{}}',
    ]
  ) {
    const r = readWire(enc.encode(text), line);
    assert.equal(r.kind, "messages", text);
  }
});

Deno.test("as an HTTP body, line breaks between tokens are white space, and the other rules hold", () => {
  const pretty = enc.encode('{\r\n  "jsonrpc": "2.0",\r  "id": 1,\n  "method": "ping"\r\n}\r\n');
  assert.equal(readWire(pretty, body).kind, "messages");
  for (const [what, bytes, code] of LINE_VARIANTS) {
    if (code === "carriage_return" || code === "line_feed" || code === "trailing_whitespace") {
      continue;
    }
    const r = readWire(bytes, body);
    assert.equal(r.kind === "violation" && r.violation.code, code, what);
  }
  // Two messages apart by a line break are still two values: not one body.
  assert.equal(readWire(enc.encode(`${PING}\r\n${CALL}`), body).kind, "violation");
});

Deno.test("a violation keeps the id and request-ness it was read with, and none when unread", () => {
  const read = (text: string) => {
    const r = readWire(enc.encode(text), line);
    assert.equal(r.kind, "violation", text);
    return r.kind === "violation" ? [r.violation.id, r.violation.request] : [];
  };
  assert.deepEqual(read('{"jsonrpc":"1.0","id":7,"method":"x"}'), [7, true]);
  assert.deepEqual(read('{"jsonrpc":"1.0","id":"r","result":{}}'), ["r", false]);
  assert.deepEqual(read(`${PING}\r`), [undefined, undefined]);
});

Deno.test("an unterminated last line is a violation; terminated is the default", () => {
  const ping = enc.encode(PING);
  assert.equal(readWire(ping, { ...line, terminated: false }).kind, "violation");
  assert.equal(readWire(ping, line).kind, "messages");
  assert.equal(readWire(ping, { ...body, terminated: false }).kind, "messages", "bodies have none");
});

Deno.test("jsonDepth counts brackets outside strings only, escapes and backslash runs included", () => {
  const depth = (text: string, limit = 100) => jsonDepth(text, limit);
  assert.equal(depth("{}"), 1);
  assert.equal(depth("[[[]]]"), 3);
  assert.equal(depth('{"a":"[[[[[[["}'), 1);
  assert.equal(depth('{"a":"\\"[[[[["}'), 1, "an escaped quote does not end the string");
  assert.equal(depth('{"a":"\\\\"}'), 1, "an escaped backslash before the quote does");
  assert.equal(depth('{"a":"\\\\\\"[[["}'), 1, "three backslashes escape the quote");
  assert.equal(depth('{"a":"\\\\","b":[[1]]}'), 3);
  assert.equal(depth('["]"],[[["x"]]]'), 3);
  assert.equal(depth("[".repeat(101)), -1, "past the limit, unbalanced or not");
  assert.equal(depth("[".repeat(100) + "]".repeat(100)), 100, "exactly the limit");
  assert.equal(depth('"unterminated [[[['), 0);
  assert.equal(depth("{}".repeat(1000)), 1, "siblings do not add up");
});

Deno.test("depth is measured before the parse, whatever else is wrong with the JSON", () => {
  const deep = cat("[".repeat(1001), "not json", "]".repeat(1001));
  const r = readWire(deep, body);
  assert.equal(r.kind === "violation" && r.violation.code, "max_json_depth");
});

Deno.test("5,000 and 100,000 nested arrays are refused by the gate, from its default and a configured limit", () => {
  for (const n of [5_000, 100_000]) {
    const bytes = enc.encode("[".repeat(n) + "]".repeat(n));
    for (const maxDepth of [16, 1000, 4000]) {
      const r = readWire(bytes, { framing: "line", maxDepth });
      assert.equal(
        r.kind === "violation" && r.violation.code,
        "max_json_depth",
        `${n}/${maxDepth}`,
      );
    }
  }
  const exact = enc.encode(
    '{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":' + "[".repeat(14) + "]".repeat(14) + "}}",
  );
  assert.equal(readWire(exact, { framing: "line", maxDepth: 16 }).kind, "messages");
  assert.equal(readWire(exact, { framing: "line", maxDepth: 15 }).kind, "violation");
});

Deno.test("V8's JSON.parse reads deep input iteratively, but with a reviver overflows the stack: the gate must come first", () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  assert.doesNotThrow(() => JSON.parse(deep), "plain JSON.parse has no recursion limit");
  const reviver = (_key: string, value: unknown): unknown => value;
  assert.throws(() => JSON.parse(deep, reviver), RangeError, "a reviver recurses per level");
  assert.doesNotThrow(() => parseLossless(deep), "parseLossless uses no reviver");
  // What reads it after the parse (redaction, the record's canonical form) walks it: the gate
  // answers before any of that, at any depth.
  const r = readWire(enc.encode(deep), body);
  assert.equal(r.kind === "violation" && r.violation.code, "max_json_depth");
});

Deno.test("toLine trims, turns line breaks between tokens into spaces, and leaves those in strings to be refused", () => {
  const same = enc.encode(PING);
  assert.equal(toLine(same), same, "unchanged bytes are returned as they are");
  const cases: [string, string][] = [
    ['{\r\n  "a": 1\r\n}\r\n', '{    "a": 1  }'],
    ["\n\t [1,\n2] \r\n", "[1, 2]"],
    ['{"s":"\\"\r"}', '{"s":"\\"\r"}'],
    ['{"s":"\\\\"\r}', '{"s":"\\\\" }'],
  ];
  for (const [input, want] of cases) {
    assert.equal(dec.decode(toLine(enc.encode(input))), want, JSON.stringify(input));
  }
  const raw = toLine(enc.encode('{"jsonrpc":"2.0","id":1,"method":"a\nb"}'));
  const r = readWire(raw, line);
  assert.equal(r.kind === "violation" && r.violation.code, "line_feed", "never made valid");
});

Deno.test("readWire reads a tools/call's escaped name as the server does, after a call whose name V8 would misread it as", () => {
  // After the first call, V8's JSON.parse reads the second's `\u006eame` as `\u00`, and a
  // guardrail would see tool_name's read_file where the server runs delete_file.
  const first = readWire(
    enc.encode(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"tool_name":"read_file","\\\\u00":{}}}',
    ),
    line,
  );
  assert.equal(first.kind, "messages");
  const r = readWire(
    enc.encode(
      '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"tool_name":"read_file","\\u006eame":"delete_file"}}',
    ),
    line,
  );
  assert.ok(r.kind === "messages", "read");
  const call = r.messages[0]!;
  assert.ok(call.kind === "request", "a request");
  assert.deepEqual(call.params, { tool_name: "read_file", name: "delete_file" });
  assert.equal(calledTool(call.params), "delete_file");
});
