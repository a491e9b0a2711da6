import assert from "node:assert/strict";
import { compileGlob, compileLinearRegex, compileNamePattern } from "./pattern.ts";

// ---- field patterns --------------------------------------------------------------------------

Deno.test("compileNamePattern matches *-globs without overlap between pieces", () => {
  const m = compileNamePattern("a*ab*b");
  assert.equal(m("aabb"), true);
  assert.equal(m("aab"), false, "the pieces may not overlap");
  assert.equal(m("a_ab_b"), true);
  assert.equal(compileNamePattern("**")("anything"), true);
  assert.equal(compileNamePattern("x")("x"), true);
  assert.equal(compileNamePattern("x")("X"), false);
  assert.equal(compileNamePattern("")("whatever"), true);
});

// ---- regular expressions ---------------------------------------------------------------------

Deno.test("the regex engine agrees with RegExp on the syntax it accepts", () => {
  const patterns = [
    "abc",
    "^abc$",
    "a.c",
    "a|b|cd",
    "(ab)+c",
    "x{2,3}y",
    "x{2}y",
    "x{2,}y",
    "[a-c]+",
    "[^a-c]",
    "\\d+\\.\\d*",
    "\\bfoo\\b",
    "\\Bfoo",
    "^$",
    "",
    "(a|ab)(c|bcd)(d*)",
    ".*a.*b.*c",
    "(a+)+$",
    "[\\w.-]+@[\\w-]+\\.[a-z]{2,}",
    "a{0,2}b",
    "colou?r",
    "colou??r",
    "[]a",
    "[^]",
    "\\x41\\u0042",
    "[-a]",
    "[a-]",
    "(?:x|y)z",
    "(?<n>q)r",
    "\\s\\S",
    "[\\s\\d]+x",
    "a\\/b",
    "]}",
    "\\0",
    "(|a)b",
    "a*?b",
    "[\\b]",
  ];
  const inputs = [
    "",
    "abc",
    "xabcx",
    "ac",
    "abbc",
    "ababc",
    "xxy",
    "xxxxy",
    "bcd",
    "12.5",
    "foo bar",
    "afoo",
    "a.b@ex-ample.com",
    "aaab",
    "aaaa",
    "colour",
    "color",
    "AB",
    "-",
    "xz",
    "qr",
    "a\nb",
    "abcd",
    "ab\u00e9",
    "\u00a0\u00e9",
    " 1 2x",
    "a/b",
    "]}",
    "\0",
    "b",
    "\b",
  ];
  for (const p of patterns) {
    const mine = compileLinearRegex(p);
    const native = new RegExp(p);
    for (const s of inputs) {
      assert.equal(mine(s), native.test(s), `/${p}/ on ${JSON.stringify(s)}`);
    }
  }
  for (const p of ["abc", "[a-c]x", "[^a]", "\\w+Q"]) {
    const mine = compileLinearRegex(`(?i)${p}`);
    const native = new RegExp(p, "i");
    for (const s of ["ABC", "aBcX", "A", "b", "Cx", "B", "zzq", "é"]) {
      assert.equal(mine(s), native.test(s), `/(?i)${p}/ on ${JSON.stringify(s)}`);
    }
  }
});

Deno.test("the regex engine finishes pathological patterns on 1 MiB in linear time", () => {
  const input = "a".repeat(1 << 20);
  const cases: [string, boolean][] = [
    [".*a.*b.*c", false],
    ["(a+)+$", true],
    ["(a|a)*b", false],
    ["(a|aa)+c", false],
    ["^(a?){30}a{30}$", false],
  ];
  for (const [p, expected] of cases) {
    const test = compileLinearRegex(p);
    const started = performance.now();
    assert.equal(test(input), expected, p);
    const ms = performance.now() - started;
    // A backtracking engine takes hours here; generous bound for slow CI machines.
    assert.ok(ms < 10_000, `/${p}/ took ${ms.toFixed(0)} ms`);
  }
});
// ---- globs -----------------------------------------------------------------------------------

Deno.test("globs compile to whole-string matchers", () => {
  assert.equal(compileGlob("/srv/*/*.txt")("/srv/a/b.txt"), true);
  assert.equal(compileGlob("/srv/*/*.txt")("/srv/a/c/b.txt"), false);
  assert.equal(compileGlob("/srv/**")("/srv/a/b/c"), true);
  assert.equal(compileGlob("/srv/**/x")("/srv/x"), false);
  assert.equal(compileGlob("a?c")("abc"), true);
  assert.equal(compileGlob("a?c")("a/c"), false);
  assert.equal(compileGlob("a\\*")("a*"), true);
  assert.equal(compileGlob("a\\*")("ab"), false);
  assert.equal(compileGlob("*.md")("x.md.bak"), false);
});

Deno.test("the linear engine agrees with RegExp on random patterns and inputs", () => {
  // A small generator of patterns in the common subset, and inputs over a tiny alphabet, so that
  // matches, near misses, anchors and word boundaries all occur often.
  // mulberry32 (a product in doubles would lose the low bits that `% n` reads).
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const atoms = [
    "a",
    "b",
    "c",
    "[ab]",
    "[^a]",
    ".",
    "\\d",
    "\\w",
    " ",
    "\\s",
    "(a|bc)",
    "(?:ab|c)",
  ];
  const suffixes = ["", "", "*", "+", "?", "{1,2}"];
  const pattern = (): string => {
    let p = rand(4) === 0 ? "^" : rand(4) === 0 ? "\\b" : "";
    const n = 1 + rand(4);
    for (let i = 0; i < n; i++) p += atoms[rand(atoms.length)]! + suffixes[rand(suffixes.length)]!;
    return p + (rand(4) === 0 ? "$" : rand(5) === 0 ? "\\b" : rand(6) === 0 ? "\\B" : "");
  };
  const alphabet = "abc 1_-é";
  for (let t = 0; t < 400; t++) {
    const source = pattern();
    const linear = compileLinearRegex(source);
    const native = new RegExp(source);
    for (let k = 0; k < 20; k++) {
      let input = "";
      // Mostly short inputs; some long ones walk many states of the lazy DFA.
      const len = rand(10) === 0 ? rand(200) : rand(12);
      for (let i = 0; i < len; i++) input += alphabet[rand(alphabet.length)];
      assert.equal(linear(input), native.test(input), `/${source}/ on ${JSON.stringify(input)}`);
    }
  }
});

Deno.test("the lazy DFA agrees with RegExp when its states outgrow the cache and start over", () => {
  // The n-th character from the end being an a: about 2^12 states, past the cache's budget.
  const linear = compileLinearRegex("a[ab]{12}$");
  const native = /a[ab]{12}$/;
  let seed = 7;
  for (let t = 0; t < 200; t++) {
    let input = "";
    for (let i = 0; i < 300; i++) {
      seed = (Math.imul(seed, 48271) + 1) >>> 0;
      input += (seed >>> 16) % 2 === 0 ? "a" : "b";
    }
    assert.equal(linear(input), native.test(input), input);
  }
});
