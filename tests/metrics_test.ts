/**
 * End-to-end: the Prometheus metrics of a real proxy (`deno run main.ts`) with a metrics listener
 * on a free port, after real traffic through server-everything and a hostile server; scraped over
 * loopback, checked with the real `promtool`.
 *
 * No sleeps: the proxy's "metrics listening" line is awaited; the metrics, which are counted just
 * after each stored batch, are scraped again until they show what the traffic did (a bounded
 * number of back-to-back scrapes: there is no event to wait for).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { request as httpRequest } from "node:http";
import {
  assert,
  assertEquals,
  auditEnv,
  Collector,
  deadline,
  DENO_JSON,
  EVERYTHING,
  fixture,
  killChild,
  MAIN,
  readLog,
  SECRET,
  STORAGE,
  tempDir,
  WireTransport,
} from "./helpers.ts";
import { cleanEnv, jsonLines } from "./http_helpers.ts";
import {
  listenAddress,
  promtool,
  type Samples,
  scrapeUntil,
  series,
  sum,
} from "./telemetry_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Scrape {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as received (gzip is not undone). */
  bytes: Uint8Array;
  text: string;
}

/** A stdio proxy with its metrics listener on a free port (`MCP_AUDIT_METRICS_PORT=0`). */
class MetricsProxy implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  readonly logPath: string;
  readonly status: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdoutTaken = false;
  #exited = false;
  /** `http://127.0.0.1:PORT`. */
  origin = "";

  constructor(
    cwd: string,
    upstream: string[],
    env: Record<string, string> = {},
    flags: string[] = [],
  ) {
    this.logPath = `${cwd}/audit.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN,
        "--no-dashboard",
        ...flags,
        "--",
        ...upstream,
      ],
      cwd,
      env: {
        ...cleanEnv(),
        ...auditEnv(this.logPath),
        AUDIT_SECRET: SECRET,
        MCP_AUDIT_METRICS_PORT: "0",
        ...env,
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Waits for the metrics listener's log line and keeps its address. */
  async listening(): Promise<this> {
    this.origin = await listenAddress(this.stderr, "metrics listening", deadline(30_000));
    return this;
  }

  transport(): WireTransport {
    this.#stdoutTaken = true;
    return new WireTransport(this.child.stdout, this.#stdin, () => this.#closeInput());
  }

  stdout(): Collector {
    this.#stdoutTaken = true;
    return new Collector(this.child.stdout);
  }

  write(text: string): Promise<void> {
    return this.#stdin.write(encoder.encode(text));
  }

  async #closeInput(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** One scrape with `node:http`, which leaves a gzipped body as it came. */
  scrape(path = "/metrics", headers: Record<string, string> = {}, method = "GET"): Promise<Scrape> {
    const url = new URL(path, this.origin);
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, { method, headers, signal: deadline(10_000) }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on("data", (c: Uint8Array) => chunks.push(c));
        res.on("end", () => {
          const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
          let at = 0;
          for (const c of chunks) {
            bytes.set(c, at);
            at += c.length;
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            text: decoder.decode(bytes),
          });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** Scrapes (text format) until `ready` holds, at most `tries` times back to back. */
  scrapeUntil(ready: (m: Samples) => boolean, what: string, tries = 500): Promise<Samples> {
    return scrapeUntil(() => this.scrape(), ready, what, tries);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.#closeInput();
    this.#stdin.releaseLock();
    if (!this.#stdoutTaken) await this.child.stdout.cancel().catch(() => {});
    await this.stderr.done;
  }
}

async function gunzip(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

async function connect(proxy: MetricsProxy): Promise<Client> {
  const client = new Client({ name: "metrics-e2e", version: "1.0.0" });
  await client.connect(proxy.transport());
  return client;
}

Deno.test("after real traffic through server-everything: counts match the log, promtool is clean, OpenMetrics and gzip on request", async () => {
  await using dir = await tempDir("metrics-everything");
  await using proxy = await new MetricsProxy(dir.path, EVERYTHING).listening();
  const client = await connect(proxy);
  await client.listTools();
  for (let i = 0; i < 3; i++) {
    await client.callTool({ name: "echo", arguments: { message: `m${i}` } });
  }
  await client.callTool({ name: "get-sum", arguments: { a: 2, b: 40 } });
  await client.ping();

  // Nothing more is sent: the log holds every record this process will have counted.
  const records = (await readLog(proxy.logPath)).records;
  const lastSeq = Math.max(...records.map((r) => r.seq));
  const m = await proxy.scrapeUntil(
    (m) => sum(m, "mcp_audit_chain_seq") === lastSeq,
    `chain seq ${lastSeq}`,
  );
  // Go's metrics, as Go counts them: one entry per answered exchange, direction of the answer.
  assertEquals(
    sum(m, "mcp_audit_tool_calls_total", { transport: "stdio", tool_name: "echo", status: "ok" }),
    3,
  );
  assertEquals(sum(m, "mcp_audit_tool_calls_total", { tool_name: "get-sum", status: "ok" }), 1);
  const entry = (method: string) =>
    sum(m, "mcp_audit_entries_total", {
      transport: "stdio",
      direction: "server_to_client",
      method,
      status: "ok",
    });
  assertEquals(entry("tools/call"), 4);
  assertEquals(entry("tools/list"), 1);
  assertEquals(entry("initialize"), 1);
  assertEquals(entry("ping"), 1);
  assertEquals(
    sum(m, "mcp_audit_entries_total", {
      direction: "client_to_server",
      method: "notifications/initialized",
    }),
    1,
  );
  assertEquals(
    sum(m, "mcp_audit_request_duration_seconds_count", {
      method: "tools/call",
      tool_name: "echo",
      status: "ok",
    }),
    3,
  );
  assertEquals(
    sum(m, "mcp_audit_storage_writes_total", { backend: STORAGE, mode: "sync", status: "error" }),
    0,
  );
  assert(
    sum(m, "mcp_audit_storage_writes_total", { backend: STORAGE, mode: "sync", status: "ok" }) > 0,
  );
  assertEquals(sum(m, "mcp_audit_upstream_processes_started_total"), 1);
  assertEquals(sum(m, "mcp_audit_async_batches_total"), 0);

  // What this process stored is what the log holds: every record, by kind.
  assertEquals(sum(m, "mcp_audit_records_total"), records.length);
  for (const kind of ["request", "response", "notification", "event"]) {
    assertEquals(
      sum(m, "mcp_audit_records_total", { kind }),
      records.filter((r) => r.kind === kind).length,
      kind,
    );
  }

  // The real promtool: no parse error, no lint.
  const text = (await proxy.scrape()).text;
  const checked = await promtool(text);
  assertEquals(checked, { code: 0, said: "" });
  assert(/^process_resident_memory_bytes \d/m.test(text), "process metrics are served");
  assert(/^deno_info\{/m.test(text), "runtime metrics are served");

  // OpenMetrics, gzipped, as Prometheus 2.42 asks for it.
  const om = await proxy.scrape("/metrics", {
    accept:
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "accept-encoding": "gzip",
  });
  assertEquals(om.status, 200);
  assertEquals(
    om.headers["content-type"],
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
  );
  assertEquals(om.headers["content-encoding"], "gzip");
  assertEquals(om.headers["vary"], "Accept, Accept-Encoding");
  assertEquals(om.headers["cache-control"], "no-store");
  const omText = await gunzip(om.bytes);
  assert(omText.endsWith("# EOF\n"), "OpenMetrics ends with # EOF");
  assert(/^# TYPE mcp_audit_tool_calls counter$/m.test(omText), "counter families without _total");
  assert(
    /^mcp_audit_tool_calls_total\{transport="stdio",tool_name="echo",status="ok"\} 3$/m.test(
      omText,
    ),
    "the same samples",
  );

  // Only GET and HEAD on the path.
  const post = await proxy.scrape("/metrics", {}, "POST");
  assertEquals([post.status, post.headers["allow"]], [405, "GET, HEAD"]);
  assertEquals((await proxy.scrape("/other")).status, 404);
  const head = await proxy.scrape("/metrics", {}, "HEAD");
  assertEquals([head.status, head.bytes.length], [200, 0]);

  await client.close();
  assertEquals((await proxy.status).code, 0);
});

Deno.test({
  name:
    "an invalid message is one entry, the proxy's -32600 answer to it, as the Go tool wrote one",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("metrics-invalid");
    await using proxy = await new MetricsProxy(dir.path, fixture("attack_upstream.ts"))
      .listening();
    const out = proxy.stdout();
    // Not JSON, but its id can be read: refused, recorded as invalid, answered -32600.
    await proxy.write('{"jsonrpc":"2.0","id":9,"method":"ping"\n');
    await out.waitFor(
      (c) => c.lines.some((l) => l.includes("-32600")),
      "the answer",
      deadline(30_000),
    );
    const records = (await readLog(proxy.logPath)).records;
    assertEquals(records.filter((r) => r.kind === "invalid").length, 1);
    const lastSeq = Math.max(...records.map((r) => r.seq));
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_chain_seq") === lastSeq,
      `chain seq ${lastSeq}`,
    );
    assertEquals(sum(m, "mcp_audit_records_total", { kind: "invalid" }), 1);
    assertEquals(
      series(m, "mcp_audit_entries_total").map((s) => [s.labels, s.value]),
      [[{
        transport: "stdio",
        direction: "server_to_client",
        method: "unknown",
        status: "rpc_error",
      }, 1]],
    );
  },
});

Deno.test({
  name:
    "the metrics listener on loopback refuses a foreign Host (DNS rebinding); bound to all interfaces it serves any",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("metrics-host");
    {
      await using proxy = await new MetricsProxy(dir.path, fixture("attack_upstream.ts"))
        .listening();
      const port = new URL(proxy.origin).port;
      assertEquals((await proxy.scrape("/metrics", { host: `localhost:${port}` })).status, 200);
      const rebound = await proxy.scrape("/metrics", { host: `evil.example:${port}` });
      assertEquals(rebound.status, 403);
      assert(!rebound.text.includes("mcp_audit"), rebound.text);
    }
    await using other = await tempDir("metrics-host-all");
    await using proxy = await new MetricsProxy(other.path, fixture("attack_upstream.ts"), {
      MCP_AUDIT_METRICS_BIND_ADDRESS: "0.0.0.0",
    }).listening();
    const port = new URL(proxy.origin).port;
    const named = await proxy.scrape("/metrics", { host: `mcp-audit:${port}` });
    assertEquals(named.status, 200);
    assert(named.text.includes("mcp_audit_chain_seq"));
  },
});

Deno.test({
  name: "metrics.tool_labels false: the tool metrics stay, with no tool_name label anywhere",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("metrics-no-tool-labels");
    await using proxy = await new MetricsProxy(dir.path, EVERYTHING, {
      MCP_AUDIT_METRICS_TOOL_LABELS: "false",
    }).listening();
    const client = await connect(proxy);
    await client.callTool({ name: "echo", arguments: { message: "a" } });
    await client.callTool({ name: "get-sum", arguments: { a: 1, b: 1 } });
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_tool_calls_total") === 2,
      "two tool calls",
    );
    assertEquals(series(m, "mcp_audit_tool_calls_total").map((s) => s.labels), [
      { transport: "stdio", status: "ok" },
    ]);
    assertEquals(sum(m, "mcp_audit_request_duration_seconds_count", { method: "tools/call" }), 2);
    for (const s of m) assert(!("tool_name" in s.labels), `${s.name} has no tool_name`);
    await client.close();
  },
});

Deno.test({
  name:
    "a hostile server's 10k tools and 10k made-up methods, and calls naming 10k tools: series stay bounded",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("metrics-hostile");
    await using proxy = await new MetricsProxy(dir.path, fixture("many_names_server.ts", "10000"))
      .listening();
    const out = proxy.stdout();
    const rpc = (m: unknown) => JSON.stringify(m) + "\n";
    await proxy.write(rpc({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      },
    }));
    await out.waitFor((c) => c.lines.length >= 1, "the initialize answer", deadline(30_000));
    await proxy.write(rpc({ jsonrpc: "2.0", method: "notifications/initialized" }));
    await out.waitFor(
      (c) => c.lines.some((l) => l.includes('"data":"done"')),
      "the server's 10k notifications",
      deadline(60_000),
    );
    await proxy.write(rpc({ jsonrpc: "2.0", id: 1, method: "tools/list" }));
    // 10k calls, each naming another tool, in batches of 1000.
    for (let b = 0; b < 10; b++) {
      const batch = Array.from({ length: 1000 }, (_, i) => ({
        jsonrpc: "2.0",
        id: 100 + b * 1000 + i,
        method: "tools/call",
        params: { name: `called_${b * 1000 + i}`, arguments: {} },
      }));
      await proxy.write(JSON.stringify(batch) + "\n");
    }
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_tool_calls_total") === 10_000,
      "10k tool calls",
    );
    const calls = series(m, "mcp_audit_tool_calls_total");
    assert(calls.length <= 201, `${calls.length} tool_calls series`);
    // The server's 10k listed tools took the 200 labels: the names only called have none.
    assertEquals(sum(m, "mcp_audit_tool_calls_total", { tool_name: "other" }), 10_000);
    const durations = series(m, "mcp_audit_request_duration_seconds_count");
    assert(durations.length <= 201 + 10, `${durations.length} request_duration series`);
    // The made-up methods are one `other` series.
    assertEquals(
      sum(m, "mcp_audit_entries_total", { direction: "server_to_client", method: "other" }),
      10_000,
    );
    assert(series(m, "mcp_audit_entries_total").length <= 20);
    const all = m.filter((s) => !s.name.endsWith("_bucket"));
    assert(all.length < 1000, `${all.length} series in all`);
    assert(m.every((s) => !("otel_metric_overflow" in s.labels)));
  },
});

Deno.test({
  name: "scrapes during reloads (SIGHUP) are all answered 200, and the reloads are counted",
  ignore: STORAGE === "sqlite" || Deno.build.os === "windows",
  async fn() {
    await using dir = await tempDir("metrics-reload");
    const config = `${dir.path}/config.yaml`;
    await Deno.writeTextFile(config, "policy:\n  enabled: true\n  default_action: allow\n");
    await using proxy = await new MetricsProxy(dir.path, EVERYTHING, {}, ["--config", config])
      .listening();
    const client = await connect(proxy);
    const reloads = 5;
    const statuses: number[] = [];
    let sent = 0;
    const reloaded = () =>
      jsonLines(proxy.stderr.lines).filter((l) => l.msg === "configuration reloaded").length;
    // Scrape back to back while the signals arrive, until every reload has been logged.
    while (reloaded() < reloads) {
      if (sent < reloads && sent <= reloaded()) {
        proxy.child.kill("SIGHUP");
        sent++;
      }
      const s = await proxy.scrape();
      statuses.push(s.status);
      assert(statuses.length < 5000, "the reloads never finished");
    }
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_config_reloads_total", { trigger: "signal" }) === reloads,
      "five reloads",
    );
    assertEquals(
      sum(m, "mcp_audit_config_reloads_total", { trigger: "signal", outcome: "unchanged" }),
      reloads,
    );
    assert(statuses.length >= reloads);
    assertEquals(statuses.filter((s) => s !== 200), []);
    await client.close();
  },
});

Deno.test({
  name: "metrics port taken: exit 1 with one clear line before any traffic, and audit/stop written",
  async fn() {
    await using dir = await tempDir("metrics-port-taken");
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = String(taken.addr.port);
    await using proxy = new MetricsProxy(dir.path, EVERYTHING, {
      MCP_AUDIT_METRICS_PORT: port,
    });
    const out = proxy.stdout();
    const status = await proxy.status;
    await out.done;
    await proxy.stderr.done;
    assertEquals(status.code, 1, proxy.stderr.text());
    assertEquals(out.length, 0, "nothing was sent to the client");
    const errors = jsonLines(proxy.stderr.lines).filter((l) => l.level === "error");
    assertEquals(errors.length, 1, proxy.stderr.text());
    const said = JSON.stringify(errors[0]);
    assert(
      said.includes(port) && /metrics/i.test(said),
      `the line names the metrics port: ${said}`,
    );
    const records = (await readLog(proxy.logPath)).records;
    assertEquals(records.at(-1)?.method, "audit/stop");
    assertEquals(records.filter((r) => r.kind !== "event"), [], "no traffic was recorded");
  },
});
