/**
 * The compiled policy (candidate tables by caller, method and tool; conditions compiled once; the
 * lazy-DFA pattern engine) against a straightforward reading of the rules kept here: every rule in
 * order, every field and condition worked out from scratch with `RegExp`, on generated policies
 * and calls. An indexing or caching bug decides some call differently and fails.
 */
import assert from "node:assert/strict";
import { compilePolicy, type PolicyOutcome, type PolicyRuleInput } from "./policy.ts";
import { foldName } from "../jsonrpc/ambiguous.ts";

// mulberry32: seeded, so a failure repeats.
let seed = 20261206;
const rand = (n: number): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) % n;
};
const pick = <T>(items: readonly T[]): T => items[rand(items.length)]!;

// ---- the reference --------------------------------------------------------------------------

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

function nameMatches(pattern: string | undefined, value: string): boolean {
  const p = (pattern ?? "").trim();
  if (p === "" || p === "*") return true;
  return new RegExp(`^${p.split("*").map(escape).join("[\\s\\S]*")}$`).test(value);
}

function globRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      out += "[\\s\\S]*";
      i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else if (c === "\\" && i + 1 < glob.length) out += escape(glob[++i]!);
    else out += escape(c);
  }
  return new RegExp(`^${out}$`);
}

type Truth = "T" | "F" | "U";
const CASE = Symbol("case");

function lookUp(value: unknown, segments: readonly string[]): unknown[] | typeof CASE {
  if (segments.length === 0) return [value];
  if (typeof value !== "object" || value === null) return [];
  const [head, ...rest] = segments as [string, ...string[]];
  const out: unknown[] = [];
  if (head === "*") {
    for (const item of Object.values(value)) {
      const found = lookUp(item, rest);
      if (found === CASE) return CASE;
      out.push(...found);
    }
    return out;
  }
  if (Array.isArray(value)) {
    return /^\d+$/.test(head) && Number(head) < value.length
      ? lookUp(value[Number(head)], rest)
      : [];
  }
  if (Object.hasOwn(value, head)) return lookUp(Reflect.get(value, head), rest);
  if (Object.keys(value).some((k) => foldName(k) === foldName(head))) {
    return CASE;
  }
  return [];
}

interface Cond {
  path: string;
  op: string;
  value?: string | number | boolean | null;
  negate?: boolean;
}

function testValue(c: Cond, v: unknown): Truth {
  if (c.op === "exists") return v === undefined ? "F" : "T";
  if (v === undefined) return c.op === "equals" ? "F" : "F";
  if (c.op === "equals") {
    if (typeof c.value === "number") return typeof v === "number" && v === c.value ? "T" : "F";
    return v === c.value ? "T" : "F";
  }
  if (c.op === "prefix" || c.op === "glob" || c.op === "regex") {
    if (typeof v !== "string") return "U";
    if (c.op !== "regex" && /(^|[/\\])(\.|%2e){2}([/\\]|$)/i.test(v)) return "U";
    const text = String(c.value);
    if (c.op === "prefix") return v.startsWith(text) ? "T" : "F";
    if (c.op === "glob") return globRegExp(text).test(v) ? "T" : "F";
    const fold = text.startsWith("(?i)");
    return new RegExp(fold ? text.slice(4) : text, fold ? "i" : "").test(v) ? "T" : "F";
  }
  const n = typeof v === "number"
    ? v
    : typeof v === "string" && /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v)
    ? Number(v)
    : null;
  if (n === null) return "U";
  const b = Number(c.value);
  const ok = c.op === "lt" ? n < b : c.op === "lte" ? n <= b : c.op === "gt" ? n > b : n >= b;
  return ok ? "T" : "F";
}

function conditionTruth(c: Cond, params: unknown, every: boolean): Truth {
  let segments = c.path.split(".");
  if (segments[0] === "params" && segments.length > 1) segments = segments.slice(1);
  const values = lookUp(params, segments);
  if (values === CASE) return "U";
  const flip = (t: Truth): Truth => (!c.negate || t === "U" ? t : t === "T" ? "F" : "T");
  if (values.length === 0) return flip(testValue(c, undefined));
  const truths = values.map((v) => flip(testValue(c, v)));
  const decided = truths.find((t) => t !== "U" && (t === "T") !== every);
  if (decided !== undefined) return decided;
  return truths.includes("U") ? "U" : every ? "T" : "F";
}

interface Rule extends PolicyRuleInput {
  action: string;
  client_id?: string;
  server_id?: string;
  tool_name?: string;
  method?: string;
  reason?: string;
  when?: Cond[];
}

interface Options {
  default_action: "allow" | "deny";
  mode: "enforce" | "monitor";
  scope: "tools_only" | "all_operations";
}

function reference(
  rules: readonly Rule[],
  o: Options,
  request: { client_id: string; server_id: string; method: string; params: unknown },
): PolicyOutcome {
  const enforced = o.mode === "enforce";
  const params = request.params;
  let tool = "";
  if (request.method === "tools/call" && typeof params === "object" && params !== null) {
    const name: unknown = Reflect.get(params, "name");
    const fallback: unknown = Reflect.get(params, "tool_name");
    tool = typeof name === "string" && name !== ""
      ? name
      : typeof fallback === "string"
      ? fallback
      : typeof name === "string"
      ? name
      : "";
  }
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    const method = r.method ?? (o.scope === "all_operations" ? "*" : "tools/call");
    if (
      !nameMatches(r.client_id, request.client_id) ||
      !nameMatches(r.server_id, request.server_id) ||
      !nameMatches(method, request.method) || !nameMatches(r.tool_name, tool)
    ) continue;
    const every = r.action === "allow";
    const truths = (r.when ?? []).map((c) => conditionTruth(c, params, every));
    if (truths.includes("F") || (truths.includes("U") && every)) continue;
    const reason = r.reason ?? (r.action === "deny" ? "blocked by policy" : "");
    return {
      kind: "decision",
      decision: { action: r.action === "deny" ? "deny" : "allow", rule: i, reason, enforced },
    };
  }
  const governed = o.scope === "all_operations" || request.method === "tools/call" ||
    rules.some((r) => r.method !== undefined && nameMatches(r.method, request.method));
  if (!governed) return { kind: "pass" };
  return {
    kind: "decision",
    decision: {
      action: o.default_action,
      rule: null,
      reason: o.default_action === "deny" ? "blocked by default policy" : "",
      enforced,
    },
  };
}

// ---- generated policies and calls ------------------------------------------------------------

const TOOLS = ["read_file", "write_file", "search_issues", "search_code", "delete_repo", "get_x"];
const TOOL_PATTERNS = [...TOOLS, "", "*", "search_*", "*_file", "*e*", "delete_*", "get_*_y"];
const IDS = ["claude", "cursor", "untrusted-1", "fs", "legacy-git"];
const ID_PATTERNS = ["", "", "", "*", "claude", "untrusted-*", "legacy-*", "*s*"];
const METHODS = ["tools/call", "tools/call", "resources/read", "prompts/get", "ping"];
const METHOD_PATTERNS = [undefined, undefined, undefined, "tools/call", "resources/*", "ping"];
const PATHS = [
  "arguments.path",
  "arguments.repo",
  "arguments.limit",
  "params.arguments.tags.*",
  "arguments.tags.0",
  "uri",
  "arguments.missing",
  "arguments.user",
  "name",
];
const TEXTS = ["/srv/a.txt", "/srv/../etc", "acme/widgets", "acme/vault", "is:open bug", "x", ""];

function condition(): Cond {
  const op = pick(["equals", "prefix", "glob", "regex", "lt", "lte", "gt", "gte", "exists"]);
  const c: Cond = { path: pick(PATHS), op };
  if (rand(3) === 0) c.negate = true;
  switch (op) {
    case "equals":
      c.value = pick<string | number | boolean | null>(["acme/widgets", 20, true, null, "x"]);
      break;
    case "prefix":
      c.value = pick(["/srv/", "acme/", "is:"]);
      break;
    case "glob":
      c.value = pick(["/srv/**", "acme/*", "is:*", "**/.env", "*/?idgets", "**"]);
      break;
    case "regex":
      c.value = pick(["^acme/(vault|internal-.*)$", "(?i)\\b(secret|bug)\\b", "\\S", "^/srv"]);
      break;
    case "exists":
      break;
    default:
      c.value = pick([0, 20, 100, 500]);
  }
  return c;
}

function rule(): Rule {
  const r: Rule = { action: pick(["allow", "deny"]) };
  const clientId = pick(ID_PATTERNS), serverId = pick(ID_PATTERNS), tool = pick(TOOL_PATTERNS);
  const method = pick(METHOD_PATTERNS);
  if (clientId !== "") r.client_id = clientId;
  if (serverId !== "") r.server_id = serverId;
  if (tool !== "") r.tool_name = tool;
  if (method !== undefined) r.method = method;
  if (rand(2) === 0) r.reason = pick(["no", "not here"]);
  const n = rand(4);
  if (n > 0) r.when = Array.from({ length: n }, condition);
  return r;
}

function text(): unknown {
  return pick<unknown>([...TEXTS, 20, "20", 700, "1e3", true, null]);
}

function params(method: string, tool: string): unknown {
  const args: Record<string, unknown> = {};
  for (const key of ["path", "repo", "limit", "query"]) if (rand(3) !== 0) args[key] = text();
  if (rand(4) === 0) args.tags = Array.from({ length: rand(3) }, text);
  // Names in another case (`ſ` folds to `s`); `usér` is another name.
  if (rand(4) === 0) args[pick(["PATH", "Path", "pATh"])] = text();
  if (rand(2) === 0) args[pick(["user", "USER", "uſer", "User", "usér"])] = text();
  if (rand(10) === 0) args.Missing = 1;
  const p: Record<string, unknown> = { arguments: args };
  if (method === "tools/call") p[rand(10) === 0 ? "tool_name" : "name"] = tool;
  if (rand(3) === 0) p.uri = pick(["file:///etc/passwd", "file:///srv/x", "acme/widgets"]);
  if (method === "prompts/get") p.name = pick(["jailbreak", "summary"]);
  return p;
}

Deno.test("the compiled policy decides every generated call as a rule-by-rule reading does", () => {
  for (let t = 0; t < 150; t++) {
    const rules = Array.from({ length: 1 + rand(30) }, rule);
    const options: Options = {
      default_action: pick(["allow", "deny"]),
      mode: pick(["enforce", "enforce", "monitor"]),
      scope: pick(["tools_only", "tools_only", "all_operations"]),
    };
    const policy = compilePolicy(rules, options);
    // A few callers, methods and tools, each met many times, so remembered candidates are used.
    const ids = [pick(IDS), pick(IDS)], methods = [pick(METHODS), pick(METHODS)];
    const tools = [pick(TOOLS), pick(TOOLS)];
    const shapes = Array.from({ length: 8 }, () => ({
      client_id: pick(ids),
      server_id: pick(ids),
      method: pick(methods),
      tool: pick(tools),
    }));
    for (let k = 0; k < 150; k++) {
      const { client_id, server_id, method, tool } = pick(shapes);
      const request = { client_id, server_id, method, params: params(method, tool) };
      // Twice: the second answer comes from the remembered candidates.
      for (let again = 0; again < 2; again++) {
        assert.deepEqual(
          policy.evaluate(request),
          reference(rules, options, request),
          `${JSON.stringify(rules)}\n${JSON.stringify(options)}\n${JSON.stringify(request)}`,
        );
      }
    }
  }
});

Deno.test("the compiled policy keeps deciding as the reading does past its memory of candidates", () => {
  const rules: Rule[] = Array.from({ length: 20 }, rule);
  rules.push({ action: "deny", tool_name: "t*9", reason: "nines" });
  const options: Options = { default_action: "allow", mode: "enforce", scope: "tools_only" };
  const policy = compilePolicy(rules, options);
  // More distinct callers and tools than the policy remembers, then the first ones again.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 5000; i++) {
      const request = {
        client_id: IDS[i % IDS.length]!,
        server_id: IDS[(i >> 3) % IDS.length]!,
        method: "tools/call",
        params: { name: `t${i}`, arguments: { path: TEXTS[i % TEXTS.length]! } },
      };
      assert.deepEqual(policy.evaluate(request), reference(rules, options, request));
    }
  }
});
