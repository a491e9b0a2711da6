/**
 * The canonical text of one realistic record (a `tools/call` request with a few hundred bytes of
 * params, and its response), signed and unsigned. Run: `deno bench src/audit/record_text_bench.ts`.
 *
 * @module
 */
import { recordText } from "./record_text.ts";
import type { AuditRecord } from "./record.ts";
import { parseLossless } from "../jsonrpc/json.ts";

const request: Omit<AuditRecord, "sig"> = {
  v: 1,
  seq: 1042,
  id: "01M88FH467PJ3MQF0M448WK0W0",
  ts: "2026-11-25T04:30:53.379Z",
  kind: "request",
  direction: "client_to_server",
  transport: "stdio",
  upstream: null,
  session: null,
  jsonrpc_id: 17,
  method: "tools/call",
  tool_name: "read_file",
  params: parseLossless(
    '{"name":"read_file","arguments":{"path":"/home/user/projects/mcp-audit/src/audit/chain.ts",' +
      '"encoding":"utf-8","max_bytes":65536,"offset":0,"follow_symlinks":false,' +
      '"filters":[{"kind":"glob","pattern":"**/*.ts"},{"kind":"size","max":1048576}]},' +
      '"_meta":{"progressToken":"f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}}',
  ),
  result: null,
  error: null,
  redacted: [],
  duration_ms: null,
  decision: { action: "allow", rule: 3, reason: "read-only tools are allowed" },
  client_id: "claude-desktop",
  server_id: "filesystem",
  client_info: { name: "claude-ai", version: "0.1.0" },
  wire_sha256: "ab".repeat(32),
  prev: "cd".repeat(32),
};

const response: Omit<AuditRecord, "sig"> = {
  ...request,
  kind: "response",
  direction: "server_to_client",
  params: null,
  result: parseLossless(
    '{"content":[{"type":"text","text":"export function sha256Hex(data: string | Uint8Array)' +
      ': string {\\n  return hash(\\"sha256\\", data, \\"hex\\");\\n}\\n"}],"isError":false}',
  ),
  duration_ms: 1.25,
  decision: null,
  client_info: null,
};

/**
 * Reads a character from the middle of both strings, as the chain's hashing does: a string built
 * by concatenation is flattened then, and that copy is part of what building it costs.
 */
function use(unsigned: string, signed: string): void {
  if (unsigned.charCodeAt(unsigned.length >> 1) + signed.charCodeAt(signed.length >> 1) === 0) {
    throw new Error("unexpected text");
  }
}

const SIG = "hmac-sha256:deadbeef:" + "0f".repeat(32);

Deno.bench("recordText of a tools/call request, unsigned and signed", { group: "text" }, () => {
  const text = recordText(request);
  use(text.unsigned, text.signed(SIG));
});

Deno.bench("recordText of its response, unsigned and signed", { group: "text" }, () => {
  const text = recordText(response);
  use(text.unsigned, text.signed(SIG));
});
