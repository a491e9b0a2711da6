import assert from "node:assert/strict";
import {
  auditDecision,
  compilePolicy,
  GuardrailConfigError,
  type Policy,
  type PolicyDecision,
  policyErrorData,
  type PolicyOptions,
  type PolicyRequest,
} from "./policy.ts";
import { REGEX_MAX_INPUT, REGEX_MAX_PATTERN } from "./pattern.ts";
import { parseLossless } from "../jsonrpc/json.ts";
import type { PolicyRule } from "../config/schema.ts";

const caller = { client_id: "claude-desktop", server_id: "filesystem" };

function call(name: string, args: Record<string, unknown> = {}, who = caller): PolicyRequest {
  return { ...who, method: "tools/call", params: { name, arguments: args } };
}

function request(method: string, params: unknown, who = caller): PolicyRequest {
  return { ...who, method, params };
}

/** The decision, failing the test when the policy passed the request without one. */
function decide(policy: Policy, req: PolicyRequest): PolicyDecision {
  const outcome = policy.evaluate(req);
  assert.equal(outcome.kind, "decision", `expected a decision for ${req.method}`);
  if (outcome.kind !== "decision") throw new Error("unreachable");
  return outcome.decision;
}

const action = (policy: Policy, req: PolicyRequest) => decide(policy, req).action;

function configError(fn: () => unknown): GuardrailConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof GuardrailConfigError) return e;
    throw e;
  }
  throw new Error("expected a GuardrailConfigError");
}

// ---- Go compatibility ------------------------------------------------------------------------

Deno.test("the Go README example denies delete_file for claude-desktop on filesystem with its reason", () => {
  // Exactly what the Go config loader hands over (every field present, empty when unset).
  const rules: PolicyRule[] = [{
    action: "deny",
    client_id: "claude-desktop",
    server_id: "filesystem",
    tool_name: "delete_file",
    method: "",
    reason: "Destructive filesystem operations are blocked",
    when: [],
  }];
  const policy = compilePolicy(rules, { default_action: "allow" });
  const denied = decide(policy, call("delete_file", { path: "/tmp/x" }));
  assert.deepEqual(denied, {
    action: "deny",
    rule: 0,
    reason: "Destructive filesystem operations are blocked",
    enforced: true,
  });
  assert.deepEqual(policyErrorData(denied), {
    action: "deny",
    reason: "Destructive filesystem operations are blocked",
    rule_index: 0,
  });
  assert.deepEqual(auditDecision(denied), {
    action: "deny",
    rule: 0,
    reason: "Destructive filesystem operations are blocked",
  });
  assert.deepEqual(decide(policy, call("read_file")), {
    action: "allow",
    rule: null,
    reason: "",
    enforced: true,
  });
  const other = { client_id: "cursor", server_id: "filesystem" };
  assert.equal(action(policy, call("delete_file", {}, other)), "allow");
  const elsewhere = { client_id: "claude-desktop", server_id: "github" };
  assert.equal(action(policy, call("delete_file", {}, elsewhere)), "allow");
});

Deno.test("default deny with explicit allows gives Go's reasons and rule index -1", () => {
  const policy = compilePolicy([
    { action: "allow", tool_name: "read_file" },
    { action: "allow", tool_name: "list_directory", reason: "browsing is fine" },
  ], { default_action: "deny" });
  assert.deepEqual(decide(policy, call("read_file")), {
    action: "allow",
    rule: 0,
    reason: "",
    enforced: true,
  });
  assert.equal(decide(policy, call("list_directory")).reason, "browsing is fine");
  const denied = decide(policy, call("write_file"));
  assert.deepEqual(denied, {
    action: "deny",
    rule: null,
    reason: "blocked by default policy",
    enforced: true,
  });
  assert.deepEqual(policyErrorData(denied), {
    action: "deny",
    reason: "blocked by default policy",
    rule_index: -1,
  });
});

Deno.test("a deny rule without a reason says blocked by policy", () => {
  const policy = compilePolicy([{ action: "deny", tool_name: "delete_file" }]);
  assert.deepEqual(decide(policy, call("delete_file")), {
    action: "deny",
    rule: 0,
    reason: "blocked by policy",
    enforced: true,
  });
});

Deno.test("empty and * fields match anything; other values match exactly and case-sensitively", () => {
  const policy = compilePolicy([
    { action: "deny", client_id: "*", server_id: "", tool_name: "Delete_File" },
    { action: "deny", client_id: "cursor", tool_name: "*" },
  ]);
  assert.equal(decide(policy, call("Delete_File")).rule, 0);
  assert.equal(action(policy, call("delete_file")), "allow");
  assert.equal(action(policy, call("Delete_File_2")), "allow");
  const cursor = { client_id: "cursor", server_id: "filesystem" };
  assert.equal(decide(policy, call("anything", {}, cursor)).rule, 1);
});

Deno.test("rules are evaluated in order and the first match wins", () => {
  const policy = compilePolicy([
    { action: "allow", tool_name: "delete_file", client_id: "admin" },
    { action: "deny", tool_name: "delete_file" },
    { action: "allow", tool_name: "delete_file" },
  ]);
  const admin = { client_id: "admin", server_id: "filesystem" };
  assert.deepEqual(decide(policy, call("delete_file", {}, admin)).rule, 0);
  assert.deepEqual(decide(policy, call("delete_file")).rule, 1);
});

Deno.test("actions and patterns are trimmed and actions case-insensitive, as in the Go tool", () => {
  const policy = compilePolicy([{ action: " Deny ", tool_name: " delete_file " }], {
    default_action: " ALLOW ",
  });
  assert.equal(action(policy, call("delete_file")), "deny");
  assert.equal(policy.defaultAction, "allow");
});

Deno.test("the Go tool's params.tool_name names the tool when params.name is absent", () => {
  const policy = compilePolicy([{ action: "deny", tool_name: "delete_file" }]);
  const req = request("tools/call", { tool_name: "delete_file" });
  assert.equal(action(policy, req), "deny");
});

// ---- globs -----------------------------------------------------------------------------------

Deno.test("glob fields match prefixes, suffixes and infixes", () => {
  const policy = compilePolicy([
    { action: "deny", tool_name: "delete_*", reason: "no deletes" },
    { action: "deny", tool_name: "*_secret", reason: "no secrets" },
    { action: "deny", tool_name: "git_*_force", reason: "no force" },
    { action: "deny", client_id: "test-*", tool_name: "*" },
  ]);
  assert.equal(decide(policy, call("delete_file")).reason, "no deletes");
  assert.equal(decide(policy, call("delete_")).reason, "no deletes");
  assert.equal(decide(policy, call("read_secret")).reason, "no secrets");
  assert.equal(decide(policy, call("git_push_force")).reason, "no force");
  assert.equal(action(policy, call("git_force")), "allow", "the * needs its own place");
  assert.equal(action(policy, call("undelete_file")), "allow");
  assert.equal(action(policy, call("secret_reader")), "allow");
  const tester = { client_id: "test-runner", server_id: "x" };
  assert.equal(decide(policy, call("read_file", {}, tester)).rule, 3);
});

// ---- methods ---------------------------------------------------------------------------------

Deno.test("a rule without method is about tools/call only, and unnamed methods pass unjudged", () => {
  const policy = compilePolicy([{ action: "deny" }], { default_action: "deny" });
  assert.equal(action(policy, call("read_file")), "deny");
  for (const method of ["initialize", "tools/list", "ping", "resources/read", "prompts/get"]) {
    assert.deepEqual(policy.evaluate(request(method, {})), { kind: "pass" }, method);
  }
});

Deno.test("method rules judge resources, prompts and other methods", () => {
  const policy = compilePolicy([
    { action: "deny", method: "resources/read", reason: "no resources" },
    { action: "deny", method: "prompts/*", reason: "no prompts" },
    { action: "allow", method: "tools/call", tool_name: "read_file" },
  ], { default_action: "allow" });
  assert.equal(decide(policy, request("resources/read", { uri: "file:///x" })).rule, 0);
  assert.equal(decide(policy, request("prompts/get", { name: "p" })).reason, "no prompts");
  assert.equal(decide(policy, request("prompts/list", {})).rule, 1);
  assert.equal(decide(policy, call("read_file")).rule, 2);
  assert.deepEqual(policy.evaluate(request("resources/list", {})), { kind: "pass" });
});

Deno.test("a method some rule names is governed, so the default deny covers what its rules miss", () => {
  const policy = compilePolicy([
    {
      action: "allow",
      method: "resources/read",
      when: [{ path: "uri", op: "prefix", value: "file:///srv/docs/" }],
    },
  ], { default_action: "deny" });
  assert.equal(
    action(policy, request("resources/read", { uri: "file:///srv/docs/a.md" })),
    "allow",
  );
  assert.deepEqual(decide(policy, request("resources/read", { uri: "file:///etc/passwd" })), {
    action: "deny",
    rule: null,
    reason: "blocked by default policy",
    enforced: true,
  });
  assert.deepEqual(policy.evaluate(request("initialize", {})), { kind: "pass" });
});

Deno.test("scope all_operations applies method-less rules and the default to every method", () => {
  const policy = compilePolicy([
    { action: "allow", method: "initialize" },
    { action: "deny", tool_name: "delete_file" },
    { action: "deny", client_id: "cursor" },
  ], { default_action: "allow", scope: "all_operations" });
  assert.equal(decide(policy, request("initialize", {})).rule, 0);
  // Outside tools/call there is no tool name, so a tool_name rule never matches there (as in Go).
  assert.equal(decide(policy, request("resources/read", { name: "delete_file" })).rule, null);
  assert.equal(decide(policy, call("delete_file")).rule, 1);
  const cursor = { client_id: "cursor", server_id: "filesystem" };
  assert.equal(decide(policy, request("ping", {}, cursor)).rule, 2);
  const strict = compilePolicy([], { default_action: "deny", scope: "all_operations" });
  assert.equal(action(strict, request("tools/list", {})), "deny");
});

// ---- conditions ------------------------------------------------------------------------------

const scratchOnly = compilePolicy([{
  action: "deny",
  tool_name: "write_file",
  reason: "writes only under /srv/scratch",
  when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true }],
}]);

Deno.test("deny write_file unless arguments.path is under /srv/scratch", () => {
  assert.equal(action(scratchOnly, call("write_file", { path: "/srv/scratch/a.txt" })), "allow");
  assert.equal(action(scratchOnly, call("write_file", { path: "/srv/scratch/d/e/f" })), "allow");
  assert.deepEqual(decide(scratchOnly, call("write_file", { path: "/etc/passwd" })), {
    action: "deny",
    rule: 0,
    reason: "writes only under /srv/scratch",
    enforced: true,
  });
  assert.equal(action(scratchOnly, call("write_file", { path: "/srv/scratchpad/x" })), "deny");
  assert.equal(action(scratchOnly, call("write_file", {})), "deny", "a missing path is refused");
  assert.equal(action(scratchOnly, call("read_file", { path: "/etc/passwd" })), "allow");
});

Deno.test("a .. segment makes a prefix undecidable, which a deny rule treats as met", () => {
  for (
    const path of [
      "/srv/scratch/../../etc/passwd",
      "/srv/scratch/..",
      "/srv/scratch/%2e%2e/etc/passwd",
      "/srv/scratch/%2E./etc",
      "/srv/scratch/..\\..\\etc",
    ]
  ) {
    assert.equal(action(scratchOnly, call("write_file", { path })), "deny", path);
  }
  assert.equal(action(scratchOnly, call("write_file", { path: "/srv/scratch/a..b" })), "allow");
  // The same value in an allow rule does not allow.
  const allowList = compilePolicy([{
    action: "allow",
    tool_name: "write_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/" }],
  }], { default_action: "deny" });
  assert.equal(action(allowList, call("write_file", { path: "/srv/scratch/ok" })), "allow");
  assert.equal(action(allowList, call("write_file", { path: "/srv/scratch/../x" })), "deny");
});

Deno.test("a text test on a value that is not text refuses under both rule kinds", () => {
  assert.equal(action(scratchOnly, call("write_file", { path: ["/srv/scratch/a"] })), "deny");
  assert.equal(action(scratchOnly, call("write_file", { path: 42 })), "deny");
  const allowList = compilePolicy([{
    action: "allow",
    tool_name: "write_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/" }],
  }], { default_action: "deny" });
  assert.equal(
    action(allowList, call("write_file", { path: { toString: "/srv/scratch/" } })),
    "deny",
  );
});

Deno.test("equals compares strings, numbers by value, booleans and null, never across types", () => {
  const rule = (value: unknown) =>
    compilePolicy([{
      action: "deny",
      tool_name: "t",
      when: [{ path: "arguments.v", op: "equals", value }],
    }]);
  const denies = (p: Policy, v: unknown) => action(p, call("t", { v })) === "deny";
  assert.equal(denies(rule("prod"), "prod"), true);
  assert.equal(denies(rule("prod"), "Prod"), false);
  assert.equal(denies(rule(5), 5), true);
  assert.equal(denies(rule(5), 5.0), true);
  assert.equal(denies(rule(5), "5"), false);
  assert.equal(denies(rule(true), true), true);
  assert.equal(denies(rule(true), "true"), false);
  assert.equal(denies(rule(null), null), true);
  assert.equal(denies(rule(null), undefined), false);
  assert.equal(denies(rule("x"), ["x"]), false);
  const big = parseLossless('{"v":12345678901234567890}');
  const bigRule = rule(12345678901234567000);
  assert.equal(action(bigRule, request("tools/call", { name: "t", arguments: big })), "allow");
});

Deno.test("glob conditions: * stays within a segment, ** crosses them, ? is one character", () => {
  const policy = compilePolicy([
    {
      action: "allow",
      tool_name: "read_file",
      when: [{ path: "arguments.path", op: "glob", value: "/srv/*/notes-??.md" }],
    },
    {
      action: "allow",
      tool_name: "read_file",
      when: [{ path: "arguments.path", op: "glob", value: "/public/**" }],
    },
    {
      action: "allow",
      tool_name: "read_file",
      when: [{ path: "arguments.path", op: "glob", value: "/lit/\\*" }],
    },
  ], { default_action: "deny" });
  const allowed = (path: string) => action(policy, call("read_file", { path })) === "allow";
  assert.equal(allowed("/srv/team/notes-01.md"), true);
  assert.equal(allowed("/srv/team/sub/notes-01.md"), false);
  assert.equal(allowed("/srv/team/notes-1.md"), false);
  assert.equal(allowed("/public/a/b/c.txt"), true);
  assert.equal(allowed("/public/../etc/passwd"), false);
  assert.equal(allowed("/lit/*"), true);
  assert.equal(allowed("/lit/x"), false);
});

Deno.test("regex conditions match anywhere unless anchored, with (?i) for case", () => {
  const policy = compilePolicy([{
    action: "deny",
    tool_name: "read_file",
    reason: "no key material",
    when: [{ path: "arguments.path", op: "regex", value: "(?i)(\\.(env|pem)$|id_rsa)" }],
  }]);
  const denied = (path: string) => action(policy, call("read_file", { path })) === "deny";
  assert.equal(denied("/app/.env"), true);
  assert.equal(denied("/app/.ENV"), true);
  assert.equal(denied("/home/u/.ssh/id_rsa.pub"), true);
  assert.equal(denied("/app/.envrc"), false);
  assert.equal(denied("/app/readme.md"), false);
});

Deno.test("a regex on a value longer than the cap is undecidable", () => {
  const policy = compilePolicy([{
    action: "deny",
    tool_name: "t",
    when: [{ path: "arguments.q", op: "regex", value: "^never$" }],
  }]);
  assert.equal(action(policy, call("t", { q: "x".repeat(REGEX_MAX_INPUT) })), "allow");
  assert.equal(action(policy, call("t", { q: "x".repeat(REGEX_MAX_INPUT + 1) })), "deny");
});

Deno.test("numeric conditions compare numbers, decimal strings and integers beyond 2^53", () => {
  const policy = (op: string, value: number) =>
    compilePolicy([{
      action: "deny",
      tool_name: "pay",
      when: [{ path: "arguments.amount", op, value }],
    }]);
  const denies = (p: Policy, amount: unknown) => action(p, call("pay", { amount })) === "deny";
  const table: [string, number, unknown, boolean][] = [
    ["lt", 10, 9, true],
    ["lt", 10, 10, false],
    ["lte", 10, 10, true],
    ["lte", 10, 10.5, false],
    ["gt", 1000, 1000.01, true],
    ["gt", 1000, 1000, false],
    ["gte", 1000, 1000, true],
    ["gte", 1000, -5, false],
    ["gt", 1000, "5000", true],
    ["gt", 1000, "1e2", false],
    ["lt", 0, "-0.5", true],
  ];
  for (const [op, bound, amount, expected] of table) {
    assert.equal(denies(policy(op, bound), amount), expected, `${amount} ${op} ${bound}`);
  }
  const big = parseLossless('{"amount":12345678901234567891}');
  const p = policy("gt", 12345678901234567000);
  assert.equal(action(p, request("tools/call", { name: "pay", arguments: big })), "deny");
  const bigText = compilePolicy([{
    action: "deny",
    tool_name: "pay",
    when: [{ path: "arguments.amount", op: "gt", value: Number.MAX_SAFE_INTEGER }],
  }]);
  assert.equal(denies(bigText, "9007199254740992"), true, "compared exactly, not as doubles");
  assert.equal(denies(bigText, "9007199254740991"), false);
});

Deno.test("a numeric test on a non-number refuses: a deny rule fires, an allow rule does not", () => {
  const deny = compilePolicy([{
    action: "deny",
    tool_name: "pay",
    when: [{ path: "arguments.amount", op: "gt", value: 1000 }],
  }]);
  assert.equal(action(deny, call("pay", { amount: "lots" })), "deny");
  assert.equal(action(deny, call("pay", { amount: true })), "deny");
  assert.equal(action(deny, call("pay", {})), "allow", "absent is simply not greater");
  const allow = compilePolicy([{
    action: "allow",
    tool_name: "pay",
    when: [{ path: "arguments.amount", op: "lte", value: 100 }],
  }], { default_action: "deny" });
  assert.equal(action(allow, call("pay", { amount: 50 })), "allow");
  assert.equal(action(allow, call("pay", { amount: "lots" })), "deny");
  assert.equal(action(allow, call("pay", { amount: null })), "deny");
});

Deno.test("exists tests presence (null is present) and negate turns it into absence", () => {
  const policy = compilePolicy([
    {
      action: "deny",
      tool_name: "search",
      reason: "no raw queries",
      when: [{ path: "arguments.raw_query", op: "exists" }],
    },
    {
      action: "deny",
      tool_name: "search",
      reason: "a limit is required",
      when: [{ path: "arguments.limit", op: "exists", negate: true }],
    },
  ]);
  assert.equal(
    decide(policy, call("search", { raw_query: null, limit: 1 })).reason,
    "no raw queries",
  );
  assert.equal(decide(policy, call("search", { q: "x" })).reason, "a limit is required");
  assert.equal(action(policy, call("search", { q: "x", limit: 10 })), "allow");
});

Deno.test("negate inverts equals, glob and regex", () => {
  const policy = compilePolicy([
    {
      action: "deny",
      tool_name: "deploy",
      when: [{ path: "arguments.env", op: "equals", value: "staging", negate: true }],
    },
    {
      action: "deny",
      tool_name: "fetch",
      when: [{ path: "arguments.url", op: "regex", value: "^https://", negate: true }],
    },
    {
      action: "deny",
      tool_name: "open",
      when: [{ path: "arguments.file", op: "glob", value: "*.txt", negate: true }],
    },
  ]);
  assert.equal(action(policy, call("deploy", { env: "staging" })), "allow");
  assert.equal(action(policy, call("deploy", { env: "prod" })), "deny");
  assert.equal(action(policy, call("fetch", { url: "https://example.com" })), "allow");
  assert.equal(action(policy, call("fetch", { url: "http://example.com" })), "deny");
  assert.equal(action(policy, call("open", { file: "a.txt" })), "allow");
  assert.equal(action(policy, call("open", { file: "a.sh" })), "deny");
});

Deno.test("all conditions of a rule must hold", () => {
  const policy = compilePolicy([{
    action: "deny",
    tool_name: "transfer",
    when: [
      { path: "arguments.currency", op: "equals", value: "USD" },
      { path: "arguments.amount", op: "gt", value: 100 },
    ],
  }]);
  assert.equal(action(policy, call("transfer", { currency: "USD", amount: 500 })), "deny");
  assert.equal(action(policy, call("transfer", { currency: "EUR", amount: 500 })), "allow");
  assert.equal(action(policy, call("transfer", { currency: "USD", amount: 5 })), "allow");
});

Deno.test("a * path segment means any element for a deny rule and every element for an allow rule", () => {
  const deny = compilePolicy([{
    action: "deny",
    tool_name: "read_multiple_files",
    when: [{ path: "arguments.paths.*", op: "prefix", value: "/srv/", negate: true }],
  }]);
  const allow = compilePolicy([{
    action: "allow",
    tool_name: "read_multiple_files",
    when: [{ path: "arguments.paths.*", op: "prefix", value: "/srv/" }],
  }], { default_action: "deny" });
  for (const policy of [deny, allow]) {
    assert.equal(
      action(policy, call("read_multiple_files", { paths: ["/srv/a", "/srv/b"] })),
      "allow",
    );
    assert.equal(
      action(policy, call("read_multiple_files", { paths: ["/srv/a", "/etc/x"] })),
      "deny",
    );
    assert.equal(action(policy, call("read_multiple_files", { paths: [] })), "deny");
    assert.equal(action(policy, call("read_multiple_files", {})), "deny");
  }
});

Deno.test("paths reach uri, name, array elements and nested members; params. is optional", () => {
  const policy = compilePolicy([
    {
      action: "deny",
      method: "resources/read",
      when: [{ path: "uri", op: "prefix", value: "file:///etc/" }],
    },
    {
      action: "deny",
      method: "prompts/get",
      when: [{ path: "params.name", op: "equals", value: "jailbreak" }],
    },
    {
      action: "deny",
      tool_name: "edit_file",
      when: [{ path: "arguments.edits.0.oldText", op: "exists" }],
    },
    {
      action: "deny",
      tool_name: "query",
      when: [{ path: "arguments.options.mode", op: "equals", value: "raw" }],
    },
    {
      action: "deny",
      tool_name: "proto",
      when: [{ path: "arguments.toString", op: "exists" }],
    },
  ]);
  assert.equal(action(policy, request("resources/read", { uri: "file:///etc/shadow" })), "deny");
  assert.equal(action(policy, request("resources/read", { uri: "file:///srv/x" })), "allow");
  assert.equal(action(policy, request("prompts/get", { name: "jailbreak" })), "deny");
  assert.equal(action(policy, request("prompts/get", { name: "summary" })), "allow");
  assert.equal(
    action(policy, call("edit_file", { edits: [{ oldText: "a", newText: "b" }] })),
    "deny",
  );
  assert.equal(action(policy, call("edit_file", { edits: [] })), "allow");
  assert.equal(action(policy, call("query", { options: { mode: "raw" } })), "deny");
  assert.equal(action(policy, call("query", { options: "raw" })), "allow");
  assert.equal(action(policy, call("query", { options: { mode: "safe" } })), "allow");
  // Inherited members are not members.
  assert.equal(action(policy, call("proto", {})), "allow");
  assert.equal(action(policy, call("proto", { toString: 1 })), "deny");
  assert.equal(action(policy, request("tools/call", null)), "allow");
});

// ---- monitor mode ----------------------------------------------------------------------------

Deno.test("monitor mode returns the would-be decision flagged as not enforced", () => {
  const options: PolicyOptions = { default_action: "deny", mode: "monitor" };
  const policy = compilePolicy([
    { action: "deny", tool_name: "delete_file", reason: "no deletes" },
    { action: "allow", tool_name: "read_file" },
  ], options);
  assert.equal(policy.mode, "monitor");
  assert.deepEqual(decide(policy, call("delete_file")), {
    action: "deny",
    rule: 0,
    reason: "no deletes",
    enforced: false,
  });
  assert.deepEqual(decide(policy, call("other")), {
    action: "deny",
    rule: null,
    reason: "blocked by default policy",
    enforced: false,
  });
  assert.equal(decide(policy, call("read_file")).enforced, false);
  const tools = [{ name: "delete_file" }, { name: "read_file" }, { name: "other" }];
  assert.deepEqual(policy.visibleTools(tools, caller), { visible: tools, hidden: [] });
});

// ---- tools/list filtering --------------------------------------------------------------------

Deno.test("visibleTools hides a tool only when every call to it would be refused", () => {
  const policy = compilePolicy([
    { action: "deny", tool_name: "delete_*" },
    {
      action: "deny",
      tool_name: "write_file",
      when: [{ path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true }],
    },
    {
      action: "allow",
      tool_name: "move_file",
      when: [{ path: "arguments.source", op: "prefix", value: "/srv/" }],
    },
    { action: "deny", tool_name: "move_file" },
    { action: "allow", tool_name: "read_*" },
    { action: "allow", tool_name: "admin_*", client_id: "ops" },
    { action: "allow", tool_name: "write_file" },
  ], { default_action: "deny" });
  const tools = [
    { name: "delete_file", description: "d" },
    { name: "write_file" },
    { name: "move_file" },
    { name: "read_file" },
    { name: "read_media" },
    { name: "admin_reset" },
    { name: "list_directory" },
    { description: "no name" },
  ];
  const seen = policy.visibleTools(tools, caller);
  assert.deepEqual(seen.visible.map((t) => t.name), [
    "write_file",
    "move_file",
    "read_file",
    "read_media",
    undefined,
  ]);
  assert.deepEqual(seen.hidden, ["delete_file", "admin_reset", "list_directory"]);
  assert.equal(seen.visible[0], tools[1], "the tool objects themselves are kept");
  const ops = policy.visibleTools(tools, { client_id: "ops", server_id: "filesystem" });
  assert.equal(ops.hidden.includes("admin_reset"), false);
});

Deno.test("visibleTools with default allow hides only unconditional denials", () => {
  const policy = compilePolicy([
    { action: "deny", tool_name: "delete_file", client_id: "claude-desktop" },
    { action: "deny", tool_name: "shell", method: "resources/read" },
  ]);
  const tools = [{ name: "delete_file" }, { name: "shell" }, { name: "read_file" }];
  assert.deepEqual(policy.visibleTools(tools, caller).hidden, ["delete_file"]);
  const other = { client_id: "cursor", server_id: "filesystem" };
  assert.deepEqual(policy.visibleTools(tools, other).hidden, []);
});

// ---- validation ------------------------------------------------------------------------------

Deno.test("validation errors name the rule index and field", () => {
  const cases: [unknown[], PolicyOptions, string, RegExp][] = [
    [[{ action: "allow" }, { tool_name: "x" }], {}, "policy.rules[1].action", /allow or deny/],
    [[{ action: "block" }], {}, "policy.rules[0].action", /"block"/],
    [[{ action: "deny", tool: "x" }], {}, "policy.rules[0].tool", /unknown rule field/],
    [[{ action: "deny", client_id: 7 }], {}, "policy.rules[0].client_id", /must be a string/],
    [["deny"], {}, "policy.rules[0]", /must be a map/],
    [[{ action: "deny", when: { path: "a" } }], {}, "policy.rules[0].when", /list/],
    [[{ action: "deny", when: ["a"] }], {}, "policy.rules[0].when[0]", /must be a map/],
    [
      [{
        action: "deny",
        when: [{ path: "a", op: "equals", value: 1 }, { path: "", op: "exists" }],
      }],
      {},
      "policy.rules[0].when[1].path",
      /dotted path/,
    ],
    [
      [{ action: "deny", when: [{ path: "a..b", op: "exists" }] }],
      {},
      "policy.rules[0].when[0].path",
      /empty segment/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "startsWith" }] }],
      {},
      "policy.rules[0].when[0].op",
      /one of/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "lt", value: "5" }] }],
      {},
      "policy.rules[0].when[0].value",
      /number/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "prefix", value: "" }] }],
      {},
      "policy.rules[0].when[0].value",
      /non-empty string/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "equals", value: [1] }] }],
      {},
      "policy.rules[0].when[0].value",
      /string, number/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "exists", value: true }] }],
      {},
      "policy.rules[0].when[0].value",
      /no value/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "exists", negate: "yes" }] }],
      {},
      "policy.rules[0].when[0].negate",
      /true or false/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "exists", flags: "i" }] }],
      {},
      "policy.rules[0].when[0].flags",
      /unknown condition field/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "regex", value: "(a)\\1" }] }],
      {},
      "policy.rules[0].when[0].value",
      /backreferences/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "regex", value: "a(?=b)" }] }],
      {},
      "policy.rules[0].when[0].value",
      /lookaround/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "regex", value: "(unclosed" }] }],
      {},
      "policy.rules[0].when[0].value",
      /unterminated group/,
    ],
    [
      [{
        action: "deny",
        when: [{ path: "a", op: "regex", value: "x".repeat(REGEX_MAX_PATTERN + 1) }],
      }],
      {},
      "policy.rules[0].when[0].value",
      /longer than/,
    ],
    [
      [{ action: "deny", when: [{ path: "a", op: "regex", value: "(a{1000}){1000}" }] }],
      {},
      "policy.rules[0].when[0].value",
      /instructions/,
    ],
    [[], { default_action: "block" }, "policy.default_action", /allow or deny/],
    [[], { mode: "audit" }, "policy.mode", /enforce or monitor/],
    [[], { scope: "everything" }, "policy.scope", /tools_only or all_operations/],
  ];
  for (const [rules, options, key, problem] of cases) {
    const e = configError(() => compilePolicy(rules, options));
    assert.equal(e.key, key, `${JSON.stringify(rules)} ${JSON.stringify(options)}: ${e.message}`);
    assert.match(e.problem, problem, e.message);
    assert.equal(e.message, `${key}: ${e.problem}`);
  }
});

Deno.test("null rule fields count as absent, as in the configuration loader", () => {
  const policy = compilePolicy([{ action: "deny", tool_name: null, when: null }]);
  assert.equal(action(policy, call("anything")), "deny");
});

Deno.test("a condition's path present only in another case is undecidable: deny rules fire, allow rules do not", () => {
  const deny = compilePolicy([{
    action: "deny",
    tool_name: "read_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/etc/" }],
  }]);
  const sneaky = { name: "read_file", arguments: { PATH: "/etc/shadow" } };
  const outcome = deny.evaluate({
    client_id: "c",
    server_id: "s",
    method: "tools/call",
    params: sneaky,
  });
  assert.equal(outcome.kind === "decision" && outcome.decision.action, "deny");
  const allow = compilePolicy([{
    action: "allow",
    tool_name: "read_file",
    when: [{ path: "arguments.path", op: "prefix", value: "/srv/" }],
  }], { default_action: "deny" });
  const allowed = allow.evaluate({
    client_id: "c",
    server_id: "s",
    method: "tools/call",
    params: { name: "read_file", arguments: { Path: "/srv/x" } },
  });
  assert.equal(allowed.kind === "decision" && allowed.decision.rule, null, "the default decides");
});
