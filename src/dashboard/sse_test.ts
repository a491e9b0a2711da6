import assert from "node:assert/strict";
import type { AuditRecord } from "../audit/record.ts";
import { recordText } from "../audit/record_text.ts";
import { encodeRecord, PING, RETRY, streamItem } from "./sse.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function record(fields: Partial<AuditRecord> = {}): AuditRecord {
  return {
    v: 1,
    seq: 42,
    id: "01JD0000000000000000000042",
    ts: "2026-06-10T22:00:00.042Z",
    kind: "response",
    direction: "server_to_client",
    transport: "stdio",
    upstream: null,
    session: "s1",
    jsonrpc_id: 7,
    method: "tools/call",
    tool_name: "read_file",
    params: null,
    result: { content: [{ type: "text", text: "<script>alert(1)</script>" }], isError: true },
    error: null,
    redacted: [],
    duration_ms: 12,
    decision: { action: "allow", rule: null, reason: "" },
    client_id: "claude-desktop",
    server_id: "filesystem",
    client_info: null,
    wire_sha256: null,
    prev: "0".repeat(64),
    sig: null,
    ...fields,
  };
}

Deno.test("SSE: the retry field comes first and the heartbeat is a comment", () => {
  assert.equal(text(RETRY), "retry: 2000\n\n");
  assert.equal(text(PING), ": ping\n\n");
});

Deno.test("SSE: a full event carries the stored line exactly, with the seq as its id", () => {
  const r = record();
  const line = recordText(r).signed(null);
  assert.equal(
    text(encodeRecord({ record: r, line }, true)),
    `id: 42\nevent: record\ndata: ${line}\n\n`,
  );
});

Deno.test("SSE: a summary event carries the StreamItem of the record", () => {
  const r = record({ decision: { action: "deny", rule: 2, reason: "no" } });
  const event = text(encodeRecord({ record: r, line: "unused" }, false));
  const [id, name, data = "", ...rest] = event.split("\n");
  assert.equal(id, "id: 42");
  assert.equal(name, "event: record");
  assert.deepEqual(rest, ["", ""], "one data field, then the blank line");
  assert.ok(data.startsWith("data: "));
  assert.deepEqual(JSON.parse(data.slice("data: ".length)), {
    seq: 42,
    ts: "2026-06-10T22:00:00.042Z",
    kind: "response",
    direction: "server_to_client",
    method: "tools/call",
    tool_name: "read_file",
    session: "s1",
    jsonrpc_id: 7,
    client_id: "claude-desktop",
    is_error: true,
    action: "deny",
  });
  assert.deepEqual(JSON.parse(data.slice(6)), streamItem(r));
});

Deno.test("SSE: a line holding a line break cannot end the event early or add fields", () => {
  const r = record();
  const event = text(encodeRecord({ record: r, line: "a\n\nid: 1\r\nevent: x\rb" }, true));
  assert.equal(
    event,
    "id: 42\nevent: record\ndata: a\ndata: \ndata: id: 1\ndata: event: x\ndata: b\n\n",
  );
});
