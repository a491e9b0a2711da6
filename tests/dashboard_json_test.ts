/**
 * The dashboard page's JSON reader (`dashboard/js/json.js`): member names as the server sent them
 * where V8's `JSON.parse` misreads an escaped one (nodejs/node#63785), and otherwise what
 * `JSON.parse` gives, as the proxy's own `parseJson` does. Deno's V8 has the defect, so these
 * tests fail with a plain `JSON.parse` in the page's place.
 */
import assert from "node:assert/strict";
import { parseJson as pageParseJson } from "../dashboard/js/json.js";
import { parseJson } from "../src/jsonrpc/json.ts";
import { seededRandom } from "./helpers.ts";

/** A text V8 reads first, then one whose escaped name it then misreads, and the names it holds. */
const MISREAD: [string, string, string[]][] = [
  ['{"a":1,"\\\\":2}', '{"a":1,"\\u0001":2}', ["a", "\u0001"]],
  ['{"a":1,"\\\\":2}', '{"a":1,"\\n":2}', ["a", "\n"]],
  ['{"a":1,"x\\\\":2}', '{"a":1,"x\\n":2}', ["a", "x\n"]],
  ['{"a":1,"\\\\u":2}', '{"a":1,"\\ud83d\\ude00":2}', ["a", "😀"]],
  [
    '{"tool_name":"read_file","\\\\u00":{}}',
    '{"tool_name":"read_file","\\u006eame":"delete_file"}',
    ["tool_name", "name"],
  ],
];

Deno.test("the page reads escaped member names as sent where JSON.parse, after a similar object, misreads them", () => {
  let misreadByEngine = 0;
  for (const [first, text, names] of MISREAD) {
    JSON.parse(first);
    const got = pageParseJson(text);
    assert.ok(typeof got === "object" && got !== null, text);
    assert.deepEqual(Object.keys(got), names, `${text} after ${first}`);
    JSON.parse(first);
    if (Object.keys(JSON.parse(text)).join("\0") !== names.join("\0")) misreadByEngine++;
  }
  // An API answer: a page of records whose params hold the name.
  JSON.parse('{"records":[{"seq":1,"params":{"a":1,"\\\\":2}}]}');
  const page = pageParseJson('{"records":[{"seq":2,"params":{"a":1,"\\u0001":2}}]}');
  assert.equal(JSON.stringify(page), '{"records":[{"seq":2,"params":{"a":1,"\\u0001":2}}]}');
  console.log(`JSON.parse itself misread ${misreadByEngine} of ${MISREAD.length} texts`);
});

/** Documents of every JSON feature, with names and strings in many spellings, escaped and not. */
function documentText(r: () => number, depth: number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const ws = (): string => pick(["", "", " ", "\n  ", "\t"]);
  const SPELLINGS = ["a", "b", "é", "\\\\", "\\\\u0", "\\n", '\\"', "\\/", "\\u0001", "\\u0061"];
  const name = (): string => {
    let raw = "";
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) raw += pick(SPELLINGS);
    return pick([`"${raw}"`, '"__proto__"', '"\\u005f_proto__"', '""']);
  };
  if (depth === 0 || r() < 0.3) {
    return pick([
      "1",
      "-0",
      "-1.5e-7",
      "12345678901234567890",
      "1E400",
      "true",
      "false",
      "null",
      '"s\\\\\\u0041\\n"',
      '"plain"',
    ]);
  }
  const n = Math.floor(r() * 4);
  const items: string[] = [];
  if (r() < 0.3) {
    for (let i = 0; i < n; i++) items.push(ws() + documentText(r, depth - 1) + ws());
    return `[${items.join(",")}]`;
  }
  for (let i = 0; i < n; i++) {
    items.push(`${ws()}${name()}${ws()}:${ws()}${documentText(r, depth - 1)}`);
  }
  return `{${items.join(",")}}`;
}

Deno.test("the page's reader gives 5,000 documents what the proxy's parseJson gives", () => {
  const r = seededRandom(156);
  for (let i = 0; i < 5000; i++) {
    const text = documentText(r, 4);
    assert.deepStrictEqual(pageParseJson(text), parseJson(text), text);
  }
});

Deno.test("the page's reader throws SyntaxError on invalid JSON and survives any depth", () => {
  for (const bad of ["{", '{"a\\":1}', '{"\\q":1}', "[1,]", "", '{"a":1} x', "<html>"]) {
    assert.throws(() => pageParseJson(bad), SyntaxError, bad);
  }
  const depth = 200_000;
  const text = '{"\\u0061":'.repeat(depth) + '{"b\\\\":1}' + "}".repeat(depth);
  let v = pageParseJson(text);
  for (let i = 0; i < depth; i++) {
    assert.ok(typeof v === "object" && v !== null && "a" in v);
    v = v.a;
  }
  assert.deepEqual(v, { "b\\": 1 });
});
