/**
 * Issue 12 made the audit's per-message work cheaper: canonical text through `JSON.stringify`,
 * records written in two pieces, one redaction walk, detectors that skip strings, a ULID pool,
 * cached timestamps, `isUtf8` before a non-throwing decoder, one log commit per HTTP turn and
 * cached Host/Origin checks. None of it may weaken a guarantee. These tests attack each change
 * with inputs chosen to break it and compare it with the code it replaced (129bf95, kept in
 * `fixtures/perf_old_*.ts`) and with writers and decoders written here, independently.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { canonicalize } from "../src/audit/canonical.ts";
import { signedLine } from "../src/audit/record_text.ts";
import { hmacSigner } from "../src/audit/signing.ts";
import type { AuditRecord as StoredAuditRecord } from "../src/audit/record.ts";
import { ValueRedactor } from "../src/audit/detectors.ts";
import { DEFAULT_KEY_PATTERNS, KeyRedactor, Redaction } from "../src/audit/redact.ts";
import { isoTimestamps, ulidFactory } from "../src/audit/ids.ts";
import { decodeText } from "../src/jsonrpc/message.ts";
import { isRawNumber, type JsonValue, parseLossless, rawNumber } from "../src/jsonrpc/json.ts";
import { HostOriginCheck } from "../src/transport/http/host_origin_guard.ts";
import { canonicalize as oldCanonicalize } from "./fixtures/perf_old_canonical.ts";
import { recordText as oldRecordText } from "./fixtures/perf_old_record_text.ts";
import { ValueRedactor as OldValueRedactor } from "./fixtures/perf_old_detectors.ts";
import { KeyRedactor as OldKeyRedactor } from "./fixtures/perf_old_redact.ts";
import {
  assert,
  assertEquals,
  deadline,
  fixture,
  ProxyProcess,
  readLog,
  seededRandom,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import { HttpProxy, ScriptedUpstream } from "./http_helpers.ts";

const SEED = Number(Deno.env.get("E2E_SEED") ?? "20261212");
const pickOf = (rand: () => number) => <T>(items: readonly T[]): T =>
  items[Math.floor(rand() * items.length)]!;

// ---------------------------------------------------------------------------------------------
// An RFC 8785 writer of our own: recursion, a code-unit comparison written out, escapes by table.

/** RFC 8785 §3.2.2.2; a lone surrogate as `\udxxx`, as ES2019 `JSON.stringify` (RFC 8785 has none). */
function jcsString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const short = c === 0x22
      ? '\\"'
      : c === 0x5c
      ? "\\\\"
      : c === 0x08
      ? "\\b"
      : c === 0x0c
      ? "\\f"
      : c === 0x0a
      ? "\\n"
      : c === 0x0d
      ? "\\r"
      : c === 0x09
      ? "\\t"
      : null;
    if (short !== null) out += short;
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
      } else out += "\\u" + c.toString(16);
    } else if (c >= 0xdc00 && c <= 0xdfff) out += "\\u" + c.toString(16);
    else out += s[i]!;
  }
  return out + '"';
}

/** By UTF-16 code units, compared one by one (RFC 8785 §3.2.3). */
function codeUnitOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function jcs(v: JsonValue): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error("not JSON");
    return Object.is(v, -0) ? "0" : String(v);
  }
  if (typeof v === "string") return jcsString(v);
  if (isRawNumber(v)) return v.rawJSON;
  if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
  const keys = Object.keys(v).sort(codeUnitOrder);
  return "{" + keys.map((k) => jcsString(k) + ":" + jcs(v[k]!)).join(",") + "}";
}

// ---------------------------------------------------------------------------------------------
// Canonical text

/** Texts chosen to break a `JSON.stringify` shortcut. */
const HOSTILE_JSON: readonly string[] = [
  "-0",
  "[-0,-0.0,0e5,-0E-3]",
  '{"a":-0}',
  "[1e21,1e-7,1E-7,5e-324,2e-324,1.7976931348623157e308,1e-6,0.000001,123e-20]",
  "[1e400,-1e400,1e-400,1E+400,9007199254740993,12345678901234567890,-12345678901234567890]",
  "[0.10000000000000000000000001,100000000000000000000000,1.50,1e20,1E20,100]",
  '{"":0,"1":1,"01":2,"-1":3,"4294967295":4,"4294967294":5,"1e3":6,"__proto__":7,' +
  '"constructor":8,"toJSON":9,"a":10,"0":11,"9":12,"10":13}',
  '{"toJSON":"x","b":{"toJSON":{"c":1}},"valueOf":1,"toString":2}',
  '{"__proto__":{"a":1},"b":[{"__proto__":null}],"c":{"__proto__":[]}}',
  // U+E000 sorts after U+D83D (a surrogate) by code units, before it by code points.
  '{"\\ue000":1,"\\ud83d\\ude00":2,"\\uffff":3,"\\ud800":4,"\\udc00":5,"z":6,"é":7,"e":8}',
  '"\\ud800"',
  '["\\udc00x\\ud800","\\ud83d","\\ude00\\ud83d"]',
  '"\\u2028\\u2029\\u007f\\u0000\\u001f\\u0008\\u000b\\f\\n\\r\\t\\"\\\\\\/"',
  '"\\u0085\\u00a0\\ufeff\\ud83d\\ude00"',
  '{"b":1,"a":{"d":[1,{"y":2,"x":3}],"c":null}}',
  "[[[[]]],{},[{}],[null,true,false]]",
  '{"rawJSON":"1","isRawJSON":true}',
];

function nested(depth: number, object: boolean, leaf: string): string {
  let s = leaf;
  for (let i = 0; i < depth; i++) s = object ? `{"b":-0,"a":${s}}` : `[${s},1e400]`;
  return s;
}

/** A random JSON text whose names, numbers and strings are drawn from the hostile kinds. */
function randomJson(rand: () => number, depth = 0): string {
  const pick = pickOf(rand);
  const k = rand();
  if (depth > 6 || k < 0.35) {
    return pick([
      "0",
      "-0",
      "1e21",
      "1e-7",
      "5e-324",
      "1e400",
      "12345678901234567890",
      "1.50",
      "0.1",
      "-12.5e-3",
      "true",
      "null",
      '""',
      '"\\ud800"',
      '"\\u2028x"',
      '"\\u007f\\u0001"',
      '"é😀"',
      '"\\ue000"',
    ]);
  }
  if (k < 0.6) {
    const n = Math.floor(rand() * 4);
    return "[" + Array.from({ length: n }, () => randomJson(rand, depth + 1)).join(",") + "]";
  }
  const names = [
    "",
    "a",
    "b",
    "B",
    "1",
    "01",
    "-1",
    "1e3",
    "4294967295",
    "__proto__",
    "constructor",
    "toJSON",
    "\\ue000",
    "\\ud83d\\ude00",
    "\\ud800",
    "é",
    "aa",
    "a\\u0000",
  ];
  const used = new Set<string>();
  const members: string[] = [];
  for (let n = Math.floor(rand() * 6); n > 0; n--) {
    const name = pick(names);
    if (used.has(name)) continue;
    used.add(name);
    members.push(`"${name}":${randomJson(rand, depth + 1)}`);
  }
  return "{" + members.join(",") + "}";
}

Deno.test("canonical text: hostile numbers, names, strings and depths around 64 write as RFC 8785 and as before", () => {
  const texts = [...HOSTILE_JSON];
  for (const depth of [62, 63, 64, 65, 66, 200]) {
    for (const object of [true, false]) {
      for (const leaf of ['{"z":1,"y":-0}', "1e400", '"\\ud800"', '{"1":2,"a":[]}', "-0"]) {
        texts.push(nested(depth, object, leaf));
      }
    }
  }
  const rand = seededRandom(SEED);
  for (let i = 0; i < 3000; i++) texts.push(randomJson(rand));
  for (const text of texts) {
    const value = parseLossless(text);
    const ours = jcs(value);
    assertEquals(canonicalize(value), ours, `canonicalize(${text.slice(0, 120)})`);
    assertEquals(oldCanonicalize(value), ours, `129bf95 canonicalize(${text.slice(0, 120)})`);
  }
  // The lossless parse keeps what a double would change, and the text survives.
  assertEquals(
    canonicalize(parseLossless('{"z":-0,"y":1e400,"x":12345678901234567890}')),
    '{"x":12345678901234567890,"y":1e400,"z":-0}',
  );
  assertEquals(canonicalize(parseLossless("[1e21,1E-7,1.50]")), "[1e+21,1e-7,1.5]");
});

Deno.test("canonical text: values no wire message makes (undefined, holes, NaN, rawJSON objects, 10,000 deep) are written or refused exactly as before", () => {
  const odd: unknown[] = [
    { a: undefined, b: 1 },
    // deno-lint-ignore no-sparse-arrays
    [1, , 2],
    [undefined],
    { a: NaN },
    [Infinity],
    { b: undefined, a: { d: undefined, c: [rawNumber("-0")] } },
    Object.assign(Object.create(null), { b: 1, a: 2 }),
    { "1": undefined, a: 1 },
  ];
  let deep: JsonValue = { b: 1, a: 0 };
  for (let i = 0; i < 10_000; i++) deep = { k: deep, j: [i] };
  odd.push(deep);
  const outcome = (f: () => string): string => {
    try {
      return f();
    } catch (e) {
      return `throws ${e instanceof Error ? e.name : String(e)}`;
    }
  };
  for (const v of odd) {
    const input = v as JsonValue;
    assertEquals(outcome(() => canonicalize(input)), outcome(() => oldCanonicalize(input)));
  }
});

// ---------------------------------------------------------------------------------------------
// Record text and signatures

Deno.test("signedLine: the stored line is canonicalize(record), the text before it and its HMAC as before, for hostile values in every free field", () => {
  const secret = "s".repeat(70);
  const signer = hmacSigner(secret);
  const values = [
    '{"1":2,"a":-0}',
    '{"__proto__":{"x":1}}',
    '"\\ud800\\u2028"',
    "[1e400,12345678901234567890]",
    '{"b":{"a":"é😀"},"a":null}',
    "null",
    '{"":[]}',
    nested(63, true, "1"),
    nested(64, true, "1"),
    nested(65, false, "-0"),
  ];
  const ids = ["1", '"x"', "null", "12345678901234567890", "-0", "1e400"];
  let n = 0;
  for (const params of values) {
    for (const result of values) {
      const id = ids[n++ % ids.length]!;
      const record = {
        v: 1,
        seq: 3,
        id: "01JD0000000000000000000000",
        ts: "2026-01-01T00:00:00.000Z",
        kind: "request",
        direction: "client_to_server",
        transport: "http",
        upstream: "http://h/\u2028",
        session: null,
        jsonrpc_id: parseLossless(id),
        method: "tools/call\ud800",
        tool_name: "t",
        params: parseLossless(params),
        result: parseLossless(result),
        error: null,
        redacted: ["params.x", 'params["0"]'],
        duration_ms: 1.5,
        decision: { action: "allow", rule: null, reason: "r" },
        client_info: parseLossless('{"name":"c","1":"x","__proto__":"p"}'),
        wire_sha256: null,
        client_id: "c",
        server_id: "s",
        prev: "0".repeat(64),
        sig: null,
      } as StoredAuditRecord;
      const before = oldRecordText({ ...record });
      const line = signedLine(record, signer);
      const mac = createHmac("sha256", secret).update(before.unsigned).digest("hex");
      assertEquals(record.sig, `hmac-sha256:${signer.keyId}:${mac}`);
      assertEquals(line, before.signed(record.sig));
      assertEquals(line, jcs(record as unknown as JsonValue));
      assertEquals(signer.check(before.unsigned, record.sig!), "ok");
    }
  }
});

Deno.test("a real stdio proxy logs hostile messages as canonical lines that verify", async () => {
  await using dir = await tempDir("perf-guarantees-stdio");
  const signal = deadline(25_000);
  const messages = [
    '{"jsonrpc":"2.0","id":1,"method":"m","params":{"1":2,"a":-0,"__proto__":{"x":1e400},"b":12345678901234567890}}',
    '{"jsonrpc":"2.0","id":2,"method":"m","params":{"s":"\\ud800\\u2028\\u2029\\u007f\\u0000","\\ue000":1,"\\ud83d\\ude00":2}}',
    '{"jsonrpc":"2.0","id":3,"method":"m","params":{"n":[1e21,1e-7,5e-324,-0.0,1.50]}}',
    `{"jsonrpc":"2.0","id":4,"method":"m","params":${nested(70, true, '{"toJSON":"x","1":1}')}}`,
    '{"jsonrpc":"2.0","id":12345678901234567890,"method":"m","params":{"":{"constructor":[]}}}',
  ];
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: fixture("echo_upstream.ts") });
    const out = proxy.stdout({ lines: true });
    await proxy.write(new TextEncoder().encode(messages.map((m) => m + "\n").join("")));
    await out.waitFor((c) => c.lines.length >= messages.length, "every answer", signal);
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0);
  }
  const file = await readLog(`${dir.path}/audit.jsonl`);
  const texts = file.lines.map((l) => l.text).filter((t) => t !== "");
  assert(texts.length >= 2 * messages.length, `${texts.length} lines`);
  for (const text of texts) {
    // Numbers kept as they are written: what is checked here is order, escapes and structure.
    const value = JSON.parse(
      text,
      (_k, v, ctx?: { source?: string }) =>
        typeof v === "number" && ctx?.source !== undefined ? rawNumber(ctx.source) : v,
    );
    assertEquals(jcs(value), text, "a stored line is its own RFC 8785 form");
  }
  const params = texts.map((t) => parseLossless(t)).filter((r) =>
    typeof r === "object" && r !== null && !Array.isArray(r) && !isRawNumber(r) &&
    r.direction === "client_to_server" && r.method === "m"
  ).map((r) => jcs((r as { params: JsonValue }).params));
  for (const m of messages) {
    const sent = parseLossless(m) as { params: JsonValue };
    assert(
      params.includes(jcs(sent.params)),
      `the params of ${m.slice(0, 60)} are recorded exactly`,
    );
  }
  const verify = await verifyLog(`${dir.path}/audit.jsonl`);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
});

// ---------------------------------------------------------------------------------------------
// Value redaction: the detectors' skips and prefilters

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** Strings built from pieces of every secret the detectors know, joined in odd ways. */
function secretSoup(rand: () => number): string {
  const pick = pickOf(rand);
  const run = (n: number, cls = ALNUM): string =>
    Array.from({ length: n }, () => cls[Math.floor(rand() * cls.length)]).join("");
  const pieces: (() => string)[] = [
    () =>
      pick(["Bearer", "bearer", "BEARER", "BeArEr", "authorization: Bearer", "xbearer"]) +
      pick([" ", "\t", "  ", ""]),
    () =>
      pick([
        "secret",
        "SECRET",
        "Secret",
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "SecretAccessKey",
        "aws-secret-key",
        "awssecretkey",
        "secret_key",
        "secretaccesskey",
        "aws.secret.key",
        "aws secret key",
        '"aws_secret_access_key"',
        "xsecretaccesskey",
      ]) + pick(["=", ":", " = ", '": "', "=>", " ", '\\":\\"', "\t", ""]),
    () => run(40, ALNUM + "/+"),
    () =>
      pick([
        "AKIA",
        "ASIA",
        "AIza",
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxr-",
        "xoxs-",
        "sk-",
        "sk-ant-",
        "sk-proj-",
        "sk_live_",
        "rk_live_",
        "hooks.slack.com/",
        "https://hooks.slack.com/services/",
        "services/",
        "workflows/",
        "ghgithub_pat_",
        "xoxoxb-",
        "AKIAKIA",
        "ssk-",
        "hookshooks.slack.com/",
      ]),
    () => run(Math.floor(rand() * 45)),
    // Bodies of exactly the length a fixed-length token wants, and one either side.
    () => run(15 + Math.floor(rand() * 3), "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    () => run(34 + Math.floor(rand() * 3), ALNUM + "_-"),
    () => pick(["AKIA", "ASIA", "xAKIA"]) + run(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + " ",
    () => pick(["AIza", "_AIza"]) + run(35, ALNUM + "_-") + pick([" ", "", "."]),
    () => run(Math.floor(rand() * 40), "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    () => run(Math.floor(rand() * 40), ALNUM + "_-"),
    () =>
      "eyJhbGciOiJIUzI1NiJ9." + run(1 + Math.floor(rand() * 30), ALNUM + "-_") + "." +
      run(Math.floor(rand() * 20), ALNUM + "-_"),
    () =>
      pick([
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----END RSA PRIVATE KEY-----",
        "\\n",
      ]),
    () =>
      pick(["4111 1111 1111 1111", "4111111111111111", "5500-0000-0000-0004", "378282246310005"]),
    () => run(1 + Math.floor(rand() * 8), "abc.") + "@" + pick(["example.com", "b.co", "-x.com"]),
    () => pick([" ", "\n", ".", ",", "_", "-", "=", '"', ":", "/", "é", "😀", "\u2028", "\ud800"]),
    // Letters whose case folds onto `s`, `k` or `e` in Unicode regular expressions.
    () => pick(["ſ", "K", "ſecret", "bearer".toUpperCase(), "ey", "eyJ", "J", "x", "k", "A"]),
  ];
  const parts = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => pick(pieces)());
  return parts.join(pick(["", "", " ", "\n", "x", "_"]));
}

Deno.test("detectors: every string the 129bf95 detectors redacted is redacted the same, under each detector set", () => {
  const rand = seededRandom(SEED + 1);
  const sets: (string[] | undefined)[] = [
    undefined,
    ["bearer_token"],
    ["aws_secret_key"],
    ["jwt", "email"],
    ["github_token", "openai_key", "anthropic_key", "stripe_key"],
    ["slack_webhook", "slack_token", "aws_access_key", "google_api_key", "card_number"],
    ["private_key"],
  ];
  const seen = new Set<string>();
  for (const detectors of sets) {
    const options = detectors === undefined ? {} : { detectors };
    const now = new ValueRedactor(options);
    const before = new OldValueRedactor(options);
    for (let i = 0; i < 4000; i++) {
      const text = secretSoup(rand);
      const want = before.redactString(text);
      for (const t of want.types) seen.add(t);
      assertEquals(now.redactString(text), want, JSON.stringify(text));
      assertEquals(now.redactText(text), want.text, JSON.stringify(text));
    }
  }
  // The soup reached every detector: a comparison that never matched would prove nothing.
  for (const name of new ValueRedactor().detectors) assert(seen.has(name), `${name} was exercised`);
});

Deno.test("detectors: each secret is found at the start, the end, after non-ASCII text and as the whole string, in every case the label allows", () => {
  const aws40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const secrets: [string, string][] = [
    ["Bearer abcdefgh12345678", "bearer_token"],
    ["BEARER abcdefgh12345678", "bearer_token"],
    ["bearer\tAbCdEfGhIjKlMnOp", "bearer_token"],
    [`aws_secret_access_key=${aws40}`, "aws_secret_key"],
    [`AWS_SECRET_ACCESS_KEY: ${aws40}`, "aws_secret_key"],
    [`SecretAccessKey ${aws40}`, "aws_secret_key"],
    [`awssecretkey=${aws40}`, "aws_secret_key"],
    ["AKIAIOSFODNN7EXAMPLE", "aws_access_key"],
    ["ghp_" + "a1".repeat(18), "github_token"],
    ["github_pat_" + "A1_".repeat(10), "github_token"],
    ["xoxb-1234567890-abcdef", "slack_token"],
    ["hooks.slack.com/services/T000/B000/XXXX", "slack_webhook"],
    ["sk-ant-" + "a1".repeat(12), "anthropic_key"],
    ["sk-proj-" + "a1".repeat(12), "openai_key"],
    ["sk_live_" + "a1".repeat(10), "stripe_key"],
    ["AIza" + "a".repeat(35), "google_api_key"],
    ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "jwt"],
    ["4111 1111 1111 1111", "card_number"],
    ["a@b.co", "email"],
    ["-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", "private_key"],
  ];
  const now = new ValueRedactor();
  const before = new OldValueRedactor();
  for (const [secret, type] of secrets) {
    for (
      const text of [
        secret,
        `${secret} trailing`,
        `leading ${secret}`,
        `é😀\u2028 ${secret}`,
        `${"x ".repeat(500)}${secret}${" y".repeat(500)}`,
      ]
    ) {
      const got = now.redactString(text);
      assert(got.types.includes(type), `${type} found in ${JSON.stringify(text.slice(0, 80))}`);
      assert(!got.text.includes(secret), `${type} replaced`);
      assertEquals(got, before.redactString(text));
    }
  }
  // A secret key with no label was not caught before and is not now: the `secret` prefilter
  // leaves out nothing the labelled search could find.
  assertEquals(now.redactString(`key ${aws40}`), before.redactString(`key ${aws40}`));
});

// ---------------------------------------------------------------------------------------------
// Key and value redaction in one walk

/** A random message value: sensitive and exempt names, schemas, secrets and `[REDACTED]`. */
function randomMessage(rand: () => number, depth = 0): JsonValue {
  const pick = pickOf(rand);
  const k = rand();
  if (depth > 5 || k < 0.3) {
    return pick<JsonValue>([
      "plain",
      "[REDACTED]",
      "Bearer abcdefgh12345",
      "ghp_" + "a1".repeat(18),
      "ana@example.com",
      "4111 1111 1111 1111",
      "REDACTED",
      "[REDACTED:email]",
      1,
      null,
      true,
      rawNumber("1e400"),
    ]);
  }
  if (k < 0.55) {
    return Array.from({ length: Math.floor(rand() * 4) }, () => randomMessage(rand, depth + 1));
  }
  const names = [
    "token",
    "password",
    "apiKey",
    "X-Api-Key",
    "progressToken",
    "note",
    "b-c",
    "0",
    "__proto__",
    "inputSchema",
    "properties",
    "tools",
    "arguments",
    "max_tokens",
    "refreshToken",
    "Authorization",
    "[REDACTED]",
    "",
  ];
  const o: { [key: string]: JsonValue } = {};
  for (let n = Math.floor(rand() * 5); n > 0; n--) {
    Object.defineProperty(o, pick(names), {
      value: randomMessage(rand, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return o;
}

/** Own member names shown, `__proto__` included. */
function shape(v: JsonValue): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x !== "object" || x === null || Array.isArray(x) || isRawNumber(x)) return x;
    const entries = Object.keys(x).map((key) => [`#${key}`, (x as Record<string, unknown>)[key]]);
    return Object.fromEntries(entries);
  });
}

Deno.test("redaction in one walk: the same value and the same paths, in order, as key then value redaction of 129bf95 applied in turn", () => {
  const rand = seededRandom(SEED + 2);
  const schema = parseLossless(
    '{"tools":[{"name":"t","inputSchema":{"type":"object","properties":{"api_token":' +
      '{"type":"string","description":"Bearer abcdefgh12345"},"password":"x"}}}]}',
  );
  for (const custom of [[], [{ name: "redword", pattern: "REDACTED" }]]) {
    const walk = new Redaction(
      new KeyRedactor(DEFAULT_KEY_PATTERNS),
      new ValueRedactor({ custom }),
    );
    const keys = new OldKeyRedactor(DEFAULT_KEY_PATTERNS);
    const values = new OldValueRedactor({ custom });
    for (let i = 0; i < 3000; i++) {
      const root = pickOf(rand)(["params", "result", "error.data"]);
      const value = root === "result" && rand() < 0.3 ? schema : randomMessage(rand);
      const input = shape(value);
      const got = walk.redact(value, root);
      const first = keys.redact(value, root);
      const second = values.redact(first.value, root);
      const paths = [...first.paths];
      for (const p of second.paths) if (!paths.includes(p)) paths.push(p);
      assertEquals(shape(value), input, "the message itself is untouched");
      assertEquals(shape(got.value), shape(second.value), input);
      assertEquals(got.paths, paths, input);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Ids and timestamps

Deno.test("ULIDs stay unique and in order within a millisecond, across milliseconds, when the clock goes back and at the largest time", () => {
  const newId = ulidFactory();
  const ids: string[] = [];
  for (const t of [5, 5, 5, 6, 6, 4, 3, 0, 7, 7, 7]) ids.push(newId(t));
  for (let i = 0; i < 70_000; i++) ids.push(newId(2 ** 48 - 1 - (i % 3)));
  for (let i = 1; i < ids.length; i++) {
    assert(ids[i - 1]! < ids[i]!, `id ${i} sorts after the one before: ${ids[i - 1]} ${ids[i]}`);
    assertEquals(ids[i]!.length, 26);
  }
  assert(ids[8]!.startsWith("0000000007"), "a later millisecond takes its own time part");
  assert(ids[5]!.startsWith("0000000006"), "a clock gone back keeps the last time part");
  for (const bad of [-1, 2 ** 48, 1.5, NaN]) {
    let threw = false;
    try {
      newId(bad);
    } catch {
      threw = true;
    }
    assert(threw, `time ${bad} is refused`);
  }
});

Deno.test("timestamps equal toISOString for every time Date holds, either side of the epoch, years 0-9999 and beyond, and refuse as it does", () => {
  const iso = isoTimestamps();
  const times = [
    0,
    -0,
    -1,
    1,
    999,
    1000,
    -999,
    -1000,
    -1001,
    Date.UTC(1000, 0, 1) - 1,
    Date.UTC(0, 0, 1) - 1,
    Date.UTC(-1, 11, 31, 23, 59, 59, 999),
    253402300799999,
    253402300800000,
    8.64e15,
    -8.64e15,
    8.64e15 + 1,
    -8.64e15 - 1,
    1.5,
    -1.5,
    NaN,
    Infinity,
  ];
  const rand = seededRandom(SEED + 3);
  for (let i = 0; i < 20_000; i++) times.push(Math.floor((rand() * 2 - 1) * 8.64e15));
  for (let i = 0; i < 3000; i++) times.push(1_700_000_000_000 + i * 7, 1_700_000_000_000 - i * 13);
  const outcome = (f: () => string): string => {
    try {
      return f();
    } catch (e) {
      return `throws ${e instanceof Error ? e.name : String(e)}`;
    }
  };
  for (const t of times) {
    assertEquals(outcome(() => iso(t)), outcome(() => new Date(t).toISOString()), `time ${t}`);
  }
});

// ---------------------------------------------------------------------------------------------
// UTF-8

Deno.test("decodeText refuses what a fatal decoder refuses: overlongs, surrogates, past U+10FFFF, cut sequences, and views into larger buffers", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const strict = (b: Uint8Array): string | null => {
    try {
      return fatal.decode(b);
    } catch {
      return null;
    }
  };
  const sequences = [
    [0xc0, 0x80],
    [0xc1, 0xbf],
    [0xe0, 0x80, 0x80],
    [0xe0, 0x9f, 0xbf],
    [0xf0, 0x80, 0x80, 0x80],
    [0xf0, 0x8f, 0xbf, 0xbf],
    [0xed, 0xa0, 0x80],
    [0xed, 0xbf, 0xbf],
    [0xed, 0x9f, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf4, 0x8f, 0xbf, 0xbf],
    [0xf5, 0x80, 0x80, 0x80],
    [0xff],
    [0xfe],
    [0xef, 0xbb, 0xbf, 0x41],
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0x80],
    [0x41, 0xc3],
    [0x00],
    [0xc3, 0xa9],
    [0xf0, 0x9f, 0x98, 0x80],
  ];
  let refused = 0;
  for (const s of sequences) {
    const whole = new Uint8Array([0x41, ...s, 0x42]);
    for (let a = 0; a <= whole.length; a++) {
      for (let z = a; z <= whole.length; z++) {
        const view = whole.subarray(a, z);
        const want = strict(view);
        if (want === null) refused++;
        assertEquals(decodeText(view), want, `bytes ${[...view]} (view ${a}..${z})`);
      }
    }
    // Valid bytes framed by invalid ones: only the view counts.
    const framed = new Uint8Array([0xff, 0xc3, ...s, 0xe2, 0xff]).subarray(2, 2 + s.length);
    assertEquals(decodeText(framed), strict(framed), `framed ${s}`);
  }
  assert(refused > 50, "the sequences include refusals");
  // A byte-order mark is kept as a character, as before.
  assertEquals(decodeText(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), "\ufeff{}");
});

// ---------------------------------------------------------------------------------------------
// HTTP: the checks' memory and the records-first gate

Deno.test("Host and Origin checks: a value accepted once never lets a refused one through, whatever was remembered", async () => {
  const { HTTPException } = await import("hono/http-exception");
  const check = new HostOriginCheck(new Set(["localhost"]), new Set(["https://app.example"]));
  const status = (host: string | null, target: string, origin?: string): number => {
    const headers = new Headers();
    if (host !== null) headers.set("host", host);
    if (origin !== undefined) headers.set("origin", origin);
    try {
      check.check(headers, target);
      return 200;
    } catch (e) {
      if (e instanceof HTTPException) return e.status;
      throw e;
    }
  };
  for (let round = 0; round < 3; round++) {
    // Accepted values, remembered.
    assertEquals(status("localhost:8080", "/mcp", "https://app.example"), 200);
    assertEquals(status("localhost:8080", "/mcp", "http://localhost:3000"), 200);
    assertEquals(status("localhost:8080", "http://localhost:8080/mcp"), 200);
    // Refusals around them stay refusals.
    assertEquals(status("localhost:8080", "http://evil.example/mcp"), 400);
    assertEquals(status("localhost:8080", "http://localhost:9999/mcp"), 400);
    assertEquals(status("localhost:8081", "http://localhost:8080/mcp"), 400);
    assertEquals(status("evil.example", "/mcp"), 403);
    assertEquals(status("localhost:8080, evil.example", "/mcp"), 400);
    assertEquals(status(null, "/mcp"), 400);
    assertEquals(status("localhost:8080", "/mcp", "null"), 403);
    assertEquals(status("localhost:8080", "/mcp", "https://app.example.evil"), 403);
    assertEquals(status("localhost:8080", "/mcp", "https://app.example/"), 400);
    assertEquals(status("localhost:8080", "*"), 400);
    // Enough distinct accepted values to make the memory forget everything at once.
    for (let i = 0; i < 300; i++) assertEquals(status("localhost", `/mcp?i=${i}`), 200);
  }
});

Deno.test("HTTP SSE: every event reaches the client only once its record is in the log, and each request reached the upstream only once its own was", async () => {
  await using dir = await tempDir("perf-guarantees-sse");
  const signal = deadline(25_000);
  const logPath = `${dir.path}/audit.jsonl`;
  const ids = (direction: string, records: { direction: string; jsonrpc_id: unknown }[]) =>
    records.filter((r) => r.direction === direction).map((r) => String(r.jsonrpc_id));
  const logged = async (direction: string): Promise<string[]> =>
    ids(direction, (await readLog(logPath)).records);
  const seenUpstream: { id: string; logged: string[] }[] = [];
  let release: (() => void) | undefined;
  const more = new Promise<void>((resolve) => release = resolve);
  await using upstream = new ScriptedUpstream(async ({ request }) => {
    const call = JSON.parse(new TextDecoder().decode(request.body));
    seenUpstream.push({ id: String(call.id), logged: await logged("client_to_server") });
    const event = (id: number) =>
      `event: message\nid: e${id}\ndata: ${
        JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { n: id } })
      }\n\n`;
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode(event(1)));
        await more;
        controller.enqueue(encoder.encode(
          event(2) +
            `event: message\ndata: ${
              JSON.stringify({ jsonrpc: "2.0", id: call.id, result: { ok: true } })
            }\n\n`,
        ));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  await using proxy = await HttpProxy.start(
    { cwd: dir.path, upstream: upstream.url, logPath },
    signal,
  );
  const calls = [11, 12, 13].map((id) =>
    fetch(proxy.endpoint, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list", params: {} }),
      signal,
    })
  );
  const responses = await Promise.all(calls);
  const decoder = new TextDecoder();
  const progress = async (): Promise<number[]> =>
    (await readLog(logPath)).records.filter((r) =>
      r.direction === "server_to_client" && r.method === "notifications/progress"
    ).map((r) => Number((r.params as { n: number }).n));
  for (const res of responses) {
    assertEquals(res.status, 200);
    const reader = res.body!.getReader();
    let text = "";
    let released = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      // What the client holds now, the log must hold already.
      const got = [...text.matchAll(/"n":(\d)/g)].map((m) => Number(m[1]));
      const stored = await progress();
      for (const n of got) assert(stored.includes(n), `event ${n} was recorded before it arrived`);
      const answered = [...text.matchAll(/"id":(\d+),"result"/g)].map((m) => m[1]!);
      const answers = await logged("server_to_client");
      for (const id of answered) assert(answers.includes(id), `answer ${id} recorded first`);
      if (!released && got.includes(1)) {
        released = true;
        release!();
      }
    }
    assert(/"n":2/.test(text) && /"result"/.test(text), "the whole stream arrived");
  }
  assertEquals(seenUpstream.length, 3);
  for (const s of seenUpstream) assert(s.logged.includes(s.id), `request ${s.id} recorded first`);
  assertEquals((await proxy.stop(signal)).code, 0);
  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
});
