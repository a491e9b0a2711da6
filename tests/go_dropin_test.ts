/**
 * The Go tool's README commands, its Claude Desktop entry and its shipped `config.yaml`, run
 * against this program unchanged: `mcp-audit` on PATH is this program (a script running
 * `deno run main.ts`), and `npx` on PATH is a stand-in that runs the real server-filesystem from
 * npm with deno. Each case starts one proxy in front of a real MCP server, makes a `tools/call`
 * with the MCP SDK client, and checks the log: where the Go tool's settings said, and verifying.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, McpError } from "@modelcontextprotocol/sdk/types.js";
import { BUILD_COMMIT, BUILD_DATE } from "../src/build_info.ts";
import { loadConfig } from "../src/config/load.ts";
import { GO_ENV_KEYS, goEnvName } from "../src/config/schema.ts";
import { VERSION } from "../src/version.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  Collector,
  deadline,
  DENO_JSON,
  exitAndStderr,
  FIXTURES,
  killChild,
  MAIN,
  pick,
  readLog,
  releaseStderr,
  SECRET,
  StdioCommand,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import { cleanEnv, EverythingHttpServer, jsonLines } from "./http_helpers.ts";

const GO = `${FIXTURES}go/`;
/** The upstream of the Go tool's README and `config.yaml`, word for word. */
const README_UPSTREAM = "npx @modelcontextprotocol/server-filesystem /tmp";
const CLIENT_INFO = { name: "go-dropin-client", version: "1.0.0" };

/** The machine's environment without any setting of ours or of the Go tool's. */
function hostEnv(): Record<string, string> {
  const env = cleanEnv();
  for (const key of GO_ENV_KEYS) delete env[goEnvName(key)];
  delete env["PROXY_UPSTREAM"];
  return env;
}

/**
 * Puts `mcp-audit` (this program from source) and a stand-in `npx` in `dir/bin`, and returns the
 * host environment with that directory first on PATH.
 */
async function installBin(dir: string): Promise<Record<string, string>> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  const deno = Deno.execPath();
  const scripts: Record<string, string> = {
    "mcp-audit": `#!/bin/sh\nexec '${deno}' run -A --config '${DENO_JSON}' '${MAIN}' "$@"\n`,
    // npx runs a package's binary; this one knows the package the Go tool's examples use.
    npx: `#!/bin/sh
case "$1" in -y|--yes) shift ;; esac
pkg="$1"; shift
case "$pkg" in
  @modelcontextprotocol/server-filesystem)
    exec '${deno}' run -A npm:@modelcontextprotocol/server-filesystem@2026.8.31 "$@" ;;
  *) echo "stand-in npx: no package $pkg here" >&2; exit 127 ;;
esac
`,
  };
  for (const [name, text] of Object.entries(scripts)) {
    await Deno.writeTextFile(`${bin}/${name}`, text, { mode: 0o755 });
  }
  return { ...hostEnv(), PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` };
}

/** The text of a tool result. */
function textOf(result: unknown): string {
  const first = CallToolResultSchema.parse(result).content[0];
  assert(first !== undefined && first.type === "text", "the result starts with text");
  return first.text;
}

/** The address a `<name> listening` log line names. */
function listening(lines: readonly Record<string, unknown>[], name: string): string | undefined {
  const line = lines.find((l) => l.msg === `${name} listening`);
  return typeof line?.address === "string" ? line.address : undefined;
}

/**
 * Runs `mcp-audit ARGS` as a client would (the command found on PATH, with `env`), calls
 * `list_allowed_directories` through it, runs `during` while it is up, then ends the session and
 * waits for the proxy to exit. Returns its structured log lines.
 */
async function stdioSession(
  opts: {
    cwd: string;
    args: string[];
    env: Record<string, string>;
    signal: AbortSignal;
    during?: (session: { stderr: Collector; client: Client; pid: number }) => Promise<void>;
  },
): Promise<Record<string, unknown>[]> {
  await using proxy = new StdioCommand("mcp-audit", opts.args, { env: opts.env, cwd: opts.cwd });
  const client = new Client(CLIENT_INFO);
  await client.connect(proxy.transport());
  const dirs = textOf(await client.callTool({ name: "list_allowed_directories", arguments: {} }));
  assertMatch(dirs, /\/tmp/, "the upstream serves the /tmp of the README's command");
  await opts.during?.({ stderr: proxy.stderr, client, pid: proxy.child.pid });
  await client.close();
  const status = await proxy.finished(opts.signal);
  assertEquals(status.code, 0, proxy.stderr.text());
  return jsonLines(proxy.stderr.lines);
}

/**
 * Asserts that the dashboard the proxy announced on `stderr` refuses `/api/entries` without a
 * token (401) and answers it with `token` (200); `why` words the two assertions.
 */
async function assertDashboardToken(
  stderr: Collector,
  token: string,
  signal: AbortSignal,
  why: { refused: string; allowed: string },
): Promise<void> {
  const address = listening(jsonLines(stderr.lines), "dashboard");
  assert(address !== undefined, "the dashboard is on, as the file says");
  const refused = await fetch(`${address}/api/entries`, { signal });
  await refused.body?.cancel();
  assertEquals(refused.status, 401, why.refused);
  const allowed = await fetch(`${address}/api/entries`, {
    headers: { authorization: `Bearer ${token}` },
    signal,
  });
  await allowed.body?.cancel();
  assertEquals(allowed.status, 200, why.allowed);
}

/** Asserts that the log at `path` holds the session's tools/call and verifies with `secret`. */
async function assertLogged(
  path: string,
  secret: string,
  ids: { client_id: string; server_id: string },
  tools = ["list_allowed_directories"],
): Promise<void> {
  const { records } = await readLog(path);
  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.tool_name), tools);
  assertEquals({ client_id: calls[0]!.client_id, server_id: calls[0]!.server_id }, ids);
  const verify = await verifyLog(path, { secret });
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  assertMatch(verify.lines[0] ?? "", /^OK: /);
}

Deno.test("the Go tool's config.yaml, as shipped, loads with no error and no warning; its JSON form loads the same", async () => {
  const yaml = await Deno.readTextFile(`${GO}config.yaml.as-shipped`);
  const json = await Deno.readTextFile(`${GO}config.json`);
  const load = (path: string, text: string) =>
    loadConfig({ file: { path, text }, env: {}, flags: new Map(), upstreamArgv: [] });
  const fromYaml = load("config.yaml", yaml);
  assertEquals(fromYaml.warnings, []);
  assertEquals(fromYaml.config.proxy.upstream, README_UPSTREAM);
  assertEquals(fromYaml.config.dashboard.port, 9090);
  const fromJson = load("config.json", json);
  assertEquals(fromJson.warnings, []);
  assertEquals(fromJson.config, fromYaml.config);
});

Deno.test("README quick start, literally, over the Go tool's config.yaml in the working directory: AUDIT_PATH and DASHBOARD_AUTH_TOKEN from the environment take effect", async () => {
  await using dir = await tempDir("go-quickstart");
  const signal = deadline(90_000);
  await Deno.copyFile(`${GO}config.yaml.as-shipped`, `${dir.path}/config.yaml`);
  const logPath = `${dir.path}/from-env.jsonl`;
  const token = "go-dashboard-token-7c1e";
  const env = {
    ...await installBin(dir.path),
    AUDIT_SECRET: SECRET,
    AUDIT_PATH: logPath,
    DASHBOARD_AUTH_TOKEN: token,
    // The file's fixed 9090 and 9091, moved by the Go tool's own variables so that runs side by
    // side never collide.
    DASHBOARD_PORT: "0",
    METRICS_PORT: "0",
  };
  const lines = await stdioSession({
    cwd: dir.path,
    // AUDIT_SECRET=... mcp-audit --transport stdio --upstream "npx @modelcontextprotocol/server-filesystem /tmp"
    args: ["--transport", "stdio", "--upstream", README_UPSTREAM],
    env,
    signal,
    during: ({ stderr }) =>
      assertDashboardToken(stderr, token, signal, {
        refused: "no token: refused",
        allowed: "DASHBOARD_AUTH_TOKEN is the token",
      }),
  });
  const warnings = lines.filter((l) => l.level === "warn" || l.level === "error");
  assertEquals(warnings, [], "the Go tool's config.yaml gives no warning");
  assert(!(await exists(`${dir.path}/audit.jsonl`)), "the file's ./audit.jsonl is overridden");
  await assertLogged(logPath, SECRET, { client_id: "claude-desktop", server_id: "filesystem" });
});

Deno.test("empty variables (a compose file's `VAR=`) are unset: the file's dashboard token still guards, its secret still signs", async () => {
  await using dir = await tempDir("go-empty-env");
  const signal = deadline(90_000);
  const logPath = `${dir.path}/audit.jsonl`;
  const secret = "file-secret-4f1d0c9e8b7a6f5e4d3c2b1a0f9e8d7c";
  const token = "file-dashboard-token-2b9d";
  await Deno.writeTextFile(
    `${dir.path}/config.yaml`,
    `audit:\n  path: ${logPath}\n  secret: ${secret}\nproxy:\n  client_id: c\n  server_id: s\n` +
      `dashboard:\n  enabled: true\n  port: 0\n  auth:\n    token: ${token}\nmetrics:\n  enabled: false\n`,
  );
  const env = {
    ...await installBin(dir.path),
    AUDIT_SECRET: "",
    MCP_AUDIT_SIGNING_SECRET: "",
    MCP_AUDIT_AUDIT_SECRET: "",
    DASHBOARD_AUTH_TOKEN: "",
    MCP_AUDIT_DASHBOARD_AUTH_TOKEN: "",
    AUDIT_PATH: "",
    MCP_AUDIT_AUDIT_PATH: "",
  };
  await stdioSession({
    cwd: dir.path,
    args: ["--transport", "stdio", "--upstream", README_UPSTREAM],
    env,
    signal,
    during: ({ stderr }) =>
      assertDashboardToken(stderr, token, signal, {
        refused: "no token: refused (an empty variable did not wipe it)",
        allowed: "the file's token is the token",
      }),
  });
  await assertLogged(logPath, secret, { client_id: "c", server_id: "s" });
});

Deno.test("the README's Claude Desktop entry runs as the client runs it: its command on PATH, its args, its env", async () => {
  await using dir = await tempDir("go-claude-desktop");
  const signal = deadline(90_000);
  const config: unknown = JSON.parse(
    await Deno.readTextFile(`${GO}claude_desktop_config.json`),
  );
  const entry = serverEntry(config, "filesystem-audited");
  const secret = entry.env["AUDIT_SECRET"];
  assert(secret !== undefined, "the entry sets AUDIT_SECRET");
  await stdioSession({
    cwd: dir.path,
    args: entry.args,
    env: {
      ...await installBin(dir.path),
      // This machine's own choice, not the entry's: free ports for the dashboard and metrics.
      MCP_AUDIT_DASHBOARD_PORT: "0",
      MCP_AUDIT_METRICS_PORT: "0",
      ...entry.env,
    },
    signal,
  });
  assertEquals(entry.command, "mcp-audit");
  await assertLogged(`${dir.path}/audit.jsonl`, secret, {
    client_id: "claude-desktop",
    server_id: "filesystem",
  });
});

Deno.test("single-dash Go spellings and a .json config: -config x.json -transport=stdio -upstream … -no-dashboard -no-metrics=true; the JSON file reloads", async () => {
  await using dir = await tempDir("go-single-dash");
  const signal = deadline(90_000);
  const json = await Deno.readTextFile(`${GO}config.json`);
  await Deno.writeTextFile(`${dir.path}/go.json`, json);
  const lines = await stdioSession({
    cwd: dir.path,
    args: [
      "-config",
      "go.json",
      "-transport=stdio",
      "-upstream",
      README_UPSTREAM,
      "-no-dashboard",
      "-no-metrics=true",
      "-log-level",
      "info",
      "-client-id=go-client",
    ],
    env: { ...await installBin(dir.path), AUDIT_SECRET: SECRET },
    signal,
    during: async ({ stderr, client, pid }) => {
      // A policy added to the JSON file (written whole, then renamed over it) and a SIGHUP: the
      // reload reads the file as JSON again.
      const edited = json.replace(
        /"policy": \{[^}]*\}/,
        '"policy": {"enabled": true, "default_action": "allow", "rules": [{"action": "deny", "tool_name": "list_allowed_directories"}]}',
      );
      assert(edited !== json, "the policy section was rewritten");
      await Deno.writeTextFile(`${dir.path}/go.json.tmp`, edited);
      await Deno.rename(`${dir.path}/go.json.tmp`, `${dir.path}/go.json`);
      Deno.kill(pid, "SIGHUP");
      await stderr.waitFor(
        () =>
          jsonLines(stderr.lines).some((l) =>
            l.msg === "configuration reloaded" && l.outcome === "applied"
          ),
        "the JSON file to reload",
        signal,
      );
      const refused = await client.callTool({ name: "list_allowed_directories", arguments: {} })
        .then(() => undefined, (e: unknown) => e);
      assert(refused instanceof McpError, `the call is refused: ${String(refused)}`);
      assertEquals(refused.code, -32030);
    },
  });
  assertEquals(listening(lines, "dashboard"), undefined, "-no-dashboard");
  assertEquals(listening(lines, "metrics"), undefined, "-no-metrics=true");
  assert(lines.length > 0, "its log was read");
  await assertLogged(`${dir.path}/audit.jsonl`, SECRET, {
    client_id: "go-client",
    server_id: "filesystem",
  }, ["list_allowed_directories", "list_allowed_directories"]);
});

Deno.test("README HTTP mode: mcp-audit --transport http --upstream http://127.0.0.1:<port> --port <free> in front of a real HTTP server", async () => {
  await using dir = await tempDir("go-http");
  const signal = deadline(90_000);
  await using server = await EverythingHttpServer.start(dir.path, signal);
  const upstream = `http://127.0.0.1:${server.port}`;
  const logPath = `${dir.path}/audit.jsonl`;
  const proxy = new Deno.Command("mcp-audit", {
    args: ["--transport", "http", "--upstream", upstream, "--port", "0"],
    cwd: dir.path,
    env: {
      ...await installBin(dir.path),
      AUDIT_SECRET: SECRET,
      DASHBOARD_PORT: "0",
      METRICS_PORT: "0",
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = proxy.status.then((s) => {
    exited = true;
    return s;
  });
  const stderr = new Collector(proxy.stderr);
  const address = (name: string) => listening(jsonLines(stderr.lines), name);
  try {
    await stderr.waitFor(() => address("proxy") !== undefined, "the proxy to listen", signal);
    await stderr.waitFor(() => address("metrics") !== undefined, "metrics to listen", signal);
    const origin = new URL(address("proxy")!).origin;
    const client = new Client(CLIENT_INFO);
    await client.connect(new StreamableHTTPClientTransport(new URL(`${origin}/mcp`)));
    const echoed = textOf(
      await client.callTool({ name: "echo", arguments: { message: "from a Go user" } }),
    );
    assertMatch(echoed, /from a Go user/);
    await client.close();
    // The metric names the Go tool's dashboards query.
    const metrics = await fetch(`${address("metrics")}/metrics`, { signal });
    const text = await metrics.text();
    assertMatch(text, /^mcp_audit_entries_total\{/m);
    assertMatch(text, /^mcp_audit_tool_calls_total\{/m);
    proxy.kill("SIGTERM");
    const { code } = await exitAndStderr(status, stderr, signal, "the proxy");
    assertEquals(code, 0, stderr.text());
  } finally {
    await killChild(proxy, exited, status);
    await releaseStderr(proxy, stderr);
  }
  const { records } = await readLog(logPath);
  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.map((r) => r.tool_name), ["echo"]);
  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
});

Deno.test("--version prints the Go tool's line, also as -version, -v and version", async () => {
  await using dir = await tempDir("go-version");
  const env = await installBin(dir.path);
  const expected = `mcp-audit ${VERSION} (commit ${BUILD_COMMIT}, built ${BUILD_DATE})\n`;
  assertMatch(expected, /^mcp-audit \d+\.\d+\.\d+ \(commit \S+, built \S+\)\n$/);
  for (const args of [["--version"], ["-version"], ["-v"], ["version"]]) {
    const out = await run(args, { cwd: dir.path, env });
    assertEquals(out, { code: 0, stdout: expected, stderr: "" }, args.join(" "));
  }
});

Deno.test("a bad Go variable exits 2 naming it, before anything starts; a TOML config is refused by extension", async () => {
  await using dir = await tempDir("go-bad-env");
  const env = await installBin(dir.path);
  assertEquals(
    await run(["--upstream", "npx x"], { cwd: dir.path, env: { ...env, PROXY_PORT: "abc" } }),
    {
      code: 2,
      stdout: "",
      stderr: 'mcp-audit: config: PROXY_PORT: must be an integer 0–65535, got "abc"\n',
    },
  );
  await Deno.writeTextFile(`${dir.path}/config.toml`, '[proxy]\nupstream = "npx x"\n');
  const toml = await run(["--config", "config.toml"], { cwd: dir.path, env });
  assertEquals(toml.code, 2);
  assertMatch(
    toml.stderr,
    /^mcp-audit: config: config\.toml: TOML \(\.toml\) configuration files are not supported; convert it to YAML \(\.yaml\) or JSON \(\.json\)/,
  );
  assert(!(await exists(`${dir.path}/audit.jsonl`)), "nothing is written");
});

/** Runs `mcp-audit ARGS` to its end. */
async function run(
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("mcp-audit", {
    args,
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** A client config's stdio server entry, checked. */
function serverEntry(
  config: unknown,
  name: string,
): { command: string; args: string[]; env: Record<string, string> } {
  const servers = field(config, "mcpServers");
  const entry = field(servers, name);
  const command = field(entry, "command");
  const args = field(entry, "args");
  const env = field(entry, "env");
  assert(typeof command === "string", "the entry has a command");
  assert(Array.isArray(args) && args.every((a) => typeof a === "string"), "args are strings");
  assert(env === undefined || (typeof env === "object" && env !== null), "env is a map");
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env ?? {})) {
    assert(typeof v === "string", `env ${k} is a string`);
    vars[k] = v;
  }
  return { command, args, env: vars };
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? new Map(Object.entries(value)).get(key)
    : undefined;
}
