import assert from "node:assert/strict";
import { jsonlLine } from "./jsonl.ts";
import { sha256Hex } from "../audit/chain.ts";
import { sample, sampleLog } from "./testdata/records.ts";

const GOLDEN_DENIED =
  `{"client_id":"claude-desktop","client_info":{"name":"claude-ai","version":"0.1.0"},"decision":{"action":"deny","reason":"Destructive filesystem operations are blocked","rule":0},"direction":"client_to_server","duration_ms":null,"error":null,"id":"01KB0000000000000000000007","jsonrpc_id":7,"kind":"request","method":"tools/call","params":{"arguments":{"path":"/etc/passwd"},"name":"delete_file"},"prev":"2f9a5552fe7e9855a73b84d9a1d241341ff1b5c141d95c07983d0264871e4b00","redacted":[],"result":null,"seq":7,"server_id":"filesystem","session":"s-1","sig":"hmac-sha256:74c52629:790b2e0b7262e035c784f3f80f52ecfd8dce49e9c4e534e6ec52011b42fe4f4d","tool_name":"delete_file","transport":"stdio","ts":"2026-11-25T03:49:42.219Z","upstream":null,"v":1,"wire_sha256":"abababababababababababababababababababababababababababababababab"}`;

Deno.test("a denied tools/call exports as its golden stored line", () => {
  assert.equal(jsonlLine(sample("denied")), GOLDEN_DENIED);
});

Deno.test("every exported line is the stored line byte for byte, so the chain still links", () => {
  const log = sampleLog();
  const encoder = new TextEncoder();
  let prev = "0".repeat(64);
  for (const read of log) {
    const line = jsonlLine(read);
    assert.deepEqual(encoder.encode(line), encoder.encode(read.line));
    // The next record's prev is the hash of this exact text.
    assert.equal(JSON.parse(line).prev, prev);
    prev = sha256Hex(line);
  }
});

Deno.test("a line holding numbers no double holds is not rewritten", () => {
  const read = sample("big numbers");
  const reparsed = { record: JSON.parse(read.line), line: read.line };
  const line = jsonlLine(reparsed);
  assert.equal(line, read.line);
  assert.ok(line.includes('"jsonrpc_id":18446744073709551616') && line.includes("1e400"));
});
