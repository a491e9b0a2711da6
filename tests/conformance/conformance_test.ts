/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance` 0.1.16, run under Node 22;
 * both installed by `setup.sh` into `.tools/conformance/`), against mcp-audit's HTTP proxy:
 *
 * - server mode: every server scenario (`--suite all`) against the SDK fixture server directly,
 *   then against `main.ts --transport http` in front of the same fixture; every scenario that
 *   passed directly must pass through the proxy, and every check that succeeded directly must
 *   succeed through it;
 * - client mode: scenarios `initialize`, `tools_call` and `sse-retry` with the SDK client fixture,
 *   once directly (a baseline for the fixture) and once through the proxy.
 *
 * Whether the proxy is there is decided once, at load: `CONFORMANCE_PROXY=1` requires it, `=0`
 * skips the through-proxy tests, and otherwise a probe starts `main.ts --transport http`; if that
 * exits 2 saying http is not available, the through-proxy tests are ignored.
 *
 * A scenario passes when its `checks.json` has no FAILURE and no WARNING (the rule the suite's own
 * `--expected-failures` baseline applies). `CONFORMANCE_KEEP=1` keeps the result directories.
 *
 * Nothing sleeps: every wait is for a line, an exit or the end of a stream, under a deadline.
 *
 * @module
 */
import { assert, assertEquals } from "../assert.ts";
import { readLog } from "../helpers.ts";
import { AUDIT_SECRET, ProxyStartError, startProxy } from "./client.ts";

const HERE = new URL(".", import.meta.url).pathname;
const REPO = new URL("../../", import.meta.url).pathname;
const CONFIG = `${REPO}deno.json`;
const MAIN = `${REPO}main.ts`;
const DENO = Deno.execPath();
const SUITE_DEADLINE_MS = 90_000;
const START_DEADLINE_MS = 30_000;

/** Every server scenario of the suite's `all` suite in 0.1.16 (`conformance list --server`). */
const SERVER_SCENARIOS = [
  "server-initialize",
  "logging-set-level",
  "ping",
  "completion-complete",
  "tools-list",
  "tools-call-simple-text",
  "tools-call-image",
  "tools-call-audio",
  "tools-call-embedded-resource",
  "tools-call-mixed-content",
  "tools-call-with-logging",
  "tools-call-error",
  "tools-call-with-progress",
  "tools-call-sampling",
  "tools-call-elicitation",
  "json-schema-2020-12",
  "elicitation-sep1034-defaults",
  "server-sse-polling",
  "server-sse-multiple-streams",
  "elicitation-sep1330-enums",
  "resources-list",
  "resources-read-text",
  "resources-read-binary",
  "resources-templates-read",
  "resources-subscribe",
  "resources-unsubscribe",
  "prompts-list",
  "prompts-get-simple",
  "prompts-get-with-args",
  "prompts-get-embedded-resource",
  "prompts-get-with-image",
  "dns-rebinding-protection",
];
/** Server scenarios allowed to fail against the fixture directly (none today). */
const KNOWN_DIRECT_FAILURES = new Set<string>();
const CLIENT_SCENARIOS = ["initialize", "tools_call", "sse-retry"];

// ---- tooling ------------------------------------------------------------------------------------

const decoder = new TextDecoder();

/** Runs setup.sh (a no-op once installed) and returns the paths it prints. */
async function setup(): Promise<{ node: string; cli: string }> {
  const out = await new Deno.Command("bash", {
    args: [`${HERE}setup.sh`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decoder.decode(out.stdout);
  if (!out.success) throw new Error(`setup.sh failed:\n${decoder.decode(out.stderr)}`);
  const value = (key: string) => {
    const m = stdout.match(new RegExp(`^${key}=(.+)$`, "m"));
    if (!m) throw new Error(`setup.sh printed no ${key}:\n${stdout}`);
    return m[1]!;
  };
  return { node: value("CONFORMANCE_NODE"), cli: value("CONFORMANCE_CLI") };
}

const TOOLS = await setup();

/**
 * Whether `main.ts --transport http` runs: false when it exits 2 saying http is not available.
 * Any other early exit counts as available, so the through-proxy tests run and show the error.
 */
async function proxyAvailable(): Promise<boolean> {
  const forced = Deno.env.get("CONFORMANCE_PROXY");
  if (forced === "0") return false;
  if (forced === "1") return true;
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-conformance-probe-" });
  try {
    // A concrete port, not 0: the version without http rejects port 0 before it gets to say so.
    const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = free.addr.port;
    free.close();
    // Nothing listens on port 9 (discard); the probe never sends a request anyway.
    await (await startProxy(new URL("http://127.0.0.1:9/mcp"), dir, port)).stop();
    return true;
  } catch (e) {
    if (e instanceof ProxyStartError) {
      return !(e.code === 2 && /http is not available/.test(e.stderr));
    }
    throw e;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const PROXY = await proxyAvailable();
if (!PROXY) {
  console.error(
    "conformance: the through-proxy tests are ignored (main.ts --transport http is not available, or CONFORMANCE_PROXY=0)",
  );
}

async function scratch(label: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: `mcp-audit-conformance-${label}-` });
  return {
    path,
    async [Symbol.asyncDispose]() {
      if (Deno.env.get("CONFORMANCE_KEEP") === "1") return console.error(`kept ${path}`);
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

// ---- the fixture server -------------------------------------------------------------------------

interface Running extends AsyncDisposable {
  url: URL;
}

/** Starts fixture_server.ts on a free port; resolves with its URL once it listens. */
async function startFixture(): Promise<Running> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--config", CONFIG, `${HERE}fixture_server.ts`, "--port", "0"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = splitLines(child.stdout);
  const timer = setTimeout(() => kill(child, "SIGKILL"), START_DEADLINE_MS);
  let url: URL | undefined;
  for await (const line of lines) {
    const m = line.match(/listening on (\S+)/);
    if (m) {
      url = new URL(m[1]!);
      break;
    }
  }
  clearTimeout(timer);
  const rest = (async () => {
    for await (const _ of lines) { /* keep the pipe flowing */ }
  })();
  const stop = async () => {
    kill(child, "SIGTERM");
    await child.status;
    await rest;
    return await stderr;
  };
  if (url === undefined) throw new Error(`fixture_server did not start:\n${await stop()}`);
  return {
    url,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch { /* already exited */ }
}

async function* splitLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
  if (pending !== "") yield pending;
}

// ---- running the suite and reading its results --------------------------------------------------

type Status = "SUCCESS" | "FAILURE" | "WARNING" | "INFO";

interface Check {
  id: string;
  name: string;
  status: Status;
  description: string;
  errorMessage?: string;
}

interface ScenarioResult {
  scenario: string;
  checks: Check[];
  /** No FAILURE and no WARNING. */
  passed: boolean;
}

interface SuiteRun {
  code: number;
  stdout: string;
  stderr: string;
  results: Map<string, ScenarioResult>;
}

function summarize(scenario: string, checks: Check[]): ScenarioResult {
  return {
    scenario,
    checks,
    passed: !checks.some((c) => c.status === "FAILURE" || c.status === "WARNING"),
  };
}

/** The worst status per check id, for checks that can pass or fail (INFO left out). */
function verdicts(checks: Check[]): Map<string, Status> {
  const rank: Record<Status, number> = { INFO: 0, SUCCESS: 1, WARNING: 2, FAILURE: 3 };
  const out = new Map<string, Status>();
  for (const c of checks) {
    if (c.status === "INFO") continue;
    const prev = out.get(c.id);
    if (prev === undefined || rank[c.status] > rank[prev]) out.set(c.id, c.status);
  }
  return out;
}

/** Reads `<dir>/<prefix><scenario>-<timestamp>/checks.json`, one per scenario run. */
async function readResults(dir: string, prefix: string): Promise<Map<string, ScenarioResult>> {
  const results = new Map<string, ScenarioResult>();
  const re = new RegExp(`^${prefix}(.+)-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z$`);
  for await (const entry of Deno.readDir(dir)) {
    const m = entry.isDirectory ? entry.name.match(re) : null;
    if (!m) continue;
    const checks = JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}/checks.json`));
    results.set(m[1]!, summarize(m[1]!, checks as Check[]));
  }
  return results;
}

async function runCli(args: string[], env: Record<string, string> = {}): Promise<SuiteRun> {
  const out = await new Deno.Command(TOOLS.node, {
    args: [TOOLS.cli, ...args],
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(SUITE_DEADLINE_MS),
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    results: new Map(),
  };
}

/** `conformance server --url URL --suite all -o DIR`: every server scenario, one after another. */
async function runServerSuite(url: URL, outDir: string): Promise<SuiteRun> {
  const run = await runCli(["server", "--url", url.href, "--suite", "all", "-o", outDir]);
  run.results = await readResults(outDir, "server-");
  const announced = run.stdout.match(/Running all suite \((\d+) scenarios\)/);
  assert(announced, `the suite did not start:\n${run.stdout}\n${run.stderr}`);
  assertEquals(run.results.size, Number(announced[1]), "one checks.json per scenario");
  return run;
}

/** `conformance client --command CMD --scenario S -o DIR`; the suite appends its server URL. */
async function runClientScenario(
  scenario: string,
  viaProxy: boolean,
  outDir: string,
  auditDir: string,
): Promise<SuiteRun> {
  const command = [DENO, "run", "-A", "--config", CONFIG, `${HERE}client.ts`];
  if (viaProxy) command.push("--via-proxy");
  // The suite splits --command on spaces and runs it through a shell.
  assert(command.every((p) => !/\s/.test(p)), `a path has a space: ${command.join(" ")}`);
  const run = await runCli(
    ["client", "--command", command.join(" "), "--scenario", scenario, "-o", outDir],
    { CONFORMANCE_AUDIT_DIR: auditDir },
  );
  run.results = await readResults(outDir, "");
  return run;
}

function table(results: Map<string, ScenarioResult>): string {
  const order = (name: string) => {
    const i = SERVER_SCENARIOS.indexOf(name);
    return i === -1 ? SERVER_SCENARIOS.length : i;
  };
  const sorted = [...results.values()].sort((a, b) => order(a.scenario) - order(b.scenario));
  return sorted.map((r) => {
    const v = [...verdicts(r.checks).values()];
    const n = (s: Status) => v.filter((x) => x === s).length;
    return `  ${r.passed ? "pass" : "FAIL"}  ${r.scenario.padEnd(30)} ${n("SUCCESS")} ok, ${
      n("FAILURE")
    } failed, ${n("WARNING")} warnings`;
  }).join("\n");
}

function problems(r: ScenarioResult): string {
  return r.checks.filter((c) => c.status === "FAILURE" || c.status === "WARNING")
    .map((c) => `    ${c.status} ${c.id}: ${c.errorMessage ?? c.description}`).join("\n");
}

// ---- the audit log of a proxied run -------------------------------------------------------------

interface AuditRecord {
  kind: string;
  direction: string;
  method: string | null;
}

async function auditRecords(path: string): Promise<AuditRecord[]> {
  return (await readLog(path)).records;
}

async function verifyLog(path: string): Promise<string> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", "--config", CONFIG, MAIN, "verify", path],
    env: { AUDIT_SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return decoder.decode(out.stdout) + decoder.decode(out.stderr);
}

function has(records: AuditRecord[], kind: string, direction: string, method: string): boolean {
  return records.some((r) => r.kind === kind && r.direction === direction && r.method === method);
}

// ---- the tests ----------------------------------------------------------------------------------

/** Direct server-mode results, kept for the through-proxy comparison when both run. */
let direct: Map<string, ScenarioResult> | undefined;

async function runDirect(): Promise<Map<string, ScenarioResult>> {
  await using out = await scratch("server-direct");
  await using fixture = await startFixture();
  const run = await runServerSuite(fixture.url, out.path);
  direct = run.results;
  return run.results;
}

Deno.test("conformance server mode: the SDK fixture server directly", async () => {
  const results = await runDirect();
  console.log(`server scenarios against fixture_server.ts directly:\n${table(results)}`);
  assertEquals([...results.keys()].sort(), [...SERVER_SCENARIOS].sort(), "the scenario list");
  const failed = [...results.values()].filter((r) =>
    !r.passed && !KNOWN_DIRECT_FAILURES.has(r.scenario)
  );
  assert(
    failed.length === 0,
    `scenarios failing against the fixture itself:\n${
      failed.map((r) => `  ${r.scenario}\n${problems(r)}`).join("\n")
    }`,
  );
});

Deno.test({
  name: "conformance server mode: through main.ts --transport http, as good as directly",
  ignore: !PROXY,
  async fn() {
    const baseline = direct ?? await runDirect();
    await using out = await scratch("server-proxy");
    await using fixture = await startFixture();
    const proxy = await startProxy(fixture.url, out.path);
    let run: SuiteRun;
    try {
      run = await runServerSuite(proxy.url, `${out.path}/results`);
    } finally {
      await proxy.stop();
    }
    console.log(`server scenarios through mcp-audit:\n${table(run.results)}`);
    const regressions: string[] = [];
    for (const [scenario, before] of baseline) {
      const after = run.results.get(scenario);
      if (after === undefined) {
        regressions.push(`  ${scenario}: did not run through the proxy`);
        continue;
      }
      const lost = [...verdicts(before.checks)]
        .filter(([id, s]) => s === "SUCCESS" && verdicts(after.checks).get(id) !== "SUCCESS")
        .map(([id]) => id);
      if ((before.passed && !after.passed) || lost.length > 0) {
        regressions.push(
          `  ${scenario}: checks no longer succeeding: ${lost.join(", ") || "(none)"}\n${
            problems(after)
          }`,
        );
      }
    }
    assert(
      regressions.length === 0,
      `passed directly, not through the proxy:\n${regressions.join("\n")}`,
    );

    const log = `${out.path}/audit.jsonl`;
    const records = await auditRecords(log);
    for (
      const [kind, direction, method] of [
        ["request", "client_to_server", "initialize"],
        ["request", "client_to_server", "tools/call"],
        ["response", "server_to_client", "tools/call"],
        ["notification", "server_to_client", "notifications/progress"],
        ["notification", "server_to_client", "notifications/message"],
        ["request", "server_to_client", "sampling/createMessage"],
        ["response", "client_to_server", "sampling/createMessage"],
        ["request", "server_to_client", "elicitation/create"],
        ["response", "client_to_server", "elicitation/create"],
      ] as const
    ) {
      assert(has(records, kind, direction, method), `no ${kind} ${direction} ${method} recorded`);
    }
    const verified = await verifyLog(log);
    assert(verified.startsWith("OK:"), `verify: ${verified}`);
  },
});

for (const viaProxy of [false, true]) {
  Deno.test({
    name: `conformance client mode: ${CLIENT_SCENARIOS.join(", ")} ${
      viaProxy ? "through main.ts --transport http" : "directly (fixture baseline)"
    }`,
    ignore: viaProxy && !PROXY,
    async fn(t) {
      for (const scenario of CLIENT_SCENARIOS) {
        await t.step(scenario, async () => {
          await using out = await scratch(`client-${scenario}`);
          const run = await runClientScenario(
            scenario,
            viaProxy,
            `${out.path}/results`,
            `${out.path}/audit`,
          );
          const result = run.results.get(scenario);
          const context = `exit ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
          assert(result, `no checks.json for ${scenario}\n${context}`);
          assert(result.checks.some((c) => c.status === "SUCCESS"), `nothing checked\n${context}`);
          assert(result.passed, `${scenario} failed:\n${problems(result)}\n${context}`);
          assertEquals(run.code, 0, `the suite's exit code\n${context}`);
          if (!viaProxy) return;
          const dir = `${out.path}/audit/${scenario}`;
          const records = await auditRecords(`${dir}/audit.jsonl`);
          assert(
            has(records, "request", "client_to_server", "initialize") &&
              has(records, "response", "server_to_client", "initialize"),
            `the client did not go through the proxy (no initialize recorded)`,
          );
          if (scenario !== "initialize") {
            assert(
              has(records, "response", "server_to_client", "tools/call"),
              "no tools/call result recorded",
            );
          }
          const verified = await verifyLog(`${dir}/audit.jsonl`);
          assert(
            verified.startsWith("OK:") && verified.includes("audit/stop"),
            `verify (the proxy must have stopped cleanly): ${verified}`,
          );
        });
      }
    },
  });
}
