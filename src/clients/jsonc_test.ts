import assert from "node:assert/strict";
import { JsoncError, type JsoncNode, lineColumn, memberOf, parseJsonc, toPlain } from "./jsonc.ts";
import { seededRandom } from "../testdata/seeded_random.ts";

const PIECES = [
  "a",
  "Z",
  " ",
  '"',
  "\\",
  "/",
  "\n",
  "\t",
  "\u0001",
  "é",
  "😀",
  "\u2028",
  "0",
  "{",
  "__proto__",
];

function randomString(r: () => number): string {
  let s = "";
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

function randomNumber(r: () => number): number {
  switch (Math.floor(r() * 4)) {
    case 0:
      return Math.floor(r() * 1000) - 500;
    case 1:
      return (r() - 0.5) * 1e6;
    case 2:
      return r() * 10 ** Math.floor(r() * 600 - 300);
    default:
      return Number.MAX_SAFE_INTEGER * (r() < 0.5 ? 1 : -1);
  }
}

/** A JSON value of bounded size and depth. */
function randomValue(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * (depth > 4 ? 4 : 7));
  switch (pick) {
    case 0:
      return randomString(r);
    case 1:
      return randomNumber(r);
    case 2:
      return r() < 0.5;
    case 3:
      return null;
    case 4:
    case 5: {
      const out: Record<string, unknown> = {};
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) {
        Object.defineProperty(out, randomString(r), {
          value: randomValue(r, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    default:
      return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
  }
}

/** A generated value and its JSON text, in one of the layouts `JSON.stringify` writes. */
function randomJson(r: () => number): { value: unknown; text: string } {
  const space = [undefined, 2, 4, "\t", " "][Math.floor(r() * 5)];
  const value = randomValue(r);
  return { value, text: JSON.stringify(value, null, space) };
}

function randomJsonText(r: () => number): string {
  return randomJson(r).text;
}

function* nodes(node: JsoncNode): Generator<JsoncNode> {
  yield node;
  if (node.kind === "object") { for (const m of node.members) yield* nodes(m.value); }
  if (node.kind === "array") { for (const item of node.items) yield* nodes(item); }
}

function rejects(text: string, options = {}): JsoncError {
  try {
    parseJsonc(text, options);
  } catch (e) {
    if (e instanceof JsoncError) return e;
    throw e;
  }
  assert.fail(`accepted ${JSON.stringify(text)}`);
}

// The value compared is the one generated, not JSON.parse's reading of the text: Deno 2.9.6's
// V8 misreads one of these texts (seed 13, text 2640: an escaped "\u0001" key comes back as "\\"
// after the thousands of parses before it), while Node reads it right.
Deno.test("parseJsonc reads generated JSON texts as the values they were written from", () => {
  const r = seededRandom(13);
  for (let i = 0; i < 3000; i++) {
    const { value, text } = randomJson(r);
    assert.deepEqual(toPlain(parseJsonc(text).root), value, text);
  }
  assert.deepEqual(toPlain(parseJsonc("[-0, 0, 1E+2, -1.5e-3]").root), [-0, 0, 100, -0.0015]);
});

Deno.test("every node's span slices to text that parses to the node's value", () => {
  const r = seededRandom(1301);
  for (let i = 0; i < 500; i++) {
    const doc = parseJsonc(randomJsonText(r));
    for (const node of nodes(doc.root)) {
      const slice = doc.text.slice(node.span.start, node.span.end);
      assert.deepEqual(toPlain(parseJsonc(slice).root), toPlain(node), slice);
      if (node.kind !== "object") continue;
      for (const member of node.members) {
        const key = doc.text.slice(member.keySpan.start, member.keySpan.end);
        assert.equal(toPlain(parseJsonc(key).root), member.key);
        const whole = doc.text.slice(member.span.start, member.span.end);
        const expected = {};
        Object.defineProperty(expected, member.key, {
          value: toPlain(member.value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        assert.deepEqual(toPlain(parseJsonc(`{${whole}}`).root), expected);
      }
    }
  }
});

Deno.test("mutated texts: whatever JSON.parse refuses is refused, and what it accepts is accepted but for repeated keys and lone surrogates", () => {
  const r = seededRandom(2026);
  const inserts = [
    "",
    ",",
    "]",
    "}",
    "{",
    "[",
    '"',
    ":",
    "0",
    "-",
    ".",
    "e",
    "'",
    "/",
    "\\",
    " ",
    "\u00a0",
    "\f",
    "x",
    "\u0000",
    "\n",
  ];
  let refused = 0;
  for (let i = 0; i < 6000; i++) {
    const chars = [...randomJsonText(r)];
    const edits = 1 + Math.floor(r() * 2);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * (chars.length + 1));
      if (r() < 0.4) chars.splice(at, 1);
      else chars.splice(at, 0, inserts[Math.floor(r() * inserts.length)]!);
    }
    const text = chars.join("");
    let jsonOk = true;
    try {
      JSON.parse(text);
    } catch {
      jsonOk = false;
    }
    const strict = { comments: false, trailingCommas: false };
    if (!jsonOk) {
      rejects(text, strict);
      refused++;
      continue;
    }
    try {
      parseJsonc(text, strict);
    } catch (e) {
      if (!(e instanceof JsoncError)) throw e;
      assert.match(e.reason, /duplicate key|lone surrogate/, text);
    }
  }
  assert.ok(refused > 1000, `only ${refused} mutations were refused: the generator is too tame`);
});

Deno.test("bad input is refused with its line, column and a plain reason", () => {
  const cases: Array<[string, number, number, RegExp]> = [
    ["", 1, 1, /^empty file$/],
    ["  \n\t\r\n", 1, 1, /^empty file$/],
    ["// just a comment\n", 1, 1, /empty file \(only comments/],
    ['{\n  "a": "x\n}', 2, 8, /unterminated string/],
    ['{\n  "a": "x', 2, 8, /unterminated string/],
    ["{\n  /* open\n}", 2, 3, /unterminated comment/],
    ['["\\x"]', 1, 3, /bad escape \\x/],
    ['["\\u12g4"]', 1, 3, /\\u needs four hex digits/],
    ['["\\ud800"]', 1, 2, /lone surrogate/],
    ['["\\udc00\\ud800"]', 1, 2, /lone surrogate/],
    ['["a\u0001"]', 1, 4, /control character U\+0001/],
    ['{\n  "a": 1,\n  "b": 2,\n  "a": 3\n}', 4, 3, /^duplicate key "a" \(also at line 2\)$/],
    ["[1, 2] 3", 1, 8, /after the top-level value/],
    ['{"a": 1}\n{"b": 2}', 2, 1, /after the top-level value/],
    ["[NaN]", 1, 2, /NaN is not JSON/],
    ["[Infinity]", 1, 2, /Infinity is not JSON/],
    ["[-Infinity]", 1, 2, /-Infinity is not JSON/],
    ["[007]", 1, 2, /leading zero/],
    ["[-01]", 1, 2, /leading zero/],
    ["[0x1f]", 1, 2, /hex numbers/],
    ["[1.]", 1, 4, /digit after the decimal point/],
    ["[.5]", 1, 2, /digit before its decimal point/],
    ["[+1]", 1, 2, /cannot start with '\+'/],
    ["[1e]", 1, 4, /digit in the exponent/],
    ["{'a': 1}", 1, 2, /single quotes/],
    ["['a']", 1, 2, /single quotes/],
    ["{a: 1}", 1, 2, /keys need double quotes/],
    ["[undefined]", 1, 2, /unexpected word 'undefined'/],
    ["[1,,2]", 1, 4, /extra comma/],
    ["[,]", 1, 2, /extra comma/],
    ["{,}", 1, 2, /extra comma/],
    ['{"a" 1}', 1, 6, /expected ':' after the key "a"/],
    ['{"a": 1 "b": 2}', 1, 9, /expected ',' or '}' after the value of "a"/],
    ["[1 2]", 1, 4, /expected ',' or ']'/],
    ['{\r\n  "a": [1,\r\n', 3, 1, /the array opened at line 2, column 8 is not closed/],
    ["{\n", 2, 1, /the object opened at line 1, column 1 is not closed/],
    ["[1]\u00a0", 1, 4, /U\+00A0 \(JSON allows only spaces, tabs and line breaks/],
    ["[\f1]", 1, 2, /U\+000C/],
    ["[1] / 2", 1, 5, /unexpected '\/'/],
  ];
  for (const [text, line, column, reason] of cases) {
    const e = rejects(text);
    assert.equal(
      `${e.line}:${e.column}`,
      `${line}:${column}`,
      `${JSON.stringify(text)}: ${e.message}`,
    );
    assert.match(e.reason, reason, JSON.stringify(text));
    assert.equal(e.message, `line ${line}, column ${column}: ${e.reason}`);
  }
});

Deno.test("comments and trailing commas are read by default and refused when turned off", () => {
  const text = '// head\n{\n  /* a */ "a": [1, 2,], // tail\n  "b": {"c": null,},\n}\n/* end */';
  assert.deepEqual(toPlain(parseJsonc(text).root), { a: [1, 2], b: { c: null } });
  assert.match(rejects(text, { comments: false }).reason, /comments are not allowed/);
  const noComments = '{"a": [1, 2,]}';
  const e = rejects(noComments, { trailingCommas: false });
  assert.match(e.reason, /trailing comma after the last item/);
  assert.equal(e.column, 12);
  assert.match(
    rejects('{"a": 1,}', { trailingCommas: false }).reason,
    /trailing comma after the last member/,
  );
  // A comment marker inside a string is text.
  assert.deepEqual(toPlain(parseJsonc('{"url": "http://x/*y*/"}').root), { url: "http://x/*y*/" });
});

Deno.test("a byte order mark is kept out of the offsets and noted; line endings and indent are detected", () => {
  const doc = parseJsonc('\uFEFF{\r\n\t"a": {\r\n\t\t"b": 1\r\n\t}\r\n}\r\n');
  assert.equal(doc.bom, true);
  assert.equal(doc.text.charCodeAt(0), 0x7b);
  assert.equal(doc.newline, "\r\n");
  assert.equal(doc.indent, "\t");
  const b = memberOf(memberOf(doc.root, "a")!.value, "b")!;
  assert.deepEqual(lineColumn(doc.text, b.keySpan.start), { line: 3, column: 3 });

  const four = parseJsonc('{\n    "a": [\n        1\n    ],\n    "b": 2\n}');
  assert.equal(four.bom, false);
  assert.equal(four.newline, "\n");
  assert.equal(four.indent, "    ");
  assert.equal(four.inlineScalarArrays, false);
  assert.equal(parseJsonc('{"a": 1}').indent, "  ", "no indentation to copy: two spaces");
  assert.equal(parseJsonc("{\r\n}\n\n").newline, "\n", "most line endings win");
  const inline = parseJsonc('{\n  "args": ["-y", "pkg"],\n  "more": [1, 2]\n}');
  assert.equal(inline.inlineScalarArrays, true);
  assert.equal(inline.indent, "  ");
});

Deno.test("nesting is capped, deep input fails cleanly, and the size is capped", () => {
  const nested = (n: number) => "[".repeat(n) + "]".repeat(n);
  parseJsonc(nested(64));
  assert.match(rejects(nested(65)).reason, /nesting deeper than 64 levels/);
  assert.equal(rejects(nested(65)).column, 65);
  assert.match(rejects(nested(200_000)).reason, /nesting deeper than 64/);
  parseJsonc(nested(500), { maxDepth: 1000 });
  assert.throws(() => parseJsonc("[]", { maxDepth: 100_000 }), RangeError);
  assert.throws(() => parseJsonc("[]", { maxDepth: 0 }), RangeError);
  assert.match(rejects('"' + "x".repeat(100) + '"', { maxBytes: 50 }).reason, /file too large/);
  // Multi-byte characters count as their UTF-8 bytes.
  assert.match(rejects('"' + "é".repeat(30) + '"', { maxBytes: 50 }).reason, /file too large/);
  parseJsonc('"' + "é".repeat(20) + '"', { maxBytes: 50 });
});

Deno.test("values: numbers keep their text, __proto__ is an own key, literals and strings decode", () => {
  const doc = parseJsonc(
    '{"n": 1.50, "big": 1e400, "neg": -0, "__proto__": {"x": 1}, "s": "\\u00e9\\n\\/\\ud83d\\ude00"}',
  );
  const n = memberOf(doc.root, "n")!.value;
  assert.ok(n.kind === "number");
  assert.equal(n.raw, "1.50");
  assert.equal(n.value, 1.5);
  const plain = toPlain(doc.root);
  assert.deepEqual(plain, JSON.parse(doc.text));
  assert.ok(typeof plain === "object" && plain !== null);
  assert.equal(Object.getPrototypeOf(plain), Object.prototype);
  assert.ok(Object.hasOwn(plain, "__proto__"));
  assert.deepEqual(toPlain(parseJsonc("[true, false, null]").root), [true, false, null]);
  assert.match(rejects("[truex]").reason, /unexpected word 'truex'/);
  assert.equal(memberOf(doc.root, "absent"), undefined);
  assert.equal(memberOf(parseJsonc("[1]").root, "0"), undefined);
});

Deno.test("lineColumn counts LF, CRLF and lone CR line breaks and 1-based columns", () => {
  const text = "ab\ncd\r\nef\rgh";
  assert.deepEqual(lineColumn(text, 0), { line: 1, column: 1 });
  assert.deepEqual(lineColumn(text, 2), { line: 1, column: 3 });
  assert.deepEqual(lineColumn(text, 3), { line: 2, column: 1 });
  assert.deepEqual(lineColumn(text, 5), { line: 2, column: 3 });
  assert.deepEqual(lineColumn(text, 7), { line: 3, column: 1 });
  assert.deepEqual(lineColumn(text, 10), { line: 4, column: 1 });
  assert.deepEqual(lineColumn(text, 99), { line: 4, column: 3 });
});
