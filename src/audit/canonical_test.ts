import assert from "node:assert/strict";
import { type CanonicalInput, CanonicalizationError, canonicalize } from "./canonical.ts";
import { isRawNumber, parseLossless, rawNumber } from "../jsonrpc/json.ts";

/** The double whose IEEE 754 bits are `hex` (RFC 8785 Appendix B lists its vectors this way). */
function fromBits(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt("0x" + hex));
  return view.getFloat64(0);
}

Deno.test("canonicalize orders members by UTF-16 code units, as in RFC 8785 §3.2.3", () => {
  // The RFC's own sorting example: non-ASCII names and a surrogate pair (U+1F600) that sorts
  // before U+FB33 because its high surrogate 0xD83D is smaller.
  const input = parseLossless(
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh",' +
      '"1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control",' +
      '"\\u00f6":"Latin Small Letter O With Diaeresis"}',
  );
  assert.equal(
    canonicalize(input),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
      '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
      '"\u{1F600}":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
});

Deno.test("canonicalize orders a supplementary-plane name before a high BMP name", () => {
  // By code points U+10000 > U+FFFF; by UTF-16 code units 0xD800 < 0xFFFF.
  assert.equal(canonicalize({ "\uffff": 1, "\u{10000}": 2 }), '{"\u{10000}":2,"\uffff":1}');
  assert.equal(canonicalize({ b: 1, a: 2, A: 3, "": 4 }), '{"":4,"A":3,"a":2,"b":1}');
});

Deno.test("canonicalize reproduces the RFC 8785 §3.2.2 example byte for byte", () => {
  // Parsed into doubles, as RFC 8785 reads it; a lossless parse keeps 333333333.33333329 (below).
  const input = JSON.parse(
    '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
      '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
      '"literals":[null,true,false]}',
  );
  assert.equal(
    canonicalize(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

Deno.test("canonicalize formats numbers as RFC 8785 Appendix B requires", () => {
  const vectors: [string, string][] = [
    ["0000000000000000", "0"],
    ["8000000000000000", "0"],
    ["0000000000000001", "5e-324"],
    ["8000000000000001", "-5e-324"],
    ["7fefffffffffffff", "1.7976931348623157e+308"],
    ["ffefffffffffffff", "-1.7976931348623157e+308"],
    ["4340000000000000", "9007199254740992"],
    ["c340000000000000", "-9007199254740992"],
    ["4430000000000000", "295147905179352830000"],
    ["44b52d02c7e14af5", "9.999999999999997e+22"],
    ["44b52d02c7e14af6", "1e+23"],
    ["44b52d02c7e14af7", "1.0000000000000001e+23"],
    ["444b1ae4d6e2ef4e", "999999999999999700000"],
    ["444b1ae4d6e2ef4f", "999999999999999900000"],
    ["444b1ae4d6e2ef50", "1e+21"],
    ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
    ["3eb0c6f7a0b5ed8d", "0.000001"],
    ["41b3de4355555553", "333333333.3333332"],
    ["41b3de4355555554", "333333333.33333325"],
    ["41b3de4355555555", "333333333.3333333"],
    ["41b3de4355555556", "333333333.3333334"],
    ["41b3de4355555557", "333333333.33333343"],
    ["becbf647612f3696", "-0.0000033333333333333333"],
    ["43143ff3c1cb0959", "1424953923781206.2"],
  ];
  for (const [bits, want] of vectors) assert.equal(canonicalize(fromBits(bits)), want, bits);
});

Deno.test("canonicalize writes the numbers a lossless parse kept as their text, -0 included", () => {
  // SPEC §3 as extended: where the double would write back another decimal value, the original
  // text stands, so the record says what the message said.
  const text = '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001,' +
    "-0,-0.0e5,1E-400,0.10000000000000000000000001,12345678901234567890]}";
  assert.equal(
    canonicalize(parseLossless(text)),
    '{"numbers":[333333333.33333329,1e+30,4.5,0.002,1e-27,' +
      "-0,-0.0e5,1E-400,0.10000000000000000000000001,12345678901234567890]}",
  );
});

Deno.test("canonicalize writes 1e21, 1e-7, -0 and 0.1 in ECMAScript form", () => {
  assert.equal(canonicalize(1e21), "1e+21");
  assert.equal(canonicalize(1e20), "100000000000000000000");
  assert.equal(canonicalize(1e-7), "1e-7");
  assert.equal(canonicalize(1e-6), "0.000001");
  assert.equal(canonicalize(-0), "0");
  assert.equal(canonicalize(0.1), "0.1");
  assert.equal(canonicalize(-1.5), "-1.5");
  assert.equal(canonicalize([-0, 0]), "[0,0]");
});

Deno.test("canonicalize escapes control characters and nothing else", () => {
  let controls = "";
  for (let c = 0; c < 0x20; c++) controls += String.fromCharCode(c);
  assert.equal(
    canonicalize(controls),
    '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r' +
      "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019" +
      '\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"',
  );
  // U+2028/U+2029, DEL, '/' and non-ASCII are written as themselves.
  assert.equal(canonicalize("\u2028\u2029\u007f/é😀"), '"\u2028\u2029\u007f/é😀"');
  assert.equal(canonicalize('"\\'), '"\\"\\\\"');
  // Member names are escaped the same way.
  assert.equal(canonicalize({ "a\nb": 1 }), '{"a\\nb":1}');
});

Deno.test("canonicalize writes literals, nesting and empty containers without white space", () => {
  assert.equal(canonicalize(null), "null");
  assert.equal(canonicalize(true), "true");
  assert.equal(canonicalize(false), "false");
  assert.equal(canonicalize({}), "{}");
  assert.equal(canonicalize([]), "[]");
  assert.equal(
    canonicalize(parseLossless(' { "z" : [ 1 , { "b" : 2 , "a" : [ ] } ] , "a" : { } } ')),
    '{"a":{},"z":[1,{"a":[],"b":2}]}',
  );
});

Deno.test("canonicalize skips undefined members", () => {
  assert.equal(canonicalize({ a: 1, b: undefined, c: null }), '{"a":1,"c":null}');
  assert.equal(canonicalize({ b: 1, a: undefined, c: "x" }), '{"b":1,"c":"x"}');
});

Deno.test("canonicalize keeps integers a double cannot hold as their digits", () => {
  const v = parseLossless(
    '{"big":12345678901234567890,"edge":9007199254740993,"neg":-12345678901234567890,' +
      '"exact":9007199254740992,"safe":9007199254740991}',
  );
  assert.equal(
    canonicalize(v),
    '{"big":12345678901234567890,"edge":9007199254740993,"exact":9007199254740992,' +
      '"neg":-12345678901234567890,"safe":9007199254740991}',
  );
  assert.equal(
    canonicalize([rawNumber("123456789012345678901234567890")]),
    "[123456789012345678901234567890]",
  );
});

Deno.test("canonicalize of a parsed number literal beyond the double range does not throw", () => {
  // 1e400 is valid JSON (RFC 8259 puts no limit on range). The proxy must still be able to record
  // a message that carries it; the original literal is the only faithful form.
  for (const literal of ["1e400", "-1e400", "1.5E+999"]) {
    const text = `{"x":${literal}}`;
    let out: string | undefined;
    assert.doesNotThrow(() => {
      out = canonicalize(parseLossless(text));
    }, literal);
    assert.equal(out, text, literal);
  }
});

Deno.test("canonicalize is stable over its own output after a lossless parse", () => {
  const texts = [
    "[1e20,1e21,12345678901234567890.0,0.1,5e-324,1.7976931348623157e308,-0,1E-7]",
    '{"n":[12345678901234567890,-9007199254740993,100000000000000000000000]}',
    '{"s":"12345678901234567890","k":{"12345678901234567890":1}}',
  ];
  for (const text of texts) {
    const once = canonicalize(parseLossless(text));
    assert.equal(canonicalize(parseLossless(once)), once, text);
  }
});

Deno.test("canonicalize rejects NaN and infinities", () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.throws(() => canonicalize(bad), CanonicalizationError);
    assert.throws(() => canonicalize({ a: [bad] }), CanonicalizationError);
  }
  assert.throws(() => canonicalize(undefined), CanonicalizationError);
  // JSON.stringify would write null for these.
  assert.throws(() => canonicalize([1, undefined]), CanonicalizationError);
  assert.throws(() => canonicalize({ a: [new Array<CanonicalInput>(2)] }), CanonicalizationError);
});

Deno.test("every double's canonical text reads back as the same double: logs written before numbers kept their text still verify", () => {
  // Records written before stored each number as its double's canonical text (or as integer
  // digits). Keeping text where a double would change it must not touch those: each such text is
  // the double's own shortest form, which writes back as itself.
  const view = new DataView(new ArrayBuffer(8));
  let seed = 0x9e3779b9;
  const next = (): number => {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6a09e667) >>> 0;
    return seed;
  };
  for (let i = 0; i < 20_000; i++) {
    view.setUint32(0, next());
    view.setUint32(4, next());
    // Every exponent alike, subnormals and huge values included; and integers near 2^53.
    const x = i % 4 === 0 ? Math.round(view.getFloat64(0) % 1e25) : view.getFloat64(0);
    if (!Number.isFinite(x)) continue;
    const text = canonicalize([x]);
    const back = parseLossless(text);
    assert.equal(canonicalize(back), text, text);
    // The double itself, but for integer digits a double does not hold exactly (2^68 writes as
    // 295147905179352830000), which were kept as digits before too.
    assert.ok(Array.isArray(back), text);
    const n = back[0];
    if (isRawNumber(n)) assert.match(n.rawJSON, /^-?\d{17,}$/, text);
    else assert.ok(Object.is(n, x === 0 ? 0 : x), text);
  }
});

function isList(value: object): value is readonly CanonicalInput[] {
  return Array.isArray(value);
}

/** RFC 8785 written the plainest way, to check the fast writer against. */
function reference(value: CanonicalInput): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return String(value);
    case "number":
      return Object.is(value, -0) ? "0" : String(value);
    case "object":
      if (isRawNumber(value)) return value.rawJSON;
      if (isList(value)) return "[" + value.map(reference).join(",") + "]";
      return "{" +
        Object.entries(value).filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => a < b ? -1 : 1)
          .map(([k, v]) => JSON.stringify(k) + ":" + reference(v)).join(",") +
        "}";
  }
  throw new Error(`not JSON: ${typeof value}`);
}

Deno.test("canonicalize agrees with a plain RFC 8785 writer over generated values: names out of order, integer-like, __proto__; nested across the depth where it stops copying", () => {
  let s = 0xc0ffee;
  const int = (n: number): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return Math.floor(((s >>> 0) / 2 ** 32) * n);
  };
  const strings = [
    "",
    "a",
    "b",
    "é",
    "😀",
    "\ud800",
    "\udc00",
    "\u0001",
    '"',
    "10",
    "9",
    "_",
    "__proto__",
  ];
  const leaves: CanonicalInput[] = [
    null,
    true,
    false,
    -0,
    0.1,
    1e21,
    rawNumber("12345678901234567890"),
    undefined,
  ];
  const leaf = (): CanonicalInput =>
    int(3) === 0 ? int(1000) : int(2) === 0 ? leaves[int(leaves.length)] : strings[int(13)];
  const value = (depth: number): CanonicalInput => {
    if (depth === 0 || int(4) === 0) return leaf();
    if (int(2) === 0) {
      const items: CanonicalInput[] = [];
      for (let i = int(4); i > 0; i--) items.push(value(depth - 1) ?? null);
      return items;
    }
    const o: { [key: string]: CanonicalInput } = {};
    for (let i = int(5); i > 0; i--) {
      // As a parse makes it: an own member, even when named __proto__.
      const key = strings[int(strings.length)]! + (int(2) === 0 ? "" : int(3));
      Object.defineProperty(o, key, {
        value: value(depth - 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return o;
  };
  for (let i = 0; i < 2000; i++) {
    const v = value(1 + int(6)) ?? null;
    assert.equal(canonicalize(v), reference(v), reference(v));
  }
  // Chains of 60 to 70 containers, with siblings at every level, cross the copy's limit (64).
  for (let depth = 60; depth <= 70; depth++) {
    let v: CanonicalInput = value(3) ?? null;
    for (let d = 0; d < depth; d++) {
      v = d % 2 === 0 ? { z: v, a: value(2), m: [value(1) ?? null, -0] } : [value(2) ?? null, v];
    }
    assert.equal(canonicalize(v), reference(v), `depth ${depth}`);
  }
});
