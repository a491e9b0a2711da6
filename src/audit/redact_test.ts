import assert from "node:assert/strict";
import {
  childPath,
  DEFAULT_KEY_PATTERNS,
  KeyRedactor,
  keyWords,
  REDACTED,
  Redaction,
} from "./redact.ts";
import { ValueRedactor } from "./detectors.ts";
import { isJsonObject, type JsonObject, type JsonValue, parseLossless } from "../jsonrpc/json.ts";
import { canonicalize } from "./canonical.ts";

const defaults = () => new KeyRedactor(DEFAULT_KEY_PATTERNS);

Deno.test("keyWords splits at separators and camelCase boundaries, lower-cased", () => {
  assert.deepEqual(keyWords("X-Api-Key"), ["x", "api", "key"]);
  assert.deepEqual(keyWords("refreshToken"), ["refresh", "token"]);
  assert.deepEqual(keyWords("APIKey"), ["api", "key"]);
  assert.deepEqual(keyWords("client_secret.value now"), ["client", "secret", "value", "now"]);
  assert.deepEqual(keyWords("token2"), ["token", "2"]);
  assert.deepEqual(keyWords("__proto__"), ["proto"]);
});

Deno.test("KeyRedactor hides keys that contain a pattern as whole words", () => {
  const r = defaults();
  const hidden = [
    "token",
    "access_token",
    "refreshToken",
    "ACCESS_TOKEN",
    "X-Api-Key",
    "X-API-KEY",
    "apiKey",
    "api_key",
    "API_KEY",
    "authorization",
    "Authorization",
    "proxy-authorization",
    "password",
    "db.password",
    "client_secret",
    "clientSecret",
    "secret",
    "bearer",
    "bearerToken",
    "OAuthToken",
  ];
  for (const key of hidden) assert.equal(r.sensitive(key), true, key);
});

Deno.test("KeyRedactor leaves keys where a pattern is only part of a word", () => {
  const r = defaults();
  // The Go tool's substring match would hide all of these.
  const kept = [
    "max_tokens",
    "input_tokens",
    "maxTokens",
    "tokenizer",
    "secretary",
    "passwords_reset_url_count",
    "apikeys",
    "authorized",
    "name",
    "",
  ];
  for (const key of kept) assert.equal(r.sensitive(key), false, key);
});

Deno.test("KeyRedactor compares patterns without their separators", () => {
  const joined = new KeyRedactor(["apikey"]);
  const split = new KeyRedactor(["API-Key"]);
  for (const key of ["api_key", "apiKey", "X-API-KEY", "apikey"]) {
    assert.equal(joined.sensitive(key), true, key);
    assert.equal(split.sensitive(key), true, key);
  }
  assert.equal(new KeyRedactor(["", "--"]).sensitive("anything"), false);
});

Deno.test("KeyRedactor names redacted paths, with brackets for indexes and odd names", () => {
  const input = parseLossless(
    '{"name":"read_file","arguments":{"path":"/tmp/x","token":"t1","items":[{"password":"p"},' +
      '{"ok":1}],"X-Api-Key":"k","my key":{"secret":{"deep":1}},"a.b":{"apiKey":"z"}}}',
  );
  const { value, paths } = defaults().redact(input, "params");
  assert.deepEqual(paths, [
    "params.arguments.token",
    "params.arguments.items[0].password",
    'params.arguments["X-Api-Key"]',
    'params.arguments["my key"].secret',
    'params.arguments["a.b"].apiKey',
  ]);
  assert.equal(
    canonicalize(value),
    '{"arguments":{"X-Api-Key":"[REDACTED]","a.b":{"apiKey":"[REDACTED]"},' +
      '"items":[{"password":"[REDACTED]"},{"ok":1}],"my key":{"secret":"[REDACTED]"},' +
      '"path":"/tmp/x","token":"[REDACTED]"},"name":"read_file"}',
  );
});

Deno.test("KeyRedactor redacts inside top-level arrays and replaces whole sensitive subtrees", () => {
  const input = parseLossless('[{"token":{"a":[1,2]}},[{"secret":null}]]');
  const { value, paths } = defaults().redact(input, "result");
  assert.deepEqual(paths, ["result[0].token", "result[1][0].secret"]);
  assert.deepEqual(value, [{ token: REDACTED }, [{ secret: REDACTED }]]);
});

Deno.test("KeyRedactor returns the same objects for subtrees it did not change", () => {
  const input = parseLossless(
    '{"keep":{"a":[1,{"b":2}]},"list":[{"x":1},{"token":"t"}],"change":{"password":"p"}}',
  );
  assert.ok(isJsonObject(input));
  const before = JSON.stringify(input);
  const { value } = defaults().redact(input, "params");
  assert.ok(isJsonObject(value));
  assert.notEqual(value, input);
  assert.equal(value.keep, input.keep);
  const list = value.list as JsonObject[];
  const inList = input.list as JsonObject[];
  assert.notEqual(list, inList);
  assert.equal(list[0], inList[0]);
  assert.equal(JSON.stringify(input), before, "the input is not modified");

  const clean = parseLossless('{"a":{"b":[1,2,{"c":"d"}]}}');
  const out = defaults().redact(clean, "params");
  assert.equal(out.value, clean);
  assert.deepEqual(out.paths, []);
});

Deno.test("KeyRedactor handles __proto__ members as data and never touches prototypes", () => {
  const input = parseLossless('{"__proto__":{"token":"t","x":1},"password":"p","z":1}');
  const { value, paths } = defaults().redact(input, "params");
  assert.deepEqual(paths, ["params.__proto__.token", "params.password"]);
  assert.ok(isJsonObject(value));
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  const proto = Object.getOwnPropertyDescriptor(value, "__proto__");
  assert.ok(proto, "__proto__ stays an own member");
  assert.deepEqual(proto.value, { token: REDACTED, x: 1 });
  assert.equal(
    canonicalize(value),
    '{"__proto__":{"token":"[REDACTED]","x":1},"password":"[REDACTED]","z":1}',
  );
  assert.equal(({} as Record<string, unknown>).token, undefined);

  // Unchanged __proto__ member next to a changed sibling.
  const sibling = parseLossless('{"__proto__":{"polluted":true},"token":"t"}');
  const out = defaults().redact(sibling, "params").value;
  assert.ok(isJsonObject(out));
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(out, "__proto__")?.value, { polluted: true });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);

  // A pattern that matches the __proto__ key itself.
  const own = new KeyRedactor(["proto"]).redact(parseLossless('{"__proto__":{"a":1}}'), "p");
  assert.ok(isJsonObject(own.value));
  assert.equal(Object.getPrototypeOf(own.value), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(own.value, "__proto__")?.value, REDACTED);
});

Deno.test("KeyRedactor keeps big numbers as their digits", () => {
  const input = parseLossless('{"n":12345678901234567890,"list":[9007199254740993],"token":"t"}');
  const { value } = defaults().redact(input, "params");
  assert.equal(
    JSON.stringify(value),
    '{"n":12345678901234567890,"list":[9007199254740993],"token":"[REDACTED]"}',
  );
});

Deno.test("childPath brackets names that are not identifiers", () => {
  assert.equal(childPath("params", "a_b$1"), "params.a_b$1");
  assert.equal(childPath("params", "1a"), 'params["1a"]');
  assert.equal(childPath("params", ""), 'params[""]');
  assert.equal(childPath("params", 'q"x'), 'params["q\\"x"]');
  assert.equal(childPath("params", "é"), 'params["é"]');
});

Deno.test("KeyRedactor's default patterns are the Go tool's", () => {
  assert.deepEqual(DEFAULT_KEY_PATTERNS, [
    "password",
    "token",
    "secret",
    "api_key",
    "bearer",
    "authorization",
  ]);
});

Deno.test("KeyRedactor keeps the protocol's progressToken, which names no secret", () => {
  const input = parseLossless('{"_meta":{"progressToken":"p-1"},"token":"t"}');
  const { value, paths } = defaults().redact(input, "params");
  assert.deepEqual(paths, ["params.token"]);
  assert.deepEqual(value, { _meta: { progressToken: "p-1" }, token: REDACTED });
});

Deno.test("KeyRedactor keeps property names in a tool's input and output schemas", () => {
  const input = parseLossless(
    '{"tools":[{"name":"login","inputSchema":{"type":"object","properties":{' +
      '"password":{"type":"string"},"api_token":{"type":"object","properties":{' +
      '"secret":{"type":"string"}}}},"required":["password"]},' +
      '"outputSchema":{"properties":{"access_token":{"type":"string"}}}}]}',
  );
  const { value, paths } = defaults().redact(input, "result");
  assert.deepEqual(paths, []);
  assert.equal(value, input);
});

Deno.test("KeyRedactor still redacts the values a call sends for schema-described arguments", () => {
  const input = parseLossless('{"name":"login","arguments":{"password":"hunter2"}}');
  const { paths } = defaults().redact(input, "params");
  assert.deepEqual(paths, ["params.arguments.password"]);
});

// ---------------------------------------------------------------------------------------------
// One walk for both: the same as key redaction, then value redaction, each walking the value.

/**
 * The two walks as they were before one walk did both, written recursively: key redaction
 * (modes for tool schemas, `progressToken` exempt), then value redaction of every string of
 * what it left, the paths of the second not already listed appended.
 */
function sequential(
  keys: KeyRedactor,
  values: ValueRedactor,
  value: JsonValue,
  root: string,
): { value: JsonValue; paths: string[] } {
  type Mode = "data" | "schema" | "properties";
  const set = (out: JsonValue[] | JsonObject, key: string | number, next: JsonValue): void => {
    Object.defineProperty(out, key, { value: next, enumerable: true, writable: true });
  };
  const copy = (v: JsonValue[] | JsonObject) => Array.isArray(v) ? v.slice() : { ...v };
  const keyPaths: string[] = [];
  const byKey = (v: JsonValue, path: string, mode: Mode): JsonValue => {
    if (Array.isArray(v)) {
      let out: JsonValue[] | JsonObject = v;
      v.forEach((item, i) => {
        if (!Array.isArray(item) && !isJsonObject(item)) return;
        const next = byKey(item, `${path}[${i}]`, mode === "properties" ? "schema" : mode);
        if (next !== item) set(out === v ? (out = copy(v)) : out, i, next);
      });
      return out;
    }
    if (!isJsonObject(v)) return v;
    let out: JsonValue[] | JsonObject = v;
    for (const key of Object.keys(v)) {
      const item = v[key]!;
      const at = childPath(path, key);
      if (mode !== "properties" && key !== "progressToken" && keys.sensitive(key)) {
        keyPaths.push(at);
        if (item !== REDACTED) set(out === v ? (out = copy(v)) : out, key, REDACTED);
        continue;
      }
      if (!Array.isArray(item) && !isJsonObject(item)) continue;
      const inner: Mode = mode === "data"
        ? (["inputSchema", "outputSchema"].includes(key) && /^result\.tools\[\d+\]$/.test(path)
          ? "schema"
          : "data")
        : mode === "schema" && key === "properties"
        ? "properties"
        : "schema";
      const next = byKey(item, at, inner);
      if (next !== item) set(out === v ? (out = copy(v)) : out, key, next);
    }
    return out;
  };
  const valuePaths: string[] = [];
  const byValue = (v: JsonValue, path: string): JsonValue => {
    if (typeof v === "string") {
      const text = values.redactString(v).text;
      if (text !== v) valuePaths.push(path);
      return text;
    }
    if (!Array.isArray(v) && !isJsonObject(v)) return v;
    let out: JsonValue[] | JsonObject = v;
    const members: [string | number, JsonValue][] = Array.isArray(v)
      ? v.map((item, i) => [i, item])
      : Object.keys(v).map((k) => [k, v[k]!]);
    for (const [key, item] of members) {
      const next = byValue(
        item,
        typeof key === "number" ? `${path}[${key}]` : childPath(path, key),
      );
      if (next !== item) set(out === v ? (out = copy(v)) : out, key, next);
    }
    return out;
  };
  const out = byValue(byKey(value, root, "data"), root);
  return { value: out, paths: [...keyPaths, ...valuePaths.filter((p) => !keyPaths.includes(p))] };
}

/** A small seeded generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = [
  "token",
  "api_key",
  "password",
  "note",
  "text",
  "progressToken",
  "inputSchema",
  "outputSchema",
  "properties",
  "max_tokens",
  "__proto__",
  "a-b",
  "x.y",
  "0",
  "12",
  "name",
  "tools",
  "result",
  "secretKey",
  "items",
  "authorization",
  "query",
];
const STRINGS = [
  "plain words",
  "",
  "ok",
  "mail ana@example.com now",
  REDACTED,
  "[REDACTED]!",
  "TCK-123456",
  "token ghp_" + "a1".repeat(18),
  "pay 4111 1111 1111 1111",
  "Bearer abcdefgh12345678",
  "eyJhbGciOiIifQ.e.",
  "REDACTED",
  "a@b.co",
];

function shape(next: () => number, depth: number): JsonValue {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const r = next();
  if (depth <= 0 || r < 0.35) {
    const s = next();
    if (s < 0.55) return pick(STRINGS);
    if (s < 0.7) return Math.floor(next() * 1000) - 500;
    if (s < 0.8) return next() < 0.5;
    if (s < 0.9) return null;
    return parseLossless("12345678901234567890123");
  }
  if (r < 0.6) return Array.from({ length: Math.floor(next() * 4) }, () => shape(next, depth - 1));
  const out: JsonObject = {};
  for (let i = Math.floor(next() * 5); i > 0; i--) {
    Object.defineProperty(out, pick(NAMES), {
      value: shape(next, depth - 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

const valueRedactors = [
  new ValueRedactor(),
  // Matches the `[REDACTED]` that key redaction leaves, which value redaction then rewrites.
  new ValueRedactor({ custom: [{ name: "again", pattern: "REDACTED" }] }),
  new ValueRedactor({ detectors: ["email"], custom: [{ name: "ticket", pattern: "TCK-\\d{6}" }] }),
];

function assertSame(value: JsonValue, root: string, keys: KeyRedactor, values: ValueRedactor) {
  const want = sequential(keys, values, value, root);
  const got = new Redaction(keys, values).redact(value, root);
  assert.deepEqual(got.paths, want.paths, `paths of ${root}: ${JSON.stringify(value)}`);
  assert.equal(canonicalize(got.value), canonicalize(want.value), JSON.stringify(value));
}

Deno.test("one walk redacts keys and values exactly as the two walks in turn, over many shapes", () => {
  const keys = defaults();
  const next = random(12);
  for (let i = 0; i < 3000; i++) {
    const value = shape(next, 6);
    for (const root of ["params", "result", "error.data"]) {
      for (const values of valueRedactors) assertSame(value, root, keys, values);
    }
  }
});

Deno.test("one walk keeps tool schemas' property names and a sensitive key holding a secret", () => {
  const keys = defaults();
  const listing = parseLossless(JSON.stringify({
    tools: [{
      name: "login",
      description: "mail ana@example.com",
      inputSchema: {
        properties: { api_token: { type: "string", description: "Bearer abcdefgh12345678" } },
        items: [{ properties: { password: { token: "x" } } }],
      },
      outputSchema: { properties: { secret: {} }, token: "ghp_" + "a1".repeat(18) },
    }],
    token: "mail ana@example.com",
    arguments: { inputSchema: { properties: { token: "t" } } },
    _meta: { progressToken: "ana@example.com" },
  }));
  for (const values of valueRedactors) {
    assertSame(listing, "result", keys, values);
    assertSame(listing, "params", keys, values);
  }
  const got = new Redaction(keys, valueRedactors[1]!).redact({ token: "ana@example.com" }, "p");
  assert.deepEqual(got, { value: { token: "[[REDACTED:again]]" }, paths: ["p.token"] });
});

Deno.test("one walk matches the two walks at the depth bound and on a string at the top", () => {
  const keys = defaults();
  // proxy.max_json_depth's default: 1000 levels of arrays and objects, secrets at every level.
  let deep: JsonValue = { token: "t", note: "ana@example.com", n: 1 };
  for (let i = 0; i < 999; i++) {
    deep = i % 2 === 0
      ? [deep, "ana@example.com", 3, null]
      : { api_key: "k", inner: deep, text: "4111 1111 1111 1111", ok: true };
  }
  for (const values of valueRedactors) {
    assertSame(deep, "params", keys, values);
    assertSame("ana@example.com", "error.message", keys, values);
    assertSame(7, "result", keys, values);
  }
});
