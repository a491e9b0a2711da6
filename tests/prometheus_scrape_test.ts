/**
 * A real Prometheus (Debian's `prometheus`) scraping a real proxy's metrics listener, queried over
 * its HTTP API:
 *
 * - the stdio proxy in front of server-everything, driven by the MCP SDK client: PromQL counts
 *   every tools/call, the target is up with no scrape error, and the scrape negotiated what
 *   Prometheus asks for first (gzipped OpenMetrics);
 * - the observability example's own configuration (examples/observability/mcp-audit.yaml) on the
 *   HTTP proxy, driven by the example's load script: every query of the example's Grafana
 *   dashboard runs, and returns data where the traffic gives it some; the agent's spans and the
 *   proxy's arrive at a loopback OTLP receiver, the proxy's a child of the agent's.
 *
 * Prometheus scrapes through a byte-for-byte TCP relay (tests/fixtures/prom_server.ts) that keeps
 * the head of each request and response, so that the test can see what was negotiated and wait for
 * scrapes as events: a query is made once a scrape that started after the traffic has been stored
 * (the next scrape of the same target starts only after it), never after a fixed sleep. Nothing here depends on the
 * storage backend: the sqlite pass skips it.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  assert,
  assertEquals,
  auditEnv,
  Collector,
  deadline,
  DENO_JSON,
  EVERYTHING,
  exitAndStderr,
  killChild,
  MAIN,
  readLog,
  releaseStderr,
  SECRET,
  STORAGE,
  tempDir,
  WireTransport,
} from "./helpers.ts";
import { cleanEnv, EverythingHttpServer } from "./http_helpers.ts";
import { listenAddress } from "./telemetry_helpers.ts";
import { startReceiver } from "./fixtures/otlp_receiver.ts";
import { afterScrapes, Prometheus, ScrapeTap } from "./fixtures/prom_server.ts";
import {
  dashboardQueries,
  EXAMPLE,
  forPrometheus,
  readDashboard,
} from "./fixtures/prom_dashboard.ts";
import type { LoadReport } from "../examples/observability/load.ts";

const ignore = STORAGE === "sqlite";
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// The proxy, with its metrics listener on a port of its own.

interface ProxyStart {
  cwd: string;
  /** Proxy flags and the upstream after `--`. */
  args: string[];
  env?: Record<string, string>;
  /** Stdio: the client speaks on the proxy's stdin and stdout. */
  stdio: boolean;
}

/** `deno run main.ts …` with `MCP_AUDIT_METRICS_PORT=0`, started and serving metrics. */
class MetricsProxy implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  readonly logPath: string;
  #exited = false;
  #stdio: boolean;
  #stdoutTaken = false;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** The metrics listener's port, from the `metrics listening` line. */
  metricsPort = 0;
  /** `http://127.0.0.1:PORT` of the MCP endpoint's listener (HTTP mode). */
  origin = "";

  private constructor(opts: ProxyStart) {
    this.#stdio = opts.stdio;
    this.logPath = `${opts.cwd}/audit.jsonl`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", DENO_JSON, MAIN, ...opts.args],
      cwd: opts.cwd,
      env: {
        ...cleanEnv(),
        AUDIT_SECRET: SECRET,
        ...auditEnv(this.logPath),
        MCP_AUDIT_METRICS_PORT: "0",
        ...opts.env,
      },
      clearEnv: true,
      stdin: opts.stdio ? "piped" : "null",
      stdout: opts.stdio ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    if (opts.stdio) this.#stdin = this.child.stdin.getWriter();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  static async start(opts: ProxyStart, signal: AbortSignal): Promise<MetricsProxy> {
    const proxy = new MetricsProxy(opts);
    try {
      proxy.metricsPort = await proxy.#listening("metrics listening", signal);
      if (!opts.stdio) {
        proxy.origin = `http://127.0.0.1:${await proxy.#listening("proxy listening", signal)}`;
      }
    } catch (e) {
      await proxy[Symbol.asyncDispose]();
      throw e;
    }
    return proxy;
  }

  /** The port named by the log line `msg` (JSON, `address: http://HOST:PORT`). */
  async #listening(msg: string, signal: AbortSignal): Promise<number> {
    const address = await listenAddress(this.stderr, msg, signal);
    const port = Number(new URL(address).port);
    assert(port > 0, `a real port: ${address}`);
    return port;
  }

  /** The MCP SDK's transport over the stdio proxy. */
  transport(): WireTransport {
    assert(this.#stdio && this.#stdin !== undefined && !this.#stdoutTaken, "a stdio proxy");
    this.#stdoutTaken = true;
    const stdin = this.#stdin;
    return new WireTransport(this.child.stdout, stdin, () => stdin.close().catch(() => {}));
  }

  /** SIGTERM, then the exit status. */
  async stop(signal: AbortSignal): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.child.kill("SIGTERM");
    return await this.finished(signal);
  }

  /** The exit status, once the proxy and its stderr have ended. */
  finished(signal: AbortSignal): Promise<Deno.CommandStatus> {
    return exitAndStderr(this.status, this.stderr, signal, "the proxy");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    if (this.#stdin !== undefined) {
      await this.#stdin.close().catch(() => {});
      this.#stdin.releaseLock();
    }
    if (this.#stdio && !this.#stdoutTaken) await this.child.stdout.cancel().catch(() => {});
    await releaseStderr(this.child, this.stderr);
  }
}

// ---------------------------------------------------------------------------------------------

Deno.test({
  name:
    "a real Prometheus scrapes the stdio proxy: PromQL counts every tools/call, the target is up, gzipped OpenMetrics was negotiated",
  ignore,
  fn: async () => {
    await using dir = await tempDir("prometheus-stdio");
    const signal = deadline(90_000);
    await using proxy = await MetricsProxy.start({
      cwd: dir.path,
      args: ["--no-dashboard", "--", ...EVERYTHING],
      stdio: true,
    }, signal);
    await using tap = new ScrapeTap(proxy.metricsPort);
    await using prometheus = await Prometheus.start(dir.path, `127.0.0.1:${tap.port}`, signal);

    const client = new Client({ name: "prometheus-e2e", version: "1.0.0" });
    await client.connect(proxy.transport());
    const echoes = 5;
    const sums = 2;
    for (let i = 0; i < echoes; i++) {
      await client.callTool({ name: "echo", arguments: { message: `scrape me ${i}` } });
    }
    for (let i = 0; i < sums; i++) {
      await client.callTool({ name: "get-sum", arguments: { a: i, b: 2 } });
    }

    const total = await afterScrapes(
      tap,
      prometheus,
      "sum(mcp_audit_tool_calls_total)",
      (v) => v === echoes + sums,
      signal,
    );
    assertEquals(total, echoes + sums, "PromQL counts every tools/call");
    const byTool = await prometheus.query(
      "sum by (tool_name) (mcp_audit_tool_calls_total)",
      signal,
    );
    assertEquals(
      Object.fromEntries(byTool.map((s) => [s.metric.tool_name, Number(s.value)])),
      { echo: echoes, "get-sum": sums },
      "calls by tool",
    );
    assertEquals(
      await prometheus.value(`up{job="mcp-audit"}`, signal),
      1,
      "the target is up",
    );
    const targets = await prometheus.targets(signal);
    assertEquals(targets.length, 1, "one target");
    assertEquals(
      { health: targets[0]?.health, lastError: targets[0]?.lastError },
      { health: "up", lastError: "" },
      "the last scrape had no error",
    );
    assert(
      ((await prometheus.value(`scrape_samples_scraped{job="mcp-audit"}`, signal)) ?? 0) > 0,
      "samples were scraped",
    );

    // What Prometheus asked for, and what the proxy answered.
    const asked = tap.requests[0];
    assert(asked !== undefined, "a scrape was seen");
    assert(asked.line.startsWith("GET /metrics "), `a GET of the path: ${asked.line}`);
    assert(
      asked.headers.get("accept")?.startsWith("application/openmetrics-text") === true,
      `Prometheus prefers OpenMetrics: ${asked.headers.get("accept")}`,
    );
    assert(asked.headers.get("accept-encoding")?.includes("gzip"), "and accepts gzip");
    assert(tap.responses.length > 0, "answers were seen");
    for (const answer of tap.responses) {
      assert(answer.line.startsWith("HTTP/1.1 200"), `200: ${answer.line}`);
      assertEquals(
        answer.headers.get("content-type")?.replaceAll(" ", ""),
        "application/openmetrics-text;version=1.0.0;charset=utf-8",
        "the proxy answers OpenMetrics 1.0.0",
      );
      assertEquals(answer.headers.get("content-encoding"), "gzip", "gzipped");
    }

    // The client leaves; the proxy ends cleanly.
    await client.close();
    assertEquals((await proxy.finished(signal)).code, 0, "the proxy exits 0");
  },
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The report load.ts prints on its last line, checked. */
function parseReport(stdout: string): LoadReport {
  const last = stdout.trim().split("\n").at(-1) ?? "";
  const value: unknown = JSON.parse(last);
  assert(
    isRecord(value) && typeof value.calls === "number" && typeof value.errors === "number" &&
      Array.isArray(value.spans),
    `a report: ${last}`,
  );
  const spans = value.spans.map((s) => {
    assert(
      isRecord(s) && typeof s.traceId === "string" && typeof s.spanId === "string" &&
        typeof s.tool === "string",
      `a span of the report: ${JSON.stringify(s)}`,
    );
    return { traceId: s.traceId, spanId: s.spanId, tool: s.tool };
  });
  return { calls: value.calls, errors: value.errors, spans };
}

/** Panels whose queries have nothing to show when nothing went wrong. */
const EMPTY_WHEN_ALL_IS_WELL = [/_dropped_total/];

Deno.test({
  name:
    "the observability example: its mcp-audit.yaml and load script feed every dashboard query in a real Prometheus, and the proxy's spans are children of the agent's",
  ignore,
  fn: async () => {
    await using dir = await tempDir("prometheus-example");
    const signal = deadline(120_000);
    await using receiver = startReceiver();
    await using server = await EverythingHttpServer.start(dir.path, signal);
    // The example's configuration as it is, but for where things listen and send.
    await using proxy = await MetricsProxy.start({
      cwd: dir.path,
      args: ["--no-dashboard", "--config", `${EXAMPLE}mcp-audit.yaml`],
      env: {
        MCP_AUDIT_PROXY_UPSTREAM: server.url,
        MCP_AUDIT_PROXY_PORT: "0",
        MCP_AUDIT_PROXY_BIND_ADDRESS: "127.0.0.1",
        MCP_AUDIT_METRICS_BIND_ADDRESS: "127.0.0.1",
        MCP_AUDIT_OTEL_ENDPOINT: receiver.url,
        MCP_AUDIT_OTEL_FLUSH_INTERVAL_MS: "100",
      },
      stdio: false,
    }, signal);
    await using tap = new ScrapeTap(proxy.metricsPort);
    await using prometheus = await Prometheus.start(dir.path, `127.0.0.1:${tap.port}`, signal);

    // The agent, as compose runs it, for two rounds.
    const load = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        `${EXAMPLE}load.ts`,
        "--url",
        `${proxy.origin}/mcp`,
        "--otlp",
        receiver.url,
        "--rounds",
        "2",
        "--pause-ms",
        "0",
      ],
      env: cleanEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
    const loadStderr = decoder.decode(load.stderr);
    assertEquals(load.code, 0, `load.ts exits 0:\n${loadStderr}`);
    const report = parseReport(decoder.decode(load.stdout));
    assertEquals(report.calls, 22, "two rounds of 11 calls");
    assert(report.errors >= 2 * 3, `denials, refusals and bad arguments fail: ${report.errors}`);

    await afterScrapes(
      tap,
      prometheus,
      "sum(mcp_audit_tool_calls_total)",
      (v) => v === report.calls,
      signal,
    );
    // Two more scrapes, so that every rate() has points after the traffic.
    await tap.waitForRequests(tap.requests.length + 2, signal);

    const queries = dashboardQueries(readDashboard());
    const empty: string[] = [];
    for (const q of queries) {
      const samples = await prometheus.query(forPrometheus(q.expr, "1m"), signal);
      const mayBeEmpty = EMPTY_WHEN_ALL_IS_WELL.some((re) => re.test(q.expr));
      if (samples.length === 0 && !mayBeEmpty) empty.push(`${q.panel} ${q.refId}: ${q.expr}`);
    }
    assertEquals(empty, [], "every panel that the traffic feeds shows data");
    assertEquals(
      await prometheus.value(`sum(mcp_audit_policy_decisions_total{action="deny"})`, signal),
      2,
      "get-env was denied once a round",
    );
    assert(
      ((await prometheus.value("sum(mcp_audit_rate_limit_rejections_total)", signal)) ?? 0) >= 2,
      "the get-sum bursts were refused in part",
    );

    // Traces: each agent span has the proxy's span for its call as a child, in the same trace.
    const childOf = (spanId: string) =>
      receiver.spans().find((s) =>
        s.parentSpanId === spanId && s.resource.get("service.name") === "mcp-audit"
      );
    await receiver.waitFor(
      () => report.spans.every((a) => childOf(a.spanId) !== undefined),
      "a proxy span under every agent span",
      signal,
    );
    for (const agent of report.spans) {
      const child = childOf(agent.spanId);
      assert(child !== undefined, `a child of ${agent.tool}`);
      assertEquals(child.traceId, agent.traceId, `${agent.tool}: the agent's trace`);
      assertEquals(child.name, `tools/call ${agent.tool}`, "named after the call");
    }
    assert(
      receiver.spans().some((s) => s.resource.get("service.name") === "demo-agent"),
      "the agent's own spans arrive too",
    );

    // Audit records as log records: each body is a line of the signed log.
    await receiver.waitFor(() => receiver.logs().length > 0, "audit records as logs", signal);
    assertEquals((await proxy.stop(signal)).code, 0, "the proxy exits 0 on SIGTERM");
    const lines = new Set((await readLog(proxy.logPath)).lines.map((l) => l.text));
    const bodies = receiver.logs().map((l) => l.body);
    assert(bodies.length > 0, "log records");
    for (const body of bodies) {
      assert(body !== null && lines.has(body), `a log body is a line of the log: ${body}`);
    }
  },
});
