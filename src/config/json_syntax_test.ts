import assert from "node:assert/strict";
import { jsonSyntaxFault, lineColumn } from "./json_syntax.ts";

Deno.test("jsonSyntaxFault finds nothing in valid JSON, whatever JSON.parse accepts", () => {
  for (
    const text of [
      "{}",
      " [ ] ",
      '{"a": [1, -2.5e+3, 0, true, false, null, "x\\u00e9\\n\\"\\\\\\/"], "b": {"c": {}}}',
      "\t\r\n 0 \n",
      '"\ud800"',
      '[[[["deep"]]]]',
    ]
  ) {
    JSON.parse(text);
    assert.equal(jsonSyntaxFault(text), undefined, text);
  }
});

Deno.test("jsonSyntaxFault tells each fault at its offset, in words that quote none of the text", () => {
  const cases: [string, number, RegExp][] = [
    ["", 0, /holds no JSON value/],
    ['{"a": 1,}', 8, /a comma before "}"/],
    ["[1,]", 3, /a comma before "]"/],
    ['{"a": 1 // c\n}', 8, /expected "," or "}", found a comment/],
    ["{'a': 1}", 1, /expected a key in double quotes, found a single-quoted string/],
    ['{"a": secret}', 6, /expected a value, found an unquoted word/],
    ['{"a" 1}', 5, /expected ":" after a key/],
    ['{"a": 01}', 6, /a malformed number/],
    ['{"a": -}', 6, /a malformed number/],
    ['{"a": 1.}', 6, /a malformed number/],
    ['{"a": "x\ty"}', 8, /a control character inside a string/],
    ['{"a": "\\q"}', 7, /an invalid escape/],
    ['{"a": "\\u12g4"}', 7, /\\u escape/],
    ['{"a": "open}', 6, /a string that is not closed/],
    ['{"a": 1} x', 9, /expected the end of the text/],
    ['{"a": 1', 7, /expected "," or "}", found the end of the text/],
    ['{"a": truex}', 6, /an unquoted word/],
    ['{"a": \u00a0 1}', 6, /an unexpected character \(U\+A0\)/],
  ];
  for (const [text, offset, reason] of cases) {
    assert.throws(() => JSON.parse(text), SyntaxError, text);
    const fault = jsonSyntaxFault(text);
    assert.ok(fault !== undefined, text);
    assert.equal(fault.offset, offset, `${text}: ${fault.reason}`);
    assert.match(fault.reason, reason, text);
    assert.ok(!/secret|open|truex/.test(fault.reason), fault.reason);
  }
});

Deno.test("jsonSyntaxFault walks any depth without recursion", () => {
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  assert.equal(jsonSyntaxFault(deep), undefined);
  const broken = "[".repeat(200_000) + "]".repeat(199_999) + ",";
  assert.deepEqual(jsonSyntaxFault(broken), {
    offset: 400_000,
    reason: "expected a value, found the end of the text",
  });
});

Deno.test("lineColumn counts lines by \\n and columns from 1", () => {
  assert.deepEqual(lineColumn("ab\ncd", 0), { line: 1, column: 1 });
  assert.deepEqual(lineColumn("ab\ncd", 4), { line: 2, column: 2 });
  assert.deepEqual(lineColumn("ab\r\ncd", 4), { line: 2, column: 1 });
  assert.deepEqual(lineColumn("ab", 99), { line: 1, column: 3 });
});
