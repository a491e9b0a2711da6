/**
 * No walk over a message, a record or a pins file may overflow the call stack, however deep the
 * value: each is iterative (tested far past any bound: 100,000 levels; the recursive walks they
 * replace threw the engine's RangeError at 4,100, within what the gate lets through), or recursive
 * with a small explicit bound and a typed error past it. The exchange refuses messages deeper than
 * `proxy.max_json_depth` before any of this runs; these are the defence behind that gate, and the
 * only defence `verify` has against a hostile log file.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AuditLog } from "./chain.ts";
import { canonicalize } from "./canonical.ts";
import { ValueRedactor } from "./detectors.ts";
import { type AuditFields, EventMethod } from "./record.ts";
import { KeyRedactor } from "./redact.ts";
import { hmacSigner } from "./signing.ts";
import { JsonlStore } from "./storage/jsonl.ts";
import { ChainVerifier } from "./verify.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { toolDigest } from "../guardrails/pins.ts";
import { compileGlob, compileLinearRegex, REGEX_MAX_PATTERN } from "../guardrails/pattern.ts";
import { compilePolicy } from "../guardrails/policy.ts";
import { ambiguousMember } from "../jsonrpc/ambiguous.ts";
import {
  AS_JSON_MAX_DEPTH,
  asJsonValue,
  DepthError,
  isJsonObject,
  isRawNumber,
  type JsonValue,
  parseLossless,
} from "../jsonrpc/json.ts";
import { buildSettings } from "../pipeline/settings.ts";

/** Far beyond the gate's largest `proxy.max_json_depth` (4,000) and the records around it. */
const DEEP = 100_000;

/** `depth` arrays around `leaf`, built without recursion. */
function arrays(depth: number, leaf: JsonValue): JsonValue {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** `depth` objects `{"<key>": …}` around `leaf`. */
function objects(depth: number, key: string, leaf: JsonValue): JsonValue {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = { [key]: v };
  return v;
}

/** The value `depth` levels down, through single-member containers. */
function bottom(value: JsonValue, depth: number): JsonValue {
  let v = value;
  for (let i = 0; i < depth; i++) {
    if (Array.isArray(v)) v = v[0]!;
    else if (isJsonObject(v)) v = Object.values(v)[0]!;
    else throw new Error(`not a container at level ${i}`);
  }
  return v;
}

Deno.test("parseLossless builds 100,000 nested arrays and objects holding numbers it must keep", () => {
  const deepArrays = "[".repeat(DEEP) + "-0" + "]".repeat(DEEP);
  const v = parseLossless(deepArrays);
  const leaf = bottom(v, DEEP);
  assert.ok(isRawNumber(leaf) && leaf.rawJSON === "-0");
  const deepObjects = '{"n":'.repeat(DEEP) + "12345678901234567890" + "}".repeat(DEEP);
  const o = parseLossless(deepObjects);
  const big = bottom(o, DEEP);
  assert.ok(isRawNumber(big) && big.rawJSON === "12345678901234567890");
});

Deno.test("canonicalize writes 100,000 nested arrays and objects", () => {
  assert.equal(canonicalize(arrays(DEEP, 1)), "[".repeat(DEEP) + "1" + "]".repeat(DEEP));
  assert.equal(
    canonicalize(objects(DEEP, "k", null)),
    '{"k":'.repeat(DEEP) + "null" + "}".repeat(DEEP),
  );
  // Mixed, with siblings on both sides of the deep member, members out of order.
  let mixed: JsonValue = "leaf";
  for (let i = 0; i < DEEP; i++) mixed = i % 2 === 0 ? { z: 1, m: mixed, a: [true] } : [0, mixed];
  const text = canonicalize(mixed);
  assert.ok(text.startsWith('[0,{"a":[true],"m":[0,{"a":[true],"m":[0,'), text.slice(0, 40));
  assert.equal(canonicalize(parseLossless(text)), text);
});

Deno.test("key redaction finds a token 100,000 levels down and names its path", () => {
  const value = arrays(DEEP, { data: { access_token: "s3cret", note: "kept" } });
  const { value: out, paths } = new KeyRedactor(["token"]).redact(value, "params");
  assert.deepEqual(bottom(out, DEEP), { data: { access_token: "[REDACTED]", note: "kept" } });
  assert.equal(paths.length, 1);
  assert.equal(paths[0], "params" + "[0]".repeat(DEEP) + ".data.access_token");
  // The input is untouched, and a walk that changes nothing returns the same object.
  assert.equal((bottom(value, DEEP + 1) as { access_token: string }).access_token, "s3cret");
  const clean = objects(DEEP, "k", "v");
  assert.equal(new KeyRedactor(["token"]).redact(clean, "params").value, clean);
});

Deno.test("value redaction finds a secret 100,000 levels down and names its path", () => {
  const token = "ghp_" + "a1".repeat(18);
  const value = objects(DEEP, "k", ["ok", `key ${token}`]);
  const { value: out, paths } = new ValueRedactor().redact(value, "result");
  assert.deepEqual(bottom(out, DEEP), ["ok", "key [REDACTED:github_token]"]);
  assert.deepEqual(paths, ["result" + ".k".repeat(DEEP) + "[1]"]);
  const clean = arrays(DEEP, "nothing here");
  assert.equal(new ValueRedactor().redact(clean, "result").value, clean);
});

/** The gate's largest `proxy.max_json_depth`, and the levels a record adds around a message. */
const GATE_DEEPEST = 4_000 + 100;

Deno.test("redaction lists 20,000 secrets found 4,100 levels down, each path built once", () => {
  // The recursive value walk overflowed here, inside the gate's bound; and a path built afresh
  // for each secret would cost 20,000 times the depth.
  const token = "ghp_" + "a1".repeat(18);
  const many = Array.from({ length: 20_000 }, (_, i) => `#${i} ${token}`);
  const value = objects(GATE_DEEPEST, "k", many);
  const { value: out, paths } = new ValueRedactor().redact(value, "result");
  const deep = bottom(out, GATE_DEEPEST);
  assert.ok(Array.isArray(deep) && deep[19_999] === "#19999 [REDACTED:github_token]");
  assert.equal(paths.length, 20_000);
  assert.equal(paths[19_999], "result" + ".k".repeat(GATE_DEEPEST) + "[19999]");

  const secrets: Record<string, string> = {};
  for (let i = 0; i < 20_000; i++) secrets[`token_${i}`] = "s3cret";
  const keyed = new KeyRedactor(["token"]).redact(arrays(GATE_DEEPEST, secrets), "params");
  assert.equal(keyed.paths.length, 20_000);
  assert.equal(keyed.paths[0], "params" + "[0]".repeat(GATE_DEEPEST) + ".token_0");
});

Deno.test("a tool whose inputSchema nests 100,000 levels still gets a digest", () => {
  const schema = objects(DEEP, "items", { type: "string" });
  const digest = toolDigest({ name: "deep", inputSchema: schema });
  const want = createHash("sha256").update(
    `{"description":null,"inputSchema":${canonicalize(schema)},"name":"deep","outputSchema":null}`,
  ).digest("hex");
  assert.equal(digest, want);
});

Deno.test("a condition with a * path judges an array of 500,000 arguments", () => {
  const policy = compilePolicy([{
    action: "deny",
    tool_name: "bulk",
    reason: "no evil ids",
    when: [{ path: "arguments.ids.*", op: "equals", value: 666 }],
  }]);
  const ids: number[] = new Array(500_000).fill(1);
  ids[499_999] = 666;
  const outcome = policy.evaluate({
    client_id: "c",
    server_id: "s",
    method: "tools/call",
    params: { name: "bulk", arguments: { ids } },
  });
  assert.equal(outcome.kind === "decision" && outcome.decision.action, "deny");
});

Deno.test("ambiguousMember looks 100,000 levels down (iterative already)", () => {
  const value = arrays(DEEP, { name: "a", Name: "b" });
  assert.deepEqual(ambiguousMember(value), { path: "", names: ["name", "Name"] });
});

Deno.test("a record nested 100,000 levels is written, signed and verified", () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-depth-" });
  try {
    const path = `${dir}/audit.jsonl`;
    const secret = "depth-test-secret-0123456789abcdef";
    let t = Date.UTC(2026, 0, 1);
    let n = 0;
    const log = new AuditLog({
      store: new JsonlStore(path, { durability: "none" }),
      signer: hmacSigner(secret),
      now: () => t++,
      newId: () => "01JD" + String(++n).padStart(22, "0"),
      clientId: "c",
      serverId: "s",
      transport: "stdio",
    });
    const fields: AuditFields = {
      kind: "request",
      direction: "client_to_server",
      transport: "stdio",
      session: "s1",
      jsonrpc_id: 1,
      method: "tools/call",
      tool_name: "deep",
      params: { name: "deep", arguments: arrays(DEEP, objects(10, "k", -1)) },
      result: null,
      error: null,
      redacted: [],
      duration_ms: null,
      decision: null,
      client_info: null,
      wire_sha256: null,
      upstream: null,
    };
    log.event(EventMethod.Start, { version: "test" });
    log.append(fields);
    log.event(EventMethod.Stop, { last_seq: 3 });
    log.close();
    const lines = Deno.readTextFileSync(path).replace(/\n$/, "").split("\n");
    const verifier = new ChainVerifier(hmacSigner(secret));
    let offset = 0;
    lines.forEach((text, i) => {
      verifier.line(text, "audit.jsonl", i + 1, offset, true);
      offset += new TextEncoder().encode(text).length + 1;
    });
    const report = verifier.finish();
    assert.deepEqual(report.problems, []);
    assert.equal(report.records, 3);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("asJsonValue takes 64 levels and throws DepthError past them, and for a cycle", () => {
  assert.equal(AS_JSON_MAX_DEPTH, 64);
  const ok = arrays(AS_JSON_MAX_DEPTH, 1);
  assert.deepEqual(asJsonValue(ok), ok);
  assert.throws(() => asJsonValue(arrays(AS_JSON_MAX_DEPTH + 1, 1)), DepthError);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.throws(() => asJsonValue(cycle), (e) => e instanceof DepthError && e.limit === 64);
  // Not a depth problem: no error, no value.
  assert.equal(asJsonValue({ when: new Date(0) }), undefined);
});

Deno.test("a configuration value nested past 64 levels is a ConfigError saying so", () => {
  const deep = "{ a: ".repeat(AS_JSON_MAX_DEPTH + 2) + "1" + " }".repeat(AS_JSON_MAX_DEPTH + 2);
  const config = loadConfig({
    file: {
      path: "config.yaml",
      text: `pinning:\n  enabled: false\nmiddleware:\n  rate_limit:\n    tools: ${deep}\n`,
    },
    env: {},
    flags: new Map(),
    upstreamArgv: [],
  }).config;
  assert.throws(
    () => buildSettings(config, { mono: () => 0, now: () => new Date(0) }),
    (e) =>
      e instanceof ConfigError && e.key === "middleware.rate_limit" &&
      e.message.includes("nested deeper than 64 levels"),
  );
});

Deno.test("patterns nest only as deep as their length allows, and compile without overflowing", () => {
  // Configuration, not wire data: the parser recurses, bounded by REGEX_MAX_PATTERN characters.
  const half = REGEX_MAX_PATTERN / 2 - 1;
  const nested = "(".repeat(half) + "a" + ")".repeat(half);
  assert.equal(compileLinearRegex(nested)("xa"), true);
  const starred = "(".repeat(half / 2) + "a" + ")*".repeat(half / 2);
  assert.equal(compileLinearRegex(starred)("aaa"), true);
  assert.equal(
    compileGlob("/srv/" + "*/".repeat(400) + "x")("/srv/" + "a/".repeat(400) + "x"),
    true,
  );
});
