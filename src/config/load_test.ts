import assert from "node:assert/strict";
import { DETECTOR_NAMES } from "../audit/detectors.ts";
import {
  ConfigError,
  configFormat,
  loadConfig,
  type LoadInput,
  loadYamlParser,
  UTC_TIME_ZONES,
} from "./load.ts";
import { envName, GO_ENV_KEYS, goEnvName, SCHEMA } from "./schema.ts";

function load(
  text: string | undefined,
  env: Record<string, string> = {},
  flags: Record<string, { flag: string; value: unknown }> = {},
) {
  const input: LoadInput = {
    file: text === undefined ? undefined : { path: "config.yaml", text },
    env,
    flags: new Map(Object.entries(flags)),
    upstreamArgv: [],
  };
  return loadConfig(input);
}

/** Asserts that loading fails with a ConfigError naming `key`. */
function fails(key: string, text: string | undefined, env: Record<string, string> = {}): void {
  assert.throws(
    () => load(text, env),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, key, e.message);
      assert.ok(e.message.startsWith(`${key}: `), e.message);
      return true;
    },
  );
}

Deno.test("loadConfig with nothing set gives the Go tool's defaults", () => {
  const { config, warnings } = load(undefined);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.proxy, {
    transport: "stdio",
    upstream: "",
    upstream_argv: [],
    port: 4422,
    bind_address: "127.0.0.1",
    upstream_timeout_ms: 30000,
    forward_headers: [],
    max_message_bytes: 16777216,
    max_json_depth: 1000,
    tls: {
      ca_file: "",
      server_name: "",
      insecure_skip_verify: false,
      client_cert_file: "",
      client_key_file: "",
    },
    retry: { max_retries: 0, initial_interval_ms: 200, max_interval_ms: 2000 },
    client_id: "claude-desktop",
    server_id: "filesystem",
    http: {
      allowed_origins: [],
      allowed_hosts: [],
      max_request_body_bytes: 0,
      max_header_bytes: 1048576,
      read_header_timeout: 10_000,
      read_timeout: 30_000,
      write_timeout: 30_000,
      idle_timeout: 120_000,
      max_connections: 1024,
    },
  });
  assert.deepEqual(config.audit, {
    storage: "jsonl",
    path: "./audit.jsonl",
    follow_symlinks: false,
    anchor: { path: "" },
    sqlite_path: "./audit.db",
    sign: true,
    secret: "",
    key_id: "",
    signing: { private_key_file: "", public_key_file: "" },
    durability: "batch",
    sync_interval_ms: 10,
    async: { enabled: false, queue_size: 4096, batch_size: 128, flush_interval_ms: 1000 },
    rotation: { max_size_bytes: 0, max_files: 0, interval: "", max_age_days: 0, compress: "" },
    checkpoint: { every_records: 0, every_seconds: 0 },
    sqlite_busy_timeout_ms: 5000,
  });
  assert.deepEqual(config.middleware, {
    rate_limit: {
      enabled: true,
      requests_per_minute: 60,
      burst: 0,
      tools: {},
      methods: {},
      max_buckets: 10000,
      key: "caller",
    },
    redact: {
      enabled: true,
      patterns: ["password", "token", "secret", "api_key", "bearer", "authorization"],
      detectors: [...DETECTOR_NAMES],
      custom_patterns: [],
    },
  });
  assert.deepEqual(config.policy, {
    enabled: false,
    default_action: "allow",
    mode: "enforce",
    scope: "tools_only",
    rules: [],
    deny_as: "error",
    filter_tools: true,
  });
  assert.deepEqual(config.pinning, { enabled: true, mode: "warn", path: "" });
  assert.deepEqual(config.dashboard, {
    enabled: true,
    bind_address: "127.0.0.1",
    port: 9090,
    auth: { token: "" },
    timezone: "UTC",
  });
  assert.deepEqual(config.metrics, {
    enabled: true,
    bind_address: "127.0.0.1",
    port: 9091,
    path: "/metrics",
    include_go_metrics: true,
    include_process_metrics: true,
    tool_labels: true,
    max_tool_labels: 200,
  });
  assert.deepEqual(config.otel, {
    enabled: false,
    endpoint: "http://localhost:4318",
    service_name: "mcp-audit",
    headers: {},
    tls: { ca_file: "", server_name: "", insecure_skip_verify: false },
    retry: { max_retries: 3, initial_interval_ms: 200, max_interval_ms: 2000 },
    queue_size: 1024,
    batch_size: 64,
    flush_interval_ms: 1000,
    timeout_ms: 5000,
    methods: "tools/call",
    logs: false,
    protocol: "http/json",
    compression: "none",
    shutdown_timeout_ms: 10000,
  });
});

Deno.test("loadConfig: a flag beats the environment, which beats the file, which beats defaults", () => {
  const file = "proxy:\n  port: 5000\n";
  assert.equal(load(undefined).config.proxy.port, 4422);
  assert.equal(load(file).config.proxy.port, 5000);
  assert.equal(load(file, { MCP_AUDIT_PROXY_PORT: "6000" }).config.proxy.port, 6000);
  assert.equal(
    load(file, { MCP_AUDIT_PROXY_PORT: "6000" }, {
      "proxy.port": { flag: "--port", value: 7000 },
    }).config.proxy.port,
    7000,
  );
});

Deno.test("loadConfig: AUDIT_SECRET overrides audit.secret from the file", () => {
  const file = 'audit:\n  secret: "from-file-from-file-from-file-32b"\n';
  assert.equal(load(file).config.audit.secret, "from-file-from-file-from-file-32b");
  assert.equal(load(file, { AUDIT_SECRET: "from-env" }).config.audit.secret, "from-env");
  assert.equal(
    load(file, { AUDIT_SECRET: "a", MCP_AUDIT_SIGNING_SECRET: "b" }).config.audit.secret,
    "b",
  );
  assert.equal(load(file, { MCP_AUDIT_AUDIT_SECRET: "c" }).config.audit.secret, "c");
});

Deno.test("loadConfig parses MCP_AUDIT_ variables by the key's type", () => {
  const { config } = load(undefined, {
    MCP_AUDIT_METRICS_ENABLED: "false",
    MCP_AUDIT_DASHBOARD_ENABLED: "0",
    MCP_AUDIT_PROXY_FORWARD_HEADERS: "Authorization, X-Trace",
    MCP_AUDIT_OTEL_HEADERS: '{"Authorization":"Bearer x"}',
    MCP_AUDIT_AUDIT_DURABILITY: "entry",
    MCP_AUDIT_POLICY_RULES: '[{"action":"deny","tool_name":"rm"}]',
    PATH: "/usr/bin",
  });
  assert.equal(config.metrics.enabled, false);
  assert.equal(config.dashboard.enabled, false);
  assert.deepEqual(config.proxy.forward_headers, ["Authorization", "X-Trace"]);
  assert.deepEqual(config.otel.headers, { Authorization: "Bearer x" });
  assert.equal(config.audit.durability, "entry");
  assert.equal(config.policy.rules[0]?.tool_name, "rm");
});

Deno.test("loadConfig names the variable when an MCP_AUDIT_ value is bad or unknown", () => {
  fails("MCP_AUDIT_PROXY_PORT", undefined, { MCP_AUDIT_PROXY_PORT: "abc" });
  fails("MCP_AUDIT_METRICS_ENABLED", undefined, { MCP_AUDIT_METRICS_ENABLED: "yes please" });
  fails("MCP_AUDIT_OTEL_HEADERS", undefined, { MCP_AUDIT_OTEL_HEADERS: "{" });
  fails("MCP_AUDIT_PROXY_PROT", undefined, { MCP_AUDIT_PROXY_PROT: "1" });
});

Deno.test("loadConfig refuses unknown keys by their full name", () => {
  fails("proxy.prot", "proxy:\n  prot: 1\n");
  fails("polcy", "polcy:\n  enabled: true\n");
  fails("audit.rotation.max_size", "audit:\n  rotation:\n    max_size: 1\n");
});

Deno.test("loadConfig refuses values of the wrong type, naming the key", () => {
  fails("proxy.port", 'proxy:\n  port: "abc"\n');
  fails("proxy.port", "proxy:\n  port: 70000\n");
  fails("proxy.port", "proxy:\n  port: 1.5\n");
  fails("proxy", "proxy: 1\n");
  fails("audit.sign", "audit:\n  sign: maybe\n");
  fails("proxy.upstream", "proxy:\n  upstream: [a, b]\n");
  fails("middleware.redact.patterns", "middleware:\n  redact:\n    patterns: token\n");
  fails("middleware.redact.patterns[1]", "middleware:\n  redact:\n    patterns: [a, 2]\n");
  fails("otel.headers.X-Team", "otel:\n  headers:\n    X-Team: 7\n");
  fails("dashboard.bind_address", 'dashboard:\n  bind_address: " "\n');
});

Deno.test("audit.sync_interval_ms takes whole milliseconds from 0 to 60000", () => {
  assert.equal(load("audit:\n  sync_interval_ms: 0\n").config.audit.sync_interval_ms, 0);
  assert.equal(load("audit:\n  sync_interval_ms: 60000\n").config.audit.sync_interval_ms, 60000);
  assert.equal(
    load(undefined, { MCP_AUDIT_AUDIT_SYNC_INTERVAL_MS: "25" }).config.audit.sync_interval_ms,
    25,
  );
  fails("audit.sync_interval_ms", "audit:\n  sync_interval_ms: -1\n");
  fails("audit.sync_interval_ms", "audit:\n  sync_interval_ms: 2.5\n");
  fails("audit.sync_interval_ms", "audit:\n  sync_interval_ms: 60001\n");
  fails("audit.sync_interval_ms", 'audit:\n  sync_interval_ms: "10ms"\n');
  fails("MCP_AUDIT_AUDIT_SYNC_INTERVAL_MS", undefined, { MCP_AUDIT_AUDIT_SYNC_INTERVAL_MS: "-5" });
});

Deno.test("loadConfig refuses values outside an enum, naming the key", () => {
  fails("proxy.transport", "proxy:\n  transport: tcp\n");
  fails("audit.storage", "audit:\n  storage: postgres\n");
  fails("audit.durability", "audit:\n  durability: always\n");
  fails("audit.rotation.interval", "audit:\n  rotation:\n    interval: weekly\n");
  fails("policy.default_action", "policy:\n  default_action: block\n");
  fails("policy.deny_as", "policy:\n  deny_as: silence\n");
});

Deno.test("loadConfig refuses bad policy rules, naming the rule and field", () => {
  const rules = (body: string) => `policy:\n  rules:\n${body}`;
  fails("policy.rules[1].action", rules("    - action: allow\n    - action: block\n"));
  fails("policy.rules[0].action", rules("    - tool_name: rm\n"));
  fails("policy.rules[0].tool", rules("    - action: deny\n      tool: rm\n"));
  fails("policy.rules[0].tool_name", rules("    - action: deny\n      tool_name: [rm]\n"));
  fails("policy.rules[0]", rules("    - deny\n"));
  fails("policy.rules", "policy:\n  rules: deny\n");
});

Deno.test("loadConfig checks rules that span keys", () => {
  fails("proxy.tls.client_cert_file", "proxy:\n  tls:\n    client_cert_file: a.pem\n");
  fails("proxy.forward_headers", "proxy:\n  forward_headers: [Cookie]\n");
  fails("proxy.forward_headers", 'proxy:\n  forward_headers: ["X Bad"]\n');
  fails("metrics.path", "metrics:\n  path: metrics\n");
  fails("audit.rotation", "audit:\n  storage: sqlite\n  rotation:\n    interval: daily\n");
  fails("audit.key_id", 'audit:\n  key_id: "a:b"\n');
  fails("dashboard.auth.token", 'dashboard:\n  auth:\n    token: "a b"\n');
  fails("dashboard.timezone", "dashboard:\n  timezone: Mars/Olympus\n");
  fails(
    "proxy.retry.initial_interval_ms",
    "proxy:\n  retry:\n    initial_interval_ms: 5000\n    max_interval_ms: 100\n",
  );
});

Deno.test("loadConfig names the file, line and column for YAML it cannot parse, including duplicate keys", () => {
  fails("config.yaml", "proxy:\n  port: [\n");
  fails("config.yaml", "proxy:\n  port: 1\n  port: 2\n");
  assert.throws(
    () => load("proxy:\n  port: 1\n  port: 2\n"),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        "config.yaml: not valid YAML: line 3, column 3: a key is given twice in one map",
  );
  fails("config", "- a\n- b\n");
});

Deno.test("YAML errors are told in our words, never quoting the file, by line and column", () => {
  const secret = "Zq9secretPART";
  const cases: [string, string][] = [
    [`audit:\n  secret: "${secret}\\q"\n`, "config.yaml: not valid YAML: line 2, "],
    [`audit:\n  secret: "${secret}\n  x: [`, "config.yaml: not valid YAML: line "],
    [`audit:\n  secret: !${secret} x\n  key_id: *${secret}\n`, "config.yaml: not valid YAML: "],
    [`audit:\n  secret: |${secret}\n    x\n`, "config.yaml: not valid YAML: line 2, "],
    [`audit:\n  secret: &a [*a, ${secret}\n`, "config.yaml: not valid YAML: line "],
    [`a: 1\n---\nb: ${secret}\n`, "config.yaml: not valid YAML: line "],
  ];
  for (const [text, where] of cases) {
    let message = "";
    try {
      load(text);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      message = e.message;
    }
    assert.ok(message.startsWith(where), `${JSON.stringify(text)}: ${message}`);
    assert.ok(!message.includes(secret.slice(0, 5)), `${JSON.stringify(text)}: ${message}`);
  }
  // An unknown tag is read as a plain value, with a warning telling where (and no text).
  const tagged = load(`proxy:\n  server_id: !${secret} s1\n`);
  assert.equal(tagged.config.proxy.server_id, "s1");
  assert.deepEqual(tagged.warnings, [
    "config.yaml: line 2, column 14: an unknown tag (!name); read as a plain value",
  ]);
});

Deno.test("loadConfig names the flag when a flag's value is bad", () => {
  assert.throws(
    () => load(undefined, {}, { "proxy.port": { flag: "--port", value: "abc" } }),
    (e: unknown) => e instanceof ConfigError && e.key === "--port",
  );
  assert.throws(
    () => load(undefined, {}, { "proxy.transport": { flag: "--transport", value: "udp" } }),
    (e: unknown) => e instanceof ConfigError && e.key === "--transport",
  );
});

/** The Go tool's shipped config.yaml, with the README's policy and other examples filled in. */
const GO_EXAMPLE = `proxy:
  transport: stdio
  upstream: "npx @modelcontextprotocol/server-filesystem /tmp"
  bind_address: "127.0.0.1"
  port: 4422
  upstream_timeout_ms: 30000
  forward_headers:
    - Authorization
  http:
    max_request_body_bytes: 10485760
    max_header_bytes: 1048576
    read_header_timeout: 10s
    read_timeout: 30s
    write_timeout: 30s
    idle_timeout: 120s
    allowed_origins: []
    allowed_hosts:
      - localhost
      - 127.0.0.1
      - "::1"
  tls:
    enabled: false
    cert_file: ""
    key_file: ""
    ca_file: ""
    server_name: ""
    insecure_skip_verify: false
    client_cert_file: ""
    client_key_file: ""
  retry:
    max_retries: 0
    initial_interval_ms: 200
    max_interval_ms: 2000
  client_id: "claude-desktop"
  server_id: "filesystem"

auth:
  mode: none
  static:
    bearer_token: ""
    subject: local
  oidc:
    issuer: ""
    clock_skew: 30s

audit:
  storage: jsonl
  path: ./audit.jsonl
  sqlite_path: ./audit.db
  sign: true
  # Required when sign is true. Prefer MCP_AUDIT_SIGNING_SECRET in production.
  secret: ""
  signing:
    key_id: "default"
  async:
    enabled: false
    queue_size: 4096
    batch_size: 128
    flush_interval_ms: 1000
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
    patterns:
      - password
      - token
      - secret
      - api_key
      - bearer
      - authorization

policy:
  enabled: true
  default_action: allow
  scope: all_operations
  rules:
    - action: deny
      client_id: claude-desktop
      server_id: filesystem
      tool_name: delete_file
      reason: "Destructive filesystem operations are blocked"
    - action: allow
      tool_name: "*"

dashboard:
  enabled: true
  bind_address: 127.0.0.1
  port: 9090
  auth:
    token: "replace-with-a-long-random-token"

metrics:
  enabled: true
  port: 9091
  path: /metrics
  include_go_metrics: true
  include_process_metrics: true
  tool_labels: true

otel:
  enabled: true
  endpoint: "http://localhost:4318"
  service_name: "mcp-audit"
  headers:
    Authorization: "Bearer your-token"
  timeout_ms: 5000
  tls:
    ca_file: ""
    server_name: ""
    insecure_skip_verify: false
  retry:
    max_retries: 3
    initial_interval_ms: 200
    max_interval_ms: 2000
  queue_size: 1024
  batch_size: 64
  flush_interval_ms: 1000
`;

Deno.test("loadConfig loads the Go tool's example config unchanged", () => {
  const { config, warnings, effective } = load(GO_EXAMPLE);
  assert.deepEqual(config.policy.rules, [
    {
      action: "deny",
      client_id: "claude-desktop",
      server_id: "filesystem",
      tool_name: "delete_file",
      method: "",
      reason: "Destructive filesystem operations are blocked",
      when: [],
    },
    {
      action: "allow",
      client_id: "",
      server_id: "",
      tool_name: "*",
      method: "",
      reason: "",
      when: [],
    },
  ]);
  assert.equal(config.policy.enabled, true);
  assert.equal(config.proxy.upstream, "npx @modelcontextprotocol/server-filesystem /tmp");
  assert.deepEqual(config.proxy.forward_headers, ["Authorization"]);
  assert.deepEqual(config.proxy.http.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
  assert.equal(config.audit.key_id, "default");
  assert.deepEqual(config.audit.rotation, {
    max_size_bytes: 104857600,
    max_files: 10,
    interval: "daily",
    max_age_days: 30,
    compress: "",
  });
  assert.equal(config.dashboard.auth.token, "replace-with-a-long-random-token");
  assert.deepEqual(config.otel.headers, { Authorization: "Bearer your-token" });
  assert.equal(effective["dashboard.auth.token"], "(set)");
  assert.deepEqual(effective["otel.headers"], { Authorization: "(set)" });
  assert.equal(effective["auth.mode"], undefined);

  assert.deepEqual(
    [
      config.proxy.http.max_request_body_bytes,
      config.proxy.http.max_header_bytes,
      config.proxy.http.read_header_timeout,
      config.proxy.http.read_timeout,
      config.proxy.http.write_timeout,
      config.proxy.http.idle_timeout,
    ],
    [10485760, 1048576, 10_000, 30_000, 30_000, 120_000],
  );
  const ignored = [
    "proxy.tls.enabled",
    "proxy.tls.cert_file",
    "proxy.tls.key_file",
    "auth.mode",
    "auth.static",
    "auth.oidc",
  ];
  for (const key of ignored) {
    assert.ok(
      warnings.some((w) => w.startsWith(`${key} `) && w.includes("ignored")),
      `no warning for ${key}: ${warnings.join(" | ")}`,
    );
  }
  assert.equal(warnings.length, ignored.length, warnings.join("\n"));
});

Deno.test("loadConfig treats empty sections and null values as not set", () => {
  const { config } = load("proxy:\naudit:\n  path:\npolicy:\n  rules:\n");
  assert.equal(config.proxy.port, 4422);
  assert.equal(config.audit.path, "./audit.jsonl");
  assert.deepEqual(config.policy.rules, []);
  assert.equal(load("").config.proxy.port, 4422);
  assert.equal(load("# only a comment\n").config.proxy.port, 4422);
});

Deno.test("loadConfig trims and lower-cases a rule's action like the Go tool", () => {
  const { config } = load("policy:\n  rules:\n    - action: ' DENY '\n      tool_name: rm\n");
  assert.equal(config.policy.rules[0]?.action, "deny");
});

Deno.test("loadConfig warns about a short HMAC secret and masks secrets in the digest input", () => {
  const { warnings, effective } = load(undefined, { AUDIT_SECRET: "short" });
  assert.ok(warnings.some((w) => w.includes("shorter than 32 bytes")));
  assert.equal(effective["audit.secret"], "(set)");
  assert.equal(load(undefined).effective["audit.secret"], "");
});

Deno.test("loadConfig passes the upstream argv from after -- through", () => {
  const { config } = loadConfig({
    env: {},
    flags: new Map(),
    upstreamArgv: ["npx", "-y", "pkg", "/tmp/my dir"],
  });
  assert.deepEqual(config.proxy.upstream_argv, ["npx", "-y", "pkg", "/tmp/my dir"]);
});

Deno.test("loadConfig reads an empty redact pattern list as the Go tool does: the defaults", () => {
  // The Go tool's NewRedactor falls back to its default patterns when the list is empty; a
  // config written for it must not silently turn redaction off here.
  const { config } = load("middleware:\n  redact:\n    enabled: true\n    patterns: []\n");
  assert.deepEqual(config.middleware.redact.patterns, [
    "password",
    "token",
    "secret",
    "api_key",
    "bearer",
    "authorization",
  ]);
});

Deno.test("loadConfig reads policy.default_action case-insensitively like the Go tool", () => {
  // The Go engine trims and lower-cases default_action, as it does each rule's action.
  assert.equal(load("policy:\n  default_action: Deny\n").config.policy.default_action, "deny");
});

Deno.test("loadConfig reads the guardrail keys and checks their shape", () => {
  const { config } = load(`
policy:
  enabled: true
  mode: Monitor
  scope: all_operations
  filter_tools: false
  rules:
    - action: deny
      tool_name: write_file
      when:
        - { path: arguments.path, op: prefix, value: /srv/scratch/, negate: true }
middleware:
  rate_limit:
    burst: 5
    tools: { search: { requests_per_minute: 10 } }
    methods: { "resources/read": { requests_per_minute: 100, burst: 10 } }
    max_buckets: 500
    key: client_id
  redact:
    detectors: [email, jwt]
    custom_patterns:
      - { name: ticket, pattern: "TCK-[0-9]{6}" }
pinning:
  mode: block
  path: /var/lib/mcp-audit/pins.json
`);
  assert.equal(config.policy.mode, "monitor");
  assert.equal(config.policy.scope, "all_operations");
  assert.equal(config.policy.filter_tools, false);
  assert.deepEqual(config.policy.rules[0]?.when, [
    { path: "arguments.path", op: "prefix", value: "/srv/scratch/", negate: true },
  ]);
  assert.equal(config.middleware.rate_limit.burst, 5);
  assert.deepEqual(config.middleware.rate_limit.tools, { search: { requests_per_minute: 10 } });
  assert.equal(config.middleware.rate_limit.key, "client_id");
  assert.deepEqual(config.middleware.redact.detectors, ["email", "jwt"]);
  assert.deepEqual(config.middleware.redact.custom_patterns, [
    { name: "ticket", pattern: "TCK-[0-9]{6}" },
  ]);
  assert.deepEqual(config.pinning, {
    enabled: true,
    mode: "block",
    path: "/var/lib/mcp-audit/pins.json",
  });

  fails("policy.rules[0].when", "policy:\n  rules:\n    - action: deny\n      when: yes\n");
  fails("policy.mode", "policy:\n  mode: audit\n");
  fails("middleware.rate_limit.tools", "middleware:\n  rate_limit:\n    tools: [a]\n");
  fails("middleware.redact.custom_patterns", "middleware:\n  redact:\n    custom_patterns: x\n");
  fails("pinning.mode", "pinning:\n  mode: strict\n");
});

Deno.test("loadConfig reads Go durations and refuses a number without a unit", () => {
  const at = (text: string) => load(`proxy:\n  http:\n    idle_timeout: ${text}\n`);
  assert.equal(at('"1m30s"').config.proxy.http.idle_timeout, 90_000);
  assert.equal(at("250ms").config.proxy.http.idle_timeout, 250);
  assert.equal(at("1.5s").config.proxy.http.idle_timeout, 1500);
  assert.equal(at("0").config.proxy.http.idle_timeout, 0);
  assert.throws(() => at("30"), /proxy\.http\.idle_timeout.*unit/);
  assert.throws(() => at("30 sec"), /proxy\.http\.idle_timeout.*duration/);
  assert.throws(() => at('""'), /proxy\.http\.idle_timeout/);
  assert.throws(() => at("48h"), /proxy\.http\.idle_timeout.*at most/);
});

/** The ConfigError that loading throws. */
function errorOf(
  text: string | undefined,
  env: Record<string, string> = {},
  flags: Record<string, { flag: string; value: unknown }> = {},
): ConfigError {
  try {
    load(text, env, flags);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail("loading did not fail");
}

Deno.test("an error about a key that may hold a secret names the key and the type, never the value", () => {
  const secret = "73256018934";
  const cases: [string, ConfigError][] = [
    ["otel.headers.X-Api-Key", errorOf(`otel:\n  headers:\n    X-Api-Key: ${secret}\n`)],
    ["otel.headers", errorOf(`otel:\n  headers: "Bearer ${secret}"\n`)],
    ["otel.headers", errorOf(`otel:\n  headers: ${secret}\n`)],
    ["audit.secret", errorOf(`audit:\n  secret: ${secret}\n`)],
    ["audit", errorOf(`audit: ${secret}\n`)],
    ["dashboard.auth.token", errorOf(`dashboard:\n  auth:\n    token: ${secret}\n`)],
    ["dashboard.auth", errorOf(`dashboard:\n  auth: "${secret}"\n`)],
    ["MCP_AUDIT_OTEL_HEADERS", errorOf(undefined, { MCP_AUDIT_OTEL_HEADERS: `{"K":${secret}}` })],
    [
      "--secret",
      errorOf(undefined, {}, { "audit.secret": { flag: "--secret", value: Number(secret) } }),
    ],
  ];
  for (const [key, e] of cases) {
    assert.equal(e.key, key, e.message);
    assert.ok(!e.message.includes(secret), e.message);
    assert.match(e.message, /must be (a string|a map)/, e.message);
  }
  assert.equal(
    cases[0]![1].message,
    "otel.headers.X-Api-Key: must be a string, got a number (not shown)",
  );
});

Deno.test("an otel.headers value that HTTP refuses (a line break) is refused by name, never shown", () => {
  const token = "s3cr3t-0tel-t0ken-9f2c";
  for (
    const text of [
      `otel:\n  headers:\n    Authorization: "Bearer ${token}\\nX-Evil: 1"\n`,
      `otel:\n  headers:\n    Authorization: "Bearer ${token}\\u0000"\n`,
    ]
  ) {
    const e = errorOf(text);
    assert.equal(e.key, "otel.headers.Authorization", e.message);
    assert.ok(!e.message.includes(token), e.message);
  }
  assert.equal(errorOf('otel:\n  headers:\n    "Bad Name": x\n').key, "otel.headers.Bad Name");
  // What a header may hold is kept: spaces, and the whitespace Fetch trims at either end.
  const { config } = load(`otel:\n  headers:\n    Authorization: "Bearer ${token}\\n"\n`);
  assert.equal(config.otel.headers.Authorization, `Bearer ${token}\n`);
});

Deno.test("an error about any other key still shows the value it found", () => {
  assert.equal(
    errorOf('proxy:\n  port: "abc"\n').message,
    'proxy.port: must be an integer, got string "abc"',
  );
  assert.equal(
    errorOf('proxy:\n  http:\n    read_timeout: "soon"\n').message,
    'proxy.http.read_timeout: must be a duration such as "10s", "1m30s" or "500ms", got "soon"',
  );
});

Deno.test("the time zones taken without asking Intl are ones Intl accepts, and others are still asked", () => {
  for (const zone of UTC_TIME_ZONES) {
    assert.doesNotThrow(() => new Intl.DateTimeFormat("en", { timeZone: zone }), zone);
    const { config } = load(`dashboard:\n  timezone: ${zone}\n`);
    assert.equal(config.dashboard.timezone, zone);
  }
  assert.equal(
    load("dashboard:\n  timezone: Europe/Paris\n").config.dashboard.timezone,
    "Europe/Paris",
  );
  fails("dashboard.timezone", "dashboard:\n  timezone: UTC+1\n");
  fails("MCP_AUDIT_DASHBOARD_TIMEZONE", undefined, { MCP_AUDIT_DASHBOARD_TIMEZONE: "Etc/UTC " });
});

Deno.test("a file reads the same, and fails with the same message, with the parser imported by loadYamlParser", async () => {
  const good = "proxy:\n  server_id: s1\npolicy:\n  enabled: true\n";
  const bad = "proxy:\n  server_id: a\n  server_id: b\n";
  const outcome = (text: string): string => {
    try {
      return JSON.stringify(load(text).effective);
    } catch (e) {
      if (e instanceof ConfigError) return e.message;
      throw e;
    }
  };
  // In a process of its own, where nothing loaded the parser before: here the tests above did.
  const script = `
    import { loadConfig, loadYamlParser, ConfigError } from ${
    JSON.stringify(import.meta.resolve("./load.ts"))
  };
    await loadYamlParser();
    for (const text of ${JSON.stringify([good, bad])}) {
      try {
        const loaded = loadConfig({ file: { path: "config.yaml", text }, env: {}, flags: new Map(), upstreamArgv: [] });
        console.log(JSON.stringify(JSON.stringify(loaded.effective)));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        console.log(JSON.stringify(e.message));
      }
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `--config=${new URL("../../deno.json", import.meta.url).pathname}`, script],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").map((l): unknown =>
    JSON.parse(l)
  );
  assert.deepEqual(lines, [outcome(good), outcome(bad)]);
  assert.match(outcome(bad), /^config\.yaml: not valid YAML: line \d+, column \d+: /);
  await loadYamlParser();
  assert.deepEqual([outcome(good), outcome(bad)], lines);
});

/** Loads `text` as a file at `path`. */
function loadFile(path: string, text: string, env: Record<string, string> = {}) {
  return loadConfig({ file: { path, text }, env, flags: new Map(), upstreamArgv: [] });
}

Deno.test("GO_ENV_KEYS: the Go tool's keys with a default, each a key of ours it sets, named as viper names them", () => {
  assert.equal(GO_ENV_KEYS.length, 57);
  assert.equal(new Set(GO_ENV_KEYS).size, GO_ENV_KEYS.length);
  for (const key of GO_ENV_KEYS) {
    const spec = SCHEMA[key];
    assert.ok(spec !== undefined && spec.type.kind !== "ignored", key);
  }
  // Keys without a default in the Go tool are not read unprefixed (AUDIT_SECRET is, on its own).
  assert.ok(!GO_ENV_KEYS.includes("proxy.upstream"));
  assert.ok(!GO_ENV_KEYS.includes("audit.secret"));
  const names = GO_ENV_KEYS.map(goEnvName);
  for (
    const name of [
      "AUDIT_PATH",
      "AUDIT_STORAGE",
      "PROXY_PORT",
      "PROXY_CLIENT_ID",
      "DASHBOARD_PORT",
      "DASHBOARD_AUTH_TOKEN",
      "METRICS_PORT",
      "METRICS_TOOL_LABELS",
      "OTEL_ENABLED",
      "OTEL_ENDPOINT",
      "OTEL_SERVICE_NAME",
      "MIDDLEWARE_RATE_LIMIT_REQUESTS_PER_MINUTE",
    ]
  ) assert.ok(names.includes(name), name);
});

Deno.test("the Go tool's unprefixed variables: above the file, below MCP_AUDIT_* and flags", () => {
  const file = "audit:\n  path: ./from-file.jsonl\nproxy:\n  port: 5000\n";
  assert.equal(load(file).config.audit.path, "./from-file.jsonl");
  const go = load(file, { AUDIT_PATH: "/var/log/go.jsonl", PROXY_PORT: "6000" });
  assert.equal(go.config.audit.path, "/var/log/go.jsonl");
  assert.equal(go.config.proxy.port, 6000);
  assert.deepEqual(go.goEnv, ["AUDIT_PATH", "PROXY_PORT"]);
  const ours = load(file, {
    AUDIT_PATH: "/var/log/go.jsonl",
    MCP_AUDIT_AUDIT_PATH: "/var/log/ours.jsonl",
    PROXY_PORT: "6000",
  }, { "proxy.port": { flag: "--port", value: 7000 } });
  assert.equal(ours.config.audit.path, "/var/log/ours.jsonl");
  assert.equal(ours.config.proxy.port, 7000);
  // Only names whose value is in force are reported: the others were overridden.
  assert.deepEqual(ours.goEnv, []);
  // With no file at all, they still apply (the Go tool's defaults are what they override).
  assert.equal(load(undefined, { DASHBOARD_PORT: "0" }).config.dashboard.port, 0);
});

Deno.test("an empty unprefixed variable is not set, as viper ignores it without AllowEmptyEnv", () => {
  const r = load("audit:\n  path: ./f.jsonl\n", { AUDIT_PATH: "", DASHBOARD_AUTH_TOKEN: "" });
  assert.equal(r.config.audit.path, "./f.jsonl");
  assert.equal(r.config.dashboard.auth.token, "");
  assert.deepEqual(r.goEnv, []);
});

Deno.test("an empty variable is unset for every variable read: MCP_AUDIT_*, the Go names and the secrets", () => {
  const file =
    "dashboard:\n  auth:\n    token: file-token\naudit:\n  secret: file-secret-0123456789abcdef0123456789\n";
  const base = load(file);
  const env: Record<string, string> = { AUDIT_SECRET: "", MCP_AUDIT_SIGNING_SECRET: "" };
  for (const key of Object.keys(SCHEMA)) env[envName(key)] = "";
  for (const key of GO_ENV_KEYS) env[goEnvName(key)] = "";
  const r = load(file, env);
  // Nothing changed: the file's token still guards the dashboard, its secret still signs.
  assert.deepEqual(r.config, base.config);
  assert.equal(r.config.dashboard.auth.token, "file-token");
  assert.deepEqual(r.setBy, new Map());
  assert.deepEqual(r.goEnv, []);
  assert.deepEqual(r.emptyEnv, Object.keys(env).sort());
  // An empty one never beats a set one below it.
  const secret = "env-secret-0123456789abcdef0123456789ab";
  const s = load(file, { MCP_AUDIT_SIGNING_SECRET: "", AUDIT_SECRET: secret });
  assert.equal(s.config.audit.secret, secret);
  assert.equal(s.setBy.get("audit.secret"), "AUDIT_SECRET");
  const p = load(file, { MCP_AUDIT_PROXY_PORT: "", PROXY_PORT: "7001" });
  assert.equal(p.config.proxy.port, 7001);
  assert.deepEqual(p.goEnv, ["PROXY_PORT"]);
  assert.deepEqual(p.emptyEnv, ["MCP_AUDIT_PROXY_PORT"]);
  // An unknown MCP_AUDIT_ name is still refused when it holds something.
  fails("MCP_AUDIT_NOPE", undefined, { MCP_AUDIT_NOPE: "1" });
  assert.deepEqual(load(undefined, { MCP_AUDIT_NOPE: "" }).emptyEnv, ["MCP_AUDIT_NOPE"]);
});

Deno.test("values refused by a rule across keys name the variable or flag that set them, never a secret", () => {
  const cases: [Record<string, string>, string, string | undefined][] = [
    [{ METRICS_PATH: "metrics" }, "METRICS_PATH", undefined],
    [{ MCP_AUDIT_METRICS_PATH: "metrics" }, "MCP_AUDIT_METRICS_PATH", undefined],
    [{ PROXY_FORWARD_HEADERS: "Cookie" }, "PROXY_FORWARD_HEADERS", undefined],
    [
      { MCP_AUDIT_PROXY_FORWARD_HEADERS: "X-A,Set-Cookie" },
      "MCP_AUDIT_PROXY_FORWARD_HEADERS",
      undefined,
    ],
    [{ DASHBOARD_AUTH_TOKEN: "two secretwords" }, "DASHBOARD_AUTH_TOKEN", "secretwords"],
    [
      { MCP_AUDIT_DASHBOARD_AUTH_TOKEN: "a secretwords" },
      "MCP_AUDIT_DASHBOARD_AUTH_TOKEN",
      "secretwords",
    ],
    [{ PROXY_TLS_CLIENT_CERT_FILE: "c.pem" }, "PROXY_TLS_CLIENT_CERT_FILE", undefined],
    [{ MCP_AUDIT_AUDIT_KEY_ID: "a:b" }, "MCP_AUDIT_AUDIT_KEY_ID", undefined],
    [
      { MCP_AUDIT_OTEL_HEADERS: '{"Bad Name":"secretwords"}' },
      "MCP_AUDIT_OTEL_HEADERS",
      "secretwords",
    ],
    [
      { PROXY_RETRY_INITIAL_INTERVAL_MS: "5000", PROXY_RETRY_MAX_INTERVAL_MS: "100" },
      "PROXY_RETRY_INITIAL_INTERVAL_MS",
      undefined,
    ],
  ];
  for (const [env, name, secret] of cases) {
    try {
      load(undefined, env);
      assert.fail(`${JSON.stringify(env)} loaded`);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, name, e.message);
      if (secret !== undefined) assert.ok(!e.message.includes(secret), e.message);
    }
  }
  // From the file, the key; from a flag, the flag.
  fails("metrics.path", "metrics:\n  path: metrics\n");
  fails("dashboard.auth.token", "dashboard:\n  auth:\n    token: a b\n");
  assert.throws(
    () => load(undefined, {}, { "metrics.path": { flag: "--metrics-path", value: "m" } }),
    (e: unknown) =>
      e instanceof ConfigError && e.key === "--metrics-path" && /metrics\.path/.test(e.message),
  );
});

Deno.test("proxy.forward_headers takes only HTTP token names, from the file, MCP_AUDIT_* and PROXY_FORWARD_HEADERS", () => {
  for (const bad of ['"X-Api-Key"', "X-A;X-B", "X-A:", "X A", "X-Ä", "(x)", "a/b"]) {
    assert.throws(
      () => load(`proxy:\n  forward_headers: [${JSON.stringify(bad)}]\n`),
      (e: unknown) =>
        e instanceof ConfigError && e.key === "proxy.forward_headers" &&
        e.message.includes(JSON.stringify(bad)),
      bad,
    );
    for (const name of ["PROXY_FORWARD_HEADERS", "MCP_AUDIT_PROXY_FORWARD_HEADERS"]) {
      fails(name, undefined, { [name]: `X-Ok,${bad}` });
    }
  }
  const good = "X-Api-Key,x_trace.id,!#$%&'*+-.^_`|~09";
  assert.deepEqual(
    load(undefined, { PROXY_FORWARD_HEADERS: good }).config.proxy.forward_headers,
    good.split(","),
  );
});

Deno.test("a number too large to hold is told as such, not as null", () => {
  for (const text of ['{"proxy": {"port": 1e400}}', '{"proxy": {"server_id": -1e999}}']) {
    try {
      loadFile("c.json", text);
      assert.fail(text);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /got a number too large to hold/);
      assert.ok(!e.message.includes("null"), e.message);
    }
  }
});

Deno.test("a bad JSON value of an MCP_AUDIT_ variable is told by place and kind, never quoted", () => {
  try {
    load(undefined, { MCP_AUDIT_OTEL_HEADERS: "{'Authorization': 'Bearer secretwords'}" });
    assert.fail("loaded");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, "MCP_AUDIT_OTEL_HEADERS");
    assert.equal(
      e.message,
      "MCP_AUDIT_OTEL_HEADERS: must be JSON: expected a key in double quotes, found a single-quoted string (JSON strings use double quotes) at character 2",
    );
  }
});

Deno.test("unprefixed variables are parsed by the key's type, with Go's boolean words", () => {
  const { config, goEnv } = load(undefined, {
    METRICS_ENABLED: "f",
    DASHBOARD_ENABLED: "T",
    METRICS_TOOL_LABELS: "FALSE",
    OTEL_ENDPOINT: "http://collector:4318",
    OTEL_SERVICE_NAME: "audit-proxy",
    PROXY_CLIENT_ID: "cursor",
    AUDIT_STORAGE: "sqlite",
    POLICY_DEFAULT_ACTION: "Deny",
    MIDDLEWARE_REDACT_PATTERNS: "password, ssn,,",
    PROXY_FORWARD_HEADERS: "Authorization",
    DASHBOARD_AUTH_TOKEN: "tok-123",
  });
  assert.equal(config.metrics.enabled, false);
  assert.equal(config.dashboard.enabled, true);
  assert.equal(config.metrics.tool_labels, false);
  assert.equal(config.otel.endpoint, "http://collector:4318");
  assert.equal(config.otel.service_name, "audit-proxy");
  assert.equal(config.proxy.client_id, "cursor");
  assert.equal(config.audit.storage, "sqlite");
  assert.equal(config.policy.default_action, "deny");
  // A list is comma-separated (viper's split); a stray comma adds no empty pattern.
  assert.deepEqual(config.middleware.redact.patterns, ["password", "ssn"]);
  assert.deepEqual(config.proxy.forward_headers, ["Authorization"]);
  assert.equal(config.dashboard.auth.token, "tok-123");
  assert.equal(goEnv.length, 11);
});

Deno.test("only the Go tool's keys are read unprefixed: our own keys need MCP_AUDIT_*", () => {
  const { config, goEnv } = load(undefined, {
    AUDIT_DURABILITY: "entry",
    PROXY_BIND_ADDRESS: "0.0.0.0",
    METRICS_BIND_ADDRESS: "0.0.0.0",
    PROXY_UPSTREAM: "evil-server",
  });
  assert.equal(config.audit.durability, SCHEMA["audit.durability"]!.default);
  assert.equal(config.proxy.bind_address, "127.0.0.1");
  assert.equal(config.metrics.bind_address, "127.0.0.1");
  assert.equal(config.proxy.upstream, "", "PROXY_UPSTREAM without proxy.upstream in the file");
  assert.deepEqual(goEnv, []);
});

Deno.test("PROXY_UPSTREAM overrides proxy.upstream when the file sets it, as viper reads a key it knows", () => {
  const file = 'proxy:\n  upstream: "npx @modelcontextprotocol/server-filesystem /tmp"\n';
  const r = load(file, { PROXY_UPSTREAM: "npx other-server" });
  assert.equal(r.config.proxy.upstream, "npx other-server");
  assert.deepEqual(r.goEnv, ["PROXY_UPSTREAM"]);
  assert.equal(
    load(file, { PROXY_UPSTREAM: "x", MCP_AUDIT_PROXY_UPSTREAM: "y" }).config.proxy.upstream,
    "y",
  );
});

Deno.test("a bad unprefixed value names the variable; a secret's value is never shown", () => {
  assert.equal(
    errorOf(undefined, { PROXY_PORT: "abc" }).message,
    'PROXY_PORT: must be an integer 0–65535, got "abc"',
  );
  assert.equal(
    errorOf(undefined, { AUDIT_ASYNC_QUEUE_SIZE: "lots" }).message,
    'AUDIT_ASYNC_QUEUE_SIZE: must be an integer ≥ 1, got "lots"',
  );
  assert.equal(
    errorOf(undefined, { METRICS_PORT: "70000" }).message,
    "METRICS_PORT: must be from 0 to 65535, got 70000",
  );
  fails("AUDIT_SIGN", undefined, { AUDIT_SIGN: "yes" });
  fails("AUDIT_STORAGE", undefined, { AUDIT_STORAGE: "postgres" });
  fails("PROXY_TRANSPORT", undefined, { PROXY_TRANSPORT: "grpc" });
  const token = "not a token";
  const e = errorOf(undefined, { DASHBOARD_AUTH_TOKEN: token });
  assert.ok(!e.message.includes(token), e.message);
  // The same message for the prefixed name.
  assert.equal(
    errorOf(undefined, { MCP_AUDIT_PROXY_PORT: "abc" }).message,
    'MCP_AUDIT_PROXY_PORT: must be an integer 0–65535, got "abc"',
  );
});

Deno.test("OTEL_HEADERS and POLICY_RULES are refused by name, as the Go tool refused to start with them", () => {
  for (
    const [name, key, text] of [
      ["OTEL_HEADERS", "otel.headers", "Authorization=Bearer x"],
      ["POLICY_RULES", "policy.rules", '[{"action":"deny"}]'],
    ] as const
  ) {
    const e = errorOf(undefined, { [name]: text });
    assert.equal(e.key, name);
    assert.ok(e.message.includes(key) && e.message.includes(envName(key)), e.message);
    assert.ok(!e.message.includes("Bearer"), e.message);
    // Empty, they are not set at all.
    assert.doesNotThrow(() => load(undefined, { [name]: "" }));
  }
});

Deno.test("a .json configuration file loads as the same YAML would", () => {
  const yaml = load(
    "proxy:\n  port: 5000\n  forward_headers: [Authorization]\npolicy:\n  enabled: true\n  rules:\n    - action: deny\n      tool_name: rm\n",
  );
  const json = loadFile(
    "/etc/mcp-audit/config.json",
    '\uFEFF{\n  "proxy": {"port": 5000, "forward_headers": ["Authorization"]},\n  "policy": {"enabled": true, "rules": [{"action": "deny", "tool_name": "rm"}]}\n}\n',
  );
  assert.deepEqual(json.config, yaml.config);
  assert.deepEqual(json.fromFile, yaml.fromFile);
  // Unknown keys are refused by name in JSON as in YAML.
  assert.throws(
    () => loadFile("c.json", '{"proxy": {"prot": 1}}'),
    (e: unknown) => e instanceof ConfigError && e.key === "proxy.prot",
  );
});

Deno.test("a .json file is strict JSON: comments, trailing commas and repeated keys are refused at their line and column", () => {
  const cases: [string, string, string][] = [
    ['{\n  "proxy": {"port": 1,}\n}', "c.json:2:23", 'not valid JSON: a comma before "}"'],
    ['{\n  // a comment\n  "proxy": {}\n}', "c.json:2:3", "not valid JSON: expected a key"],
    ['{"proxy": {"port": 1}', "c.json:1:22", 'not valid JSON: expected "," or "}", found the end'],
    ["", "c.json:1:1", "not valid JSON: the file holds no JSON value"],
    [
      '{\n  "proxy": {"port": 1},\n  "proxy": {"port": 2}\n}',
      "c.json:3:3",
      "not valid JSON: a key",
    ],
  ];
  for (const [text, key, start] of cases) {
    let e: unknown;
    try {
      loadFile("c.json", text);
    } catch (caught) {
      e = caught;
    }
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, key, `${JSON.stringify(text)}: ${e.message}`);
    assert.ok(e.message.startsWith(`${key}: ${start}`), e.message);
  }
});

Deno.test("the file's format follows its extension; viper's other formats are refused, naming the extension", () => {
  assert.equal(configFormat("config.yaml"), "yaml");
  assert.equal(configFormat("/etc/x/config.YML"), "yaml");
  assert.equal(configFormat("mcp-audit-config"), "yaml");
  assert.equal(configFormat(".mcp-audit"), "yaml");
  assert.equal(configFormat("./dir.d/config"), "yaml");
  assert.equal(configFormat("C:\\cfg\\config.JSON"), "json");
  for (
    const ext of ["toml", "hcl", "tfvars", "ini", "env", "dotenv", "properties", "props", "prop"]
  ) {
    assert.throws(
      () => loadFile(`config.${ext}`, ""),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.key, `config.${ext}`);
        assert.match(
          e.message,
          new RegExp(
            `\\(\\.${ext}\\) configuration files are not supported; convert it to YAML \\(\\.yaml\\) or JSON \\(\\.json\\)`,
          ),
        );
        return true;
      },
    );
  }
  // YAML that is not JSON, in a .json file, is refused; JSON in a .yaml file reads (YAML holds it).
  assert.throws(() => loadFile("c.json", "proxy:\n  port: 1\n"), ConfigError);
  assert.equal(loadFile("c.yaml", '{"proxy": {"port": 1}}').config.proxy.port, 1);
});
