/**
 * Go parity of the policy engine: a Go-tool `config.yaml` decides every `tools/call` as the Go
 * tool would. The Go tool cannot run here, so its documented semantics are written out below as a
 * small reference function, independent of the product's code, and the product — the real loader
 * (`loadConfig`), settings builder (`buildSettings`) and guard (`Guard.judge`) — is compared with
 * it over a generated matrix of callers, servers, tools and methods. One end-to-end case checks
 * the exact error a client gets through a real proxy in front of server-filesystem.
 *
 * The Go tool matches fields exactly: empty or `*` is any value, anything else must be equal. The
 * product adds globs (`*` inside a field, e.g. `delete_*`), which a Go config cannot contain
 * meaningfully (there it would only match the literal text), so parity holds for Go configs; the
 * last unit test shows where the addition starts.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../src/config/load.ts";
import { Guard, type Verdict } from "../src/guardrails/guard.ts";
import { buildSettings } from "../src/pipeline/settings.ts";
import {
  answerTo,
  assert,
  assertChain,
  assertEquals,
  assertNoStrays,
  deadline,
  descendants,
  filesystemServer,
  pick,
  type Proc,
  processTable,
  ProxyProcess,
  readLog,
  tempDir,
  verifyLog,
} from "./helpers.ts";

// ----------------------------------------------------------------------------------------------
// The Go tool's decision semantics, as its README documents them

/** A Go policy rule as written in `config.yaml`. */
interface GoRule {
  action?: string;
  client_id?: string;
  server_id?: string;
  tool_name?: string;
  reason?: string;
}

/** The Go tool's `policy:` section. */
interface GoPolicy {
  enabled?: boolean;
  default_action?: string;
  rules?: GoRule[];
}

/** What the Go tool does with one request. */
type GoOutcome =
  /** Not judged: policy off, or not a `tools/call`. */
  | { judged: false }
  | { judged: true; action: "allow"; rule_index: number }
  | {
    judged: true;
    action: "deny";
    rule_index: number;
    error: {
      code: number;
      message: string;
      data: { action: string; reason: string; rule_index: number };
    };
  };

/** An empty field or `*` matches any value; anything else only an equal value. */
function goFieldMatches(pattern: string | undefined, value: string): boolean {
  return pattern === undefined || pattern === "" || pattern === "*" || pattern === value;
}

/** Lower-cased and trimmed, as the Go tool reads actions. */
function goAction(text: string | undefined): string {
  return (text ?? "").trim().toLowerCase();
}

/** First match over the rules in order; no match means `default_action`. */
function goDecide(
  policy: GoPolicy,
  who: { client_id: string; server_id: string },
  method: string,
  toolName: string,
): GoOutcome {
  if (policy.enabled !== true || method !== "tools/call") return { judged: false };
  const rules = policy.rules ?? [];
  let action = goAction(policy.default_action) || "allow";
  let ruleIndex = -1;
  let reason = "blocked by default policy";
  for (const [i, rule] of rules.entries()) {
    if (
      goFieldMatches(rule.client_id, who.client_id) &&
      goFieldMatches(rule.server_id, who.server_id) &&
      goFieldMatches(rule.tool_name, toolName)
    ) {
      action = goAction(rule.action);
      ruleIndex = i;
      reason = rule.reason || "blocked by policy";
      break;
    }
  }
  if (action === "allow") return { judged: true, action: "allow", rule_index: ruleIndex };
  const data = { action: "deny", reason, rule_index: ruleIndex };
  return {
    judged: true,
    action: "deny",
    rule_index: ruleIndex,
    error: { code: -32030, message: "policy denied", data },
  };
}

/** The Go policy section of a config file, read with a plain YAML parser. */
function goPolicyOf(yaml: string): GoPolicy {
  const tree: unknown = parseYaml(yaml);
  assert(typeof tree === "object" && tree !== null && "policy" in tree, "the config has policy:");
  return tree.policy as GoPolicy;
}

// ----------------------------------------------------------------------------------------------
// Go-tool configurations

/** The `policy:` example of the Go tool's README, verbatim. */
const GO_README_EXAMPLE = `policy:
  enabled: true
  default_action: allow
  rules:
    - action: deny
      client_id: claude-desktop
      server_id: filesystem
      tool_name: delete_file
      reason: "Destructive filesystem operations are blocked"
`;

/** "default_action: deny can be used with explicit allow rules for stricter deployments." */
const GO_STRICT = `policy:
  enabled: true
  default_action: deny
  rules:
    - action: allow
      client_id: claude-desktop
      server_id: filesystem
      tool_name: read_file
    - action: allow
      server_id: filesystem
      tool_name: list_directory
    - action: deny
      client_id: claude-desktop
      tool_name: write_file
      reason: "no writes from the desktop"
    - action: allow
      client_id: cursor
      server_id: "*"
      tool_name: "*"
    - action: deny
      client_id: ""
      server_id: github
      tool_name: ""
`;

/** Mixed-case actions, whole-field wildcards, a deny rule without a reason. */
const GO_MIXED_CASE = `policy:
  enabled: true
  default_action: Allow
  rules:
    - action: Deny
      client_id: "*"
      server_id: "*"
      tool_name: delete_file
    - action: " ALLOW "
      tool_name: delete_file2
    - action: DENY
      server_id: github
      reason: "github is read-only here"
    - action: deny
      client_id: Claude-Desktop
      tool_name: "*"
`;

/** A whole Go config file, as from the README's table, with the policy switched off. */
const GO_FULL_POLICY_OFF = `proxy:
  transport: stdio
  upstream: "npx @modelcontextprotocol/server-filesystem /tmp"
  upstream_timeout_ms: 30000
  client_id: claude-desktop
  server_id: filesystem
audit:
  storage: jsonl
  sign: true
  rotation:
    max_size_bytes: 104857600
    interval: daily
    max_files: 10
    max_age_days: 30
middleware:
  rate_limit:
    enabled: true
    requests_per_minute: 60
  redact:
    enabled: true
policy:
  enabled: false
  default_action: deny
  rules:
    - action: deny
      tool_name: delete_file
dashboard:
  enabled: true
  bind_address: 127.0.0.1
  port: 9090
metrics:
  enabled: true
  port: 9091
  path: /metrics
otel:
  enabled: false
  endpoint: "http://localhost:4318"
  service_name: "mcp-audit"
  timeout_ms: 5000
`;

const CONFIGS: Record<string, string> = {
  "the README example": GO_README_EXAMPLE,
  "default deny with allow rules": GO_STRICT,
  "mixed-case actions and wildcards": GO_MIXED_CASE,
  "a whole Go config with the policy off": GO_FULL_POLICY_OFF,
};

// ----------------------------------------------------------------------------------------------
// The matrix

const CLIENT_IDS = ["claude-desktop", "Claude-Desktop", "claude-desktop2", "cursor", "", "*"];
const SERVER_IDS = ["filesystem", "FILESYSTEM", "filesystem2", "github", "", "*"];
/** `null`: a `tools/call` without `params.name`. */
const TOOL_NAMES: (string | null)[] = [
  "delete_file",
  "delete_file2",
  "Delete_File",
  "delete_fil",
  " delete_file",
  "read_file",
  "write_file",
  "list_directory",
  "",
  "*",
  "delete_*",
  null,
];
const METHODS = ["tools/call", "tools/list", "prompts/get", "resources/read", "initialize"];

/** The product's verdict in the reference's terms. */
function productOutcome(verdict: Verdict): GoOutcome {
  switch (verdict.kind) {
    case "pass":
      return { judged: false };
    case "allow":
      assertEquals(verdict.decision.action, "allow", "an allow verdict records an allow");
      return { judged: true, action: "allow", rule_index: verdict.decision.rule ?? -1 };
    case "refuse": {
      const { decision, answer } = verdict;
      assertEquals(decision.action, "deny", "a refusal by policy records a deny");
      assert(answer.kind === "error", "a Go config answers a denial with a JSON-RPC error");
      const error = answer.error as Extract<GoOutcome, { action: "deny" }>["error"];
      return { judged: true, action: "deny", rule_index: decision.rule ?? -1, error };
    }
  }
}

/** Loads `yaml` through the product, as the proxy would for this caller and server. */
function productGuard(yaml: string, clientId: string, serverId: string, dir: string): Guard {
  const { config } = loadConfig({
    file: { path: "config.yaml", text: yaml },
    env: {
      // The pin store is opened (read only) beside the log; keep it in the test's directory.
      MCP_AUDIT_AUDIT_PATH: `${dir}/audit.jsonl`,
    },
    // As flags: an empty id is a case here, and an empty variable is no setting at all.
    flags: new Map([
      ["proxy.client_id", { flag: "--client-id", value: clientId }],
      ["proxy.server_id", { flag: "--server-id", value: serverId }],
    ]),
    upstreamArgv: [],
  });
  assertEquals(config.proxy.client_id, clientId);
  const built = buildSettings(config, { mono: () => 0, now: () => new Date(0) });
  return new Guard(built.parts);
}

for (const [name, yaml] of Object.entries(CONFIGS)) {
  Deno.test(`Go parity, ${name}: every tools/call is decided as the Go tool decides it`, async () => {
    await using dir = await tempDir("go-parity");
    const policy = goPolicyOf(yaml);
    const mismatches: string[] = [];
    const decidedBy = new Set<number>();
    let judged = 0;
    let session = 0;
    for (const clientId of CLIENT_IDS) {
      for (const serverId of SERVER_IDS) {
        const guard = productGuard(yaml, clientId, serverId, dir.path);
        for (const method of METHODS) {
          for (const tool of TOOL_NAMES) {
            const expected = goDecide(
              policy,
              { client_id: clientId, server_id: serverId },
              method,
              tool ?? "",
            );
            // A new session each time: this compares policy decisions, and the default rate
            // limit (60 a minute per caller and tool, as in Go) must not refuse the matrix.
            const verdict = guard.judge(method, tool === null ? {} : { name: tool }, {
              session: `s${++session}`,
            });
            const actual = productOutcome(verdict);
            if (expected.judged) {
              judged++;
              decidedBy.add(expected.rule_index);
            }
            if (JSON.stringify(actual) !== JSON.stringify(expected)) {
              mismatches.push(
                `client_id ${JSON.stringify(clientId)}, server_id ${JSON.stringify(serverId)}, ` +
                  `${method} ${JSON.stringify(tool)}: Go ${JSON.stringify(expected)}, ` +
                  `product ${JSON.stringify(actual)}`,
              );
            }
          }
        }
      }
    }
    assertEquals(mismatches.slice(0, 20), [], `${mismatches.length} decisions differ from Go`);
    // The matrix is worth something only if it reaches every rule and the default.
    if (policy.enabled === true) {
      const expectedIndices = [-1, ...(policy.rules ?? []).map((_, i) => i)];
      assertEquals(
        [...decidedBy].sort((a, b) => a - b),
        expectedIndices,
        "every rule and the default decide some call of the matrix",
      );
    } else {
      assertEquals(judged, 0, "with the policy off nothing is judged");
    }
  });
}

Deno.test("Go parity: rule_index is the rule's position and -1 for the default, reasons as in Go", async () => {
  await using dir = await tempDir("go-parity-shape");
  const who = { client_id: "claude-desktop", server_id: "filesystem" };
  const judge = (yaml: string, tool: string) =>
    productOutcome(
      productGuard(yaml, who.client_id, who.server_id, dir.path).judge(
        "tools/call",
        { name: tool, arguments: {} },
        { session: "s" },
      ),
    );
  const deny = (reason: string, ruleIndex: number) => ({
    judged: true,
    action: "deny",
    rule_index: ruleIndex,
    error: {
      code: -32030,
      message: "policy denied",
      data: { action: "deny", reason, rule_index: ruleIndex },
    },
  });
  assertEquals(
    judge(GO_README_EXAMPLE, "delete_file"),
    deny("Destructive filesystem operations are blocked", 0),
  );
  assertEquals(judge(GO_README_EXAMPLE, "read_file"), {
    judged: true,
    action: "allow",
    rule_index: -1,
  });
  assertEquals(judge(GO_STRICT, "move_file"), deny("blocked by default policy", -1));
  assertEquals(judge(GO_STRICT, "write_file"), deny("no writes from the desktop", 2));
  assertEquals(judge(GO_MIXED_CASE, "delete_file"), deny("blocked by policy", 0));
});

Deno.test("globs are an addition: `*` inside a field matches here, while the Go tool would compare the text", async () => {
  await using dir = await tempDir("go-parity-glob");
  const yaml = `policy:
  enabled: true
  rules:
    - action: deny
      tool_name: delete_*
`;
  const policy = goPolicyOf(yaml);
  const who = { client_id: "claude-desktop", server_id: "filesystem" };
  const guard = productGuard(yaml, who.client_id, who.server_id, dir.path);
  const differs: string[] = [];
  for (const tool of ["delete_file", "delete_*", "delete_", "remove_file", "xdelete_file"]) {
    const go = goDecide(policy, who, "tools/call", tool);
    const ours = productOutcome(
      guard.judge("tools/call", { name: tool }, { session: tool }),
    );
    if (JSON.stringify(go) !== JSON.stringify(ours)) differs.push(tool);
  }
  // Only names that the glob matches and that are not the literal text itself differ.
  assertEquals(differs, ["delete_file", "delete_"]);
});

// ----------------------------------------------------------------------------------------------
// End to end

Deno.test("a Go config.yaml in front of server-filesystem: the denied write_file gets exactly the Go error on the wire", async () => {
  await using dir = await tempDir("go-parity-e2e");
  const data = `${dir.path}/data`;
  await Deno.mkdir(data);
  await Deno.writeTextFile(`${data}/hello.txt`, "hello\n");
  const yaml = `proxy:
  transport: stdio
  client_id: claude-desktop
  server_id: filesystem
${GO_README_EXAMPLE}    - action: deny
      client_id: claude-desktop
      server_id: filesystem
      tool_name: write_file
`;
  await Deno.writeTextFile(`${dir.path}/config.yaml`, yaml);
  const expected = goDecide(
    goPolicyOf(yaml),
    { client_id: "claude-desktop", server_id: "filesystem" },
    "tools/call",
    "write_file",
  );
  assert(expected.judged && expected.action === "deny", "Go denies write_file with this config");
  const signal = deadline(90_000);
  let family: Proc[] = [];
  let exitCode: number | undefined;
  let sent: string[] = [];
  let received: string[] = [];
  let readText = "";
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: filesystemServer(data) });
    const transport = proxy.transport();
    const client = new Client({ name: "go-parity-e2e", version: "1.0.0" });
    await client.connect(transport);
    await proxy.upstreamPid(signal);
    family = descendants(await processTable(), proxy.pid);

    const read = CallToolResultSchema.parse(
      await client.callTool({ name: "read_text_file", arguments: { path: `${data}/hello.txt` } }),
    );
    const first = read.content[0];
    readText = first?.type === "text" ? first.text : "";
    const refusal = await client.callTool({
      name: "write_file",
      arguments: { path: `${data}/new.txt`, content: "must not be written" },
    }).then(() => "not refused", (e: Error) => e.message);
    assertEquals(refusal, "MCP error -32030: policy denied");

    await client.close();
    sent = transport.sentLines;
    received = transport.receivedLines;
    exitCode = (await proxy.finished(signal)).code;
  }
  await assertNoStrays(dir.path, family);
  assertEquals(exitCode, 0);
  assertEquals(readText, "hello\n", "an allowed call reaches the server");
  await Deno.stat(`${data}/new.txt`).then(
    () => assert(false, "the denied write reached the server"),
    (e) => assert(e instanceof Deno.errors.NotFound, String(e)),
  );

  // The exact message on the wire: the Go tool's code, message and data, nothing more.
  const writeRequest = sent.map((l) => JSON.parse(l)).find((m) =>
    m.method === "tools/call" && m.params?.name === "write_file"
  );
  assert(writeRequest !== undefined, "the client sent the write_file call");
  const answers = received.map((l) => JSON.parse(l)).filter((m) => m.id === writeRequest.id);
  assertEquals(answers, [{ jsonrpc: "2.0", id: writeRequest.id, error: expected.error }]);
  assertEquals(expected.error.data, {
    action: "deny",
    reason: "blocked by policy",
    rule_index: 1,
  });

  const logPath = `${dir.path}/audit.jsonl`;
  const file = await readLog(logPath);
  await assertChain(file);
  const verified = await verifyLog(logPath);
  assertEquals(verified.code, 0, `verify exits 0:\n${verified.stdout}${verified.stderr}`);
  const [call] = pick(file.records, {
    kind: "request",
    method: "tools/call",
    tool_name: "write_file",
  });
  assert(call !== undefined, "the denied call is in the log");
  assertEquals(call.decision, { action: "deny", rule: 1, reason: "blocked by policy" });
  assertEquals(answerTo(file.records, call).error, expected.error);
});
