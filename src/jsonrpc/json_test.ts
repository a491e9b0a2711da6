import assert from "node:assert/strict";
import {
  changedByDouble,
  isJsonObject,
  isRawNumber,
  parseJson,
  parseLossless,
  rawNumber,
} from "./json.ts";
import { seededRandom } from "../testdata/seeded_random.ts";

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
  const v = parseLossless("[9007199254740991,9007199254740992,1000000000000000000000,0,42]");
  assert.ok(Array.isArray(v));
  for (const item of v) assert.equal(typeof item, "number");
  assert.deepEqual(v, [9007199254740991, 9007199254740992, 1e21, 0, 42]);
});

Deno.test("parseLossless leaves strings and member names made of digits alone", () => {
  const v = parseLossless('{"12345678901234567890":"12345678901234567890"}');
  assert.deepEqual(v, { "12345678901234567890": "12345678901234567890" });
});

Deno.test("parseLossless keeps as doubles the numbers whose doubles write back the same value", () => {
  const v = parseLossless(
    "[0.1,1.50,1e20,1E+21,0.30000000000000004,5e-324,1.7976931348623157e308]",
  );
  assert.deepEqual(v, [0.1, 1.5, 1e20, 1e21, 0.30000000000000004, 5e-324, 1.7976931348623157e308]);
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

// ---------------------------------------------------------------------------------------------
// Numbers a double would change

/** The family from the issue: each must come back as its own text. */
const CHANGED = [
  "-0",
  "-0.0",
  "-0e5",
  "-0E-3",
  "-0.000e+12",
  "1E-400",
  "-1e-400",
  "0." + "0".repeat(400) + "1",
  "2.4e-324",
  "4.9e-324",
  "0.10000000000000000000000001",
  "1.00000000000000000001",
  "1.2345678901234567e25",
  "12345678901234567890.5",
  "1234567.890123456789",
  "1e400",
  "-1.5E+999",
  "12345678901234567890",
  "100000000000000000000000",
  "1180591620717411303424",
];

/** Numbers whose doubles write back as the same decimal value: plain numbers, as before. */
const UNCHANGED: [string, number][] = [
  ["0", 0],
  ["0.0", 0],
  ["0e-400", 0],
  ["1.50", 1.5],
  ["1e20", 1e20],
  ["100000000000000000000", 1e20],
  ["1e23", 1e23],
  ["0.1", 0.1],
  ["-0.5", -0.5],
  ["5e-324", 5e-324],
  ["0.30000000000000004", 0.30000000000000004],
  ["1.2345678901234568e-7", 1.2345678901234568e-7],
  ["1.0000000000000000e0", 1],
];

Deno.test("parseLossless keeps the text of every number a double would change", () => {
  for (const text of CHANGED) {
    for (
      const doc of [
        `[${text}]`,
        `{"n":${text}}`,
        ` ${text}\n`,
        `[1, ${text}]`,
        `{"a":[{"b":\t${text}}]}`,
      ]
    ) {
      const v = JSON.stringify(parseLossless(doc));
      assert.equal(
        v,
        JSON.stringify(JSON.parse(doc.replace(text, '"@"'))).replace('"@"', text),
        doc,
      );
    }
  }
});

Deno.test("parseLossless keeps as plain doubles the numbers a double writes back unchanged", () => {
  for (const [text, value] of UNCHANGED) {
    const v = parseLossless(`{"x":1,"n":[${text}],"big":12345678901234567890}`);
    assert.ok(isJsonObject(v) && Array.isArray(v.n), text);
    assert.ok(Object.is(v.n[0], value), text);
    assert.ok(Object.is(parseLossless(text), value), text);
  }
});

Deno.test("changedByDouble follows its rule on the family from the issue", () => {
  for (const text of CHANGED) assert.equal(changedByDouble(text, Number(text)), true, text);
  for (const [text] of UNCHANGED) assert.equal(changedByDouble(text, Number(text)), false, text);
});

/** Number spellings of every shape: zeros, long runs, exponents near and past the double range. */
function numberText(r: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const length = (): number =>
    pick([0, 1, 2, 3, 5, 8, 12, 13, 14, 15, 16, 17, 18, 20, 25, 40, 310, 330, 420]);
  const digits = (n: number): string => {
    const style = r();
    let out = "";
    for (let i = 0; i < n; i++) {
      out += style < 0.3
        ? (r() < 0.9 ? "0" : "1")
        : style < 0.4
        ? "9"
        : String(Math.floor(r() * 10));
    }
    return out;
  };
  let text = r() < 0.35 ? "-" : "";
  text += r() < 0.35 ? "0" : String(1 + Math.floor(r() * 9)) + digits(length());
  if (r() < 0.55) {
    text += "." + digits(Math.max(1, length())) +
      (r() < 0.3 ? String(1 + Math.floor(r() * 9)) : "");
  }
  if (r() < 0.5) {
    text += pick(["e", "E"]) + pick(["", "+", "-"]);
    const e = pick([
      () => String(Math.floor(r() * 25)),
      () => String(280 + Math.floor(r() * 50)),
      () => "0".repeat(1 + Math.floor(r() * 3)) + String(Math.floor(r() * 30)),
      () => String(Math.floor(r() * 100000)),
    ])();
    text += e;
  }
  return text;
}

/** The value of a JSON number as sign, digits and a power of ten, exactly. */
function exact(text: string): { negative: boolean; digits: bigint; exponent: bigint } {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const fraction = m[3] ?? "";
  return {
    negative: m[1] === "-",
    digits: BigInt(m[2]! + fraction),
    exponent: BigInt(m[4] ?? "0") - BigInt(fraction.length),
  };
}

/** A slow reference for the rule: exact decimal arithmetic, no shortcuts. */
function changedReference(text: string): boolean {
  const value = Number(text);
  if (!Number.isFinite(value)) return true;
  const written = exact(text);
  // What the canonical form would write for the double: -0 as 0.
  const back = exact(Object.is(value, -0) ? "0" : String(value).replace("e+", "e"));
  if (written.digits === 0n || back.digits === 0n) {
    return written.digits !== back.digits || written.negative !== back.negative;
  }
  if (written.negative !== back.negative) return true;
  const low = written.exponent < back.exponent ? written.exponent : back.exponent;
  const a = written.digits * 10n ** (written.exponent - low);
  const b = back.digits * 10n ** (back.exponent - low);
  if (a !== b) return true;
  // Plain digits that a double does not hold exactly (SPEC §3), even when written back the same.
  return /^-?\d+$/.test(text) && BigInt(text) !== BigInt(value);
}

Deno.test("parseLossless agrees with an exact reference on 20,000 number spellings, fast path included", () => {
  const r = seededRandom(20261125);
  let kept = 0;
  for (let i = 0; i < 20_000; i++) {
    const text = numberText(r);
    const want = changedReference(text);
    assert.equal(changedByDouble(text, Number(text)), want, text);
    // Every place a number can stand, so that the shortcut's pattern is tested, not just the rule.
    const space = [" ", "", "\n", "\t", "\r\n  "][i % 5]!;
    for (const doc of [`[${space}${text}]`, `{"k":${space}${text}}`, `[0,${space}${text}]`, text]) {
      const v = parseLossless(doc);
      const got = typeof v === "object" && v !== null && !isRawNumber(v)
        ? (Array.isArray(v) ? v.at(-1) : v.k)
        : v;
      if (want) {
        assert.ok(isRawNumber(got) && got.rawJSON === text, `${doc} keeps its text`);
      } else {
        assert.ok(Object.is(got, Number(text)), `${doc} is the double ${Number(text)}`);
      }
    }
    if (want) kept++;
  }
  // The generator reaches both sides of the rule often.
  assert.ok(kept > 4000 && kept < 16000, `kept ${kept}`);
});

/** Small documents with every JSON feature, and a number the slow path must keep. */
function documentText(r: () => number, depth: number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const ws = (): string => pick(["", "", " ", "\n  ", "\t"]);
  const scalar = (): string =>
    pick([
      () =>
        JSON.stringify(
          pick(["", "a", 'q"uo\\te', "\u2028", "é😀", "\ud800", "1234567890123456789"]),
        ),
      () => '"esc \\u0041\\n\\/\\\\\\""',
      () => numberText(r),
      () => pick(["true", "false", "null"]),
    ])();
  if (depth === 0 || r() < 0.3) return scalar();
  const n = Math.floor(r() * 4);
  const items: string[] = [];
  if (r() < 0.5) {
    for (let i = 0; i < n; i++) items.push(ws() + documentText(r, depth - 1) + ws());
    return `[${items.join(",")}]`;
  }
  for (let i = 0; i < n; i++) {
    const key = JSON.stringify(pick(["a", "b", "__proto__", "constructor", "1", "0", "", "k\\"]));
    items.push(`${ws()}${key}${ws()}:${ws()}${documentText(r, depth - 1)}`);
  }
  return `{${items.join(",")}}`;
}

Deno.test("parseLossless builds what JSON.parse builds, keys, order and duplicates alike, but for kept numbers", () => {
  const r = seededRandom(7);
  // V8's reviver sees each number's source: a fine reference at this depth.
  const reviver = (_key: string, value: unknown, context: { source?: string }): unknown =>
    typeof value === "number" && context.source !== undefined &&
      changedByDouble(context.source, value)
      ? rawNumber(context.source)
      : value;
  const parse = JSON.parse as (
    text: string,
    reviver: (key: string, value: unknown, context: { source?: string }) => unknown,
  ) => unknown;
  for (let i = 0; i < 3000; i++) {
    const text = `[-0,${documentText(r, 5)}]`;
    const got = parseLossless(text);
    const want = parse(text, reviver);
    assert.equal(JSON.stringify(got), JSON.stringify(want), text);
    assert.deepStrictEqual(got, want, text);
  }
});

Deno.test("parseLossless throws SyntaxError for invalid JSON that holds numbers to keep", () => {
  for (const bad of ["[-0,]", '{"a":-0', "[1E-400 1]", "[-00]", "[-0.]", "[.5, -0]", "-0 -0"]) {
    assert.throws(() => parseLossless(bad), SyntaxError, bad);
  }
});

// ---------------------------------------------------------------------------------------------
// Escaped member names that V8's JSON.parse misreads (see hasBackslashName in json.ts)

/**
 * Each: a text read first, which gives V8 a name to misread with; a text that has, after the same
 * members, an escaped name of that length whose source begins with it; and the names it holds.
 */
const MISREAD: [string, string, string[]][] = [
  ['{"a":1,"\\\\":2}', '{"a":1,"\\u0001":2}', ["a", "\u0001"]],
  ['{"h":[],"\\\\":0}', '{"h":1,"\\"":2}', ["h", '"']],
  ['{"a":1,"\\\\":2}', '{"a":1,"\\n":2}', ["a", "\n"]],
  ['{"a":1,"\\\\":2}', '{"a":1,"\\/":2}', ["a", "/"]],
  ['{"a":1,"x\\\\":2}', '{"a":1,"x\\n":2}', ["a", "x\n"]],
  ['{"a":1,"\\\\n":2}', '{"a":1,"\\n\\t":2}', ["a", "\n\t"]],
  ['{"a":1,"\\\\u":2}', '{"a":1,"\\ud83d\\ude00":2}', ["a", "😀"]],
  ['{"a":1,"\\\\u0041":2}', '{"a":1,"\\u0041BCDEF":2}', ["a", "ABCDEF"]],
  ['{"jsonrpc":"2.0","\\\\u006d":1}', '{"jsonrpc":"2.0","\\u006dethod":"tools/call"}', [
    "jsonrpc",
    "method",
  ]],
  [
    '{"tool_name":"read_file","\\\\u00":{}}',
    '{"tool_name":"read_file","\\u006eame":"delete_file"}',
    ["tool_name", "name"],
  ],
];

Deno.test("parseLossless reads escaped member names as written where JSON.parse, after a name their source begins with, misreads them", () => {
  let misreadByEngine = 0;
  for (const [first, text, names] of MISREAD) {
    parseLossless(first);
    const got = parseLossless(text);
    assert.ok(isJsonObject(got), text);
    assert.deepEqual(Object.keys(got), names, `${text} after ${first}`);
    if (Object.keys(JSON.parse(text)).join("\0") !== names.join("\0")) misreadByEngine++;
  }
  // Nested, as params are in a message: the object's place in the text does not matter.
  parseLossless('{"jsonrpc":"2.0","id":1,"method":"m","params":{"p":0,"\\\\":[1]}}');
  const nested = parseLossless(
    '[{"jsonrpc":"2.0","id":2,"method":"m","params":{"p":0,"\\u0001":[1]}}]',
  );
  assert.equal(
    JSON.stringify(nested),
    '[{"jsonrpc":"2.0","id":2,"method":"m","params":{"p":0,"\\u0001":[1]}}]',
  );
  // Not asserted (a fixed engine reads them all right), but told, so a reader of the output knows
  // whether the engine under test still has the defect the guard is for.
  console.log(`JSON.parse itself misread ${misreadByEngine} of ${MISREAD.length} texts`);
});

/**
 * Documents whose member names are written in many spellings, escaped and not, each with the
 * value its writer meant: names decoded one string at a time (JSON.parse of a lone string, which
 * the defect does not touch) and set in order, so a name written twice keeps its first place and
 * its last value, as JSON.parse does.
 */
function escapedNamesDocument(r: () => number, depth: number): { text: string; value: unknown } {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
  const SPELLINGS = [
    "a",
    "b",
    "x",
    "u0",
    "é",
    "\\\\",
    "\\\\u",
    "\\\\u0",
    "\\n",
    "\\t",
    '\\"',
    "\\/",
    "\\u0001",
    "\\u0061",
    "\\u00e9",
    "\\ud83d\\ude00",
  ];
  if (depth === 0 || r() < 0.3) {
    return pick([{ text: "1", value: 1 }, { text: '"\\\\s"', value: "\\s" }]);
  }
  const n = Math.floor(r() * 5);
  if (r() < 0.25) {
    const items = Array.from({ length: n }, () => escapedNamesDocument(r, depth - 1));
    return { text: `[${items.map((i) => i.text).join(",")}]`, value: items.map((i) => i.value) };
  }
  const parts: string[] = [];
  const value: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    let raw = "";
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) raw += pick(SPELLINGS);
    const name: string = JSON.parse(`"${raw}"`);
    const item = escapedNamesDocument(r, depth - 1);
    parts.push(`"${raw}":${item.text}`);
    Object.defineProperty(value, name, {
      value: item.value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { text: `{${parts.join(",")}}`, value };
}

Deno.test("parseLossless gives 5,000 documents of escaped member names the values their writer meant", () => {
  const r = seededRandom(63785);
  let misreadByEngine = 0;
  for (let i = 0; i < 5000; i++) {
    const { text, value } = escapedNamesDocument(r, 4);
    const got = parseLossless(text);
    assert.deepStrictEqual(got, value, text);
    assert.equal(JSON.stringify(got), JSON.stringify(value), text);
    if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(value)) misreadByEngine++;
  }
  console.log(`JSON.parse itself misread ${misreadByEngine} of 5000 documents`);
});

// ---------------------------------------------------------------------------------------------
// parseJson: JSON.parse's values, member names as written

Deno.test("parseJson reads escaped member names as written where JSON.parse, after a name their source begins with, misreads them", () => {
  let misreadByEngine = 0;
  for (const [first, text, names] of MISREAD) {
    // Primed with the engine's own parse, as any earlier reader in the process may have done.
    JSON.parse(first);
    const got = parseJson(text);
    assert.ok(typeof got === "object" && got !== null, text);
    assert.deepEqual(Object.keys(got), names, `${text} after ${first}`);
    JSON.parse(first);
    if (Object.keys(JSON.parse(text)).join("\0") !== names.join("\0")) misreadByEngine++;
  }
  // A record line: params nested, a number no double holds (a double here, as JSON.parse gives).
  JSON.parse('{"v":1,"seq":1,"params":{"a":1,"\\\\":2}}');
  const record = parseJson('{"v":1,"seq":2,"params":{"a":12345678901234567890,"\\u0001":2}}');
  assert.deepStrictEqual(record, {
    v: 1,
    seq: 2,
    params: { a: 12345678901234567890, "\u0001": 2 },
  });
  console.log(`JSON.parse itself misread ${misreadByEngine} of ${MISREAD.length} texts`);
});

Deno.test("parseJson gives what JSON.parse gives, numbers as doubles, __proto__ as data, errors as SyntaxError", () => {
  const r = seededRandom(11);
  for (let i = 0; i < 2000; i++) {
    // No escaped member names: JSON.parse reads these right, and is the reference.
    const text = `[-0,${documentText(r, 5)}]`;
    const got = parseJson(text);
    assert.deepStrictEqual(got, JSON.parse(text), text);
  }
  const proto = parseJson('{"\\u005f_proto__":{"polluted":1},"k\\\\":-0}');
  assert.ok(typeof proto === "object" && proto !== null);
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.ok(Object.hasOwn(proto, "__proto__"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.ok(Object.is((proto as Record<string, unknown>)["k\\"], -0));
  for (const scalar of ['"\\u0041"', "12345678901234567890", " -0 ", "null", "true"]) {
    assert.deepStrictEqual(parseJson(scalar), JSON.parse(scalar), scalar);
  }
  for (const bad of ["{", '{"a\\":1}', '{"\\q":1}', "[1,]", "", '{"a":1} x']) {
    assert.throws(() => parseJson(bad), SyntaxError, bad);
  }
});

Deno.test("parseJson gives 5,000 documents of escaped member names the values their writer meant", () => {
  const r = seededRandom(8);
  for (let i = 0; i < 5000; i++) {
    const { text, value } = escapedNamesDocument(r, 4);
    const got = parseJson(text);
    assert.deepStrictEqual(got, value, text);
  }
});

Deno.test("parseJson survives nesting deeper than any recursion would", () => {
  const depth = 200_000;
  const text = '{"\\u0061":'.repeat(depth) + '{"b\\\\":1}' + "}".repeat(depth);
  let v = parseJson(text);
  for (let i = 0; i < depth; i++) {
    assert.ok(typeof v === "object" && v !== null && "a" in v);
    v = v.a;
  }
  assert.deepEqual(v, { "b\\": 1 });
});
