import assert from "node:assert/strict";
import { isJsonObject, isRawNumber, parseLossless, rawNumber } from "./json.ts";

Deno.test("parseLossless keeps integers beyond 2^53 as their digits", () => {
  const v = parseLossless(
    '{"a":12345678901234567890,"b":9007199254740993,"c":[-98765432109876543210]}',
  );
  assert.ok(isJsonObject(v));
  assert.ok(isRawNumber(v.a));
  assert.ok(isRawNumber(v.b));
  assert.equal(
    JSON.stringify(v),
    '{"a":12345678901234567890,"b":9007199254740993,"c":[-98765432109876543210]}',
  );
});

Deno.test("parseLossless returns plain numbers for integers a double holds exactly", () => {
  const v = parseLossless("[9007199254740991,9007199254740992,1000000000000000000000,-0,42]");
  assert.ok(Array.isArray(v));
  for (const item of v) assert.equal(typeof item, "number");
  assert.deepEqual(v, [9007199254740991, 9007199254740992, 1e21, -0, 42]);
});

Deno.test("parseLossless leaves strings and member names made of digits alone", () => {
  const v = parseLossless('{"12345678901234567890":"12345678901234567890"}');
  assert.deepEqual(v, { "12345678901234567890": "12345678901234567890" });
});

Deno.test("parseLossless keeps non-integers as doubles", () => {
  const v = parseLossless("[12345678901234567890.5,1.2345678901234567e25,0.1]");
  assert.deepEqual(v, [12345678901234567890.5, 1.2345678901234567e25, 0.1]);
});

Deno.test("parseLossless throws SyntaxError on invalid JSON, with or without long digit runs", () => {
  assert.throws(() => parseLossless("{"), SyntaxError);
  assert.throws(() => parseLossless("[12345678901234567890,]"), SyntaxError);
  assert.throws(() => parseLossless(""), SyntaxError);
});

Deno.test("parseLossless keeps a __proto__ member as data, not as a prototype", () => {
  const v = parseLossless('{"__proto__":{"polluted":12345678901234567890}}');
  assert.ok(isJsonObject(v));
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.ok(Object.hasOwn(v, "__proto__"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("isJsonObject is false for arrays, null, scalars and raw numbers", () => {
  assert.equal(isJsonObject({}), true);
  assert.equal(isJsonObject([]), false);
  assert.equal(isJsonObject(null), false);
  assert.equal(isJsonObject("x"), false);
  assert.equal(isJsonObject(1), false);
  assert.equal(isJsonObject(undefined), false);
  assert.equal(isJsonObject(rawNumber("12345678901234567890")), false);
});
