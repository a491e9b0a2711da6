import assert from "node:assert/strict";
import { looksLikeRequest, recoverId } from "./recover_id.ts";
import { isRawNumber } from "./json.ts";

const enc = new TextEncoder();
const none = new Uint8Array(0);
const fromHead = (head: string) => recoverId(enc.encode(head), none);
const fromTail = (tail: string) => recoverId(none, enc.encode(tail));

Deno.test("recoverId finds an id that is the first member", () => {
  assert.equal(fromHead('{"id":42,"jsonrpc":"2.0","method":"tools/call","params":{"a":"'), 42);
  assert.equal(fromHead('  {\t"id" :\n"abc" , "method"'), "abc");
  assert.equal(fromHead('{"id":-3}'), -3);
});

Deno.test('recoverId finds an id that follows "jsonrpc":"2.0"', () => {
  assert.equal(fromHead('{"jsonrpc":"2.0","id":7,"method":"x","params":{"blob":"AAAA'), 7);
  assert.equal(fromHead('{ "jsonrpc" : "2.0" , "id" : "q-1" , "result'), "q-1");
});

Deno.test("recoverId finds an id that is the last member", () => {
  assert.equal(fromTail('AAAA"}]},"id":9}'), 9);
  assert.equal(fromTail('AAAA"}, "id" : "z" }  '), "z");
  assert.equal(fromTail('{"id":5}'), 5);
});

Deno.test("recoverId does not take an id from a nested object", () => {
  assert.equal(fromHead('{"jsonrpc":"2.0","method":"x","params":{"id":5,"b":1}'), undefined);
  assert.equal(fromHead('{"params":{"id":5},"jsonrpc":"2.0"'), undefined);
  assert.equal(fromTail('"params":{"a":{"id":6}}}'), undefined);
  assert.equal(fromTail('"params":[{"id":6}]}'), undefined);
  assert.equal(fromTail('"text":"x\\",\\"id\\":6}"}'), undefined);
});

Deno.test("recoverId does not take an id after another leading member", () => {
  assert.equal(fromHead('{"method":"x","id":5,"params":{'), undefined);
  assert.equal(fromHead('{"jsonrpc":"1.0","id":5,'), undefined);
});

Deno.test("recoverId does not guess an id cut off at the end of the head", () => {
  assert.equal(fromHead('{"jsonrpc":"2.0","id":123'), undefined);
  assert.equal(fromHead('{"jsonrpc":"2.0","id":"ab'), undefined);
});

Deno.test("recoverId prefers the head and falls back to the tail", () => {
  assert.equal(recoverId(enc.encode('{"id":1,"x":"'), enc.encode('","id":2}')), 1);
  assert.equal(recoverId(enc.encode('{"method":"m","x":"'), enc.encode('"},"id":2}')), 2);
  assert.equal(recoverId(enc.encode('{"method":"m"'), enc.encode('"}}')), undefined);
});

Deno.test("recoverId decodes string ids with escapes and multi-byte characters", () => {
  assert.equal(fromHead('{"id":"a\\"b\\\\c","method"'), 'a"b\\c');
  assert.equal(fromHead('{"id":"\\u00e9\\n","method"'), "é\n");
  assert.equal(fromHead('{"id":"é😀","method"'), "é😀");
  // "€" is E2 82 AC and "—" is E2 80 94: continuation bytes in 0x80-0x9F.
  assert.equal(fromHead('{"id":"€—","method"'), "€—");
  assert.equal(fromTail(',"id":"ü\\"}"}'), 'ü"}');
});

Deno.test("recoverId keeps a big-number id as its digits", () => {
  const id = fromHead('{"jsonrpc":"2.0","id":12345678901234567890,"method":"m"');
  assert.ok(isRawNumber(id));
  assert.equal(JSON.stringify(id), "12345678901234567890");
  assert.equal(fromTail(',"id":9007199254740991}'), 9007199254740991);
});

Deno.test("recoverId keeps an id of -0 as its text, as parseLossless does", () => {
  const id = fromHead('{"jsonrpc":"2.0","id":-0,"method":"m"');
  assert.ok(isRawNumber(id));
  assert.equal(JSON.stringify({ id }), '{"id":-0}');
  assert.equal(fromTail(',"id":0}'), 0);
});

Deno.test("recoverId takes only JSON numbers: no leading zeros", () => {
  assert.equal(fromHead('{"id":007,"method":"m"'), undefined);
  assert.equal(fromTail(',"id":-01}'), undefined);
});

Deno.test("recoverId finds nothing in bytes that are not a JSON object", () => {
  assert.equal(recoverId(enc.encode("[1,2,3"), enc.encode("4,5]")), undefined);
  assert.equal(recoverId(none, none), undefined);
  assert.equal(fromHead('{"id":true,'), undefined);
  assert.equal(fromHead('{"id":1.5,'), undefined);
});

Deno.test("looksLikeRequest sees a top-level method but not one inside a result", () => {
  assert.equal(looksLikeRequest(enc.encode('{"jsonrpc":"2.0","id":1,"method":"tools/call"')), true);
  assert.equal(
    looksLikeRequest(enc.encode('{"jsonrpc":"2.0","id":1,"result":{"method":"x"')),
    false,
  );
  assert.equal(looksLikeRequest(enc.encode('{"jsonrpc":"2.0","id":1,"error":{"code":1')), false);
});
