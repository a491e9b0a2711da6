import assert from "node:assert/strict";
import { canonicalize } from "./canonical.ts";
import { recordText } from "./record_text.ts";
import { type AuditRecord, RECORD_FIELDS } from "./record.ts";
import { parseLossless } from "../jsonrpc/json.ts";

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
