import assert from "node:assert/strict";
import { ambiguousMember } from "./ambiguous.ts";
import { parseLossless } from "./json.ts";

const parse = (text: string) => parseLossless(text);

Deno.test("member names equal but for case are found, at any depth, with their path", () => {
  assert.deepEqual(ambiguousMember(parse('{"method":"ping","Method":"tools/call"}')), {
    path: "",
    names: ["method", "Method"],
  });
  assert.deepEqual(
    ambiguousMember(parse('{"params":{"arguments":{"path":"/tmp/a","PATH":"/etc/x"}}}')),
    { path: "params.arguments", names: ["path", "PATH"] },
  );
  assert.deepEqual(ambiguousMember(parse('{"a":[{"b":{"k":1,"\\u212a":2}}]}'))?.names, [
    "k",
    "\u212a",
  ], "the Kelvin sign folds to k");
  assert.deepEqual(ambiguousMember(parse('{"params":1,"param\\u017f":2}'))?.names, [
    "params",
    "param\u017f",
  ], "the long s folds to s");
});

Deno.test("ordinary messages, including upper-case names that differ, are not ambiguous", () => {
  assert.equal(
    ambiguousMember(
      parse(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"inputSchema":1,"URL":"u","Url2":2},"_meta":{"progressToken":3}}}',
      ),
    ),
    null,
  );
  assert.equal(ambiguousMember(parse('{"n":12345678901234567890,"a":[[[]]]}')), null);
});

Deno.test("deep nesting does not exhaust the stack", () => {
  const deep = "[".repeat(50_000) + "]".repeat(50_000);
  let value;
  try {
    value = JSON.parse(deep);
  } catch {
    return; // The parser's own limit: nothing to walk.
  }
  assert.equal(ambiguousMember(value), null);
});

Deno.test("a protocol member spelt in another case is ambiguous even alone", () => {
  assert.deepEqual(
    ambiguousMember(parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"rm"}}')),
    { path: "params", names: ["name", "Name"] },
  );
  assert.deepEqual(
    ambiguousMember(parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"rm"}}')),
    { path: "", names: ["params", "Params"] },
  );
  assert.equal(
    ambiguousMember(parse('{"jsonrpc":"2.0","id":1,"method":"x","params":{"Other":1}}')),
    null,
  );
});

Deno.test("a dotted capital I is the i Go folds it to: uri and urİ, id and İd, file and fİle", () => {
  // Go folds each character as the upper case of its simple lower case: U+0130 is "i" there,
  // where JavaScript's full lower case is "i̇" (two characters).
  assert.deepEqual(
    ambiguousMember(parse('{"params":{"uri":"file:///tmp/ok","ur\\u0130":"file:///etc/shadow"}}'))
      ?.names.map((n) => n.normalize()),
    ["uri", "ur\u0130"],
  );
  assert.notEqual(ambiguousMember(parse('{"\\u0130d":1,"jsonrpc":"2.0","method":"ping"}')), null);
  assert.notEqual(
    ambiguousMember(parse('{"params":{"arguments":{"file":"a","f\\u0130le":"b"}}}')),
    null,
  );
});
