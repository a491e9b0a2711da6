/**
 * Hot reload over real processes: the MCP SDK client → mcp-audit → server-everything over stdio,
 * with a `config.yaml` that the test rewrites (in place or by renaming a new file over it) or a
 * SIGHUP. Every wait is for a line the proxy writes on stderr; the audit log is read and verified
 * once the session is over.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  answerTo,
  assert,
  assertChain,
  assertEquals,
  assertNoStrays,
  type AuditRecord,
  deadline,
  descendants,
  EVERYTHING,
  type Json,
  pick,
  type Proc,
  processTable,
  ProxyProcess,
  readLog,
  rewriteInPlace,
  tempDir,
  verifyLog,
} from "./helpers.ts";

/** What a test body gets: the running proxy, a connected client, and where the config lives. */
interface Session {
  proxy: ProxyProcess;
  client: Client;
  /** The configuration file the proxy watches. */
  configPath: string;
  signal: AbortSignal;
}

type LogLine = Record<string, unknown>;

/**
 * Writes `yaml` as the configuration, starts the proxy in front of server-everything, runs `body`,
 * closes the session and checks that it ended cleanly and that the whole log verifies. Returns the
 * records for the test's own checks.
 * @param options.configAt a path under the test directory given with `--config`; by default
 *   `config.yaml` in the proxy's working directory is read
 */
async function session(
  label: string,
  yaml: string,
  body: (s: Session) => Promise<void>,
  options: { configAt?: string } = {},
): Promise<AuditRecord[]> {
  await using dir = await tempDir(`reload-${label}`);
  const signal = deadline(120_000);
  const configPath = `${dir.path}/${options.configAt ?? "config.yaml"}`;
  await Deno.mkdir(configPath.slice(0, configPath.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(configPath, yaml);
  const flags = options.configAt === undefined ? [] : ["--config", configPath];
  let family: Proc[] = [];
  let exitCode: number | undefined;
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: EVERYTHING, flags });
    const client = new Client({ name: "reload-e2e", version: "1.0.0" });
    await client.connect(proxy.transport());
    await proxy.upstreamPid(signal);
    family = descendants(await processTable(), proxy.pid);
    await body({ proxy, client, configPath, signal });
    await client.close();
    exitCode = (await proxy.finished(signal)).code;
  }
  await assertNoStrays(dir.path, family);
  assertEquals(exitCode, 0, "the proxy exits 0 after the client closes");
  const logPath = `${dir.path}/audit.jsonl`;
  const file = await readLog(logPath);
  await assertChain(file);
  const verified = await verifyLog(logPath);
  assertEquals(verified.code, 0, `verify exits 0:\n${verified.stdout}${verified.stderr}`);
  return file.records;
}

/** Waits until `count` log lines satisfy `match`; returns the last of them. */
async function nthLogLine(
  s: Session,
  match: (line: LogLine) => boolean,
  count: number,
  what: string,
): Promise<LogLine> {
  const found = () => s.proxy.logLines().filter(match);
  await s.proxy.stderr.waitFor(() => found().length >= count, what, s.signal);
  return found()[count - 1]!;
}

const isReloaded = (l: LogLine): boolean => l.msg === "configuration reloaded";
const isRejected = (l: LogLine): boolean =>
  typeof l.msg === "string" && l.msg.startsWith("configuration reload rejected");

/** Waits for the `count`th "configuration reloaded" line. */
function reloaded(s: Session, count: number): Promise<LogLine> {
  return nthLogLine(s, isReloaded, count, `reload #${count} to be applied`);
}

/** Waits for the `count`th "configuration reload rejected" line. */
function rejected(s: Session, count: number): Promise<LogLine> {
  return nthLogLine(s, isRejected, count, `reload #${count} to be rejected`);
}

/** Saves the configuration the way editors that save by rename do. */
async function saveByRename(path: string, yaml: string): Promise<void> {
  const temp = `${path}.saving`;
  await Deno.writeTextFile(temp, yaml);
  await Deno.rename(temp, path);
}

/** Calls `echo` and returns its text; fails if the proxy refuses. */
async function echo(client: Client, message: string): Promise<string> {
  const result = CallToolResultSchema.parse(
    await client.callTool({ name: "echo", arguments: { message } }),
  );
  const first = result.content[0];
  assert(first !== undefined && first.type === "text", "echo answers with text");
  return first.text;
}

/** Calls a tool that the proxy must refuse; returns the JSON-RPC error the client got. */
async function refused(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<{ code: number; data: unknown }> {
  try {
    await client.callTool({ name, arguments: args });
  } catch (e) {
    // The SDK throws its McpError, carrying the JSON-RPC error's code and data.
    if (e instanceof Error && "code" in e && typeof e.code === "number") {
      return { code: e.code, data: "data" in e ? e.data : undefined };
    }
    throw e;
  }
  throw new Error(`the call of ${name} was not refused`);
}

function asObject(value: Json | undefined, what: string): { [key: string]: Json } {
  assert(
    typeof value === "object" && value !== null && !Array.isArray(value),
    `${what} is an object`,
  );
  return value;
}

function reloadEvents(records: readonly AuditRecord[]): { [key: string]: Json }[] {
  return pick(records, { kind: "event", method: "audit/reload" }).map((r) =>
    asObject(r.params, `audit/reload seq ${r.seq} params`)
  );
}

function startEvent(records: readonly AuditRecord[]): { [key: string]: Json } {
  const start = records[0]!;
  assertEquals(start.method, "audit/start");
  return asObject(start.params, "audit/start params");
}

/** The tools/call requests for `tool`, in order. */
function callsOf(records: readonly AuditRecord[], tool: string): AuditRecord[] {
  return pick(records, { kind: "request", method: "tools/call", tool_name: tool });
}

const HEX64 = /^[0-9a-f]{64}$/;

const ALLOW_ECHO = `policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      tool_name: get-sum
      reason: "sums are switched off"
`;

const DENY_ECHO = `policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      tool_name: get-sum
      reason: "sums are switched off"
    - action: deny
      tool_name: echo
      reason: "echo is switched off"
`;

const ECHO_DENIED = {
  code: -32030,
  data: { action: "deny", reason: "echo is switched off", rule_index: 1 },
};

Deno.test("rewriting config.yaml to deny a tool refuses the next call with -32030 and records audit/reload from the file", async () => {
  const records = await session("file", ALLOW_ECHO, async (s) => {
    assertEquals(await echo(s.client, "before"), "Echo: before");
    rewriteInPlace(s.configPath, DENY_ECHO);
    const line = await reloaded(s, 1);
    assertEquals([line.trigger, line.outcome, line.changed], ["file", "applied", 1]);
    assertEquals(await refused(s.client, "echo", { message: "after" }), ECHO_DENIED);
  });

  const start = startEvent(records);
  assert(HEX64.test(String(start.policy_digest)), "audit/start records the policy digest");
  const events = reloadEvents(records);
  assertEquals(events.length, 1, "one save, one audit/reload");
  const event = events[0]!;
  assertEquals(
    [event.trigger, event.outcome, event.changed, event.restart_needed],
    ["file", "applied", ["policy.rules"], []],
  );
  assert(HEX64.test(String(event.policy_digest)), "audit/reload records the policy digest");
  assert(event.policy_digest !== start.policy_digest, "the new policy has another digest");
  assert(event.config_digest !== start.config_digest, "the new config has another digest");

  const [before, after] = callsOf(records, "echo");
  assert(before !== undefined && after !== undefined, "both echo calls are recorded");
  assertEquals(before.decision, { action: "allow", rule: null, reason: "" });
  assertEquals(after.decision, { action: "deny", rule: 1, reason: "echo is switched off" });
  const reload = pick(records, { kind: "event", method: "audit/reload" })[0]!;
  assert(
    answerTo(records, before).seq < reload.seq && reload.seq < after.seq,
    "the reload lies between the allowed call's answer and the refused call",
  );
  const answer = answerTo(records, after);
  assertEquals(answer.kind, "error");
  assertEquals(answer.error, { code: -32030, message: "policy denied", data: ECHO_DENIED.data });
});

Deno.test("SIGHUP reloads and always records audit/reload with trigger signal, even when nothing changed", async () => {
  const records = await session("sighup", DENY_ECHO, async (s) => {
    assertEquals(await refused(s.client, "echo", { message: "1" }), ECHO_DENIED);
    s.proxy.child.kill("SIGHUP");
    const first = await reloaded(s, 1);
    assertEquals([first.trigger, first.outcome, first.changed], ["signal", "unchanged", 0]);
    assertEquals(await refused(s.client, "echo", { message: "2" }), ECHO_DENIED);
    s.proxy.child.kill("SIGHUP");
    await reloaded(s, 2);
    assertEquals(await refused(s.client, "echo", { message: "3" }), ECHO_DENIED);
  });

  const start = startEvent(records);
  const events = reloadEvents(records);
  assertEquals(events.length, 2, "every SIGHUP is recorded");
  for (const event of events) {
    assertEquals(
      [event.trigger, event.outcome, event.changed, event.restart_needed],
      ["signal", "unchanged", [], []],
    );
    assertEquals(event.policy_digest, start.policy_digest, "the policy is the one of the start");
    assertEquals(event.config_digest, start.config_digest, "the config is the one of the start");
  }
});

Deno.test("an invalid config file is rejected naming the key, the old policy stays in force, and a fixed file then applies", async () => {
  const badAction = `policy:
  enabled: true
  default_action: allow
  rules:
    - action: block
      tool_name: echo
`;
  const badYaml = `policy:\n  enabled: [true\n  rules: {\n`;
  const unknownKey = `policy:\n  enabeld: true\n`;
  const fixed = `policy:\n  enabled: true\n  default_action: allow\n  rules: []\n`;
  const errors: unknown[] = [];
  const records = await session("invalid", DENY_ECHO, async (s) => {
    assertEquals(await refused(s.client, "echo", { message: "0" }), ECHO_DENIED);

    rewriteInPlace(s.configPath, badAction);
    errors.push((await rejected(s, 1)).error);
    assertEquals(await refused(s.client, "echo", { message: "1" }), ECHO_DENIED);

    rewriteInPlace(s.configPath, badYaml);
    errors.push((await rejected(s, 2)).error);
    assertEquals(await refused(s.client, "echo", { message: "2" }), ECHO_DENIED);

    rewriteInPlace(s.configPath, unknownKey);
    errors.push((await rejected(s, 3)).error);
    assertEquals(await refused(s.client, "echo", { message: "3" }), ECHO_DENIED);

    rewriteInPlace(s.configPath, fixed);
    const line = await reloaded(s, 1);
    assertEquals([line.trigger, line.outcome], ["file", "applied"]);
    assertEquals(await echo(s.client, "4"), "Echo: 4");
  });

  // The stderr line names the key and says what is wrong.
  assertEquals(errors.length, 3);
  assert(String(errors[0]).startsWith("policy.rules[0].action: "), String(errors[0]));
  assert(String(errors[0]).includes("block"), String(errors[0]));
  assert(String(errors[1]).includes("not valid YAML"), String(errors[1]));
  assert(String(errors[1]).startsWith("config.yaml: "), String(errors[1]));
  assert(String(errors[2]).startsWith("policy.enabeld: "), String(errors[2]));

  const start = startEvent(records);
  const events = reloadEvents(records);
  assertEquals(
    events.map((e) => [e.trigger, e.outcome]),
    [["file", "rejected"], ["file", "rejected"], ["file", "rejected"], ["file", "applied"]],
  );
  for (const [i, event] of events.slice(0, 3).entries()) {
    assertEquals(event.error, errors[i], "the event carries the same error as the log line");
    assertEquals(event.policy_digest, start.policy_digest, "the policy in force is still the old");
  }
  const applied = events[3]!;
  assertEquals(applied.changed, ["policy.rules"], "compared with the last settings applied");
  assert(applied.policy_digest !== start.policy_digest);

  const decisions = callsOf(records, "echo").map((r) => asObject(r.decision, "decision").action);
  assertEquals(decisions, ["deny", "deny", "deny", "deny", "allow"]);
});

Deno.test("saving by renaming a new file over the --config file reloads, and the watch survives the rename", async () => {
  const records = await session("rename", ALLOW_ECHO, async (s) => {
    assertEquals(await echo(s.client, "1"), "Echo: 1");
    await saveByRename(s.configPath, DENY_ECHO);
    assertEquals((await reloaded(s, 1)).trigger, "file");
    assertEquals(await refused(s.client, "echo", { message: "2" }), ECHO_DENIED);
    await saveByRename(s.configPath, ALLOW_ECHO);
    assertEquals((await reloaded(s, 2)).trigger, "file");
    assertEquals(await echo(s.client, "3"), "Echo: 3");
  }, { configAt: "etc/mcp-audit.yaml" });

  const start = startEvent(records);
  const events = reloadEvents(records);
  assertEquals(
    events.map((e) => [e.trigger, e.outcome, e.changed]),
    [["file", "applied", ["policy.rules"]], ["file", "applied", ["policy.rules"]]],
  );
  assert(events[0]!.policy_digest !== start.policy_digest);
  assertEquals(events[1]!.policy_digest, start.policy_digest, "back to the first policy");
  assertEquals(
    callsOf(records, "echo").map((r) => asObject(r.decision, "decision").action),
    ["allow", "deny", "allow"],
  );
});

Deno.test("a changed proxy.client_id is listed in restart_needed, warned about, and does not take effect before a restart", async () => {
  const yaml = (clientId: string) =>
    `proxy:
  client_id: ${clientId}
policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      client_id: beta
      tool_name: echo
      reason: "beta may not echo"
`;
  let second: string | undefined;
  const records = await session("restart", yaml("alpha"), async (s) => {
    assertEquals(await echo(s.client, "as alpha"), "Echo: as alpha");
    rewriteInPlace(s.configPath, yaml("beta"));
    const line = await reloaded(s, 1);
    assertEquals([line.trigger, line.outcome, line.changed], ["file", "applied", 1]);
    const warning = s.proxy.logLines().find((l) =>
      l.level === "warn" && typeof l.msg === "string" && l.msg.includes("only on restart")
    );
    assert(warning !== undefined, "a warning names what needs a restart");
    assertEquals(warning.keys, "proxy.client_id");
    second = await echo(s.client, "still alpha").catch((e: Error) => e.message);
  });

  const events = reloadEvents(records);
  assertEquals(events.length, 1);
  assertEquals(
    [events[0]!.outcome, events[0]!.changed, events[0]!.restart_needed],
    ["applied", ["proxy.client_id"], ["proxy.client_id"]],
  );
  assertEquals(
    [...new Set(records.map((r) => r.client_id))],
    ["alpha"],
    "every record of this run names the client_id the proxy started with",
  );
  // The records say alpha until a restart, so the policy must judge alpha too: a rule for beta
  // deciding a call that the log attributes to alpha would make the log wrong.
  const after = callsOf(records, "echo")[1];
  assertEquals(
    [second, after?.decision],
    ["Echo: still alpha", { action: "allow", rule: null, reason: "" }],
    "the call after the reload is judged as alpha, the client_id in force",
  );
});

Deno.test("rate-limit buckets survive a reload that changes only the policy: the third call in a minute is still -32029", async () => {
  const yaml = (extraRule: string) =>
    `middleware:
  rate_limit:
    enabled: true
    requests_per_minute: 2
policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      tool_name: get-sum
${extraRule}`;
  const records = await session("buckets", yaml(""), async (s) => {
    assertEquals(await echo(s.client, "1"), "Echo: 1");
    assertEquals(await echo(s.client, "2"), "Echo: 2");
    rewriteInPlace(s.configPath, yaml("    - action: deny\n      tool_name: get-env\n"));
    const line = await reloaded(s, 1);
    assertEquals([line.trigger, line.outcome, line.changed], ["file", "applied", 1]);
    const third = await refused(s.client, "echo", { message: "3" });
    assertEquals(third.code, -32029, `the third call is rate limited: ${JSON.stringify(third)}`);
    const data = third.data as { retry_after_ms?: unknown };
    assert(
      typeof data.retry_after_ms === "number" && data.retry_after_ms > 0,
      `retry_after_ms is a positive number: ${JSON.stringify(data)}`,
    );
  });

  const events = reloadEvents(records);
  assertEquals(events.map((e) => e.changed), [["policy.rules"]], "only the policy changed");
  assertEquals(
    callsOf(records, "echo").map((r) => asObject(r.decision, "decision").action),
    ["allow", "allow", "rate_limited"],
  );
});
