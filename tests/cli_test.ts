/**
 * The command line as a user meets it: help, version, and exit code 2 with one line naming the
 * flag or key for every kind of bad input.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { auditEnv, cleanEnv, OWN_PORTS, readLog, STORAGE } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();

/**
 * Runs `main.ts ARGS` with `opts.env` and none of the machine's mcp-audit settings, in `opts.cwd`
 * or else in a new empty directory: not in the repository, where a `config.yaml` or `audit.jsonl`
 * someone left would change what the proxy reads or where it writes.
 */
async function run(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const env = cleanEnv();
  const cwd = opts.cwd ?? Deno.makeTempDirSync({ prefix: "mcp-audit-cli-" });
  try {
    const out = await new Deno.Command(deno, {
      args: ["run", "-A", `${root}main.ts`, ...args],
      cwd,
      env: { ...env, ...opts.env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  } finally {
    if (opts.cwd === undefined) Deno.removeSync(cwd, { recursive: true });
  }
}

Deno.test("--help lists every flag and subcommand; --version prints the version", async () => {
  const help = await run(["--help"]);
  assertEquals(help.code, 0);
  for (
    const word of [
      "verify",
      "export",
      "keygen",
      "--transport",
      "--upstream",
      "--port",
      "--upstream-timeout",
      "--config",
      "--storage",
      "--no-dashboard",
      "--no-metrics",
      "--log-level",
      "--version",
    ]
  ) assert(help.stdout.includes(word), `--help mentions ${word}`);
  const version = await run(["--version"]);
  assertEquals(version.code, 0);
  assertMatch(version.stdout, /^mcp-audit \d+\.\d+\.\d+ \(commit \S+, built \S+\)\n$/);
});

const bad: [string, string[], string | null, RegExp][] = [
  ["an unknown flag", ["--nope"], null, /^mcp-audit: .*--nope/],
  [
    "a port that is not a number",
    ["--port", "abc"],
    null,
    /^mcp-audit: config: --port: must be an integer/,
  ],
  [
    "a port out of range",
    ["--port", "70000"],
    null,
    /^mcp-audit: config: --port: must be from 0 to 65535/,
  ],
  ["a bad --log-level", ["--log-level", "loud"], null, /^mcp-audit: --log-level: must be one of/],
  ["no upstream", [], null, /^mcp-audit: config: proxy\.upstream: is required/],
  [
    "an unknown key",
    [],
    "proxy:\n  uptream: x\n",
    /^mcp-audit: config: proxy\.uptream: unknown configuration key/,
  ],
  [
    "a wrong type",
    [],
    "audit:\n  sign: maybe\n",
    /^mcp-audit: config: audit\.sign: must be true or false/,
  ],
  [
    "a bad enum",
    [],
    "audit:\n  durability: always\n",
    /^mcp-audit: config: audit\.durability: must be one of/,
  ],
  [
    "a bad policy rule",
    [],
    "policy:\n  rules:\n    - action: allow\n    - action: block\n",
    /^mcp-audit: config: policy\.rules\[1\]\.action: must be allow or deny/,
  ],
  ["invalid YAML", [], "proxy: [\n", /^mcp-audit: config: config\.yaml: not valid YAML/],
  [
    "an unterminated quote",
    ["--upstream", "npx 'pkg"],
    null,
    /^mcp-audit: config: proxy\.upstream: unterminated ' quote/,
  ],
];

for (const [what, args, yaml, message] of bad) {
  Deno.test(`${what} exits 2 with one line naming it`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cli-" });
    try {
      if (yaml !== null) Deno.writeTextFileSync(`${dir}/config.yaml`, yaml);
      const r = await run(args, { cwd: dir, env: auditEnv(`${dir}/audit.jsonl`) });
      assertEquals(r.code, 2, r.stderr);
      assertEquals(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assertEquals(lines.length, 1, r.stderr);
      assertMatch(lines[0]!, message);
      assert(
        !Deno.readDirSync(dir).some((e) => e.name.startsWith("audit.jsonl")),
        "no log (nor a lock, a journal or an archive of one) is written on bad input",
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("an environment variable with a bad value exits 2 naming the variable", async () => {
  const r = await run(["--upstream", "x"], { env: { MCP_AUDIT_PROXY_PORT: "many" } });
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /^mcp-audit: config: MCP_AUDIT_PROXY_PORT: must be an integer/);
});

Deno.test("flags override the environment, which overrides the file", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cli-" });
  try {
    // The file names the log, for the backend under test.
    const log = STORAGE === "sqlite" ? "storage: sqlite\n  sqlite_path" : "path";
    Deno.writeTextFileSync(
      `${dir}/config.yaml`,
      `audit:\n  ${log}: ${dir}/from-file.jsonl\nproxy:\n  client_id: from-file\n  server_id: from-file\n`,
    );
    const r = await run(["--upstream", `${deno} run ${root}tests/fixtures/echo_upstream.ts`], {
      cwd: dir,
      env: { ...OWN_PORTS, MCP_AUDIT_PROXY_CLIENT_ID: "from-env" },
    });
    assertEquals(r.code, 0, r.stderr);
    const first = (await readLog(`${dir}/from-file.jsonl`)).records[0];
    assertEquals(first?.client_id, "from-env");
    assertEquals(first?.server_id, "from-file");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an upstream command that does not exist fails with exit 1 and a recorded stop", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cli-" });
  try {
    const log = `${dir}/audit.jsonl`;
    const r = await run(["--", "/nonexistent/mcp-server"], { cwd: dir, env: auditEnv(log) });
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /cannot start upstream/);
    const recs = (await readLog(log)).records;
    assertEquals(recs.map((x) => x.method), ["audit/start", "audit/stop"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a listen port that cannot be bound fails with exit 1 and says why", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cli-" });
  try {
    const r = await run(
      [
        "--transport",
        "http",
        "--port",
        String(taken.addr.port),
        "--upstream",
        "http://127.0.0.1:1/mcp",
      ],
      { cwd: dir, env: auditEnv(`${dir}/audit.jsonl`) },
    );
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
    const stop = (await readLog(`${dir}/audit.jsonl`)).records.at(-1);
    assertEquals(stop?.method, "audit/stop");
    assertEquals((stop?.params as { exit_code?: number } | undefined)?.exit_code, 1);
  } finally {
    taken.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
