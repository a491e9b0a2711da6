import assert from "node:assert/strict";
import { canonicalize } from "./canonical.ts";
import { recordText, signedLine } from "./record_text.ts";
import { type AuditRecord, RECORD_FIELDS } from "./record.ts";
import { hmacSigner } from "./signing.ts";
import { type JsonObject, type JsonValue, parseLossless, rawNumber } from "../jsonrpc/json.ts";

const record: AuditRecord = {
  v: 1,
  seq: 42,
  id: "01M88FH467PJ3MQF0M448WK0W0",
  ts: "2026-11-25T04:30:53.379Z",
  kind: "response",
  direction: "server_to_client",
  transport: "http",
  upstream: "http://127.0.0.1:8080/mcp",
  session: "01M88FH467PJ3MQF0M448WK0W1",
  jsonrpc_id: "a\u2028b",
  method: "tools/call",
  tool_name: "échéance",
  params: null,
  result: parseLossless('{"z":1,"a":[12345678901234567890,{"y":null,"b":"\\u0001"}],"é":true}'),
  error: null,
  redacted: ["result.token"],
  duration_ms: 1.25,
  decision: { action: "allow", rule: null, reason: "" },
  client_id: "claude-desktop",
  server_id: "filesystem",
  client_info: { name: "c", version: "1" },
  wire_sha256: "ab".repeat(32),
  prev: "0".repeat(64),
  sig: "hmac-sha256:deadbeef:00",
};

Deno.test("the record writer's text equals RFC 8785 of the record, with and without sig", () => {
  const text = recordText(record);
  const { sig: _sig, ...unsigned } = record;
  assert.equal(text.unsigned, canonicalize(unsigned));
  assert.equal(text.signed(record.sig), canonicalize(record));
  assert.equal(text.signed(null), canonicalize({ ...record, sig: null }));
});

Deno.test("the record writer writes every field of the schema", () => {
  const stored = JSON.parse(recordText(record).signed(record.sig));
  assert.deepEqual(Object.keys(stored).sort(), [...RECORD_FIELDS].sort());
});

/** A small seeded generator (xorshift32), so that a failure names a case that can be replayed. */
function generator(seed: number) {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  // Escapes, controls, non-ASCII, a surrogate pair, lone surrogates, line separators.
  const pieces = [
    "a",
    "Z",
    "0",
    " ",
    '"',
    "\\",
    "/",
    "\u0000",
    "\u001f",
    "\n",
    "\t",
    "\u007f",
    "é",
    "ß",
    "日本",
    "😀",
    "\ud800",
    "\udfff",
    "\u2028",
    "\u2029",
    "\ufeff",
    "key",
    "_meta",
    "__proto__",
    "10",
  ];
  const string = (): string => {
    let out = "";
    for (let i = int(6); i > 0; i--) out += pick(pieces);
    return out;
  };
  const numbers = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 2 ** 53 + 2];
  const number = (): number =>
    int(3) === 0 ? pick(numbers) : int(2) === 0 ? int(1e6) - 5e5 : (next() - 0.5) * 10 ** int(30);
  const raw = ["12345678901234567890", "-0", "1E-400", "1e400", "0.10000000000000000000000001"];
  const value = (depth: number): JsonValue => {
    switch (int(depth > 0 ? 8 : 5)) {
      case 0:
        return null;
      case 1:
        return int(2) === 0;
      case 2:
        return number();
      case 3:
        return int(4) === 0 ? rawNumber(pick(raw)) : number();
      case 4:
        return string();
      case 5: {
        const items: JsonValue[] = [];
        for (let i = int(5); i > 0; i--) items.push(value(depth - 1));
        return items;
      }
      default: {
        const o: JsonObject = {};
        for (let i = int(6); i > 0; i--) {
          // As a parse makes it: an own member, even when named __proto__.
          Object.defineProperty(o, string(), {
            value: value(depth - 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return o;
      }
    }
  };
  const orNull = <T>(make: () => T): T | null => (int(3) === 0 ? null : make());
  const record = (): AuditRecord => ({
    v: 1,
    seq: int(2) === 0 ? int(1000) : int(2 ** 53),
    id: string(),
    ts: string(),
    kind: pick(["request", "notification", "response", "error", "invalid", "event"] as const),
    direction: pick(["client_to_server", "server_to_client", "proxy"] as const),
    transport: pick(["stdio", "http"] as const),
    upstream: orNull(string),
    session: orNull(string),
    jsonrpc_id: pick([null, string(), int(100), -int(100)]),
    method: orNull(string),
    tool_name: orNull(string),
    params: value(4),
    result: value(4),
    error: orNull(() => ({ code: int(70000) - 35000, message: string() })),
    redacted: int(2) === 0 ? [] : [string(), string()],
    duration_ms: orNull(() => next() * 1000),
    decision: orNull(() => ({
      action: pick(["allow", "deny", "rate_limited", "filter"] as const),
      rule: orNull(() => int(50)),
      reason: string(),
      ...(int(2) === 0 ? {} : { enforced: false as const }),
      ...(int(3) === 0 ? { hidden: [{ name: string(), reason: string() }] } : {}),
    })),
    client_id: string(),
    server_id: string(),
    client_info: orNull(() => ({ name: string(), version: string(), [string()]: value(2) })),
    wire_sha256: orNull(() => "ab".repeat(32)),
    prev: string(),
    sig: orNull(string),
  });
  return { record };
}

Deno.test("the record writer agrees with canonicalize over 3,000 generated records: unicode, lone surrogates, numbers kept as text, nesting", () => {
  const signer = hmacSigner("0123456789abcdef0123456789abcdef", "k");
  const { record: make } = generator(0x5eed);
  for (let i = 0; i < 3000; i++) {
    const record = make();
    const { sig, ...unsigned } = record;
    const text = recordText(unsigned);
    const where = `record ${i}: ${canonicalize(record)}`;
    assert.equal(text.unsigned, canonicalize(unsigned), where);
    assert.equal(text.signed(sig), canonicalize(record), where);
    assert.equal(text.signed(null), canonicalize({ ...unsigned, sig: null }), where);
    // The chain's form: signed from the unsigned text, stored with the signature.
    const line = signedLine(record, signer);
    assert.equal(record.sig, signer.sign(canonicalize(unsigned)), where);
    assert.equal(line, canonicalize(record), where);
    assert.equal(signedLine(record, null), canonicalize({ ...unsigned, sig: null }), where);
    assert.equal(record.sig, null);
  }
});
