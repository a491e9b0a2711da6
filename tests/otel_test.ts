/**
 * The OpenTelemetry export end to end: a real proxy process (stdio, in front of server-everything
 * or a small echo upstream) driven by the real MCP SDK clients, exporting to a loopback OTLP
 * receiver written in the test (tests/fixtures/otlp_receiver.ts) that decodes what it gets.
 *
 * Checked: a span per exchange, child of the client's `_meta.traceparent`, with the attributes
 * and status the Go tool set and the seq/entry id of the signed records; spans for a denied call;
 * `otel.methods: all`; log records whose bodies are the exact stored lines (and verify as a log);
 * gzip and protobuf. Faults: a collector unreachable, hanging, answering 429 with `Retry-After`,
 * 500, 400 with a body, and a TLS mismatch — the traffic is never affected, and the proxy exits
 * within `otel.shutdown_timeout_ms` with `audit/stop` written.
 *
 * Time is driven by small settings (flush interval, timeouts, retry intervals); nothing sleeps.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  assert,
  assertEquals,
  type AuditRecord,
  deadline,
  DENO_JSON,
  EVERYTHING,
  fixture,
  MAIN,
  pick,
  ProxyProcess,
  readLog,
  SECRET,
  STORAGE,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import { decodeProtobufSpans, type ReceivedSpan, startReceiver } from "./fixtures/otlp_receiver.ts";
import { makeCerts } from "./fixtures/tls/make_certs.ts";
import { pythonWithMcp } from "./py_sdk.ts";

const CLIENT_INFO = { name: "mcp-audit-e2e-otel", version: "1.0.0" };
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;
const SPAN_KIND_CLIENT = 3;
const STATUS_OK = 1;
const STATUS_ERROR = 2;

/** Writes `config.yaml` (JSON is YAML) into the proxy's working directory. */
async function writeConfig(dir: string, config: Record<string, unknown>): Promise<void> {
  await Deno.writeTextFile(`${dir}/config.yaml`, JSON.stringify(config, null, 2) + "\n");
}

/** `otel.*` for a test: everything small so that nothing waits long. */
function otel(endpoint: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    enabled: true,
    endpoint,
    service_name: "mcp-audit-e2e",
    flush_interval_ms: 20,
    timeout_ms: 5000,
    retry: { max_retries: 2, initial_interval_ms: 5, max_interval_ms: 20 },
    shutdown_timeout_ms: 10_000,
    ...more,
  };
}

function textOf(result: unknown): string {
  const parsed = CallToolResultSchema.parse(result);
  const first = parsed.content[0];
  assert(first !== undefined && first.type === "text", "the result starts with a text block");
  return first.text;
}

/** The spans received, by name. */
function byName(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((s) => s.name === name);
}

/** Structured stderr lines of the proxy with this `msg`. */
function logged(proxy: ProxyProcess, msg: string): Record<string, unknown>[] {
  return proxy.logLines().filter((l) => l.msg === msg);
}

/** Closes stdin (the client is gone) and waits for a clean exit. */
async function finish(proxy: ProxyProcess, signal: AbortSignal): Promise<void> {
  await proxy.closeInput();
  const status = await proxy.finished(signal);
  assertEquals(status.code, 0, `the proxy exits 0; stderr:\n${proxy.stderr.text().slice(-3000)}`);
}

/** The last record is audit/stop. */
function assertStopped(records: readonly AuditRecord[]): void {
  assertEquals(records.at(-1)?.method, "audit/stop", "audit/stop is written last");
}

// ----------------------------------------------------------------------------------------------

Deno.test("spans follow the client's _meta.traceparent, carry the Go attributes and the signed records' seq and id; a denied call has its span; logs carry the exact lines", async () => {
  await using dir = await tempDir("otel-spans");
  await using rx = startReceiver();
  const signal = deadline(60_000);
  await writeConfig(dir.path, {
    otel: otel(rx.url, { logs: true }),
    policy: {
      enabled: true,
      rules: [{ action: "deny", tool_name: "get-sum", reason: "sums need approval" }],
    },
  });
  await using proxy = new ProxyProcess({ cwd: dir.path, upstream: EVERYTHING });
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  await client.connect(proxy.transport());
  const echoed = await client.callTool({
    name: "echo",
    arguments: { message: "traced" },
    _meta: { traceparent: TRACEPARENT, tracestate: "agent=1" },
  });
  assertEquals(textOf(echoed), "Echo: traced");
  let denied = false;
  try {
    await client.callTool({
      name: "get-sum",
      arguments: { a: 1, b: 2 },
      _meta: { traceparent: `00-${TRACE_ID}-${"1".repeat(16)}-01` },
    });
  } catch {
    denied = true;
  }
  assert(denied, "get-sum is refused");
  assertEquals(
    textOf(await client.callTool({ name: "echo", arguments: { message: "untraced" } })),
    "Echo: untraced",
  );
  // Spans leave while the proxy runs, at the flush interval.
  await rx.waitFor(() => rx.spans().length >= 3, "three tools/call spans", signal);
  await client.close();
  await finish(proxy, signal);

  const { lines, records } = await readLog(proxy.logPath);
  assertStopped(records);
  const spans = rx.spans();
  assertEquals(spans.map((s) => s.name).sort(), [
    "tools/call echo",
    "tools/call echo",
    "tools/call get-sum",
  ]);
  const calls = pick(records, { kind: "request", method: "tools/call" });
  assertEquals(calls.length, 3);
  const [traced, sum, untraced] = calls;
  const spanOf = (req: AuditRecord) => {
    const found = spans.filter((s) => s.attributes.get("mcp_audit.seq") === req.seq);
    assertEquals(found.length, 1, `one span for the request at seq ${req.seq}`);
    return found[0]!;
  };

  // The traced call: a child of the client's span, in its trace; tracestate kept.
  const a = spanOf(traced!);
  assertEquals(a.traceId, TRACE_ID);
  assertEquals(a.parentSpanId, PARENT_ID);
  assertEquals(a.traceState, "agent=1");
  assertEquals(a.kind, SPAN_KIND_CLIENT);
  assertEquals(a.status.code, STATUS_OK);
  const answerA = records.find((r) =>
    r.kind === "response" && r.jsonrpc_id === traced!.jsonrpc_id && r.seq > traced!.seq
  );
  assert(answerA !== undefined, "the echo call is answered");
  assertEquals(
    a.attributeKeys,
    [
      "mcp.method.name",
      "network.transport",
      "mcp_audit.entry_id",
      "mcp_audit.direction",
      "mcp_audit.signature.present",
      "gen_ai.operation.name",
      "jsonrpc.request.id",
      "gen_ai.tool.name",
      "mcp_audit.client_id",
      "mcp_audit.server_id",
      "mcp_audit.storage",
      "mcp_audit.seq",
      "mcp_audit.response.seq",
      "mcp_audit.response.entry_id",
      "mcp.session.id",
      "mcp_audit.decision.action",
    ].filter((k) =>
      (k !== "mcp_audit.client_id" || traced!.client_id !== "") &&
      (k !== "mcp_audit.server_id" || traced!.server_id !== "")
    ),
  );
  assertEquals(a.attributes.get("mcp.method.name"), "tools/call");
  assertEquals(a.attributes.get("network.transport"), "pipe");
  assertEquals(a.attributes.get("mcp_audit.entry_id"), traced!.id);
  assertEquals(a.attributes.get("mcp_audit.direction"), "client_to_server");
  assertEquals(a.attributes.get("mcp_audit.signature.present"), true);
  assertEquals(a.attributes.get("gen_ai.operation.name"), "execute_tool");
  assertEquals(a.attributes.get("jsonrpc.request.id"), String(traced!.jsonrpc_id));
  assertEquals(a.attributes.get("gen_ai.tool.name"), "echo");
  assertEquals(a.attributes.get("mcp_audit.storage"), STORAGE);
  assertEquals(a.attributes.get("mcp_audit.response.seq"), answerA.seq);
  assertEquals(a.attributes.get("mcp_audit.response.entry_id"), answerA.id);
  assertEquals(a.attributes.get("mcp.session.id"), traced!.session);
  assertEquals(a.attributes.get("mcp_audit.decision.action"), "allow");
  // Times: the answer's ts is the end; duration_ms before it is the start.
  assertEquals(a.endTimeUnixNano, BigInt(Date.parse(answerA.ts)) * 1_000_000n);
  assertEquals(
    a.endTimeUnixNano - a.startTimeUnixNano,
    BigInt(Math.round((answerA.duration_ms ?? -1) * 1e6)),
  );
  // Never params or results.
  for (const v of a.attributes.values()) {
    assert(!String(v).includes("traced") || v === traced!.id, `no params in ${v}`);
  }
  assertEquals(a.resource.get("service.name"), "mcp-audit-e2e");
  assertEquals(typeof a.resource.get("service.version"), "string");
  assertEquals(a.resource.get("process.pid"), proxy.pid);

  // The denied call: answered by the proxy, status ERROR policy_denied, code -32030.
  const b = spanOf(sum!);
  assertEquals(b.traceId, TRACE_ID);
  assertEquals(b.parentSpanId, "1".repeat(16));
  assertEquals(b.status, { code: STATUS_ERROR, message: "policy denied" });
  assertEquals(b.attributes.get("error.type"), "policy_denied");
  assertEquals(b.attributes.get("rpc.response.status_code"), -32030);
  assertEquals(b.attributes.get("mcp_audit.decision.action"), "deny");

  // No traceparent: a root span in a trace of its own.
  const c = spanOf(untraced!);
  assertEquals(c.parentSpanId, "");
  assert(c.traceId !== TRACE_ID && /^[0-9a-f]{32}$/.test(c.traceId), c.traceId);

  // Logs: one per record (audit/stop included), the body the exact stored line, seq/prev/sig.
  const logs = rx.logs();
  assertEquals(logs.length, records.length, "every record is exported as a log record");
  const stored = lines.filter((l) => l.record !== undefined);
  for (
    const [i, log] of logs.sort((x, y) =>
      Number(x.attributes.get("mcp_audit.seq")) - Number(y.attributes.get("mcp_audit.seq"))
    ).entries()
  ) {
    const line = stored[i]!;
    assertEquals(log.body, line.text, `log record ${i + 1} is the stored line`);
    assertEquals(log.attributes.get("mcp_audit.seq"), line.record!.seq);
    assertEquals(log.attributes.get("mcp_audit.prev"), line.record!.prev);
    assertEquals(log.attributes.get("mcp_audit.sig"), line.record!.sig);
    assertEquals(log.eventName, "mcp_audit.record");
  }
  // What a SIEM receives is evidence: the bodies, in seq order, verify as a log.
  const exported = `${dir.path}/exported.jsonl`;
  await Deno.writeTextFile(exported, logs.map((l) => l.body + "\n").join(""));
  const verified = await verifyLog(exported, { secret: SECRET });
  assertEquals(
    verified.code,
    0,
    `the exported bodies verify:\n${verified.stdout}${verified.stderr}`,
  );
});

Deno.test({
  name:
    "otel.methods all, http/protobuf and gzip: a span for every request, protobuf on the wire, gzipped",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("otel-all");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await writeConfig(dir.path, {
      otel: otel(rx.url, { methods: "all", protocol: "http/protobuf", compression: "gzip" }),
    });
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: EVERYTHING });
    const client = new Client(CLIENT_INFO, { capabilities: {} });
    await client.connect(proxy.transport());
    await client.listTools();
    await client.callTool({
      name: "echo",
      arguments: { message: "x" },
      _meta: { traceparent: TRACEPARENT },
    });
    await client.close();
    await finish(proxy, signal);
    const requests = rx.requests.filter((r) => r.path === "/v1/traces");
    assert(requests.length >= 1, "spans were exported");
    for (const r of requests) {
      assertEquals(r.headers.get("content-type"), "application/x-protobuf");
      assertEquals(r.headers.get("content-encoding"), "gzip");
      assertEquals([r.raw[0], r.raw[1]], [0x1f, 0x8b]);
    }
    const spans = requests.flatMap((r) => decodeProtobufSpans(r.body));
    const names = spans.map((s) => s.name).sort();
    assertEquals(names, ["initialize", "tools/call echo", "tools/list"]);
    const echo = spans.find((s) => s.name === "tools/call echo")!;
    assertEquals(echo.traceId, TRACE_ID);
    assertEquals(echo.parentSpanId, PARENT_ID);
    assertEquals(rx.requests.filter((r) => r.path === "/v1/logs").length, 0, "otel.logs is off");
  },
});

Deno.test({
  name: "the Python MCP SDK client's _meta.traceparent is followed too",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("otel-py");
    await using rx = startReceiver();
    const signal = deadline(120_000);
    await writeConfig(dir.path, { otel: otel(rx.url) });
    const python = await pythonWithMcp();
    const out = await new Deno.Command(python, {
      args: [
        new URL("./fixtures/otlp_py_client.py", import.meta.url).pathname,
        Deno.execPath(),
        DENO_JSON,
        MAIN,
        TRACEPARENT,
        ...EVERYTHING,
      ],
      cwd: dir.path,
      env: {
        AUDIT_SECRET: SECRET,
        MCP_AUDIT_AUDIT_PATH: `${dir.path}/audit.jsonl`,
        MCP_AUDIT_METRICS_PORT: "0",
      },
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assertEquals(
      out.code,
      0,
      `python client:\n${stdout}\n${new TextDecoder().decode(out.stderr).slice(-3000)}`,
    );
    assertEquals(stdout.trim(), "Echo: from python");
    const spans = byName(rx.spans(), "tools/call echo");
    assertEquals(spans.length, 1);
    assertEquals(spans[0]!.traceId, TRACE_ID);
    assertEquals(spans[0]!.parentSpanId, PARENT_ID);
  },
});

// ----------------------------------------------------------------------------------------------
// Faults: the traffic never notices.

/** JSON-RPC lines for the echo upstream: `n` tools/call requests. */
function calls(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      jsonrpc: "2.0",
      id: i + 1,
      method: "tools/call",
      params: { name: "echo", arguments: { i }, _meta: { traceparent: TRACEPARENT } },
    }) + "\n").join("");
}

/** Sends `n` calls through a proxy in front of the echo upstream; returns once all are answered. */
async function callThrough(proxy: ProxyProcess, n: number, signal: AbortSignal): Promise<void> {
  const out = proxy.stdout();
  await proxy.write(new TextEncoder().encode(calls(n)));
  await out.waitFor(() => out.lines.length >= n, `${n} answers`, signal);
  for (const [i, line] of out.lines.entries()) {
    const v: unknown = JSON.parse(line);
    assert(
      typeof v === "object" && v !== null && "result" in v,
      `answer ${i + 1} is a result: ${line}`,
    );
  }
}

Deno.test({
  name:
    "429 with Retry-After and then 500 are retried until delivered; 400 with a body is not retried, and logged",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("otel-retry");
    const traces: number[] = [];
    await using rx = startReceiver({
      respond: (req) => {
        if (req.path === "/v1/logs") {
          return new Response("log records refused: tenant unknown", { status: 400 });
        }
        traces.push(req.n);
        if (traces.length === 1) {
          return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
        }
        if (traces.length === 2) return new Response("oops", { status: 500 });
        return Response.json({});
      },
    });
    const signal = deadline(60_000);
    await writeConfig(dir.path, {
      otel: otel(rx.url, {
        logs: true,
        batch_size: 1000,
        flush_interval_ms: 50,
        retry: { max_retries: 3, initial_interval_ms: 5, max_interval_ms: 100 },
      }),
    });
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture("echo_upstream.ts"),
      flags: ["--log-level", "debug"],
    });
    await callThrough(proxy, 3, signal);
    await rx.waitFor(
      () => rx.requests.filter((r) => r.path === "/v1/traces").length >= 3,
      "the third traces request",
      signal,
    );
    await finish(proxy, signal);
    const traceRequests = rx.requests.filter((r) => r.path === "/v1/traces");
    // The same batch three times: refused (429), failed (500), accepted.
    const first = traceRequests[0]!;
    assertEquals(
      traceRequests.slice(0, 3).map((r) => new TextDecoder().decode(r.body)),
      Array(3).fill(new TextDecoder().decode(first.body)),
    );
    // Every span arrived in the end (the refused attempts carried copies of the first batch).
    assertEquals(new Set(rx.spans().map((s) => s.spanId)).size, 3);
    // The first wait is the server's (1 s, capped at max_interval_ms); the second the backoff's
    // first step: a Retry-After wait does not advance it.
    const waits = logged(proxy, "otel export retrying").filter((l) => l.signal === "traces");
    assertEquals(waits.map((l) => [l.status, l.wait_ms]), [[429, 100], [500, 5]]);
    // Logs: the 400 is final; its body is in the proxy's log.
    const logRequests = rx.requests.filter((r) => r.path === "/v1/logs");
    const failed = logged(proxy, "otel export failed").filter((l) => l.signal === "logs");
    assert(failed.length >= 1, "the refused log export is logged");
    assertEquals(failed[0]!.status, 400);
    assertEquals(failed[0]!.kind, "permanent_error");
    assertEquals(failed[0]!.error, "log records refused: tenant unknown");
    assertEquals(failed[0]!.attempts, 1);
    // Not retried: each log batch was sent once (distinct bodies).
    const bodies = logRequests.map((r) => new TextDecoder().decode(r.body));
    assertEquals(new Set(bodies).size, bodies.length, "no log batch was sent twice");
    const { records } = await readLog(proxy.logPath);
    assertStopped(records);
  },
});

Deno.test({
  name:
    "a collector that is not there: every message is forwarded, the proxy exits, audit/stop is written",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("otel-down");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const signal = deadline(60_000);
    await writeConfig(dir.path, {
      otel: otel(`http://127.0.0.1:${port}`, { logs: true, batch_size: 2 }),
    });
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: fixture("echo_upstream.ts") });
    await callThrough(proxy, 5, signal);
    await finish(proxy, signal);
    const { records } = await readLog(proxy.logPath);
    assertEquals(pick(records, { kind: "response" }).length, 5);
    assertStopped(records);
    const failed = logged(proxy, "otel export failed");
    assert(failed.length >= 1, "the failure is logged");
    assertEquals(failed[0]!.kind, "error");
    assert(String(failed[0]!.error).startsWith("network error"), String(failed[0]!.error));
  },
});

Deno.test({
  name:
    "a collector that hangs: every message is forwarded, and the proxy exits at otel.shutdown_timeout_ms with audit/stop written",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("otel-hang");
    await using rx = startReceiver({ respond: () => rx.released.then(() => Response.json({})) });
    // The export's own timeout is far beyond the test's deadline: only shutdown's deadline can end
    // the proxy in time.
    const signal = deadline(30_000);
    await writeConfig(dir.path, {
      otel: otel(rx.url, {
        logs: true,
        batch_size: 1,
        timeout_ms: 600_000,
        shutdown_timeout_ms: 300,
      }),
    });
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: fixture("echo_upstream.ts") });
    await callThrough(proxy, 4, signal);
    await rx.waitFor(() => rx.requests.length >= 2, "exports in flight", signal);
    await finish(proxy, signal);
    const { records } = await readLog(proxy.logPath);
    assertEquals(pick(records, { kind: "response" }).length, 4);
    assertStopped(records);
    const dropped = logged(proxy, "otel shutdown deadline passed: queued items dropped");
    assert(
      dropped.length >= 1,
      `queued items dropped at the deadline: ${proxy.stderr.text().slice(-2000)}`,
    );
  },
});

Deno.test({
  name:
    "TLS: an https collector whose certificate otel.tls.ca_file does not vouch for gets nothing; one it does gets the spans",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using certs = await makeCerts();
    const signal = deadline(60_000);
    for (
      const [ca, delivered] of [[certs.otherCa.certFile, false], [certs.ca.certFile, true]] as const
    ) {
      await using dir = await tempDir("otel-tls");
      await using rx = startReceiver({ tls: { cert: certs.server.cert, key: certs.server.key } });
      await writeConfig(dir.path, {
        otel: otel(rx.url, { tls: { ca_file: ca }, retry: { max_retries: 0 } }),
      });
      await using proxy = new ProxyProcess({
        cwd: dir.path,
        upstream: fixture("echo_upstream.ts"),
      });
      await callThrough(proxy, 2, signal);
      await finish(proxy, signal);
      const { records } = await readLog(proxy.logPath);
      assertEquals(pick(records, { kind: "response" }).length, 2, "the traffic is unaffected");
      assertStopped(records);
      if (delivered) {
        assertEquals(rx.spans().length, 2, "the trusted collector gets the spans");
      } else {
        assertEquals(rx.requests.length, 0, "no request completes against the untrusted collector");
        const failed = logged(proxy, "otel export failed");
        assert(failed.length >= 1, "the TLS failure is logged");
        assert(String(failed[0]!.error).startsWith("network error"), String(failed[0]!.error));
      }
    }
  },
});
