/**
 * `canonicalize` of message params of a few hundred bytes and of a large result.
 * Run: `deno bench src/audit/canonical_bench.ts`.
 *
 * @module
 */
import { canonicalize } from "./canonical.ts";
import { type JsonValue, parseLossless } from "../jsonrpc/json.ts";

const params = parseLossless(
  '{"name":"read_file","arguments":{"path":"/home/user/projects/mcp-audit/src/audit/chain.ts",' +
    '"encoding":"utf-8","max_bytes":65536,"offset":0,"follow_symlinks":false,' +
    '"filters":[{"kind":"glob","pattern":"**/*.ts"},{"kind":"size","max":1048576}]},' +
    '"_meta":{"progressToken":"f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}}',
);

// About 60 kB: a directory listing of 400 entries, as a `tools/call` result might carry.
const entries: JsonValue[] = [];
for (let i = 0; i < 400; i++) {
  entries.push({
    name: `file-${i}.ts`,
    size: 1000 + i * 37,
    modified: "2026-11-25T04:30:53.379Z",
    kind: i % 7 === 0 ? "directory" : "file",
    tags: ["src", "audit", i % 2 === 0 ? "même" : "other"],
  });
}
const large: JsonValue = { content: [{ type: "text", text: "x".repeat(4096) }], entries };

Deno.bench(`canonicalize params (${canonicalize(params).length} bytes)`, () => {
  canonicalize(params);
});

Deno.bench(`canonicalize a large result (${canonicalize(large).length} bytes)`, () => {
  canonicalize(large);
});
