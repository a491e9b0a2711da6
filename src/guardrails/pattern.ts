/**
 * A backtracking-free pattern matcher: field patterns (`delete_*`), path globs (`/srv/**`) and a
 * subset of JavaScript regular expressions, each tested in time linear in the input.
 *
 * ## Why not `RegExp`
 * JavaScript's `RegExp` backtracks: a natural pattern such as `.*a.*b.*c` takes hours on a 4 KiB
 * argument, and the values guardrails test come from a model that may be reading attacker-written
 * text. So policy conditions never use it. Patterns here are parsed once, at load, and compiled to
 * an automaton that is simulated over the input in a single pass (Thompson / Pike): for a given
 * pattern the time is linear in the input, with no backtracking and no recursion.
 *
 * ## What is accepted
 * The common JavaScript regex syntax — literals, `.`, classes, `\d \w \s \b`, anchors, groups,
 * alternation, every quantifier — plus a leading `(?i)` for ASCII case-insensitive matching, as in
 * Go's RE2. Refused at compile time, with a {@linkcode PatternError} naming what and where, is what
 * cannot run in linear time or is easy to get wrong: backreferences, lookaround, Unicode property
 * escapes, and patterns longer than {@linkcode REGEX_MAX_PATTERN} or compiling to more than
 * {@linkcode REGEX_MAX_PROGRAM} instructions. A regular expression matches anywhere in the value
 * unless anchored with `^` / `$`, as `RegExp.prototype.test` does; a glob matches the whole value.
 *
 * @example
 * ```ts
 * import { compileGlob, compileLinearRegex, compileNamePattern } from "./pattern.ts";
 *
 * compileNamePattern("delete_*")("delete_file"); // true
 * compileGlob("/srv/**")("/srv/a/b.txt"); // true
 * compileLinearRegex("(?i)^secret")("SECRET-key"); // true
 * ```
 *
 * @module
 */

/** Longest regular expression accepted, in UTF-16 code units. */
export const REGEX_MAX_PATTERN = 1000;
/** Most instructions a regular expression or glob may compile to. */
export const REGEX_MAX_PROGRAM = 2000;
/** Longest value a regular expression is run on; a longer one makes the condition undecidable. */
export const REGEX_MAX_INPUT = 65536;

// ----------------------------------------------------------------------------------------------
// Field patterns: empty and `*` match anything, `*` inside is a wildcard, otherwise exact.

/** Tests one value against a field pattern. */
export type NameMatcher = (value: string) => boolean;

const ANY_NAME: NameMatcher = () => true;

/**
 * Compiles a field pattern (tool name, method, client or server id): empty or `*` matches
 * anything; a `*` inside matches any run of characters; anything else matches exactly. Surrounding
 * spaces are ignored, as in the Go tool. Linear time: the literal pieces are found left to right.
 */
export function compileNamePattern(pattern: string): NameMatcher {
  const p = pattern.trim();
  if (p === "" || p === "*") return ANY_NAME;
  if (!p.includes("*")) return (value) => value === p;
  const parts = p.split("*");
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((s) => s !== "");
  const minLength = first.length + last.length;
  return (value) => {
    if (value.length < minLength || !value.startsWith(first) || !value.endsWith(last)) return false;
    let at = first.length;
    const end = value.length - last.length;
    for (const piece of middle) {
      const found = value.indexOf(piece, at);
      if (found < 0 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  };
}

// ----------------------------------------------------------------------------------------------
// Linear-time patterns: a parser for a RegExp subset and globs, compiled to an automaton that is
// simulated without backtracking (Thompson / Pike).

/** A set of UTF-16 code units as sorted, disjoint, inclusive ranges `[lo, hi, lo, hi, …]`. */
type Ranges = number[];

type Node =
  | { t: "set"; ranges: Ranges }
  | { t: "cat"; items: Node[] }
  | { t: "alt"; items: Node[] }
  | { t: "rep"; item: Node; min: number; max: number }
  | { t: "bol" }
  | { t: "eol" }
  | { t: "wordb"; negated: boolean };

/** A pattern that is malformed or cannot run in linear time; the message says what and where. */
export class PatternError extends Error {}

const MAX_UNIT = 0xffff;
const DIGIT: Ranges = [0x30, 0x39];
const WORD: Ranges = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
// deno-fmt-ignore
const SPACE: Ranges = [
  0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029,
  0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff,
];
const LINE_TERMINATORS: Ranges = [0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029];
const ALL: Ranges = [0, MAX_UNIT];
const SLASH: Ranges = [0x2f, 0x2f];

function normalize(ranges: Ranges): Ranges {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

function complement(ranges: Ranges): Ranges {
  const sorted = normalize(ranges);
  const out: Ranges = [];
  let next = 0;
  for (let i = 0; i < sorted.length; i += 2) {
    if (sorted[i]! > next) out.push(next, sorted[i]! - 1);
    next = sorted[i + 1]! + 1;
  }
  if (next <= MAX_UNIT) out.push(next, MAX_UNIT);
  return out;
}

/** Adds the other case of every ASCII letter in the set. */
function foldAscii(ranges: Ranges): Ranges {
  const extra: Ranges = [];
  for (let i = 0; i < ranges.length; i += 2) {
    const lo = ranges[i]!, hi = ranges[i + 1]!;
    for (const [a, z, shift] of [[0x41, 0x5a, 0x20], [0x61, 0x7a, -0x20]] as const) {
      const l = Math.max(lo, a), h = Math.min(hi, z);
      if (l <= h) extra.push(l + shift, h + shift);
    }
  }
  return normalize([...ranges, ...extra]);
}

/** Parses the supported RegExp subset. Throws {@linkcode PatternError} naming what is wrong. */
class RegexParser {
  #src: string;
  #i = 0;
  #fold: boolean;

  constructor(src: string, fold: boolean) {
    this.#src = src;
    this.#fold = fold;
  }

  parse(): Node {
    const node = this.#alternation();
    if (this.#i < this.#src.length) this.#fail("unmatched )");
    return node;
  }

  #fail(problem: string): never {
    throw new PatternError(`${problem} at offset ${this.#i}`);
  }

  #peek(): string | undefined {
    return this.#src[this.#i];
  }

  #set(ranges: Ranges): Node {
    return { t: "set", ranges: this.#fold ? foldAscii(ranges) : normalize(ranges) };
  }

  #alternation(): Node {
    const items = [this.#sequence()];
    while (this.#peek() === "|") {
      this.#i++;
      items.push(this.#sequence());
    }
    return items.length === 1 ? items[0]! : { t: "alt", items };
  }

  #sequence(): Node {
    const items: Node[] = [];
    for (let c = this.#peek(); c !== undefined && c !== "|" && c !== ")"; c = this.#peek()) {
      items.push(this.#repeat());
    }
    return items.length === 1 ? items[0]! : { t: "cat", items };
  }

  #repeat(): Node {
    const atom = this.#atom();
    const q = this.#quantifier();
    if (q === undefined) return atom;
    if (atom.t === "bol" || atom.t === "eol" || atom.t === "wordb") {
      this.#fail("nothing to repeat");
    }
    if (this.#peek() === "?") this.#i++; // lazy and greedy accept the same inputs
    const again = this.#peek();
    if (again === "*" || again === "+" || again === "?" || again === "{") {
      this.#fail("nothing to repeat");
    }
    return { t: "rep", item: atom, min: q.min, max: q.max };
  }

  #quantifier(): { min: number; max: number } | undefined {
    const c = this.#peek();
    const simple = c === "*"
      ? { min: 0, max: Infinity }
      : c === "+"
      ? { min: 1, max: Infinity }
      : c === "?"
      ? { min: 0, max: 1 }
      : undefined;
    if (simple !== undefined) {
      this.#i++;
      return simple;
    }
    if (c !== "{") return undefined;
    const m = /^\{(\d{1,4})(,(\d{0,4}))?\}/.exec(this.#src.slice(this.#i, this.#i + 12));
    if (m === null) this.#fail("write \\{ for a literal {");
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
    if (min > max) this.#fail("numbers out of order in {} quantifier");
    if (min > 1000 || (max !== Infinity && max > 1000)) this.#fail("repeat count over 1000");
    this.#i += m[0].length;
    return { min, max };
  }

  #atom(): Node {
    const c = this.#src[this.#i++]!;
    switch (c) {
      case "(":
        return this.#group();
      case "[":
        return this.#class();
      case ".":
        return this.#set(complement(LINE_TERMINATORS));
      case "^":
        return { t: "bol" };
      case "$":
        return { t: "eol" };
      case "\\":
        return this.#escape();
      case "*":
      case "+":
      case "?":
        this.#i--;
        return this.#fail("nothing to repeat");
      case "{":
        this.#i--;
        return this.#fail("write \\{ for a literal {");
      default:
        return this.#set(this.#literal(c.charCodeAt(0)));
    }
  }

  #literal(unit: number): Ranges {
    return [unit, unit];
  }

  #group(): Node {
    if (this.#peek() === "?") {
      const rest = this.#src.slice(this.#i, this.#i + 3);
      if (rest.startsWith("?:")) {
        this.#i += 2;
      } else if (/^\?<[A-Za-z_$]/.test(rest)) {
        const close = this.#src.indexOf(">", this.#i);
        if (close < 0) this.#fail("unterminated group name");
        this.#i = close + 1;
      } else if (/^\?(=|!|<=|<!)/.test(rest)) {
        this.#fail("lookaround is not supported");
      } else {
        this.#fail("invalid group");
      }
    }
    const inner = this.#alternation();
    if (this.#peek() !== ")") this.#fail("unterminated group");
    this.#i++;
    return inner;
  }

  /** An escape outside a class: a set, an assertion, or a literal. */
  #escape(): Node {
    const c = this.#peek();
    if (c === "b" || c === "B") {
      this.#i++;
      return { t: "wordb", negated: c === "B" };
    }
    return this.#set(this.#escapeRanges(false));
  }

  /** The ranges an escape stands for; the backslash has been read. */
  #escapeRanges(inClass: boolean): Ranges {
    const c = this.#src[this.#i++];
    if (c === undefined) this.#fail("\\ at end of pattern");
    switch (c) {
      case "d":
        return DIGIT;
      case "D":
        return complement(DIGIT);
      case "w":
        return WORD;
      case "W":
        return complement(WORD);
      case "s":
        return SPACE;
      case "S":
        return complement(SPACE);
      case "t":
        return this.#literal(0x09);
      case "n":
        return this.#literal(0x0a);
      case "v":
        return this.#literal(0x0b);
      case "f":
        return this.#literal(0x0c);
      case "r":
        return this.#literal(0x0d);
      case "b":
        if (inClass) return this.#literal(0x08);
        break;
      case "0":
        if (!/[0-9]/.test(this.#peek() ?? "")) return this.#literal(0);
        break;
      case "x":
      case "u": {
        const digits = c === "x" ? 2 : 4;
        const hex = this.#src.slice(this.#i, this.#i + digits);
        if (hex.length !== digits || !/^[0-9A-Fa-f]+$/.test(hex)) {
          this.#fail(`\\${c} needs ${digits} hex digits`);
        }
        this.#i += digits;
        return this.#literal(parseInt(hex, 16));
      }
    }
    if (/[1-9]/.test(c)) this.#fail("backreferences are not supported");
    if (c === "k") this.#fail("backreferences are not supported");
    if (c === "p" || c === "P") this.#fail("Unicode property escapes are not supported");
    if (/[A-Za-z0-9]/.test(c)) this.#fail(`unsupported escape \\${c}`);
    return this.#literal(c.charCodeAt(0));
  }

  #class(): Node {
    let negated = false;
    if (this.#peek() === "^") {
      negated = true;
      this.#i++;
    }
    const ranges: Ranges = [];
    for (;;) {
      const c = this.#src[this.#i++];
      if (c === undefined) this.#fail("unterminated character class");
      if (c === "]") break;
      const lo = this.#classAtom(c);
      if (
        this.#peek() === "-" && this.#src[this.#i + 1] !== "]" && this.#i + 1 < this.#src.length
      ) {
        this.#i++;
        const hiChar = this.#src[this.#i++]!;
        const hi = this.#classAtom(hiChar);
        if (lo.length !== 2 || hi.length !== 2 || lo[0] !== lo[1] || hi[0] !== hi[1]) {
          this.#fail("a class range needs single characters at both ends");
        }
        if (lo[0]! > hi[0]!) this.#fail("class range out of order");
        ranges.push(lo[0]!, hi[0]!);
      } else {
        ranges.push(...lo);
      }
    }
    const folded = this.#fold ? foldAscii(ranges) : normalize(ranges);
    return { t: "set", ranges: negated ? complement(folded) : folded };
  }

  #classAtom(c: string): Ranges {
    return c === "\\" ? this.#escapeRanges(true) : this.#literal(c.charCodeAt(0));
  }
}

/** Parses a path glob: `*` any run without `/`, `**` any run, `?` one non-`/`, `\` quotes. */
function parseGlob(glob: string): Node {
  const items: Node[] = [{ t: "bol" }];
  const notSlash = complement(SLASH);
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      const double = glob[i + 1] === "*";
      if (double) i++;
      items.push({
        t: "rep",
        item: { t: "set", ranges: double ? ALL : notSlash },
        min: 0,
        max: Infinity,
      });
    } else if (c === "?") {
      items.push({ t: "set", ranges: notSlash });
    } else {
      const unit = c === "\\" && i + 1 < glob.length ? glob.charCodeAt(++i) : c.charCodeAt(0);
      items.push({ t: "set", ranges: [unit, unit] });
    }
  }
  items.push({ t: "eol" });
  return { t: "cat", items };
}

const OP_SET = 0, OP_SPLIT = 1, OP_JMP = 2, OP_BOL = 3, OP_EOL = 4, OP_WORDB = 5, OP_NWORDB = 6;
const OP_MATCH = 7;

/** A compiled automaton. `test` runs in time linear in the input. */
class Automaton {
  #op: Int32Array;
  #x: Int32Array;
  #y: Int32Array;
  #sets: { ascii: Uint8Array; ranges: Ranges }[];
  #mark: Int32Array;
  #gen = 0;
  #stack: Int32Array;
  /** Scratch lists of threads: the closure of a state, and the threads after one unit. */
  #list: Int32Array;
  #targets: Int32Array;
  /**
   * The states met so far, built lazily as inputs need them (a lazy DFA): once a state's
   * transition on an ASCII unit is known, a step costs one table lookup. Bounded by
   * {@linkcode DFA_BUDGET}; past it the cache starts over, so time stays linear in the input.
   */
  #index = new Map<string, DfaState>();
  #cached = 0;
  /** The start state and the two idle ones, once made (forgotten when the cache starts over). */
  #start: DfaState | null = null;
  #idleAfterWord: DfaState | null = null;
  #idleAfterOther: DfaState | null = null;
  /**
   * The code units a match can begin with (ASCII by table; any other unit when `other`), or null
   * when a match can be empty. Lets a search skip what cannot begin a match.
   */
  #first: { ascii: Uint8Array; other: boolean } | null;
  /** Whether every match must begin at position 0 (the program starts with `^`). */
  #anchored: boolean;

  constructor(root: Node) {
    const op: number[] = [], x: number[] = [], y: number[] = [];
    const sets: Ranges[] = [];
    const emit = (o: number, a = 0, b = 0): number => {
      if (op.length >= REGEX_MAX_PROGRAM) {
        throw new PatternError(`compiles to more than ${REGEX_MAX_PROGRAM} instructions`);
      }
      op.push(o), x.push(a), y.push(b);
      return op.length - 1;
    };
    const gen = (n: Node): void => {
      switch (n.t) {
        case "set":
          sets.push(n.ranges);
          emit(OP_SET, sets.length - 1);
          return;
        case "bol":
          emit(OP_BOL);
          return;
        case "eol":
          emit(OP_EOL);
          return;
        case "wordb":
          emit(n.negated ? OP_NWORDB : OP_WORDB);
          return;
        case "cat":
          for (const item of n.items) gen(item);
          return;
        case "alt": {
          const jumps: number[] = [];
          n.items.forEach((item, k) => {
            if (k < n.items.length - 1) {
              const split = emit(OP_SPLIT);
              x[split] = op.length;
              gen(item);
              jumps.push(emit(OP_JMP));
              y[split] = op.length;
            } else {
              gen(item);
            }
          });
          for (const j of jumps) x[j] = op.length;
          return;
        }
        case "rep": {
          for (let k = 0; k < n.min; k++) gen(n.item);
          if (n.max === Infinity) {
            const split = emit(OP_SPLIT);
            x[split] = op.length;
            gen(n.item);
            emit(OP_JMP, split);
            y[split] = op.length;
          } else {
            const splits: number[] = [];
            for (let k = n.min; k < n.max; k++) {
              const split = emit(OP_SPLIT);
              x[split] = op.length;
              splits.push(split);
              gen(n.item);
            }
            for (const s of splits) y[s] = op.length;
          }
          return;
        }
        default:
          return exhausted(n);
      }
    };
    gen(root);
    emit(OP_MATCH);
    this.#op = Int32Array.from(op);
    this.#x = Int32Array.from(x);
    this.#y = Int32Array.from(y);
    this.#sets = sets.map((ranges) => {
      const ascii = new Uint8Array(128);
      for (let i = 0; i < ranges.length; i += 2) {
        for (let u = ranges[i]!; u <= Math.min(ranges[i + 1]!, 127); u++) ascii[u] = 1;
      }
      return { ascii, ranges };
    });
    this.#first = this.#firstUnits();
    this.#anchored = this.#op[0] === OP_BOL;
    const size = op.length;
    this.#mark = new Int32Array(size);
    this.#stack = new Int32Array(size * 2 + 2);
    this.#list = new Int32Array(size);
    this.#targets = new Int32Array(size + 1);
  }

  /** Units that can begin a match: the sets reachable from the start without consuming input. */
  #firstUnits(): { ascii: Uint8Array; other: boolean } | null {
    const ascii = new Uint8Array(128);
    let other = false;
    const seen = new Uint8Array(this.#op.length);
    const stack = [0];
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (seen[p]) continue;
      seen[p] = 1;
      switch (this.#op[p]) {
        case OP_SET: {
          const set = this.#sets[this.#x[p]!]!;
          for (let u = 0; u < 128; u++) ascii[u] ||= set.ascii[u]!;
          const r = set.ranges;
          if (r.length > 0 && r[r.length - 1]! > 127) other = true;
          break;
        }
        case OP_MATCH:
          return null;
        case OP_JMP:
          stack.push(this.#x[p]!);
          break;
        case OP_SPLIT:
          stack.push(this.#x[p]!, this.#y[p]!);
          break;
        default:
          // An assertion: passing it over can only add units, which is safe for skipping.
          stack.push(p + 1);
      }
    }
    return { ascii, other };
  }

  /** The first position from `from` on whose unit can begin a match; the end when none. */
  #skip(input: string, from: number): number {
    const first = this.#first!;
    for (let i = from; i < input.length; i++) {
      const u = input.charCodeAt(i);
      if (u < 128 ? first.ascii[u] === 1 : first.other) return i;
    }
    return input.length;
  }

  #inSet(index: number, unit: number): boolean {
    const set = this.#sets[index]!;
    if (unit < 128) return set.ascii[unit] === 1;
    const r = set.ranges;
    let lo = 0, hi = r.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (unit < r[mid * 2]!) hi = mid - 1;
      else if (unit > r[mid * 2 + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /**
   * Adds the epsilon closure of `pc` to `list` (of length `count`), with the assertions decided
   * by where the closure is taken: at the start, at the end, at a word boundary. Returns the new
   * count, or -1 when the closure reaches MATCH.
   */
  #add(
    list: Int32Array,
    count: number,
    pc: number,
    bol: boolean,
    eol: boolean,
    boundary: boolean,
  ): number {
    const op = this.#op, x = this.#x, y = this.#y, mark = this.#mark, stack = this.#stack;
    const gen = this.#gen;
    let sp = 0;
    stack[sp++] = pc;
    while (sp > 0) {
      const p = stack[--sp]!;
      if (mark[p] === gen) continue;
      mark[p] = gen;
      switch (op[p]) {
        case OP_SET:
          list[count++] = p;
          break;
        case OP_MATCH:
          return -1;
        case OP_JMP:
          stack[sp++] = x[p]!;
          break;
        case OP_SPLIT:
          stack[sp++] = y[p]!;
          stack[sp++] = x[p]!;
          break;
        case OP_BOL:
          if (bol) stack[sp++] = p + 1;
          break;
        case OP_EOL:
          if (eol) stack[sp++] = p + 1;
          break;
        case OP_WORDB:
        case OP_NWORDB:
          if (boundary === (op[p] === OP_WORDB)) stack[sp++] = p + 1;
          break;
      }
    }
    return count;
  }

  /** Starts a new visited-set generation; the marks are Int32, so wrap before they would. */
  #nextGeneration(): void {
    if (this.#gen === 0x7fffffff) {
      this.#mark.fill(0);
      this.#gen = 0;
    }
    this.#gen++;
  }

  /** The state with these threads (sorted) and this past, made when new. */
  #intern(pcs: Int32Array, n: number, prevWord: boolean, atStart: boolean): DfaState {
    let key = prevWord ? (atStart ? "3" : "1") : (atStart ? "2" : "0");
    for (let k = 0; k < n; k++) key += String.fromCharCode(pcs[k]!);
    const known = this.#index.get(key);
    if (known !== undefined) return known;
    this.#cached += n + ASCII_UNITS;
    if (this.#cached > DFA_BUDGET) {
      // Old states stay valid where still referenced (by the input being tested); they are only no
      // longer found here, and go once nothing refers to them.
      this.#index.clear();
      this.#cached = n + ASCII_UNITS;
      this.#start = this.#idleAfterWord = this.#idleAfterOther = null;
    }
    const threads = pcs.slice(0, n);
    const state: DfaState = {
      pcs: threads,
      prevWord,
      atStart,
      idle: n === 1 && threads[0] === 0,
      next: new Array<DfaState>(ASCII_UNITS).fill(UNKNOWN_STATE),
      final: UNKNOWN,
    };
    this.#index.set(key, state);
    return state;
  }

  /** The state at the start of the input: one attempt, about to begin. */
  #initial(): DfaState {
    if (this.#start === null) {
      this.#targets[0] = 0;
      this.#start = this.#intern(this.#targets, 1, false, true);
    }
    return this.#start;
  }

  /** The state where no attempt is alive, after a unit that is (or is not) a word character. */
  #idle(prevWord: boolean): DfaState {
    const known = prevWord ? this.#idleAfterWord : this.#idleAfterOther;
    if (known !== null) return known;
    this.#targets[0] = 0;
    const state = this.#intern(this.#targets, 1, prevWord, false);
    if (prevWord) this.#idleAfterWord = state;
    else this.#idleAfterOther = state;
    return state;
  }

  /**
   * Where `state` goes on `unit`: the next state, or {@linkcode MATCHED} when a match ends before
   * the unit. Every position starts a new attempt (the search is unanchored; an
   * anchored program's attempts die at their `^`).
   */
  #step(state: DfaState, unit: number): DfaState {
    const word = unit < 128 && WORD_UNIT[unit] === 1;
    const boundary = state.prevWord !== word;
    const list = this.#list, targets = this.#targets, pcs = state.pcs;
    this.#nextGeneration();
    let count = 0;
    for (let k = 0; k < pcs.length; k++) {
      count = this.#add(list, count, pcs[k]!, state.atStart, false, boundary);
      if (count < 0) return MATCHED;
    }
    this.#nextGeneration();
    const mark = this.#mark, gen = this.#gen, x = this.#x;
    let n = 0;
    for (let k = 0; k < count; k++) {
      const p = list[k]!;
      if (this.#inSet(x[p]!, unit) && mark[p + 1] !== gen) {
        mark[p + 1] = gen;
        targets[n++] = p + 1;
      }
    }
    if (mark[0] !== gen) targets[n++] = 0;
    targets.subarray(0, n).sort();
    return this.#intern(targets, n, word, false);
  }

  /** Whether `state` matches at the end of the input. */
  #accepts(state: DfaState): boolean {
    if (state.final === UNKNOWN) {
      this.#nextGeneration();
      let matched = false;
      for (let k = 0; k < state.pcs.length && !matched; k++) {
        matched = this.#add(this.#list, 0, state.pcs[k]!, state.atStart, true, state.prevWord) < 0;
      }
      state.final = matched ? 1 : 0;
    }
    return state.final === 1;
  }

  /** Whether the pattern matches somewhere in `input`. */
  test(input: string): boolean {
    const length = input.length;
    let state = this.#initial();
    let at = 0;
    for (;;) {
      if (state.idle) {
        // Anchored at the start: once every attempt from position 0 has died, nothing can match.
        if (this.#anchored && !state.atStart) return false;
        // With no attempt alive, go on at the next position where one could match at all; a
        // match that cannot be empty cannot be found where none can begin.
        if (this.#first !== null) {
          const from = this.#skip(input, at);
          if (from === length) return false;
          if (from !== at) {
            state = this.#idle(isWordAt(input, from - 1));
            at = from;
          }
        }
      }
      if (at === length) return this.#accepts(state);
      const unit = input.charCodeAt(at);
      let next: DfaState;
      if (unit < ASCII_UNITS) {
        next = state.next[unit]!;
        if (next === UNKNOWN_STATE) {
          next = this.#step(state, unit);
          state.next[unit] = next;
        }
      } else {
        next = this.#step(state, unit);
      }
      if (next === MATCHED) return true;
      state = next;
      at++;
    }
  }
}

/** A state of the lazy DFA: the threads alive before a position, and what came before it. */
interface DfaState {
  /** Program counters, sorted, whose closures are not taken yet: they depend on the next unit. */
  readonly pcs: Int32Array;
  /** Whether the unit before is a word character (for `\b`). */
  readonly prevWord: boolean;
  /** Whether this is position 0 (for `^`). */
  readonly atStart: boolean;
  /** Only the attempt about to begin is alive. */
  readonly idle: boolean;
  /**
   * The next state on each ASCII unit: {@linkcode UNKNOWN_STATE} until met, or {@linkcode MATCHED}.
   * A state made before the cache started over stays correct, only no longer shared.
   */
  readonly next: DfaState[];
  /** Whether the state matches at the end: {@linkcode UNKNOWN}, 0 or 1. */
  final: number;
}

const ASCII_UNITS = 128;
const UNKNOWN = -1;
/** Stand-ins in transition tables: not computed yet; a match ends before the unit. */
const UNKNOWN_STATE: DfaState = {
  pcs: new Int32Array(0),
  prevWord: false,
  atStart: false,
  idle: false,
  next: [],
  final: UNKNOWN,
};
const MATCHED: DfaState = { ...UNKNOWN_STATE, next: [] };
/**
 * Most cached lazy-DFA data per pattern, in 32-bit words (256 KiB): each state holds its threads
 * and a table of 128 transitions. A pattern whose states outgrow it starts its cache over.
 */
const DFA_BUDGET = 1 << 16;
const WORD_UNIT = new Uint8Array(ASCII_UNITS);
for (let u = 0; u < ASCII_UNITS; u++) {
  WORD_UNIT[u] = (u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5a) || u === 0x5f ||
      (u >= 0x61 && u <= 0x7a)
    ? 1
    : 0;
}

function isWordAt(input: string, at: number): boolean {
  if (at < 0 || at >= input.length) return false;
  const u = input.charCodeAt(at);
  return (u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5a) || u === 0x5f ||
    (u >= 0x61 && u <= 0x7a);
}

function exhausted(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}

/**
 * Compiles a regular expression (the subset the module notes describe) to a linear-time tester.
 * @throws {Error} naming what is not supported and where
 */
export function compileLinearRegex(pattern: string): (input: string) => boolean {
  if (pattern.length > REGEX_MAX_PATTERN) {
    throw new PatternError(`longer than ${REGEX_MAX_PATTERN} characters`);
  }
  const fold = pattern.startsWith("(?i)");
  const automaton = new Automaton(new RegexParser(fold ? pattern.slice(4) : pattern, fold).parse());
  return (input) => automaton.test(input);
}

/**
 * Compiles a path glob (`*` any run without `/`, `**` any run, `?` one character other than `/`,
 * `\` quotes the next) to a linear-time whole-string tester.
 * @throws {PatternError} when the glob is malformed or too large
 */
export function compileGlob(glob: string): (input: string) => boolean {
  const automaton = new Automaton(parseGlob(glob));
  return (input) => automaton.test(input);
}
