/**
 * The record append: `AuditLog.append` and `flush` over a JSONL store (durability `none`) in a
 * temporary directory, one record and a batch of two, with ids from `ulidFactory` (ids and
 * timestamps alone: `ids_bench.ts`).
 * Run: `deno bench -A src/audit/chain_bench.ts`.
 *
 * @module
 */
import { AuditLog } from "./chain.ts";
import { ulidFactory } from "./ids.ts";
import type { AuditFields } from "./record.ts";
import { hmacSigner } from "./signing.ts";
import { JsonlStore } from "./storage/jsonl.ts";
import { parseLossless } from "../jsonrpc/json.ts";

const fields: AuditFields = {
  kind: "request",
  direction: "client_to_server",
  transport: "stdio",
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
  client_info: { name: "claude-ai", version: "0.1.0" },
  wire_sha256: "ab".repeat(32),
  upstream: null,
};

const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-chain-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

function openLog(name: string): AuditLog {
  const newUlid = ulidFactory();
  return new AuditLog({
    store: new JsonlStore(`${dir}/${name}.jsonl`, { durability: "none" }),
    signer: hmacSigner("0123456789abcdef0123456789abcdef"),
    now: Date.now,
    newId: (now) => newUlid(now),
    clientId: "claude-desktop",
    serverId: "filesystem",
    transport: "stdio",
  });
}

const one = openLog("one");
const two = openLog("two");
globalThis.addEventListener("unload", () => {
  one.close();
  two.close();
});

Deno.bench("append + flush, one record", { group: "append" }, () => {
  one.append(fields);
  one.flush();
});

Deno.bench("append + flush, a batch of two", { group: "append" }, () => {
  two.append(fields);
  two.append(fields);
  two.flush();
});
