/**
 * Attacks on the Go drop-in (the Go tool's unprefixed variables, `.json` files, Go's flag
 * spellings) and on `mcp-audit doctor`: every promise of docs/migration.md, docs/configuration.md
 * and the doctor's section of docs/clients.md tried with bad input. The configuration and the
 * command line are read in-process by the real loader and parser (fast); the proxy and the doctor
 * run as `deno run main.ts`, in front of real upstreams (a misbehaving stdio fixture, the echo
 * fixture, HTTP servers started here) with exactly the environment each case gives.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parseCommand } from "../src/cli/args.ts";
import { UsageError } from "../src/cli/errors.ts";
import { ConfigError, loadConfig, type Loaded, loadYamlParser } from "../src/config/load.ts";
import { GO_ENV_KEYS, goEnvName } from "../src/config/schema.ts";
import {
  assertNoStrays,
  deadline,
  DENO_JSON,
  echoProxyLog,
  fixture,
  MAIN,
  type MainRun,
  ProxyProcess,
  runMain,
  SECRET,
  STORAGE,
  tempDir,
} from "./helpers.ts";
import { cleanEnv } from "./http_helpers.ts";
import { makeCerts } from "./fixtures/tls/make_certs.ts";

await loadYamlParser();

/**
 * `Deno.test`, in the jsonl pass only: nothing here depends on the suite's storage (the doctor's
 * cases write and pick each backend themselves; the proxies' logs are not read).
 */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, ignore: STORAGE === "sqlite", fn });
}

/** A secret value that must never be printed, in part or whole. */
const TOKEN = "s3cretTOKENvalue0123456789abcdef";
/** Its first six characters: a part of it that an error quoting a snippet would show. */
const TOKEN_PART = TOKEN.slice(0, 6);

const HOSTILE = new URL("./fixtures/dropin_attack/hostile_upstream.ts", import.meta.url).pathname;

/** The argv that runs the misbehaving upstream in `mode`. */
function hostile(mode: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", HOSTILE, mode, ...args];
}

// ---------------------------------------------------------------------------------------------
// In-process: the loader and the command line.

interface LoadCase {
  file?: { path: string; text: string };
  env?: Record<string, string>;
  flags?: [string, string, unknown][];
  argv?: string[];
}

function load(c: LoadCase): Loaded {
  return loadConfig({
    file: c.file,
    env: c.env ?? {},
    flags: new Map((c.flags ?? []).map(([key, flag, value]) => [key, { flag, value }])),
    upstreamArgv: c.argv ?? [],
  });
}

function loadError(c: LoadCase): ConfigError {
  try {
    load(c);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`loaded without an error: ${JSON.stringify(c)}`);
}

test("precedence for each kind of Go key: flag > MCP_AUDIT_* > unprefixed > file > default", () => {
  const cases: {
    key: string;
    file: string;
    go: string;
    ours: string;
    flag: [string, unknown] | undefined;
    want: [unknown, unknown, unknown, unknown];
    get: (l: Loaded) => unknown;
  }[] = [
    {
      key: "proxy.port",
      file: '{"proxy": {"port": 1111}}',
      go: "2222",
      ours: "3333",
      flag: ["-port", 4444],
      want: [1111, 2222, 3333, 4444],
      get: (l) => l.config.proxy.port,
    },
    {
      key: "audit.path",
      file: '{"audit": {"path": "file.jsonl"}}',
      go: "go.jsonl",
      ours: "ours.jsonl",
      flag: undefined,
      want: ["file.jsonl", "go.jsonl", "ours.jsonl", "ours.jsonl"],
      get: (l) => l.config.audit.path,
    },
    {
      key: "audit.storage",
      file: '{"audit": {"storage": "jsonl"}}',
      go: "sqlite",
      ours: "jsonl",
      flag: ["--storage", "sqlite"],
      want: ["jsonl", "sqlite", "jsonl", "sqlite"],
      get: (l) => l.config.audit.storage,
    },
    {
      key: "dashboard.enabled",
      file: '{"dashboard": {"enabled": true}}',
      go: "false",
      ours: "true",
      flag: ["-no-dashboard", false],
      want: [true, false, true, false],
      get: (l) => l.config.dashboard.enabled,
    },
    {
      key: "middleware.redact.patterns",
      file: '{"middleware": {"redact": {"patterns": ["a"]}}}',
      go: "b,c",
      ours: "d",
      flag: undefined,
      want: [["a"], ["b", "c"], ["d"], ["d"]],
      get: (l) => l.config.middleware.redact.patterns,
    },
  ];
  for (const c of cases) {
    const file = { path: "c.json", text: c.file };
    const go = { [goEnvName(c.key)]: c.go };
    const ours = { ...go, [`MCP_AUDIT_${goEnvName(c.key)}`]: c.ours };
    const flags: [string, string, unknown][] = c.flag === undefined
      ? []
      : [[c.key, c.flag[0], c.flag[1]]];
    const got = [
      c.get(load({ file })),
      c.get(load({ file, env: go })),
      c.get(load({ file, env: ours })),
      c.get(load({ file, env: ours, flags })),
    ];
    assertEquals(got, c.want, c.key);
    // Only the unprefixed name in force is reported; one overridden is not.
    assertEquals(load({ file, env: go }).goEnv, [goEnvName(c.key)], c.key);
    assertEquals(load({ file, env: ours }).goEnv, [], c.key);
  }
});

test("an empty unprefixed variable is not set, for every Go key", () => {
  const env = Object.fromEntries(GO_ENV_KEYS.map((k) => [goEnvName(k), ""]));
  const l = load({ env });
  assertEquals(l.goEnv, []);
  assertEquals(l.config.proxy.port, load({}).config.proxy.port);
});

test("bad values of the Go tool's variables are refused, naming the variable", () => {
  const bad: [string, string][] = [
    ["PROXY_PORT", "abc"],
    ["PROXY_PORT", " "],
    ["PROXY_PORT", "0x10"],
    ["PROXY_PORT", "1e3"],
    ["PROXY_PORT", "-1"],
    ["PROXY_PORT", "65536"],
    ["PROXY_PORT", "99999999999999999999999"],
    ["PROXY_PORT", "\u0664\u0664\u0662\u0663"], // Arabic-Indic digits
    ["PROXY_PORT", "\uff14\uff14\uff12\uff13"], // full-width digits
    ["PROXY_PORT", "1_000"],
    ["PROXY_PORT", "4423.0"],
    ["AUDIT_ROTATION_MAX_SIZE_BYTES", "9007199254740993"],
    ["AUDIT_SIGN", "yes"],
    ["AUDIT_SIGN", "tru e"],
    ["DASHBOARD_ENABLED", "2"],
    ["AUDIT_STORAGE", "postgres"],
    ["POLICY_DEFAULT_ACTION", "block"],
    ["POLICY_RULES", '[{"action":"deny"}]'],
    ["OTEL_HEADERS", '{"a":"b"}'],
    // Bad in combination with the rest: still the variable's fault.
    ["METRICS_PATH", "metrics"],
    ["PROXY_FORWARD_HEADERS", "Cookie"],
    ["DASHBOARD_AUTH_TOKEN", "two words"],
  ];
  const wrong: string[] = [];
  for (const [name, value] of bad) {
    let e: ConfigError;
    try {
      e = loadError({ env: { [name]: value } });
    } catch (thrown) {
      wrong.push(`${name}=${JSON.stringify(value)}: ${String(thrown)}`);
      continue;
    }
    if (e.key !== name) wrong.push(`${name}=${JSON.stringify(value)} named ${e.message}`);
  }
  assertEquals(wrong, []);
});

test("odd values of the Go tool's variables read as documented (Go's words, trimmed, decimal)", () => {
  assertEquals(load({ env: { AUDIT_SIGN: "true " } }).config.audit.sign, true);
  assertEquals(load({ env: { AUDIT_SIGN: "F" } }).config.audit.sign, false);
  assertEquals(load({ env: { DASHBOARD_ENABLED: "0" } }).config.dashboard.enabled, false);
  assertEquals(load({ env: { PROXY_PORT: " 4423\t" } }).config.proxy.port, 4423);
  assertEquals(load({ env: { AUDIT_STORAGE: " SQLite " } }).config.audit.storage, "sqlite");
  assertEquals(
    load({ env: { OTEL_SERVICE_NAME: "checkout" } }).config.otel.service_name,
    "checkout",
  );
  assertEquals(load({ env: { OTEL_SERVICE_NAME: "checkout" } }).goEnv, ["OTEL_SERVICE_NAME"]);
});

test("list variables: stray commas, blanks and spaces are dropped; the defaults stand for an empty list", () => {
  const p = (text: string) =>
    load({ env: { MIDDLEWARE_REDACT_PATTERNS: text } }).config.middleware.redact.patterns;
  assertEquals(p("a,,b"), ["a", "b"]);
  assertEquals(p(" a , b ,"), ["a", "b"]);
  const defaults = load({}).config.middleware.redact.patterns;
  assertEquals(p(" , "), defaults);
  assertEquals(p(","), defaults);
  const h = (text: string) =>
    load({ env: { PROXY_FORWARD_HEADERS: text } }).config.proxy.forward_headers;
  assertEquals(h("X-A,,X-B"), ["X-A", "X-B"]);
  assertEquals(h(" , "), []);
});

test("PROXY_FORWARD_HEADERS with quotes (as a compose env_file keeps them) is refused, not a header name that never matches", () => {
  // docker compose's env_file and systemd's EnvironmentFile pass `"X-Api-Key"` with its quotes.
  for (const text of ['"X-Api-Key"', "X-Api-Key;X-B", "X-Api-Key:"]) {
    const e = loadError({ env: { PROXY_FORWARD_HEADERS: text } });
    assert(e.key === "PROXY_FORWARD_HEADERS", `${text}: ${e.message}`);
  }
});

test("PROXY_UPSTREAM counts only when the file sets proxy.upstream; a flag still wins", () => {
  assertEquals(load({ env: { PROXY_UPSTREAM: "evil" } }).config.proxy.upstream, "");
  const file = { path: "c.json", text: '{"proxy": {"upstream": "from-file"}}' };
  assertEquals(load({ file, env: { PROXY_UPSTREAM: "env" } }).config.proxy.upstream, "env");
  assertEquals(
    load({ file, env: { PROXY_UPSTREAM: "env" }, flags: [["proxy.upstream", "-upstream", "f"]] })
      .config.proxy.upstream,
    "f",
  );
  // Our own keys have no unprefixed name.
  assertEquals(
    load({ env: { PROXY_BIND_ADDRESS: "0.0.0.0" } }).config.proxy.bind_address,
    "127.0.0.1",
  );
});

test("no error shows a secret's value: bad tokens from the variable, the file or JSON of any shape", () => {
  const cases: LoadCase[] = [
    { env: { DASHBOARD_AUTH_TOKEN: `${TOKEN} x` } },
    { env: { MCP_AUDIT_DASHBOARD_AUTH_TOKEN: `${TOKEN} x` } },
    { file: { path: "c.json", text: `{"dashboard": {"auth": {"token": 5, "x": "${TOKEN}"}}}` } },
    { file: { path: "c.json", text: `{"dashboard": {"auth": {"token": ["${TOKEN}"]}}}` } },
    // JSON errors next to a secret: a parser's message that quotes the text around the error
    // would carry the secret into the start error and the signed audit/reload record.
    { file: { path: "c.json", text: `{"audit": {"secret": '${TOKEN}'}}` } },
    { file: { path: "c.json", text: `{"dashboard": {"auth": {"token": "${TOKEN}" x}}}` } },
    { file: { path: "c.json", text: `{"audit": {"secret": "${TOKEN}"} // comment\n}` } },
    { file: { path: "c.json", text: `{"audit": {"secret": ${TOKEN}}}` } },
    { file: { path: "c.yaml", text: `audit:\n  secret: "${TOKEN}\n  x: [` } },
  ];
  const leaks: string[] = [];
  for (const c of cases) {
    const e = loadError(c);
    if (e.message.includes(TOKEN_PART)) leaks.push(e.message);
  }
  assertEquals(leaks, []);
});

test(".json files: BOM, extension case, strictness with line:column, duplicates, deep nesting", () => {
  const j = (path: string, text: string) => load({ file: { path, text } });
  assertEquals(j("c.json", '\uFEFF{"proxy": {"port": 5}}').config.proxy.port, 5);
  assertEquals(j("C.JSON", '{"proxy": {"port": 5}}').config.proxy.port, 5);
  assertEquals(j("c.Json", '{"proxy": {"port": 5}}').config.proxy.port, 5);
  assertEquals(j("c.yml", "proxy: {port: 5}").config.proxy.port, 5);
  assertEquals(j("config", '{"proxy": {"port": 5}}').config.proxy.port, 5);
  const err = (path: string, text: string) => loadError({ file: { path, text } }).message;
  assert(/^c\.json:3:3: /.test(err("c.json", '{\n "proxy": {},\n  // no\n}')), "comment");
  assert(/^c\.json:\d+:\d+: not valid JSON/.test(err("c.json", '{"proxy": {"port": 5,}}')));
  assert(/^c\.json:1:\d+: not valid JSON: a key/.test(err("c.json", '{"a": {}, "a": {}}')));
  assert(/^c\.json:1:\d+: /.test(err("c.json", '{"proxy": {"port": 5, "po\\u0072t": 6}}')));
  assert(/^c\.json:\d+:\d+: not valid JSON/.test(err("c.json", "proxy:\n  port: 5\n")));
  assert(/not supported/.test(err("c.TOML", "")));
  assert(/must be an integer/.test(err("c.json", '{"proxy": {"port": "4423"}}')));
  assert(/must be/.test(err("c.json", '{"proxy": {"port": 1e400}}')));
  // Deep nesting is an error, never a crash of the loader.
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  assert(err("c.json", `{"proxy": ${deep}}`).length > 0);
  assert(err("c.yaml", `proxy: ${deep}`).length > 0);
});

test("a JSON syntax error is reported at its own line and column, whatever the kind of error", () => {
  const at = (text: string) =>
    /^c\.json:(\d+):(\d+): /.exec(loadError({ file: { path: "c.json", text } }).message)?.slice(1);
  const wrong: string[] = [];
  const cases: [string, [string, string]][] = [
    ['{\n  "proxy": {"port": 5,}\n}\n', ["2", "26"]],
    ['{\n  "proxy": {"transport": \'http\'}\n}\n', ["2", "29"]],
    ['{\n  "proxy": {"transport": http}\n}\n', ["2", "29"]],
    ['{\n  "proxy": {"port": 5} x\n}\n', ["2", "27"]],
  ];
  for (const [text, want] of cases) {
    const got = at(text);
    if (got?.[0] !== want[0]) {
      wrong.push(`${JSON.stringify(text)}: line ${got?.join(":")}, expected ${want.join(":")}`);
    }
  }
  assertEquals(wrong, []);
});

test("an empty AUDIT_SECRET or MCP_AUDIT_SIGNING_SECRET does not erase the secret set elsewhere (the Go tool ignored an empty one)", () => {
  const file = { path: "c.yaml", text: `audit:\n  secret: ${TOKEN}\n` };
  assertEquals(load({ file, env: { AUDIT_SECRET: "" } }).config.audit.secret, TOKEN);
  assertEquals(
    load({ env: { MCP_AUDIT_SIGNING_SECRET: "", AUDIT_SECRET: TOKEN } }).config.audit.secret,
    TOKEN,
  );
});

test("Go's flag spellings for every flag; -- keeps the upstream's words untouched", () => {
  const proxy = (argv: string[]) => {
    const c = parseCommand(argv);
    assert(c.kind === "proxy", `${argv.join(" ")}: ${c.kind}`);
    return c;
  };
  for (const spelled of [["-port=7"], ["-port", "7"], ["--port=7"], ["--port", "7"]]) {
    assertEquals(proxy(spelled).flags.get("proxy.port")?.value, 7, spelled.join(" "));
  }
  for (const spelled of [["-upstream-timeout=9"], ["--upstream-timeout", "9"]]) {
    assertEquals(proxy(spelled).flags.get("proxy.upstream_timeout_ms")?.value, 9);
  }
  assertEquals(proxy(["-transport", "http"]).flags.get("proxy.transport")?.value, "http");
  assertEquals(proxy(["-storage=sqlite"]).flags.get("audit.storage")?.value, "sqlite");
  assertEquals(proxy(["-config", "x.json"]).configPath, "x.json");
  assertEquals(proxy(["-log-level=debug"]).logLevel, "debug");
  assertEquals(proxy(["-server-id", ""]).flags.get("proxy.server_id")?.value, "");
  assertEquals(proxy(["-client-id=a=b"]).flags.get("proxy.client_id")?.value, "a=b");
  // Booleans: the last word wins, =false leaves the configuration be.
  assertEquals(
    proxy(["-no-dashboard=false", "--no-dashboard"]).flags.get("dashboard.enabled")?.value,
    false,
  );
  assertEquals(
    proxy(["--no-dashboard", "-no-dashboard=false"]).flags.has("dashboard.enabled"),
    false,
  );
  assertEquals(proxy(["-no-metrics=T"]).flags.get("metrics.enabled")?.value, false);
  // Repeated: the last wins, as in Go.
  assertEquals(proxy(["-port", "1", "--port=2"]).flags.get("proxy.port")?.value, 2);
  // A value beginning with "-" is the value (Go takes the next word whatever it is).
  assertEquals(proxy(["-upstream", "-x"]).flags.get("proxy.upstream")?.value, "-x");
  assertEquals(proxy(["-port", "-1"]).flags.get("proxy.port")?.value, "-1");
  // After --: untouched, flags and all.
  assertEquals(proxy(["-port", "5", "--", "-port", "1", "--", "-h"]).upstreamArgv, [
    "-port",
    "1",
    "--",
    "-h",
  ]);
  assertEquals(proxy(["--", "-port", "1"]).flags.size, 0);
  for (const argv of [["-h"], ["-help"], ["--help"], ["-help=true"], ["-port", "1", "-h"]]) {
    assertEquals(parseCommand(argv).kind, "help", argv.join(" "));
  }
  for (const argv of [["-v"], ["-version"], ["--version=true"], ["-version=1"], ["version"]]) {
    assertEquals(parseCommand(argv).kind, "version", argv.join(" "));
  }
  assertEquals(parseCommand(["-version=false"]).kind, "proxy");
  for (
    const argv of [
      ["-no-dashboard=yes"],
      ["-port"],
      ["---port", "1"],
      ["-po rt", "1"],
      ["-nope"],
      ["stray"],
      ["--"],
      ["--upstream", "x", "--", "y"],
      ["-log-level", "DEBUG"],
    ]
  ) {
    let thrown: unknown;
    try {
      parseCommand(argv);
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof UsageError, `${JSON.stringify(argv)} is a usage error`);
  }
});

test("a flag's bad value names the flag as written", () => {
  for (const [flag, value] of [["-port", "0x10"], ["--port", "1e3"], ["-upstream-timeout", ""]]) {
    const c = parseCommand([flag!, value!]);
    assert(c.kind === "proxy");
    const e = loadError({ flags: [...c.flags].map(([k, v]) => [k, v.flag, v.value]) });
    assertEquals(e.key, flag);
  }
});

// ---------------------------------------------------------------------------------------------
// The proxy, as a process.

/** What a run printed: its exit code and its stdout and stderr lines, empty ones left out. */
type Ran = Pick<MainRun, "code" | "out" | "err">;

/** Runs `main.ts ARGS` in `cwd` with exactly `env`. */
function run(args: string[], env: Record<string, string>, cwd: string): Promise<Ran> {
  return runMain(args, { env, cwd, signal: deadline(60_000) });
}

test("proxy: a JSON file with a syntax error next to a secret exits 2 without showing the secret", async () => {
  await using dir = await tempDir("dropin-jsonsecret");
  const path = `${dir.path}/config.json`;
  Deno.writeTextFileSync(path, `{\n  "dashboard": {"auth": {"token": '${TOKEN}'}}\n}\n`);
  const ran = await run(["--config", path, "--", "true"], cleanEnv(), dir.path);
  assertEquals(ran.code, 2);
  assert(ran.err.join("\n").includes(path), ran.err.join("\n"));
  assert(!ran.err.join("\n").includes(TOKEN_PART), `the secret is shown: ${ran.err.join("\n")}`);
});

test("proxy: --config naming a directory or a missing file exits 2 naming it", async () => {
  await using dir = await tempDir("dropin-cfgdir");
  for (const path of [dir.path, `${dir.path}/missing.json`]) {
    const ran = await run(["--config", path, "--", "true"], cleanEnv(), dir.path);
    assertEquals(ran.code, 2, path);
    assert(ran.err.some((l) => l.includes(path)), ran.err.join("\n"));
  }
});

/**
 * Runs `main.ts ARGS` where ARGS name the FIFO `fifo`, and counts the times it opened the FIFO to
 * read it (a synchronous read of a FIFO blocks the whole process until a writer comes). Each open
 * is given an empty file (a writer that closes at once), so that the program never hangs here.
 */
async function fifoOpens(
  fifo: string,
  args: string[],
  cwd: string,
): Promise<{ opens: number; ran: Ran }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN, ...args],
    env: doctorEnv(),
    clearEnv: true,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let opens = 0;
  let done = false;
  // Opening the FIFO for writing waits for a reader: it completes only when someone opens it.
  const feeder = (async () => {
    while (!done) {
      const f = await Deno.open(fifo, { write: true });
      f.close();
      if (!done) opens++;
    }
  })();
  const out = await child.output();
  done = true;
  // Be the reader the last open waits for.
  const reader = await Deno.open(fifo, { read: true });
  await feeder;
  reader.close();
  const lines = (b: Uint8Array) => new TextDecoder().decode(b).split("\n").filter((l) => l !== "");
  return { opens, ran: { code: out.code, out: lines(out.stdout), err: lines(out.stderr) } };
}

test("a FIFO given as --config (proxy, doctor) or --file (doctor) is refused as not a regular file, never read", async () => {
  // At start it would wait for a writer forever; at a reload, it would freeze a running proxy.
  await using dir = await tempDir("dropin-fifo");
  const fifo = `${dir.path}/named.fifo`;
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert(mk.success);
  const opened: string[] = [];
  for (
    const args of [
      ["--config", fifo, "--", "true"],
      ["doctor", "--config", fifo],
      ["doctor", "--no-dashboard", "--no-metrics", "--file", fifo],
    ]
  ) {
    const { opens, ran } = await fifoOpens(fifo, args, dir.path);
    if (opens > 0) opened.push(`${args.join(" ")} (then exit ${ran.code})`);
    else assert(ran.code !== 0, `${args.join(" ")}: exit ${ran.code}`);
  }
  assertEquals(opened, [], "these opened the FIFO and waited for a writer");
});

test("proxy: the upstream gets neither secret nor any MCP_AUDIT_ variable; the start line names the Go variables in force, never a value", async () => {
  await using dir = await tempDir("dropin-upenv");
  const signal = deadline(60_000);
  await using proxy = new ProxyProcess({
    cwd: dir.path,
    upstream: hostile("env"),
    env: {
      DASHBOARD_AUTH_TOKEN: TOKEN,
      MCP_AUDIT_SIGNING_SECRET: SECRET,
      PROXY_CLIENT_ID: "go-client",
      AUDIT_PATH: `${dir.path}/ignored.jsonl`,
      // Overrides AUDIT_PATH whichever storage the suite runs with, so it is not in force.
      MCP_AUDIT_AUDIT_PATH: `${dir.path}/audit.jsonl`,
    },
    flags: ["--log-level", "debug"],
  });
  const stdout = proxy.stdout();
  await proxy.write(
    new TextEncoder().encode(
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n',
    ),
  );
  await stdout.waitFor((c) => c.lines.length === 1, "the answer", signal);
  const info = JSON.parse(stdout.lines[0]!).result.serverInfo;
  assertEquals(info.name, "env:", "the secret variables the upstream was given");
  assertEquals(info.version, "AUDIT_PATH", "the other unprefixed names are passed on");
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0);
  const stderr = proxy.stderr.text();
  assert(!stderr.includes(TOKEN_PART), "the dashboard token is in the proxy's log");
  assert(!stderr.includes(SECRET), "the signing secret is in the proxy's log");
  const line = proxy.logLines().find((l) =>
    l.msg === "the Go tool's environment variables in force"
  );
  assertEquals(line?.names, "DASHBOARD_AUTH_TOKEN,PROXY_CLIENT_ID");
});

test("proxy: a reload (file change, SIGHUP) still applies the unprefixed variables; a JSON file broken mid-way keeps the settings", async () => {
  await using dir = await tempDir("dropin-reload");
  const signal = deadline(60_000);
  const path = `${dir.path}/config.json`;
  Deno.writeTextFileSync(path, '{"policy": {"enabled": true}}\n');
  await using proxy = new ProxyProcess({
    cwd: dir.path,
    upstream: fixture("echo_upstream.ts"),
    env: { POLICY_DEFAULT_ACTION: "deny" },
    flags: ["--config", path],
  });
  const stdout = proxy.stdout();
  let id = 0;
  const call = async (): Promise<Record<string, unknown>> => {
    id++;
    await proxy.write(
      new TextEncoder().encode(
        `${
          JSON.stringify({
            jsonrpc: "2.0",
            id,
            method: "tools/call",
            params: { name: "x", arguments: {} },
          })
        }\n`,
      ),
    );
    await stdout.waitFor((c) => c.lines.length === id, `answer ${id}`, signal);
    return JSON.parse(stdout.lines[id - 1]!);
  };
  const denied = (m: Record<string, unknown>) =>
    typeof m.error === "object" && m.error !== null &&
    (m.error as { code?: unknown }).code === -32030;
  assert(denied(await call()), "denied by POLICY_DEFAULT_ACTION at start");
  const reloads = (outcome: string) =>
    proxy.logLines().filter((l) => l.msg === "configuration reloaded" && l.outcome === outcome)
      .length;
  const rejected = () =>
    proxy.logLines().filter((l) =>
      typeof l.msg === "string" && l.msg.startsWith("configuration reload rejected")
    ).length;

  Deno.writeTextFileSync(
    `${path}.tmp`,
    '{"policy": {"enabled": true, "rules": [{"action": "allow", "tool_name": "other"}]}}\n',
  );
  Deno.renameSync(`${path}.tmp`, path);
  Deno.kill(proxy.pid, "SIGHUP");
  await proxy.stderr.waitFor(() => reloads("applied") >= 1, "the reload", signal);
  assert(denied(await call()), "still denied by POLICY_DEFAULT_ACTION after the reload");

  Deno.writeTextFileSync(`${path}.tmp`, '{"policy": {"enabled": false,\n  "rules": [');
  Deno.renameSync(`${path}.tmp`, path);
  Deno.kill(proxy.pid, "SIGHUP");
  await proxy.stderr.waitFor(() => rejected() >= 1, "the rejected reload", signal);
  assert(denied(await call()), "still denied after a broken file");
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0);
});

// ---------------------------------------------------------------------------------------------
// The doctor.

/** The environment a doctor run gets: clean, signing secret set, listeners off by flags. */
function doctorEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { ...cleanEnv(), AUDIT_SECRET: SECRET, ...extra };
}

/** `mcp-audit doctor` with a config in `dir` whose log is there too, no listeners. */
function doctor(dir: string, args: string[], env = doctorEnv()): Promise<Ran> {
  return run(["doctor", "--no-dashboard", "--no-metrics", ...args], env, dir);
}

function lineOf(ran: Ran, name: string): string {
  const found = ran.out.find((l) => new RegExp(`^\\S+ +${name} `).test(l));
  assert(found !== undefined, `no ${name} line in:\n${ran.out.join("\n")}\n${ran.err.join("\n")}`);
  return found;
}

/** A control character a terminal acts on: C0 but tab, DEL, C1, line separators, bidi controls. */
// deno-lint-ignore no-control-regex
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Every line of the output is shown as it is: no character a terminal would act on. */
function assertPrintable(ran: Ran): void {
  for (const l of [...ran.out, ...ran.err]) {
    assert(!UNPRINTABLE.test(l), `unescaped: ${JSON.stringify(l)}`);
  }
}

/** Names, kinds, sizes, modes, mtimes and contents of everything under `dir`. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string) => {
    for (const e of Deno.readDirSync(path)) {
      const p = `${path}/${e.name}`;
      const info = Deno.lstatSync(p);
      const content = info.isFile ? Array.from(Deno.readFileSync(p)).join(",") : "";
      out[p] =
        `${info.isFile}/${info.isDirectory} ${info.size} ${info.mode} ${info.mtime?.getTime()} ${content.length} ${
          content.slice(0, 64)
        }${content.slice(-64)}`;
      if (info.isDirectory) walk(p);
    }
  };
  walk(dir);
  return out;
}

for (const storage of ["jsonl", "sqlite"] as const) {
  test(`doctor changes nothing: ${storage} log, its directory and the config keep their bytes, modes and times`, async () => {
    await using dir = await tempDir(`dropin-untouched-${storage}`);
    const logPath = await echoProxyLog(dir.path, storage);
    const config = `${dir.path}/config.yaml`;
    Deno.writeTextFileSync(
      config,
      storage === "jsonl"
        ? `audit:\n  path: ${logPath}\n`
        : `audit:\n  storage: sqlite\n  sqlite_path: ${logPath}\n`,
    );
    const before = snapshot(dir.path);
    const ran = await doctor(dir.path, ["--config", config, "--", ...fixture("echo_upstream.ts")]);
    assertEquals(snapshot(dir.path), before);
    assert(/^ok +chain /.test(lineOf(ran, "chain")), ran.out.join("\n"));
    assertEquals(ran.code, 0, ran.out.join("\n"));
  });
}

test("doctor sends the upstream one initialize line and nothing else", async () => {
  await using dir = await tempDir("dropin-onlyinit");
  const record = `${dir.path}/received.txt`;
  const ran = await doctor(dir.path, ["--", ...hostile("record", record)]);
  assert(/^ok +upstream +recorder 1\.0\.0/.test(lineOf(ran, "upstream")), ran.out.join("\n"));
  const got = Deno.readTextFileSync(record).split("\n").filter((l) => l !== "");
  assertEquals(got.map((l) => JSON.parse(l).method), ["initialize"]);
  assertEquals(ran.code, 0);
});

test("doctor ends an upstream that ignores SIGTERM and stdin's end, and every process it started", async () => {
  await using dir = await tempDir("dropin-stubborn");
  const ran = await doctor(dir.path, ["--timeout", "1000", "--", ...hostile("stubborn")]);
  const up = lineOf(ran, "upstream");
  assert(/^FAIL +upstream .*no answer within 1000 ms/.test(up), up);
  assertEquals(ran.code, 1);
  await assertNoStrays(dir.path);
});

test("doctor: Ctrl-C while waiting for the upstream ends it and the doctor at once, with the check failed", async () => {
  await using dir = await tempDir("dropin-sigint");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      DENO_JSON,
      MAIN,
      "doctor",
      "--no-dashboard",
      "--no-metrics",
      "--timeout",
      "600000",
      "--",
      ...hostile("silent"),
    ],
    env: doctorEnv(),
    clearEnv: true,
    cwd: dir.path,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("started silent")) {
    const { value, done } = await stderr.read();
    if (done) break;
    seen += value;
  }
  Deno.kill(child.pid, "SIGINT");
  const [status, out] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    (async () => {
      while (!(await stderr.read()).done) { /* drain */ }
    })(),
  ]);
  const ran = { code: status.code, out: out.split("\n").filter((l) => l !== ""), err: [] };
  assert(/^FAIL +upstream .*interrupted/.test(lineOf(ran, "upstream")), out);
  assertEquals(status.code, 1);
  await assertNoStrays(dir.path);
});

test("doctor: an upstream answering another id, an error, or a huge line first", async () => {
  await using dir = await tempDir("dropin-answers");
  const [wrong, error, huge] = await Promise.all([
    doctor(dir.path, ["--timeout", "1500", "--", ...hostile("wrong-id")]),
    doctor(dir.path, ["--", ...hostile("error")]),
    doctor(
      dir.path,
      ["--", ...hostile("huge")],
      doctorEnv({ MCP_AUDIT_PROXY_MAX_MESSAGE_BYTES: "65536" }),
    ),
  ]);
  assert(
    /^FAIL +upstream .*no answer within 1500 ms/.test(lineOf(wrong, "upstream")),
    wrong.out.join("\n"),
  );
  assertEquals(wrong.code, 1);
  assert(
    /^FAIL +upstream .*error -32602: no\\x1b\[31m/.test(lineOf(error, "upstream")),
    error.out.join("\n"),
  );
  assertEquals(error.code, 1);
  assert(/^ok +upstream +after-huge/.test(lineOf(huge, "upstream")), huge.out.join("\n"));
  assertEquals(huge.code, 0);
  for (const r of [wrong, error, huge]) assertPrintable(r);
  await assertNoStrays(dir.path);
});

test("doctor escapes a hostile server name and version in text, and --json stays one valid object a line", async () => {
  await using dir = await tempDir("dropin-name");
  const [text, json] = await Promise.all([
    doctor(dir.path, ["--", ...hostile("name")]),
    doctor(dir.path, ["--json", "--", ...hostile("name")]),
  ]);
  assertPrintable(text);
  // The name's line break must not start a line of its own that looks like a check.
  assertEquals(text.out.filter((l) => /^ok +fake/.test(l)), []);
  assertEquals(text.out.filter((l) => /^\S+ +upstream /.test(l)).length, 1);
  const objects = json.out.map((l) => JSON.parse(l));
  assert(objects.every((o) => typeof o.name === "string" && typeof o.status === "string"));
  const upstream = objects.find((o) => o.name === "upstream");
  assert(upstream?.detail.includes("evil\x1b]0;owned"), "the JSON keeps the name as data");
});

test("doctor's upstream gets neither secret nor any MCP_AUDIT_ variable", async () => {
  await using dir = await tempDir("dropin-doctorenv");
  const ran = await doctor(
    dir.path,
    ["--", ...hostile("env")],
    doctorEnv({
      DASHBOARD_AUTH_TOKEN: TOKEN,
      MCP_AUDIT_SIGNING_SECRET: SECRET,
      MCP_AUDIT_AUDIT_PATH: `${dir.path}/a.jsonl`,
    }),
  );
  assert(
    /^ok +upstream +env: AUDIT_PATH|^ok +upstream +env: no-AUDIT_PATH/.test(
      lineOf(ran, "upstream"),
    ),
    ran.out.join("\n"),
  );
  const all = [...ran.out, ...ran.err].join("\n");
  assert(!all.includes(TOKEN_PART) && !all.includes(SECRET), "a secret is printed");
});

test("doctor never prints a secret: from the environment, in the config's error, in --json", async () => {
  await using dir = await tempDir("dropin-doctorsecret");
  const good = `${dir.path}/good.yaml`;
  Deno.writeTextFileSync(good, `dashboard:\n  auth:\n    token: ${TOKEN}\n`);
  const bad = `${dir.path}/bad.json`;
  Deno.writeTextFileSync(bad, `{"dashboard": {"auth": {"token": '${TOKEN}'}}}`);
  const env = doctorEnv({ DASHBOARD_AUTH_TOKEN: TOKEN, AUDIT_SECRET: `${TOKEN}${TOKEN}` });
  const runs = await Promise.all([
    doctor(dir.path, ["--config", good], env),
    doctor(dir.path, ["--json", "--config", good], env),
    doctor(dir.path, ["--config", bad], env),
    doctor(dir.path, ["--json", "--config", bad], env),
  ]);
  for (const r of runs) {
    const all = [...r.out, ...r.err].join("\n");
    assert(!all.includes(TOKEN_PART), `a secret is printed:\n${all}`);
  }
  assertEquals(runs[2]!.code, 1);
});

test("doctor: a log path that is a directory, and a SQLite path holding no database, fail with a line each and no crash", async () => {
  await using dir = await tempDir("dropin-badlog");
  Deno.mkdirSync(`${dir.path}/log.jsonl`);
  Deno.writeTextFileSync(`${dir.path}/not.db`, "this is not a database\n".repeat(100));
  const dirCfg = `${dir.path}/dir.yaml`;
  Deno.writeTextFileSync(dirCfg, `audit:\n  path: ${dir.path}/log.jsonl\n`);
  const sqlCfg = `${dir.path}/sql.yaml`;
  Deno.writeTextFileSync(sqlCfg, `audit:\n  storage: sqlite\n  sqlite_path: ${dir.path}/not.db\n`);
  const before = Deno.readFileSync(`${dir.path}/not.db`);
  const runs = await Promise.all([
    doctor(dir.path, ["--config", dirCfg]),
    doctor(dir.path, ["--json", "--config", dirCfg]),
    doctor(dir.path, ["--config", sqlCfg]),
    doctor(dir.path, ["--json", "--config", sqlCfg]),
  ]);
  for (const [i, r] of runs.entries()) {
    assertEquals(r.code, 1, `${i}: ${r.out.join("\n")}\n${r.err.join("\n")}`);
    assertEquals(r.err, [], `${i}: nothing on stderr`);
    if (i % 2 === 1) {
      const checks = r.out.map((l) => JSON.parse(l));
      assertEquals(checks.find((c) => c.name === "log")?.status, "fail");
    } else {
      assert(/^FAIL +log /.test(lineOf(r, "log")));
      assert(/^\d+ ok, \d+ warnings?, [1-9]\d* failed/.test(r.out.at(-1)!), r.out.at(-1));
    }
  }
  assertEquals(Deno.readFileSync(`${dir.path}/not.db`), before);
  assertEquals([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), [
    "dir.yaml",
    "log.jsonl",
    "not.db",
    "sql.yaml",
  ]);
});

test("doctor: exit 2 for bad usage, 1 for a failed check, 0 when all pass; --json has only JSON lines on stdout", async () => {
  await using dir = await tempDir("dropin-exit");
  const runs = await Promise.all([
    doctor(dir.path, ["--timeout", "0"]),
    doctor(dir.path, ["--json", "--nope"]),
    doctor(dir.path, ["--json", "stray"]),
    doctor(dir.path, ["--json", "--", ...fixture("echo_upstream.ts")]),
    doctor(dir.path, ["--json", "--upstream", "/nonexistent/cmd"]),
  ]);
  assertEquals(
    runs.map((r) => r.code),
    [2, 2, 2, 0, 1],
    runs.map((r) => r.out.concat(r.err).join("\n")).join("\n---\n"),
  );
  for (const r of runs.slice(1)) for (const l of r.out) JSON.parse(l);
});

// HTTP upstreams the doctor reaches.

interface Seen {
  method: string;
  path: string;
  session: string | null;
  body: string;
}

test("doctor and URL upstreams: a redirect is not followed, HTML, a 10 MB body, an endless body, a hang, an error, a bad certificate", async () => {
  await using dir = await tempDir("dropin-url");
  const seen: Seen[] = [];
  const release = Promise.withResolvers<void>();
  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    seen.push({
      method: req.method,
      path,
      session: req.headers.get("mcp-session-id"),
      body: await req.text(),
    });
    const json = (value: unknown, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(value), {
        headers: { "content-type": "application/json", ...headers },
      });
    switch (path) {
      case "/ok":
        if (req.method === "DELETE") return new Response(null, { status: 200 });
        return json({
          jsonrpc: "2.0",
          id: 1,
          result: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            serverInfo: { name: "http-ok", version: "1" },
          },
        }, { "mcp-session-id": "session-1" });
      case "/redirect":
        return new Response(null, { status: 307, headers: { location: "/target" } });
      case "/target":
        return json({
          jsonrpc: "2.0",
          id: 1,
          result: { protocolVersion: "2025-06-18", serverInfo: { name: "followed", version: "1" } },
        });
      case "/html":
        return new Response("<html><body>login</body></html>", {
          headers: { "content-type": "text/html" },
        });
      case "/big":
        return new Response(new Uint8Array(10 * 1024 * 1024).fill(0x20), {
          headers: { "content-type": "application/json" },
        });
      case "/endless": {
        const chunk = new Uint8Array(64 * 1024).fill(0x20);
        return new Response(
          new ReadableStream({ pull: (c) => c.enqueue(chunk) }),
          { headers: { "content-type": "application/json" } },
        );
      }
      case "/hang":
        await release.promise;
        return new Response("late");
      case "/error":
        return json({ jsonrpc: "2.0", id: 1, error: { code: -32600, message: "nope" } });
      default:
        return new Response("not found", { status: 404 });
    }
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  await using certs = await makeCerts();
  const tls = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: certs.selfSigned.cert,
      key: certs.selfSigned.key,
      onListen() {},
    },
    () => new Response("{}"),
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const url = (path: string, ...more: string[]) =>
      doctor(dir.path, ["--timeout", "2000", ...more, "--upstream", `${base}${path}`]);
    const [ok, redirect, html, big, endless, hang, error, badCert] = await Promise.all([
      url("/ok"),
      url("/redirect"),
      url("/html"),
      url("/big"),
      doctor(
        dir.path,
        ["--timeout", "120000", "--upstream", `${base}/endless`],
        doctorEnv({ MCP_AUDIT_PROXY_MAX_MESSAGE_BYTES: "1048576" }),
      ),
      url("/hang"),
      url("/error"),
      doctor(dir.path, ["--upstream", `https://127.0.0.1:${tls.addr.port}/`]),
    ]);
    release.resolve();
    assert(/^ok +upstream +http-ok 1/.test(lineOf(ok, "upstream")), ok.out.join("\n"));
    assertEquals(ok.code, 0);
    const okSeen = seen.filter((s) => s.path === "/ok");
    assertEquals(okSeen.map((s) => [s.method, s.session]), [["POST", null], [
      "DELETE",
      "session-1",
    ]]);
    assertEquals(JSON.parse(okSeen[0]!.body).method, "initialize");
    assert(
      /^FAIL +upstream .*HTTP 307/.test(lineOf(redirect, "upstream")),
      redirect.out.join("\n"),
    );
    assertEquals(seen.filter((s) => s.path === "/target"), [], "the redirect was followed");
    assert(
      /^FAIL +upstream .*did not answer initialize/.test(lineOf(html, "upstream")),
      html.out.join("\n"),
    );
    assert(
      /^FAIL +upstream .*did not answer initialize/.test(lineOf(big, "upstream")),
      big.out.join("\n"),
    );
    assert(
      /^FAIL +upstream .*did not answer initialize/.test(lineOf(endless, "upstream")),
      endless.out.join("\n"),
    );
    assert(
      /^FAIL +upstream .*no answer within 2000 ms/.test(lineOf(hang, "upstream")),
      hang.out.join("\n"),
    );
    assert(
      /^FAIL +upstream .*error -32600: nope/.test(lineOf(error, "upstream")),
      error.out.join("\n"),
    );
    assert(
      /^FAIL +upstream .*https:\/\/127\.0\.0\.1/.test(lineOf(badCert, "upstream")),
      badCert.out.join("\n"),
    );
    for (const r of [redirect, html, big, endless, hang, error, badCert]) assertEquals(r.code, 1);
    assertEquals(
      seen.filter((s) => !(s.method === "POST" || (s.method === "DELETE" && s.path === "/ok"))),
      [],
      "only POST initialize and the DELETE of a session",
    );
  } finally {
    release.resolve();
    await server.shutdown();
    await tls.shutdown();
  }
});
