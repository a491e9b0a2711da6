/**
 * Numbers a double would change, end to end through the audit path: parsed as the exchange parses a
 * message, written by the real chain into a real JSONL file, read back by `verify` and by the
 * README's Python verifier.
 */
import assert from "node:assert/strict";
import { AuditLog } from "./chain.ts";
import { JsonlStore } from "./storage/jsonl.ts";
import { type AuditFields, EventMethod } from "./record.ts";
import { hmacSigner } from "./signing.ts";
import { ChainVerifier } from "./verify.ts";
import { isJsonObject, type JsonValue, parseLossless } from "../jsonrpc/json.ts";

const SECRET = "numbers-test-secret-0123456789abcdef";
const enc = new TextEncoder();

/** Member name → number text, in the canonical (sorted) order of the names. */
const NUMBERS: [string, string][] = [
  ["a_neg_zero", "-0"],
  ["b_neg_zero_fraction", "-0.0"],
  ["c_neg_zero_exponent", "-0e5"],
  ["d_neg_zero_upper", "-0E-3"],
  ["e_underflow", "1E-400"],
  ["f_neg_underflow", "-1e-400"],
  ["g_underflow_digits", "0." + "0".repeat(400) + "1"],
  ["h_below_least_double", "2.4e-324"],
  ["i_precision", "0.10000000000000000000000001"],
  ["j_precision_one", "1.00000000000000000001"],
  ["k_overflow", "1e400"],
  ["l_big_integer", "12345678901234567890"],
  ["m_rfc_example", "333333333.33333329"],
];

function request(params: JsonValue): AuditFields {
  return {
    kind: "request",
    direction: "client_to_server",
    transport: "stdio",
    session: "s1",
    jsonrpc_id: 1,
    method: "tools/call",
    tool_name: "measure",
    params,
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: null,
    client_info: null,
    wire_sha256: null,
    upstream: null,
  };
}

Deno.test("a record keeps -0, 1E-400 and 0.1000…01 as sent, and verify and the README's Python verifier accept it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-numbers-" });
  try {
    const path = `${dir}/audit.jsonl`;
    const members = NUMBERS.map(([name, text]) => `"${name}":${text}`).join(",");
    const message = parseLossless(
      `{"jsonrpc":"2.0","id":1,"method":"tools/call",` +
        `"params":{"name":"measure","arguments":{${members}},"plain":[1.50,1e20,-0.5]}}`,
    );
    assert.ok(isJsonObject(message) && message.params !== undefined);
    let t = Date.UTC(2026, 0, 1);
    let n = 0;
    const log = new AuditLog({
      store: new JsonlStore(path, { durability: "none" }),
      signer: hmacSigner(SECRET),
      now: () => t++,
      newId: () => "01JD" + String(++n).padStart(22, "0"),
      clientId: "c",
      serverId: "s",
      transport: "stdio",
    });
    log.event(EventMethod.Start, { version: "test" });
    log.append(request(message.params));
    log.event(EventMethod.Stop, { last_seq: 3 });
    log.close();

    const lines = Deno.readTextFileSync(path).replace(/\n$/, "").split("\n");
    assert.equal(lines.length, 3);
    assert.ok(
      lines[1]!.includes(
        `"params":{"arguments":{${members}},"name":"measure","plain":[1.5,100000000000000000000,-0.5]}`,
      ),
      lines[1],
    );

    const verifier = new ChainVerifier(hmacSigner(SECRET));
    let offset = 0;
    lines.forEach((text, i) => {
      verifier.line(text, "audit.jsonl", i + 1, offset, true);
      offset += enc.encode(text).length + 1;
    });
    const report = verifier.finish();
    assert.deepEqual(report.problems, []);
    assert.equal(report.records, 3);

    const script = new URL("../../scripts/verify_log.py", import.meta.url).pathname;
    const python = await new Deno.Command("python3", {
      args: [script, path],
      env: { AUDIT_SECRET: SECRET },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(python.stdout) + new TextDecoder().decode(python.stderr);
    assert.equal(python.code, 0, out);
    assert.ok(out.includes("3 records, 0 problems"), out);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
