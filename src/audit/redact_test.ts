import assert from "node:assert/strict";
import { childPath, DEFAULT_KEY_PATTERNS, KeyRedactor, keyWords, REDACTED } from "./redact.ts";
import { isJsonObject, type JsonObject, parseLossless } from "../jsonrpc/json.ts";
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
