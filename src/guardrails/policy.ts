/**
 * The policy engine: ordered, first-match allow/deny rules over who calls what, with conditions
 * on a request's arguments and URIs. Pure: rules are checked and compiled once, at load, and
 * `evaluate` does no I/O and keeps no state.
 *
 * ## Go compatibility
 * A Go-tool `policy:` section works unchanged and decides the same way: rules in order, the first
 * whose `client_id`, `server_id` and `tool_name` match wins; an empty field or `*` matches any
 * value, anything else matches exactly; no match means `default_action`. A deny rule without a
 * `reason` says `blocked by policy`, the default deny `blocked by default policy`, and the default
 * decision has rule index -1 on the wire (`null` in the record). As in the Go tool's default
 * `tools_only` scope, a rule without `method` is about `tools/call`, and methods no rule names are
 * not judged at all (`initialize`, `tools/list`, `ping` pass with no decision).
 *
 * ## Additions
 * - `*` inside a field is a wildcard for any run of characters: `delete_*`, `*_file`, `resources/*`.
 * - `method` names any MCP method. A method some rule names is governed: when no rule matches it,
 *   `default_action` applies to it as to `tools/call`. `scope: all_operations` (a newer Go key)
 *   governs every method and makes a rule without `method` match every method.
 * - `when`: conditions on the request's `params`, all of which must hold (see {@linkcode ConditionOp}).
 *   A path is dotted (`arguments.path`, `uri`, `name`; a leading `params.` is allowed); a numeric
 *   segment indexes an array and a `*` segment stands for every element (or member value).
 * - `mode: monitor` decides as usual but flags every decision `enforced: false`: the caller records
 *   would-be denials and lets the request through.
 *
 * ## Failing closed
 * A condition can be undecidable: a `prefix` or `glob` test on a path with a `..` segment (which a
 * server may resolve outside the prefix), a text test on a value that is not text, a numeric test on
 * a value that is not a number, a regular expression on a value longer than
 * {@linkcode REGEX_MAX_INPUT}. An undecidable condition counts as met for a deny rule and as unmet
 * for an allow rule, so it can only ever make a call more likely to be refused. For the same reason
 * a `*` path segment means "any element" in a deny rule and "every element" in an allow rule.
 * Prefer allow-lists ("deny `write_file` unless `arguments.path` is under `/srv/scratch/`") to
 * deny-lists of bad values: an exact or prefix test on text can be sidestepped by another spelling
 * of the same path, and the server's own confinement stays the last line of defence.
 *
 * ## Regular expressions
 * JavaScript's `RegExp` backtracks, and arguments come from a model that may be reading
 * attacker-written text, so conditions never use it: `regex`, `glob` and the field patterns run on
 * the backtracking-free engine in `pattern.ts`, in time linear in the input. It accepts the common
 * JavaScript syntax plus a leading `(?i)` for ASCII case-insensitive matching, as in Go's RE2, and
 * refuses at load what cannot run in linear time (backreferences, lookaround) and overlong
 * patterns. A pattern matches anywhere in the value unless anchored with `^` / `$`, as
 * `RegExp.prototype.test` does.
 *
 * @example
 * ```ts
 * import { compilePolicy } from "./policy.ts";
 *
 * const policy = compilePolicy([
 *   { action: "deny", tool_name: "write_file", reason: "writes only under /srv/scratch",
 *     when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true }] },
 * ], { default_action: "allow" });
 * const outcome = policy.evaluate({
 *   client_id: "claude-desktop", server_id: "filesystem", method: "tools/call",
 *   params: { name: "write_file", arguments: { path: "/etc/passwd", content: "x" } },
 * });
 * // outcome.kind === "decision", outcome.decision.action === "deny", rule 0
 * ```
 *
 * @module
 */
import { foldName } from "../jsonrpc/ambiguous.ts";
import { isRawNumber } from "../jsonrpc/json.ts";
import { calledTool } from "../jsonrpc/message.ts";
import {
  compileGlob,
  compileLinearRegex,
  compileNamePattern,
  type NameMatcher,
  PatternError,
  REGEX_MAX_INPUT,
} from "./pattern.ts";

// The rate limiter takes its field patterns from here.

// ----------------------------------------------------------------------------------------------
// Errors

/**
 * A guardrail setting that cannot be used, naming the configuration key at fault
 * (`policy.rules[2].when[0].op`). The configuration loader turns it into its own error (exit 2).
 */
export class GuardrailConfigError extends Error {
  override name = "GuardrailConfigError";
  constructor(readonly key: string, readonly problem: string) {
    super(`${key}: ${problem}`);
  }
}

// ----------------------------------------------------------------------------------------------
// Input: what configuration hands over (a superset of the Go tool's rule)

/** The tests a condition can make. */
export const CONDITION_OPS = [
  "equals",
  "prefix",
  "glob",
  "regex",
  "lt",
  "lte",
  "gt",
  "gte",
  "exists",
] as const;

/**
 * A condition's test:
 * - `equals`: the value is this string, number, boolean or null (same type; numbers by value).
 * - `prefix`: the text starts with this string.
 * - `glob`: the whole text matches: `*` any run without `/`, `**` any run, `?` one character
 *   other than `/`, `\` quotes the next character.
 * - `regex`: the text contains a match of this pattern (see the module notes).
 * - `lt`, `lte`, `gt`, `gte`: the number (a JSON number or a decimal string) compares so.
 * - `exists`: the path is present (a JSON `null` is present); takes no `value`.
 */
export type ConditionOp = typeof CONDITION_OPS[number];

/** One condition as configured. Checked by {@linkcode compilePolicy}. */
export interface ConditionInput {
  readonly path: string;
  readonly op: string;
  readonly value?: unknown;
  readonly negate?: boolean | undefined;
}

/** One rule as configured: the Go tool's fields, plus `method` and `when`. */
export interface PolicyRuleInput {
  readonly action: string;
  readonly client_id?: string | undefined;
  readonly server_id?: string | undefined;
  readonly tool_name?: string | undefined;
  readonly method?: string | undefined;
  readonly reason?: string | undefined;
  /** Conditions, all of which must hold; left as `unknown` so the loader can pass YAML through. */
  readonly when?: readonly unknown[] | null | undefined;
}

/** Settings beside the rules. Keys as in `config.yaml` under `policy.`. */
export interface PolicyOptions {
  /** `allow` (default) or `deny`; case and spaces ignored, as in the Go tool. */
  readonly default_action?: string | undefined;
  /** `enforce` (default) or `monitor`. */
  readonly mode?: string | undefined;
  /** `tools_only` (default, Go's default) or `all_operations`. */
  readonly scope?: string | undefined;
}

// ----------------------------------------------------------------------------------------------
// Output

/** Allow or deny. */
export type PolicyAction = "allow" | "deny";
/** Whether denials are carried out. */
export type PolicyMode = "enforce" | "monitor";
/** Which methods a rule without `method` is about, and which methods are judged at all. */
export type PolicyScope = "tools_only" | "all_operations";

/** Who is asking: the identities rules match on. */
export interface PolicyCaller {
  readonly client_id: string;
  readonly server_id: string;
}

/** One request to judge. `params` is the request's `params` as parsed (wire input). */
export interface PolicyRequest extends PolicyCaller {
  readonly method: string;
  readonly params: unknown;
}

/** What the policy decided. */
export interface PolicyDecision {
  readonly action: PolicyAction;
  /** Index of the deciding rule; `null` for `default_action` (-1 on the wire, as in Go). */
  readonly rule: number | null;
  readonly reason: string;
  /** False in monitor mode: a deny is what would have happened. */
  readonly enforced: boolean;
}

/** The policy's outcome for one request. */
export type PolicyOutcome =
  /** The method is not governed by this policy (no rule names it, outside `scope`). */
  | { readonly kind: "pass" }
  | { readonly kind: "decision"; readonly decision: PolicyDecision };

/** Which tools of a `tools/list` result to show, and the names of those hidden. */
export interface ToolVisibility<T> {
  readonly visible: T[];
  readonly hidden: string[];
}

/** The audit record's `decision` (SPEC §3) for a policy decision. */
export function auditDecision(
  d: PolicyDecision,
): { action: PolicyAction; rule: number | null; reason: string } {
  return { action: d.action, rule: d.rule, reason: d.reason };
}

/** `data` of the `-32030` error for a denial (Go-compatible: rule_index -1 for the default). */
export function policyErrorData(
  d: PolicyDecision,
): { action: PolicyAction; reason: string; rule_index: number } {
  return { action: d.action, reason: d.reason, rule_index: d.rule ?? -1 };
}

const BLOCKED_BY_POLICY = "blocked by policy";
const PASS: PolicyOutcome = { kind: "pass" };
/** Most caller, method and tool combinations whose matching rules are remembered. */
const CANDIDATE_CACHE = 4096;
const BLOCKED_BY_DEFAULT = "blocked by default policy";
const TOOLS_CALL = "tools/call";
/** The fields a rule may have: the Go tool's, plus `method` and `when`. */
export const RULE_FIELDS = [
  "action",
  "client_id",
  "server_id",
  "tool_name",
  "method",
  "reason",
  "when",
] as const;
const CONDITION_FIELDS = ["path", "op", "value", "negate"] as const;

// ----------------------------------------------------------------------------------------------
// Conditions

/** Three-valued truth: a condition can be undecidable. */
const enum Truth {
  False = 0,
  True = 1,
  Unknown = 2,
}

type Numeric = { num: number; big: bigint | null };

type Test = (value: unknown) => Truth;

interface Condition {
  /** Path segments under `params`; `*` is every element. */
  readonly segments: readonly string[];
  /** Each segment as an array index (-1 when it is not digits), worked out once, at load. */
  readonly indexes: readonly number[];
  /** Each segment folded ({@linkcode foldName}), for the test of a name in another case. */
  readonly folded: readonly string[];
  /** Whether a segment is `*`, so the path may lead to several values. */
  readonly spread: boolean;
  readonly test: Test;
  readonly negate: boolean;
}

// A `..` segment (also percent-encoded, also with backslashes) may lead a server out of a prefix.
const DOT_DOT = /(^|[/\\])(\.|%2e){2}([/\\]|$)/i;
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Whether a path may hold a `..` segment: {@linkcode DOT_DOT}, after a cheap test for `.` or `%`. */
function mayClimb(value: string): boolean {
  return (value.includes(".") || value.includes("%")) && DOT_DOT.test(value);
}
const INTEGER_TEXT = /^-?\d+$/;

function toNumeric(value: unknown): Numeric | null {
  if (typeof value === "number") {
    // An integral double converts exactly, so big integers compare by their exact value.
    return { num: value, big: Number.isInteger(value) ? BigInt(value) : null };
  }
  if (isRawNumber(value)) {
    const digits = value.rawJSON;
    return { num: Number(digits), big: INTEGER_TEXT.test(digits) ? BigInt(digits) : null };
  }
  if (typeof value === "string" && DECIMAL.test(value)) {
    return { num: Number(value), big: INTEGER_TEXT.test(value) ? BigInt(value) : null };
  }
  return null;
}

function compare(a: Numeric, b: Numeric): number {
  if (a.big !== null && b.big !== null) return a.big < b.big ? -1 : a.big > b.big ? 1 : 0;
  return a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
}

function textTest(check: (text: string) => boolean, pathLike: boolean, cap: number): Test {
  return (value) => {
    if (value === undefined) return Truth.False;
    if (typeof value !== "string") return Truth.Unknown;
    if (value.length > cap) return Truth.Unknown;
    if (pathLike && mayClimb(value)) return Truth.Unknown;
    return check(value) ? Truth.True : Truth.False;
  };
}

function numericTest(bound: number, accept: (sign: number) => boolean): Test {
  const b = toNumeric(bound)!;
  return (value) => {
    if (value === undefined) return Truth.False;
    // Two doubles compare exactly as they are; digits beyond a double go the exact way below.
    if (typeof value === "number") {
      return accept(value < bound ? -1 : value > bound ? 1 : 0) ? Truth.True : Truth.False;
    }
    const n = toNumeric(value);
    if (n === null) return Truth.Unknown;
    return accept(compare(n, b)) ? Truth.True : Truth.False;
  };
}

function equalsTest(expected: string | number | boolean | null): Test {
  if (typeof expected === "number") {
    const b = toNumeric(expected)!;
    return (value) => {
      if (typeof value !== "number" && !isRawNumber(value)) return Truth.False;
      return compare(toNumeric(value)!, b) === 0 ? Truth.True : Truth.False;
    };
  }
  return (value) => (value === expected ? Truth.True : Truth.False);
}

/** The values at a path under `root`; empty when the path is absent. */
function resolve(root: unknown, c: Condition): unknown[] | typeof CASE_VARIANT {
  let current: unknown[] = [root];
  const segments = c.segments;
  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s]!;
    const next: unknown[] = [];
    for (const value of current) {
      if (typeof value !== "object" || value === null || isRawNumber(value)) continue;
      if (segment === "*") {
        // One at a time: spread into push, an array of 200,000 items overflows the call stack.
        for (const item of Array.isArray(value) ? value : Object.values(value)) next.push(item);
      } else if (Array.isArray(value)) {
        const index = c.indexes[s]!;
        if (index >= 0 && index < value.length) next.push(value[index]);
      } else if (Object.hasOwn(value, segment)) {
        next.push((value as Record<string, unknown>)[segment]);
      } else if (hasOtherCase(value, c.folded[s]!)) {
        return CASE_VARIANT;
      }
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

/**
 * Stands for a path that is absent as written but present in another case (`PATH` for `path`):
 * a server matching names without regard to case reads a value the condition cannot see.
 */
const CASE_VARIANT = Symbol("case variant");

/** Whether a member of `object` (not the segment itself, which is absent) folds to `folded`. */
function hasOtherCase(object: object, folded: string): boolean {
  for (const key of Object.keys(object)) if (foldsTo(key, folded)) return true;
  return false;
}

/**
 * Whether `foldName(key) === folded`, without building the folded key when it is ASCII: ASCII
 * folds one unit at a time, to lower case, so an ASCII unit that differs before any other settles
 * it; from the first other unit on, the key is folded the exact way.
 */
function foldsTo(key: string, folded: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit >= 0x80) return foldName(key) === folded;
    const lower = unit >= 0x41 && unit <= 0x5a ? unit + 0x20 : unit;
    if (i >= folded.length || lower !== folded.charCodeAt(i)) return false;
  }
  return key.length === folded.length;
}

function negateTruth(t: Truth, negate: boolean): Truth {
  if (!negate || t === Truth.Unknown) return t;
  return t === Truth.True ? Truth.False : Truth.True;
}

/**
 * A condition's truth for one request. Over several values (a `*` segment) a deny rule needs any
 * value to meet it, an allow rule every value: the reading that refuses more.
 */
/** The value at a path without `*`: one value or none, found without building lists. */
function resolveOne(root: unknown, c: Condition): unknown {
  let value = root;
  const segments = c.segments;
  for (let s = 0; s < segments.length; s++) {
    if (typeof value !== "object" || value === null || isRawNumber(value)) return undefined;
    const segment = segments[s]!;
    if (Array.isArray(value)) {
      const index = c.indexes[s]!;
      if (index < 0 || index >= value.length) return undefined;
      value = value[index];
    } else if (Object.hasOwn(value, segment)) {
      value = (value as Record<string, unknown>)[segment];
    } else {
      return hasOtherCase(value, c.folded[s]!) ? CASE_VARIANT : undefined;
    }
  }
  return value;
}

function conditionTruth(c: Condition, params: unknown, every: boolean): Truth {
  if (!c.spread) {
    const value = resolveOne(params, c);
    if (value === CASE_VARIANT) return Truth.Unknown;
    return negateTruth(c.test(value), c.negate);
  }
  const values = resolve(params, c);
  if (values === CASE_VARIANT) return Truth.Unknown;
  if (values.length === 0) return negateTruth(c.test(undefined), c.negate);
  let unknown = false;
  for (const value of values) {
    const t = negateTruth(c.test(value), c.negate);
    if (t === Truth.Unknown) unknown = true;
    else if ((t === Truth.True) !== every) return t;
  }
  return unknown ? Truth.Unknown : every ? Truth.True : Truth.False;
}

// ----------------------------------------------------------------------------------------------
// Compiling and evaluating

interface CompiledRule {
  readonly action: PolicyAction;
  readonly reason: string;
  readonly clientId: NameMatcher;
  readonly serverId: NameMatcher;
  readonly toolName: NameMatcher;
  readonly method: NameMatcher;
  /** Whether `method` was written (it makes the method governed in the `tools_only` scope). */
  readonly namesMethod: boolean;
  readonly conditions: readonly Condition[];
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  return `${typeof value} ${JSON.stringify(value)}`;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function choice<T extends string>(
  key: string,
  raw: string | undefined,
  values: readonly T[],
  fallback: T,
): T {
  if (raw === undefined) return fallback;
  const v = String(raw).trim().toLowerCase();
  if (v === "") return fallback;
  const found = values.find((x) => x === v);
  if (found === undefined) {
    throw new GuardrailConfigError(key, `must be ${values.join(" or ")}, got ${describe(raw)}`);
  }
  return found;
}

function compileCondition(where: string, raw: unknown): Condition {
  if (!isMap(raw)) throw new GuardrailConfigError(where, `must be a map, got ${describe(raw)}`);
  for (const name of Object.keys(raw)) {
    if (!(CONDITION_FIELDS as readonly string[]).includes(name)) {
      throw new GuardrailConfigError(
        `${where}.${name}`,
        `unknown condition field (known: ${CONDITION_FIELDS.join(", ")})`,
      );
    }
  }
  const path = raw.path;
  if (typeof path !== "string" || path.trim() === "") {
    throw new GuardrailConfigError(
      `${where}.path`,
      `must be a dotted path such as arguments.path, got ${describe(path)}`,
    );
  }
  let segments = path.trim().split(".");
  if (segments[0] === "params" && segments.length > 1) segments = segments.slice(1);
  if (segments.some((s) => s === "")) {
    throw new GuardrailConfigError(
      `${where}.path`,
      `has an empty segment: ${JSON.stringify(path)}`,
    );
  }
  const opRaw = raw.op;
  const op = CONDITION_OPS.find((o) => o === opRaw);
  if (op === undefined) {
    throw new GuardrailConfigError(
      `${where}.op`,
      `must be one of ${CONDITION_OPS.join(", ")}, got ${describe(opRaw)}`,
    );
  }
  const negate = raw.negate ?? false;
  if (typeof negate !== "boolean") {
    throw new GuardrailConfigError(
      `${where}.negate`,
      `must be true or false, got ${describe(negate)}`,
    );
  }
  const value = raw.value;
  const valueKey = `${where}.value`;
  const needText = (): string => {
    if (typeof value !== "string" || value === "") {
      throw new GuardrailConfigError(
        valueKey,
        `${op} needs a non-empty string, got ${describe(value)}`,
      );
    }
    return value;
  };
  const needNumber = (): number => {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new GuardrailConfigError(valueKey, `${op} needs a number, got ${describe(value)}`);
    }
    return value;
  };
  let test: Test;
  switch (op) {
    case "equals":
      if (
        !(typeof value === "string" || typeof value === "boolean" || value === null ||
          (typeof value === "number" && Number.isFinite(value)))
      ) {
        throw new GuardrailConfigError(
          valueKey,
          `equals needs a string, number, boolean or null, got ${describe(value)}`,
        );
      }
      test = equalsTest(value);
      break;
    case "prefix": {
      const prefix = needText();
      test = textTest((s) => s.startsWith(prefix), true, Infinity);
      break;
    }
    case "glob": {
      const glob = compileGlobAt(valueKey, needText());
      test = textTest(glob, true, Infinity);
      break;
    }
    case "regex": {
      const source = needText();
      let regex: (input: string) => boolean;
      try {
        regex = compileLinearRegex(source);
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        throw new GuardrailConfigError(valueKey, `regular expression ${e.message}`);
      }
      test = textTest(regex, false, REGEX_MAX_INPUT);
      break;
    }
    case "lt":
      test = numericTest(needNumber(), (s) => s < 0);
      break;
    case "lte":
      test = numericTest(needNumber(), (s) => s <= 0);
      break;
    case "gt":
      test = numericTest(needNumber(), (s) => s > 0);
      break;
    case "gte":
      test = numericTest(needNumber(), (s) => s >= 0);
      break;
    case "exists":
      if (value !== undefined) {
        throw new GuardrailConfigError(
          valueKey,
          "exists takes no value (use negate: true for absent)",
        );
      }
      test = (v) => (v === undefined ? Truth.False : Truth.True);
      break;
    default:
      return exhausted(op);
  }
  return {
    segments,
    // As `Number(segment)` read it for an array: digits only (leading zeros too).
    indexes: segments.map((s) => (/^\d+$/.test(s) ? Number(s) : -1)),
    folded: segments.map(foldName),
    spread: segments.includes("*"),
    test,
    negate,
  };
}

function exhausted(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}

function compileGlobAt(key: string, glob: string): (input: string) => boolean {
  try {
    return compileGlob(glob);
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    throw new GuardrailConfigError(key, `glob ${e.message}`);
  }
}

function compileRule(where: string, raw: unknown, scope: PolicyScope): CompiledRule {
  if (!isMap(raw)) throw new GuardrailConfigError(where, `must be a map, got ${describe(raw)}`);
  const text = new Map<string, string>();
  for (const [name, value] of Object.entries(raw)) {
    if (!(RULE_FIELDS as readonly string[]).includes(name)) {
      throw new GuardrailConfigError(
        `${where}.${name}`,
        `unknown rule field (known: ${RULE_FIELDS.join(", ")})`,
      );
    }
    if (name === "when" || value === null || value === undefined) continue;
    if (typeof value !== "string") {
      throw new GuardrailConfigError(
        `${where}.${name}`,
        `must be a string, got ${describe(value)}`,
      );
    }
    text.set(name, value.trim());
  }
  const actionText = (text.get("action") ?? "").toLowerCase();
  if (actionText !== "allow" && actionText !== "deny") {
    throw new GuardrailConfigError(
      `${where}.action`,
      `must be allow or deny, got ${JSON.stringify(text.get("action") ?? "")}`,
    );
  }
  const when = raw.when ?? [];
  if (!Array.isArray(when)) {
    throw new GuardrailConfigError(
      `${where}.when`,
      `must be a list of conditions, got ${describe(when)}`,
    );
  }
  const conditions = when.map((c: unknown, j) => compileCondition(`${where}.when[${j}]`, c));
  const methodText = text.get("method") ?? "";
  const reason = text.get("reason") ?? "";
  return {
    action: actionText,
    reason: reason === "" && actionText === "deny" ? BLOCKED_BY_POLICY : reason,
    clientId: compileNamePattern(text.get("client_id") ?? ""),
    serverId: compileNamePattern(text.get("server_id") ?? ""),
    toolName: compileNamePattern(text.get("tool_name") ?? ""),
    method: methodText !== ""
      ? compileNamePattern(methodText)
      : scope === "all_operations"
      ? compileNamePattern("*")
      : compileNamePattern(TOOLS_CALL),
    namesMethod: methodText !== "",
    conditions,
  };
}

/** The tool a `tools/call` names (`params.name`, or the Go tool's fallback `params.tool_name`). */
function toolNameOf(method: string, params: unknown): string {
  return method === TOOLS_CALL ? calledTool(params) ?? "" : "";
}

function fieldsMatch(
  r: CompiledRule,
  caller: PolicyCaller,
  method: string,
  tool: string,
): boolean {
  return r.clientId(caller.client_id) && r.serverId(caller.server_id) && r.method(method) &&
    r.toolName(tool);
}

/** The rules whose fields match, by method and then tool, for one client and server. */
type CandidateTable = Map<string, Map<string, readonly number[]>>;

/** A compiled policy. Build with {@linkcode compilePolicy}. */
export class Policy {
  readonly #rules: readonly CompiledRule[];
  /** Each rule's outcome, made once: a rule decides the same way every time it matches. */
  readonly #outcomes: readonly PolicyOutcome[];
  readonly #defaultOutcome: PolicyOutcome;
  /** Candidate tables by client and server (length-prefixed, so no two pairs share a key). */
  readonly #matching = new Map<string, CandidateTable>();
  /** How many method and tool combinations the tables hold, all callers together. */
  #remembered = 0;
  /** The table last used, and for whom: a proxy judges for one client and server. */
  #lastClient: string | null = null;
  #lastServer: string | null = null;
  #lastTable: CandidateTable | null = null;
  readonly defaultAction: PolicyAction;
  readonly mode: PolicyMode;
  readonly scope: PolicyScope;

  /** @internal use {@linkcode compilePolicy} */
  constructor(
    rules: readonly CompiledRule[],
    defaultAction: PolicyAction,
    mode: PolicyMode,
    scope: PolicyScope,
  ) {
    this.#rules = rules;
    this.defaultAction = defaultAction;
    this.mode = mode;
    this.scope = scope;
    const enforced = mode === "enforce";
    this.#outcomes = rules.map((r, i) => ({
      kind: "decision",
      decision: { action: r.action, rule: i, reason: r.reason, enforced },
    }));
    this.#defaultOutcome = {
      kind: "decision",
      decision: {
        action: defaultAction,
        rule: null,
        reason: defaultAction === "deny" ? BLOCKED_BY_DEFAULT : "",
        enforced,
      },
    };
  }

  /** Number of rules. */
  get size(): number {
    return this.#rules.length;
  }

  /**
   * The rules whose fields match this caller, method and tool, in order. Remembered, since a
   * proxy sees few distinct combinations; the memory is bounded, as tool names come from clients.
   */
  #candidates(caller: PolicyCaller & { readonly method: string }, tool: string): readonly number[] {
    const byTool = this.#byTool(caller);
    let found = byTool.get(tool);
    if (found !== undefined) return found;
    const matching: number[] = [];
    for (let i = 0; i < this.#rules.length; i++) {
      if (fieldsMatch(this.#rules[i]!, caller, caller.method, tool)) matching.push(i);
    }
    found = matching;
    if (this.#remembered >= CANDIDATE_CACHE) {
      this.#matching.clear();
      this.#lastTable = null;
      this.#remembered = 0;
      this.#byTool(caller).set(tool, found);
    } else {
      byTool.set(tool, found);
    }
    this.#remembered++;
    return found;
  }

  /** The candidates by tool of this caller and method. */
  #byTool(caller: PolicyCaller & { readonly method: string }): Map<string, readonly number[]> {
    let table = this.#lastTable;
    if (
      table === null || caller.client_id !== this.#lastClient ||
      caller.server_id !== this.#lastServer
    ) {
      const key = `${caller.client_id.length}:${caller.client_id}${caller.server_id}`;
      table = this.#matching.get(key) ?? new Map();
      this.#matching.set(key, table);
      this.#lastClient = caller.client_id;
      this.#lastServer = caller.server_id;
      this.#lastTable = table;
    }
    let byTool = table.get(caller.method);
    if (byTool === undefined) {
      byTool = new Map();
      table.set(caller.method, byTool);
    }
    return byTool;
  }

  #governs(method: string): boolean {
    return this.scope === "all_operations" || method === TOOLS_CALL ||
      this.#rules.some((r) => r.namesMethod && r.method(method));
  }

  /** Judges one request: the first matching rule, else the default for a governed method. */
  evaluate(request: PolicyRequest): PolicyOutcome {
    const tool = toolNameOf(request.method, request.params);
    const rules = this.#rules;
    const candidates = this.#candidates(request, tool);
    for (let k = 0; k < candidates.length; k++) {
      const i = candidates[k]!;
      const r = rules[i]!;
      const conditions = r.conditions;
      if (conditions.length > 0) {
        const every = r.action === "allow";
        let truth = Truth.True;
        for (let j = 0; j < conditions.length; j++) {
          const t = conditionTruth(conditions[j]!, request.params, every);
          if (t === Truth.False) {
            truth = t;
            break;
          }
          if (t === Truth.Unknown) truth = t;
        }
        // Undecidable: a deny rule fires, an allow rule does not.
        if (truth === Truth.False || (truth === Truth.Unknown && every)) continue;
      }
      return this.#outcomes[i]!;
    }
    if (!this.#governs(request.method)) return PASS;
    return this.#defaultOutcome;
  }

  /**
   * Splits the tools of a `tools/list` result into those the caller may call with some arguments
   * and those every call to which would be refused: an unconditional deny rule matches before any
   * allow rule that could, or none matches and the default is deny. A tool without a string `name`
   * is kept. In monitor mode nothing is refused, so nothing is hidden.
   */
  visibleTools<T>(tools: readonly T[], caller: PolicyCaller): ToolVisibility<T> {
    const visible: T[] = [];
    const hidden: string[] = [];
    for (const tool of tools) {
      const name = isMap(tool) && typeof tool.name === "string" ? tool.name : undefined;
      if (name === undefined || this.mode === "monitor" || this.#mayCall(name, caller)) {
        visible.push(tool);
      } else {
        hidden.push(name);
      }
    }
    return { visible, hidden };
  }

  #mayCall(tool: string, caller: PolicyCaller): boolean {
    for (const r of this.#rules) {
      if (!fieldsMatch(r, caller, TOOLS_CALL, tool)) continue;
      if (r.action === "allow") return true;
      if (r.conditions.length === 0) return false;
    }
    return this.defaultAction === "allow";
  }
}

/**
 * Checks and compiles rules and settings, once, at load.
 * @throws {GuardrailConfigError} naming the key at fault, e.g. `policy.rules[3].when[0].value`
 */
export function compilePolicy(
  rules: readonly PolicyRuleInput[] | readonly unknown[],
  options: PolicyOptions = {},
): Policy {
  const defaultAction = choice(
    "policy.default_action",
    options.default_action,
    ["allow", "deny"] as const,
    "allow",
  );
  const mode = choice("policy.mode", options.mode, ["enforce", "monitor"] as const, "enforce");
  const scope = choice(
    "policy.scope",
    options.scope,
    ["tools_only", "all_operations"] as const,
    "tools_only",
  );
  if (!Array.isArray(rules)) {
    throw new GuardrailConfigError(
      "policy.rules",
      `must be a list of rules, got ${describe(rules)}`,
    );
  }
  const compiled = rules.map((r: unknown, i) => compileRule(`policy.rules[${i}]`, r, scope));
  return new Policy(compiled, defaultAction, mode, scope);
}
