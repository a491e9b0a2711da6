/**
 * The telemetry change (issue 10) under attack: real proxy processes (stdio and HTTP), a hostile
 * scriptable upstream (tests/fixtures/attack_upstream.ts), hostile clients written here, a
 * loopback OTLP receiver (tests/fixtures/otlp_receiver.ts) that answers as a test scripts it or
 * hangs, the real `promtool`, and raw TCP against the metrics listener.
 *
 * Two kinds of test live here:
 *
 * - **Findings** (`finding: …`): each FAILS on the code as reviewed and passes once the defect is
 *   fixed. Their names say what should hold.
 * - **Regressions** (`holds: …`): attacks that the change withstood, kept so that it keeps
 *   withstanding them.
 *
 * Nothing sleeps: every wait is for a line, an answer, a request reaching the receiver, or a
 * process exit; metrics, which are counted just after each stored batch and have no event of their
 * own, are scraped back to back a bounded number of times until they show what the traffic did.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  auditEnv,
  type AuditRecord,
  Collector,
  deadline,
  DENO_JSON,
  exitAndStderr,
  fixture,
  killChild,
  MAIN,
  readLog,
  releaseStderr,
  SECRET,
  STORAGE,
  tempDir,
} from "./helpers.ts";
import { cleanEnv, freePort, jsonLines, ScriptedUpstream, waitForRecord } from "./http_helpers.ts";
import {
  dump,
  listenAddress,
  parseMetrics,
  promtool,
  SAMPLE,
  type Sample,
  type Samples,
  scrapeUntil,
  series,
  sum,
} from "./telemetry_helpers.ts";
import {
  decodeJsonLogs,
  decodeJsonSpans,
  type OtlpReceiver,
  type ReceivedSpan,
  startReceiver,
} from "./fixtures/otlp_receiver.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The scriptable hostile upstream. */
const UPSTREAM = fixture("attack_upstream.ts");
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_ERROR = 2;
/** The most of any client- or server-chosen text a span should carry (generous: 8 KiB). */
const SPAN_TEXT_LIMIT = 8192;

// ------------------------------------------------------------------------------------------------
// Harness

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

interface Start {
  cwd: string;
  /** A stdio upstream's argv, or an HTTP upstream's URL (then `--transport http --port 0`). */
  upstream: string[] | string;
  /** Written to `config.yaml` (JSON is YAML) and passed with `--config`. */
  config?: Obj;
  env?: Record<string, string>;
  flags?: string[];
  /** Metrics on a free port (default), or `--no-metrics`. */
  metrics?: boolean;
}

/** A real proxy process: `deno run -A main.ts …`. */
class Proxy implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  /** The client side of a stdio proxy: what it sends the client. */
  readonly out: Collector;
  readonly logPath: string;
  readonly configPath: string;
  readonly status: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;
  /** `http://127.0.0.1:PORT` of the metrics listener, once {@link listening} returned. */
  origin = "";

  constructor(o: Start) {
    this.logPath = `${o.cwd}/audit.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
    this.configPath = `${o.cwd}/config.yaml`;
    const flags = [...(o.flags ?? [])];
    if (o.config !== undefined) {
      Deno.writeTextFileSync(this.configPath, JSON.stringify(o.config, null, 2) + "\n");
      flags.push("--config", this.configPath);
    }
    if (o.metrics === false) flags.push("--no-metrics");
    const tail = typeof o.upstream === "string"
      ? ["--transport", "http", "--upstream", o.upstream, "--port", "0"]
      : ["--", ...o.upstream];
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", DENO_JSON, MAIN, "--no-dashboard", ...flags, ...tail],
      cwd: o.cwd,
      env: { ...cleanEnv(), ...auditEnv(this.logPath), AUDIT_SECRET: SECRET, ...o.env },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.stderr = new Collector(this.child.stderr);
    this.out = new Collector(this.child.stdout, { context: () => this.stderr.text().slice(-3000) });
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** The proxy's structured log lines. */
  logLines(): Obj[] {
    return jsonLines(this.stderr.lines);
  }

  /** Log lines with this `msg`. */
  logged(msg: string): Obj[] {
    return this.logLines().filter((l) => l.msg === msg);
  }

  /** Waits for a log line with this `msg` and returns it. */
  async waitLogged(msg: string, signal: AbortSignal, also: (l: Obj) => boolean = () => true) {
    const find = () => this.logged(msg).find(also);
    await this.stderr.waitFor(() => find() !== undefined, `log line "${msg}"`, signal);
    return find()!;
  }

  /** Waits for the metrics listener and keeps its address. */
  async listening(signal = deadline(30_000)): Promise<this> {
    this.origin = await listenAddress(this.stderr, "metrics listening", signal);
    return this;
  }

  /** Waits for the HTTP proxy's listener; returns its MCP endpoint. */
  async endpoint(signal = deadline(30_000)): Promise<string> {
    return `${await listenAddress(this.stderr, "proxy listening", signal)}/mcp`;
  }

  get port(): number {
    return Number(new URL(this.origin).port);
  }

  /** True once the process has exited. */
  get hasExited(): boolean {
    return this.#exited;
  }

  /** Writes each message as one line to a stdio proxy. */
  send(...messages: unknown[]): Promise<void> {
    return this.write(messages.map((m) => JSON.stringify(m) + "\n").join(""));
  }

  write(text: string): Promise<void> {
    return this.#stdin.write(encoder.encode(text));
  }

  /** The JSON lines the stdio proxy sent the client. */
  answers(): Obj[] {
    return jsonLines(this.out.lines);
  }

  /** Waits until the client has received an answer (or request) with each of these ids. */
  async waitIds(ids: readonly unknown[], signal = deadline(30_000)): Promise<void> {
    const has = () => {
      const seen = new Set(this.answers().map((a) => JSON.stringify(a.id)));
      return ids.every((id) => seen.has(JSON.stringify(id)));
    };
    await this.out.waitFor(has, `messages with ids ${JSON.stringify(ids).slice(0, 200)}`, signal);
  }

  async closeInput(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** Ends the client's input and waits for the exit and the end of stderr. */
  async finish(signal: AbortSignal): Promise<Deno.CommandStatus> {
    await this.closeInput();
    return await this.exited(signal);
  }

  exited(signal: AbortSignal): Promise<Deno.CommandStatus> {
    return exitAndStderr(this.status, this.stderr, signal, "the proxy");
  }

  /** One scrape of the metrics listener. */
  async scrape(init: RequestInit = {}, path = "/metrics"): Promise<Response> {
    return await fetch(new URL(path, this.origin), { ...init, signal: deadline(10_000) });
  }

  /** Scrapes (text format) until `ready` holds, at most `tries` times back to back. */
  scrapeUntil(ready: (m: Samples) => boolean, what: string, tries = 500): Promise<Samples> {
    const scrape = async () => {
      const r = await this.scrape();
      return { status: r.status, text: await r.text() };
    };
    return scrapeUntil(scrape, ready, what, tries);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.closeInput();
    this.#stdin.releaseLock();
    await this.out.done;
    await releaseStderr(this.child, this.stderr);
  }
}

/** Sends `text` on a new TCP connection to 127.0.0.1:`port` and reads until the server closes. */
async function rawHttp(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(text));
    const chunks: string[] = [];
    const buf = new Uint8Array(64 * 1024);
    const partial = new TextDecoder();
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(partial.decode(buf.subarray(0, n), { stream: true }));
    }
    return chunks.join("");
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}

/** A GET of `path` with `Connection: close`, raw. */
function get(path: string, host = "127.0.0.1", more = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${more}Connection: close\r\n\r\n`;
}

function call(id: unknown, name: string, args: Obj = {}, meta?: unknown): Obj {
  const params: Obj = { name, arguments: args };
  if (meta !== undefined) params._meta = meta;
  return { jsonrpc: "2.0", id, method: "tools/call", params };
}

const INITIALIZE = {
  jsonrpc: "2.0",
  id: "init",
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: { roots: {} },
    clientInfo: { name: "attacker", version: "1.0.0" },
  },
};

/** `otel.*` for a test: small intervals so that nothing waits long. */
function otel(endpoint: string, more: Obj = {}): Obj {
  return {
    enabled: true,
    endpoint,
    flush_interval_ms: 20,
    retry: { max_retries: 2, initial_interval_ms: 1, max_interval_ms: 5 },
    ...more,
  };
}

/** A proxy (stdio unless `upstream` is a URL) with a span for every method, and no metrics. */
function spanProxy(cwd: string, rx: OtlpReceiver, upstream: string[] | string = UPSTREAM): Proxy {
  return new Proxy({
    cwd,
    upstream,
    metrics: false,
    config: { otel: otel(rx.url, { methods: "all" }) },
  });
}

/** How many log records one OTLP/JSON logs request carries. */
function logRecordsIn(body: Uint8Array): number {
  let n = 0;
  for (const doc of jsonLines([decoder.decode(body)])) {
    for (const rl of Array.isArray(doc.resourceLogs) ? doc.resourceLogs : []) {
      for (const sl of isObj(rl) && Array.isArray(rl.scopeLogs) ? rl.scopeLogs : []) {
        if (isObj(sl) && Array.isArray(sl.logRecords)) n += sl.logRecords.length;
      }
    }
  }
  return n;
}

/** The spans of the OTLP/JSON trace requests received so far. */
function spansOf(rx: { spans(): ReceivedSpan[] }): ReceivedSpan[] {
  return rx.spans();
}

// ------------------------------------------------------------------------------------------------
// Findings: each fails on the code as reviewed.

Deno.test({
  name:
    "finding: spans carry at most 8 KiB of any text a client or server chose (method, tool name, id, error message)",
  ignore: STORAGE === "sqlite",
  async fn() {
    // A hostile client's 1 MiB method, tool name and id, and a server's 1 MiB error message, are
    // copied whole into span names, attributes and status. The span queue is bounded in items
    // only (otel.queue_size, 1024) — unlike the log queue, not in bytes — so with a slow collector
    // a client can pin queue_size × (up to 3 × proxy.max_message_bytes) of memory, and one such
    // span makes its whole batch too large for a collector's request limit.
    await using dir = await tempDir("attack-span-size");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await using proxy = spanProxy(dir.path, rx);
    const big = "x".repeat(1 << 20);
    await proxy.send(
      { jsonrpc: "2.0", id: 1, method: `m${big}`, params: {} },
      call(`i${big}`, `t${big}`),
      call(3, "fail", { message: `e${big}` }),
    );
    await proxy.waitIds([1, `i${big}`, 3], signal);
    await rx.waitFor(() => spansOf(rx).length >= 3, "three spans", signal);
    const spans = spansOf(rx);
    assertEquals(spans.length, 3);
    const over: string[] = [];
    for (const s of spans) {
      if (s.name.length > SPAN_TEXT_LIMIT) over.push(`name (${s.name.length})`);
      if (s.status.message.length > SPAN_TEXT_LIMIT) {
        over.push(`status.message (${s.status.message.length})`);
      }
      for (const [k, v] of s.attributes) {
        if (typeof v === "string" && v.length > SPAN_TEXT_LIMIT) over.push(`${k} (${v.length})`);
      }
    }
    assertEquals(over, [], "span fields longer than 8 KiB");
    assertEquals((await proxy.finish(signal)).code, 0);
  },
});

Deno.test({
  name: "finding: an otel.headers value HTTP refuses is named in the startup error, never shown",
  ignore: STORAGE === "sqlite",
  async fn() {
    // A token read from a file often carries a newline; `Headers.set` refuses it, and its
    // message — the whole value — goes into the OtelConfigError printed at startup
    // (src/telemetry/otlp_transport.ts otlpHeaders).
    await using dir = await tempDir("attack-header-leak");
    const token = "s3cr3t-0tel-t0ken-9f2c";
    const signal = deadline(30_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      metrics: false,
      config: {
        otel: otel(`http://127.0.0.1:${freePort()}`, {
          headers: { Authorization: `Bearer ${token}\nX-Evil: 1` },
        }),
      },
    });
    const status = await proxy.finish(signal);
    const said = proxy.stderr.text();
    assertEquals(status.code, 2, said);
    assert(said.includes("otel.headers.Authorization"), `the key is named: ${said}`);
    assert(!said.includes(token), `the token is not shown: ${said}`);
  },
});

Deno.test({
  name:
    "finding: a reload rejecting an otel.headers value keeps the value out of the log and of the signed audit/reload record",
  ignore: STORAGE === "sqlite" || Deno.build.os === "windows",
  async fn() {
    // A numeric API key left unquoted in YAML is a number; the reload is rejected with
    // `must be a string, got number <the key>` (src/config/load.ts describe), and that message is
    // logged and stored in the audit/reload event — signed, kept, and exported with otel.logs.
    await using dir = await tempDir("attack-header-reload");
    const key = 73256018934;
    const collector = `http://127.0.0.1:${freePort()}`;
    const signal = deadline(60_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: { otel: otel(collector, { headers: { "X-Api-Key": "placeholder" } }) },
    }).listening();
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    await Deno.writeTextFile(
      proxy.configPath,
      JSON.stringify({ otel: otel(collector, { headers: { "X-Api-Key": key } }) }),
    );
    proxy.child.kill("SIGHUP");
    await proxy.waitLogged(
      "configuration reload rejected; the previous settings stay in force",
      signal,
    );
    assertEquals((await proxy.finish(signal)).code, 0);
    const { lines, records } = await readLog(proxy.logPath);
    assert(records.some((r) => r.method === "audit/reload"), "the rejected reload is recorded");
    const stored = lines.map((l) => l.text).join("\n");
    assert(!stored.includes(String(key)), "the key is not in the audit log");
    assert(!proxy.stderr.text().includes(String(key)), "the key is not in the proxy's log");
  },
});

Deno.test({
  name:
    "finding: one HTTP session's flood of unanswered requests does not erase another session's span",
  ignore: STORAGE === "sqlite",
  async fn() {
    // The span pairing map (src/telemetry/spans.ts, DEFAULT_MAX_PENDING 4096) is one map for the
    // whole process, evicting the oldest request of any session. Session B sends 4200 requests the
    // server never answers; session A's call, older, loses its span — though the proxy's own
    // pairing (per session, 65536) pairs it and the audit log holds both records.
    await using dir = await tempDir("attack-eviction");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    let releaseSlow: () => void = () => {};
    const slowReleased = new Promise<void>((resolve) => releaseSlow = resolve);
    let releaseFlood: () => void = () => {};
    const floodReleased = new Promise<void>((resolve) => releaseFlood = resolve);
    let sessions = 0;
    await using upstream = new ScriptedUpstream(async ({ request }) => {
      const m: unknown = JSON.parse(decoder.decode(request.body));
      if (Array.isArray(m)) {
        // Not answered while the test runs.
        await floodReleased;
        return new Response(null, { status: 503 });
      }
      if (!isObj(m) || m.id === undefined) return new Response(null, { status: 202 });
      if (m.method === "initialize") {
        return Response.json({
          jsonrpc: "2.0",
          id: m.id,
          result: {
            protocolVersion: "2025-11-25",
            capabilities: { tools: {} },
            serverInfo: { name: "s", version: "1" },
          },
        }, { headers: { "mcp-session-id": `session-${++sessions}` } });
      }
      if (isObj(m.params) && m.params.name === "slow") await slowReleased;
      return Response.json({ jsonrpc: "2.0", id: m.id, result: { content: [] } });
    });
    // Disposed before the upstream, whose shutdown waits for its handlers.
    using _release = { [Symbol.dispose]: () => releaseFlood() };
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: upstream.url,
      metrics: false,
      config: {
        otel: otel(rx.url),
        // Off so that the 4200-call batch is forwarded, not refused whole by the rate limit.
        middleware: { rate_limit: { enabled: false } },
      },
    });
    const endpoint = await proxy.endpoint(signal);
    const post = (body: unknown, session?: string) =>
      fetch(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...(session === undefined ? {} : { "mcp-session-id": session }),
        },
        body: JSON.stringify(body),
        signal,
      });
    const open = async () => {
      const r = await post(INITIALIZE);
      await r.body?.cancel();
      const session = r.headers.get("mcp-session-id");
      assert(session !== null, "the server named a session");
      return session;
    };
    const a = await open();
    const b = await open();
    const slow = post(call(1, "slow"), a);
    const flood = post(
      Array.from({ length: 4200 }, (_, i) => call(1000 + i, "hang")),
      b,
    ).catch(() => undefined);
    // Once the flood is stored, its records reach the export before anything stored later.
    await waitForRecord(proxy.logPath, (r) => r.jsonrpc_id === 5199, "the flood stored", signal);
    releaseSlow();
    assert((await (await slow).text()).includes('"id":1'), "session A's call is answered");
    const after = await post(call(2, "echo"), a);
    await after.text();
    // Spans leave in the order their exchanges ended: once the later one is here, so is `slow`'s.
    await rx.waitFor(
      () => spansOf(rx).some((s) => s.name === "tools/call echo"),
      "the later call's span",
      signal,
    );
    const slowSpans = spansOf(rx).filter((s) => s.name === "tools/call slow");
    proxy.child.kill("SIGTERM");
    await proxy.exited(signal);
    await flood;
    const { records } = await readLog(proxy.logPath);
    assertEquals(
      records.filter((r) => r.tool_name === "slow").map((r) => r.kind),
      ["request", "response"],
      "the audit log pairs session A's call",
    );
    assertEquals(slowSpans.length, 1, "session A's call has its span");
  },
});

Deno.test({
  name:
    "finding: the metrics listener refuses a Host that is not its own (DNS rebinding), as the proxy's listener does",
  ignore: STORAGE === "sqlite",
  async fn() {
    // Bound to 127.0.0.1, the listener answers any Host: a web page that rebinds its own name to
    // 127.0.0.1 reads the metrics (tool names, client ids, counts, process facts). The proxy's
    // listener refuses such a Host with 403 (src/transport/http/host_origin_guard.ts); the metrics
    // app (src/telemetry/metrics_app.ts, main.ts serveMetrics) has no such guard.
    await using dir = await tempDir("attack-rebinding");
    await using proxy = await new Proxy({ cwd: dir.path, upstream: UPSTREAM }).listening();
    const own = await rawHttp(proxy.port, get("/metrics", `127.0.0.1:${proxy.port}`));
    assert(own.startsWith("HTTP/1.1 200"), own.slice(0, 200));
    const rebound = await rawHttp(proxy.port, get("/metrics", `evil.example:${proxy.port}`));
    assert(
      rebound.startsWith("HTTP/1.1 403"),
      `a foreign Host is refused: ${rebound.slice(0, 80)}`,
    );
    assertEquals((await proxy.finish(deadline(30_000))).code, 0);
  },
});

Deno.test({
  name:
    "finding: the metrics listener's refusals are logged as its own, not under proxy.http.* keys that do not govern it",
  ignore: STORAGE === "sqlite",
  async fn() {
    // main.ts METRICS_LIMITS (64 connections, 10 s head) are fixed; the shared listener
    // (src/transport/http/serve.ts) logs "proxy.http.max_connections reached", sending the
    // operator to a key that changes nothing here.
    await using dir = await tempDir("attack-listener-log");
    await using proxy = await new Proxy({ cwd: dir.path, upstream: UPSTREAM }).listening();
    const held: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        held.push(await Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
      }
      const refused = await rawHttp(proxy.port, get("/metrics"));
      assert(refused.startsWith("HTTP/1.1 503"), refused.slice(0, 80));
    } finally {
      for (const c of held) c.close();
    }
    // Every line is in once the proxy has exited.
    assertEquals((await proxy.finish(deadline(30_000))).code, 0);
    const refusals = proxy.logLines().filter((l) => /refused a connection/.test(String(l.msg)));
    const said = JSON.stringify(refusals);
    assert(refusals.length >= 1, "the refusal is logged");
    assert(!said.includes("proxy.http."), `logged as: ${said}`);
    assert(/metrics/.test(said), `the line says it is the metrics listener: ${said}`);
  },
});

Deno.test({
  name:
    "finding: a collector that refuses connections is logged with the cause, not just 'fetch failed'",
  ignore: STORAGE === "sqlite",
  async fn() {
    // OtlpHttpTransport#attempt logs `network error: ${e.message}`; Deno's fetch says only
    // "fetch failed" and puts the reason (refused, DNS, TLS) in `e.cause`, which is dropped.
    await using dir = await tempDir("attack-net-cause");
    const signal = deadline(60_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      metrics: false,
      config: { otel: otel(`http://127.0.0.1:${freePort()}`, { retry: { max_retries: 0 } }) },
    });
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    const failed = await proxy.waitLogged("otel export failed", signal);
    assertEquals((await proxy.finish(signal)).code, 0);
    assert(/refused/i.test(String(failed.error)), `the cause is logged: ${failed.error}`);
  },
});

Deno.test({
  name:
    "finding: a client's made-up tool names cannot take the tool-label budget from the server's real tools",
  ignore: STORAGE === "sqlite",
  async fn() {
    // BoundedLabel (src/telemetry/labels.ts) keeps the first max_tool_labels valid names it is
    // shown, from whatever a client calls. A client (one of many, over HTTP) that calls that many
    // names the server never listed makes every real tool `other` for the life of the process.
    await using dir = await tempDir("attack-label-budget");
    const signal = deadline(60_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: { metrics: { max_tool_labels: 3 } },
    }).listening();
    await proxy.send(INITIALIZE, { jsonrpc: "2.0", id: "list", method: "tools/list" });
    await proxy.waitIds(["init", "list"], signal);
    await proxy.send(call(1, "made_up_1"), call(2, "made_up_2"), call(3, "made_up_3"));
    await proxy.waitIds([1, 2, 3], signal);
    await proxy.send(call(4, "echo"));
    await proxy.waitIds([4], signal);
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_tool_calls_total") === 4,
      "four tool calls",
    );
    assertEquals(
      sum(m, "mcp_audit_tool_calls_total", { tool_name: "echo" }),
      1,
      `the server's own tool keeps its label:\n${dump(m)}`,
    );
    assertEquals((await proxy.finish(signal)).code, 0);
  },
});

/** A scripted MCP endpoint: answers JSON, names session `session-1` at initialize. */
function simpleUpstream(): ScriptedUpstream {
  return new ScriptedUpstream(({ request }) => {
    const m: unknown = JSON.parse(decoder.decode(request.body));
    if (!isObj(m) || m.id === undefined) return new Response(null, { status: 202 });
    const result = m.method === "initialize"
      ? {
        protocolVersion: "2025-11-25",
        capabilities: { tools: {} },
        serverInfo: { name: "s", version: "1" },
      }
      : {};
    return Response.json({ jsonrpc: "2.0", id: m.id, result }, {
      headers: m.method === "initialize" ? { "mcp-session-id": "session-1" } : {},
    });
  });
}

Deno.test({
  name:
    "finding: over HTTP with otel.methods all, an answered initialize has its span — not a no_answer error at shutdown",
  ignore: STORAGE === "sqlite",
  async fn() {
    // The initialize request is recorded before the server names the session (session null), its
    // answer with the session (src/transport/http/sessions.ts adopt). ExchangeSpans keys pending
    // requests by (session, direction, id) (src/telemetry/spans.ts pendingKey, #settle), so the
    // answer never finds its request: no span while the proxy runs, then at audit/stop an ERROR
    // span `error.type: no_answer` for an exchange that was answered — one per HTTP session, each
    // holding a slot of the pairing map until then.
    await using dir = await tempDir("attack-http-initialize");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await using upstream = simpleUpstream();
    await using proxy = spanProxy(dir.path, rx, upstream.url);
    const endpoint = await proxy.endpoint(signal);
    const post = async (body: unknown, session?: string) => {
      const r = await fetch(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...(session === undefined ? {} : { "mcp-session-id": session }),
        },
        body: JSON.stringify(body),
        signal,
      });
      await r.text();
      return r.headers.get("mcp-session-id");
    };
    assertEquals(await post(INITIALIZE), "session-1");
    await post({ jsonrpc: "2.0", id: 1, method: "ping" }, "session-1");
    await rx.waitFor(() => spansOf(rx).some((s) => s.name === "ping"), "the ping span", signal);
    proxy.child.kill("SIGTERM");
    assertEquals((await proxy.exited(signal)).code, 0);
    const { records } = await readLog(proxy.logPath);
    const answer = records.find((r) => r.kind === "response" && r.method === "initialize");
    assert(answer !== undefined, "the initialize answer is in the log");
    const spans = spansOf(rx).filter((s) => s.name === "initialize");
    assertEquals(
      spans.map((
        s,
      ) => [s.attributes.get("error.type") ?? "none", s.attributes.get("mcp_audit.response.seq")]),
      [["none", answer.seq]],
      "one initialize span, ended by its answer",
    );
  },
});

Deno.test({
  name:
    "finding: request heads the Fetch standard refuses (TRACE, a NUL in a header) get a 4xx from the metrics listener, and a flood of them is logged at most once",
  ignore: STORAGE === "sqlite",
  async fn() {
    // src/transport/http/node_adapter.ts: `new Request` throws for TRACE ("Method is forbidden"),
    // which becomes a 500 and an error line per request ("could not answer an HTTP request"),
    // outside serve.ts's Throttled: anyone who can reach the listener writes error lines into the
    // proxy's log at will (the proxy's own listener shares the adapter). A NUL in a header is
    // already refused by node:http's parser (400, throttled): kept here as the passing half.
    await using dir = await tempDir("attack-trace-method");
    await using proxy = await new Proxy({ cwd: dir.path, upstream: UPSTREAM }).listening();
    const statuses = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const trace = await rawHttp(
        proxy.port,
        "TRACE /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
      );
      statuses.add(trace.slice(0, trace.indexOf("\r\n")));
      const nul = await rawHttp(proxy.port, get("/metrics", "127.0.0.1", "X-A: a\u0000b\r\n"));
      statuses.add(nul.slice(0, nul.indexOf("\r\n")));
    }
    assertEquals((await proxy.finish(deadline(30_000))).code, 0);
    for (const s of statuses) assert(/^HTTP\/1\.1 4\d\d /.test(s), `answered ${s}`);
    const noisy = proxy.logLines().filter((l) =>
      l.msg === "could not answer an HTTP request" || l.msg === "request refused"
    );
    assert(noisy.length <= 2, `${noisy.length} log lines for 100 bad requests`);
  },
});

// ------------------------------------------------------------------------------------------------
// Regressions: attacks the change withstands.

/** Text a hostile peer might put where a label value comes from. */
const HOSTILE = [
  "new\nline",
  'quo"te',
  "back\\slash",
  "nul\u0000byte",
  "lone\ud800surrogate",
  '}{le="1"} 9',
  "x".repeat(1 << 20),
];

Deno.test({
  name:
    "holds: hostile tool names, methods and a quoting client_id never break the exposition or grow the series (promtool, OpenMetrics)",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-labels");
    const signal = deadline(60_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: {
        proxy: { client_id: 'cli"ent\\id' },
        middleware: {
          rate_limit: { key: "client_id", tools: { limited: { requests_per_minute: 1 } } },
        },
      },
    }).listening();
    await proxy.send(INITIALIZE);
    await proxy.waitIds(["init"], signal);
    const ids: unknown[] = [];
    let id = 0;
    for (const h of HOSTILE) {
      ids.push(++id, ++id);
      await proxy.send(call(id - 1, h), { jsonrpc: "2.0", id, method: h, params: {} });
      await proxy.send({ jsonrpc: "2.0", method: h, params: {} });
    }
    // The server's hostile notification methods and a hostile server→client request.
    ids.push(++id, "spew-1");
    await proxy.send(call(id, "spew", { methods: HOSTILE, request: HOSTILE[0] }));
    ids.push(++id, ++id);
    await proxy.send(call(id - 1, "limited"), call(id, "limited"));
    await proxy.waitIds(ids, signal);
    await proxy.send({ jsonrpc: "2.0", id: "spew-1", result: {} });
    const lastSeq = async () =>
      Math.max(...(await readLog(proxy.logPath)).records.map((r) => r.seq));
    await proxy.send(call(++id, "echo"));
    await proxy.waitIds([id], signal);
    const seq = await lastSeq();
    const m = await proxy.scrapeUntil((m) => sum(m, "mcp_audit_chain_seq") === seq, `seq ${seq}`);

    const text = await (await proxy.scrape()).text();
    assertEquals(await promtool(text), { code: 0, said: "" });
    const methods = new Set(series(m, "mcp_audit_entries_total").map((s) => s.labels.method));
    for (const method of methods) {
      assert(
        method === "other" || method === "unknown" || /^[a-z/]+$/.test(method ?? ""),
        `method label ${JSON.stringify(method)}`,
      );
    }
    for (const s of m) {
      const tool = s.labels.tool_name;
      if (tool !== undefined) assert(/^[A-Za-z0-9_.-]{1,128}$/.test(tool), `tool label ${tool}`);
    }
    assertEquals(
      series(m, "mcp_audit_rate_limit_rejections_total").map((s) => s.labels),
      [{ client_id: 'cli"ent\\id', tool_name: "limited" }],
    );
    assert(m.length < 600, `${m.length} samples`);

    // OpenMetrics: the same samples, every line well formed, ending in # EOF.
    const om = await proxy.scrape({
      headers: { accept: "application/openmetrics-text;version=1.0.0" },
    });
    const omText = await om.text();
    assert(omText.endsWith("# EOF\n"), "OpenMetrics ends with # EOF");
    for (const line of omText.split("\n")) {
      if (line === "" || line === "# EOF") continue;
      assert(
        /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line) || SAMPLE.test(line),
        `an OpenMetrics line: ${line.slice(0, 200)}`,
      );
    }
    const key = (s: Sample) => `${s.name}${JSON.stringify(s.labels)}`;
    const omKeys = new Set(parseMetrics(omText).map(key));
    const textKeys = new Set(parseMetrics(text).map(key));
    assertEquals(
      [...textKeys].filter((k) => !omKeys.has(k) && !/deno_|process_|_seconds/.test(k)),
      [],
      "every series of the text format is in OpenMetrics",
    );
    assertEquals((await proxy.finish(signal)).code, 0);
  },
});

Deno.test({
  name:
    "holds: hostile _meta trace context never crashes the export and never yields an invalid parent; a server's request gets a SERVER span",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-trace-context");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await using proxy = spanProxy(dir.path, rx);
    const tp = `00-${TRACE_ID}-${PARENT_ID}-01`;
    // [ _meta, whether the span is the client's child ]
    const cases: [unknown, boolean][] = [
      [{ traceparent: tp }, true],
      [{ traceparent: `${tp}-${"x".repeat(1 << 20)}` }, false],
      [{ traceparent: `ff-${TRACE_ID}-${PARENT_ID}-01` }, false],
      [{ traceparent: `00-${"0".repeat(32)}-${PARENT_ID}-01` }, false],
      [{ traceparent: `00-${TRACE_ID}-${"0".repeat(16)}-01` }, false],
      [{ traceparent: `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01` }, false],
      [{ traceparent: `00-${TRACE_ID}-${PARENT_ID}-zz` }, false],
      [{ traceparent: 42 }, false],
      [{ traceparent: [tp] }, false],
      [{ traceparent: { value: tp } }, false],
      [{ traceparent: null }, false],
      [{ traceparent: "\ud800" }, false],
      [{ traceparent: `01-${TRACE_ID}-${PARENT_ID}-01-future-version` }, true],
      [{
        traceparent: tp,
        tracestate: Array.from({ length: 50_000 }, (_, i) => `k${i}=v`).join(","),
      }, true],
      [{ traceparent: tp, tracestate: ["a=1"] }, true],
      [{ traceparent: tp, tracestate: `a=\u0000,b=\ud800,=x,c=${"y".repeat(300)}` }, true],
      ["a string", false],
      [[tp], false],
    ];
    await proxy.send(...cases.map(([meta], i) => call(i + 1, "echo", {}, meta)));
    const serverParent = `00-${"a".repeat(32)}-${"b".repeat(16)}-01`;
    await proxy.send(call(100, "ask", { meta: { traceparent: serverParent } }));
    await proxy.waitIds([...cases.map((_, i) => i + 1), 100, "ask-1"], signal);
    await proxy.send({ jsonrpc: "2.0", id: "ask-1", result: { roots: [] } });
    await rx.waitFor(() => spansOf(rx).length >= cases.length + 2, "every span", signal);
    assertEquals((await proxy.finish(signal)).code, 0);

    const spans = spansOf(rx);
    const byId = (id: string) => spans.filter((s) => s.attributes.get("jsonrpc.request.id") === id);
    for (const [i, [meta, child]] of cases.entries()) {
      const found = byId(String(i + 1));
      assertEquals(found.length, 1, `one span for case ${i + 1}`);
      const s = found[0]!;
      const what = `case ${i + 1} ${JSON.stringify(meta).slice(0, 80)}`;
      assert(/^[0-9a-f]{32}$/.test(s.traceId) && !/^0+$/.test(s.traceId), `${what}: trace id`);
      assert(s.parentSpanId === "" || /^[0-9a-f]{16}$/.test(s.parentSpanId), `${what}: parent`);
      assert(!/^0+$/.test(s.parentSpanId), `${what}: parent not all zero`);
      assertEquals(s.parentSpanId === PARENT_ID, child, `${what}: child of the client's span`);
      if (child) assertEquals(s.traceId, TRACE_ID, what);
      assert(s.traceState.length <= 512, `${what}: tracestate ${s.traceState.length} chars`);
      assertEquals(s.kind, SPAN_KIND_CLIENT, what);
    }
    const asked = byId("ask-1");
    assertEquals(asked.length, 1, "the server's request has a span");
    assertEquals(
      [asked[0]!.kind, asked[0]!.traceId, asked[0]!.parentSpanId],
      [SPAN_KIND_SERVER, "a".repeat(32), "b".repeat(16)],
    );
  },
});

Deno.test({
  name:
    "holds: a hanging collector, full queues and 5000 unanswered calls — every message forwarded, every span accounted for, exit at the shutdown deadline with audit/stop",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-hang");
    await using rx = startReceiver({ respond: () => rx.released.then(() => Response.json({})) });
    const signal = deadline(90_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: {
        otel: otel(rx.url, {
          logs: true,
          queue_size: 8,
          batch_size: 2,
          timeout_ms: 600_000,
          shutdown_timeout_ms: 300,
        }),
        middleware: { rate_limit: { enabled: false } },
      },
    }).listening();
    // 5000 calls the server never answers, in one batch line; then 40 it answers.
    await proxy.write(
      JSON.stringify(Array.from({ length: 5000 }, (_, i) => call(`h${i}`, "hang"))) + "\n",
    );
    const echoes = Array.from({ length: 40 }, (_, i) => i + 1);
    await proxy.send(...echoes.map((i) => call(i, "echo")));
    await proxy.waitIds(echoes, signal);
    const evicted = await proxy.waitLogged(
      "otel: too many unanswered requests; the oldest get no span",
      signal,
    );
    assertEquals(evicted.max_pending, 4096);
    await rx.waitFor(
      () => rx.requests.some((r) => r.path === "/v1/traces"),
      "a traces export in flight",
      signal,
    );
    const records = 1 + 5000 + 40 + 40;
    const m = await proxy.scrapeUntil(
      (m) =>
        sum(m, "mcp_audit_chain_seq") === records &&
        sum(m, "mcp_audit_otel_queue_depth") === 8 &&
        sum(m, "mcp_audit_otel_log_queue_depth") === 8,
      "every record counted and both queues full",
    );
    const sent = (path: string) => rx.requests.filter((r) => r.path === path);
    assertEquals(sent("/v1/traces").length, 1, "one traces export, in flight for ever");
    assertEquals(sent("/v1/logs").length, 1, "one logs export, in flight for ever");
    // Every span made (one per answered call) is in flight, queued, or dropped as queue_full;
    // every record's log record likewise.
    assertEquals(
      decodeJsonSpans(sent("/v1/traces")[0]!.body).length + sum(m, "mcp_audit_otel_queue_depth") +
        sum(m, "mcp_audit_otel_spans_dropped_total", { reason: "queue_full" }),
      40,
      dump(m),
    );
    assertEquals(
      logRecordsIn(sent("/v1/logs")[0]!.body) + sum(m, "mcp_audit_otel_log_queue_depth") +
        sum(m, "mcp_audit_otel_log_records_dropped_total", { reason: "queue_full" }),
      records,
      dump(m),
    );

    assertEquals((await proxy.finish(signal)).code, 0, proxy.stderr.text().slice(-2000));
    const log = await readLog(proxy.logPath);
    assertEquals(log.records.at(-1)?.method, "audit/stop");
    assertEquals(log.records.filter((r) => r.kind === "response").length, 40);
    assert(
      proxy.logged("otel shutdown deadline passed: queued items dropped").length >= 1,
      "the deadline ended the drain",
    );
  },
});

Deno.test({
  name:
    "holds: the mcp_audit_otel_* metrics count what the collector saw (500 and 429 retried, 400 permanent)",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-otel-health");
    const seen: string[] = [];
    let traces = 0;
    await using rx = startReceiver({
      respond: (req) => {
        if (req.path === "/v1/logs") {
          seen.push("logs 400");
          return new Response("refused", { status: 400 });
        }
        const status = ++traces === 1 ? 500 : traces === 2 ? 429 : 200;
        seen.push(`traces ${status}`);
        return new Response("{}", {
          status,
          headers: status === 429 ? { "retry-after": "0" } : {},
        });
      },
    });
    const signal = deadline(60_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: {
        // Exactly three items per request, whenever they come: the flush interval never fires.
        otel: otel(rx.url, {
          logs: true,
          batch_size: 3,
          flush_interval_ms: 600_000,
          retry: { max_retries: 3, initial_interval_ms: 1, max_interval_ms: 5 },
        }),
      },
    }).listening();
    await proxy.send(call(1, "echo"), call(2, "echo"), call(3, "echo"));
    await proxy.waitIds([1, 2, 3], signal);
    const logRecords = () =>
      rx.requests.filter((r) => r.path === "/v1/logs").reduce(
        (n, r) => n + logRecordsIn(r.body),
        0,
      );
    // 7 records (audit/start, three requests, three answers): two log requests of three leave
    // while the proxy runs; the seventh record waits for the shutdown.
    await rx.waitFor(() => traces >= 3 && logRecords() === 6, "the exports", signal);
    const m = await proxy.scrapeUntil(
      (m) =>
        sum(m, "mcp_audit_otel_export_requests_total", { status: "ok" }) === 1 &&
        sum(m, "mcp_audit_otel_log_records_dropped_total") === 6,
      "the export outcomes",
    );
    const logRequests = seen.filter((s) => s === "logs 400").length;
    assertEquals(sum(m, "mcp_audit_otel_export_requests_total", { status: "retry" }), 2);
    assertEquals(sum(m, "mcp_audit_otel_export_requests_total", { status: "error" }), 0);
    assertEquals(sum(m, "mcp_audit_otel_spans_total", { status: "retry" }), 6);
    assertEquals(sum(m, "mcp_audit_otel_spans_total", { status: "ok" }), 3);
    assertEquals(sum(m, "mcp_audit_otel_spans_dropped_total"), 0);
    assertEquals(
      sum(m, "mcp_audit_otel_log_export_requests_total", { status: "permanent_error" }),
      logRequests,
    );
    assertEquals(logRequests, 2);
    assertEquals(sum(m, "mcp_audit_otel_log_records_total", { status: "permanent_error" }), 6);
    assertEquals(
      sum(m, "mcp_audit_otel_log_records_dropped_total", { reason: "permanent_error" }),
      6,
    );
    assertEquals(sum(m, "mcp_audit_otel_export_duration_seconds_count"), 3);
    assertEquals((await proxy.finish(signal)).code, 0);
  },
});

/** The `method` label the Go metrics give a record's method (the workloads use spec methods). */
function methodLabel(method: string | null): string {
  return method === null || method === "" ? "unknown" : method;
}

function key(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

/** Counts by label set, from the log, in the metrics' own terms. */
function tally(rows: Record<string, string>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) out.set(key(r), (out.get(key(r)) ?? 0) + 1);
  return out;
}

function tallyMetric(m: Samples, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of series(m, name)) out.set(key(s.labels), (out.get(key(s.labels)) ?? 0) + s.value);
  return out;
}

function isToolError(r: AuditRecord): boolean {
  return isObj(r.result) && r.result.isError === true;
}

/**
 * Checks that the metrics say exactly what the log says, family by family, and that every
 * exchange of the log has exactly one span linking its two records.
 */
function assertAgrees(
  m: Samples,
  records: readonly AuditRecord[],
  spans: ReceivedSpan[],
  traced: (request: AuditRecord) => boolean = () => true,
): void {
  const transport = records.find((r) => r.kind !== "event")!.transport;
  const answers = records.filter((r) => r.kind === "response" || r.kind === "error");
  const status = (r: AuditRecord) => r.error !== null ? "rpc_error" : "ok";
  const eq = (name: string, expected: Map<string, number>) =>
    assertEquals(
      [...tallyMetric(m, name)].filter(([, v]) => v !== 0).sort(),
      [...expected].sort(),
      name,
    );

  eq(
    "mcp_audit_records_total",
    tally(records.map((r) => ({ kind: r.kind }))),
  );
  eq(
    "mcp_audit_entries_total",
    tally(
      records.filter((r) => ["response", "error", "notification"].includes(r.kind))
        .map((r) => ({
          transport,
          direction: r.direction,
          method: methodLabel(r.method),
          status: status(r),
        })),
    ),
  );
  eq(
    "mcp_audit_tool_calls_total",
    tally(
      answers.filter((r) => r.method === "tools/call").map((r) => ({
        transport,
        tool_name: r.tool_name ?? "unknown",
        status: status(r),
      })),
    ),
  );
  eq(
    "mcp_audit_request_duration_seconds_count",
    tally(
      answers.filter((r) => r.duration_ms !== null).map((r) => ({
        transport,
        method: methodLabel(r.method),
        tool_name: r.method === "tools/call" ? r.tool_name ?? "unknown" : "unknown",
        status: r.error !== null ? "rpc_error" : isToolError(r) ? "tool_error" : "ok",
      })),
    ),
  );
  const decided = records.flatMap((r) => isObj(r.decision) ? [{ r, d: r.decision }] : []);
  eq(
    "mcp_audit_guardrail_decisions_total",
    tally(decided.map(({ r, d }) => ({
      method: methodLabel(r.method),
      action: d.action === "deny" && d.enforced === false ? "monitored_deny" : String(d.action),
      by: d.action === "rate_limited" ? "rate_limit" : d.by === "pinning" ? "pinning" : "policy",
    }))),
  );
  eq(
    "mcp_audit_policy_decisions_total",
    tally(
      decided.filter(({ r, d }) =>
        r.kind === "request" && r.method === "tools/call" && d.by === undefined &&
        (d.action === "allow" || d.action === "deny")
      ).map(({ d }) => ({ action: String(d.action) })),
    ),
  );
  assertEquals(
    sum(m, "mcp_audit_rate_limit_rejections_total"),
    decided.filter(({ d }) => d.action === "rate_limited").length,
  );
  assertEquals(
    sum(m, "mcp_audit_storage_writes_total", { backend: STORAGE, status: "ok" }),
    records.length,
  );
  assertEquals(sum(m, "mcp_audit_storage_writes_total", { status: "error" }), 0);
  assertEquals(sum(m, "mcp_audit_chain_seq"), Math.max(...records.map((r) => r.seq)));

  // Spans: one per answered request, naming both records; CLIENT or SERVER by direction.
  const requests = records.filter((r) => r.kind === "request" && traced(r));
  for (const req of requests) {
    const answer = answers.find((a) =>
      a.seq > req.seq && a.session === req.session && a.direction !== req.direction &&
      JSON.stringify(a.jsonrpc_id) === JSON.stringify(req.jsonrpc_id)
    );
    const mine = spans.filter((s) => s.attributes.get("mcp_audit.seq") === req.seq);
    if (answer === undefined) {
      assertEquals(mine.length, 0, `no span yet for unanswered seq ${req.seq}`);
      continue;
    }
    assertEquals(mine.length, 1, `one span for seq ${req.seq} (${req.method})`);
    const s = mine[0]!;
    assertEquals(s.attributes.get("mcp_audit.response.seq"), answer.seq);
    assertEquals(s.attributes.get("mcp_audit.entry_id"), req.id);
    assertEquals(s.attributes.get("mcp_audit.response.entry_id"), answer.id);
    assertEquals(
      s.kind,
      req.direction === "client_to_server" ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER,
      `kind of ${req.method}`,
    );
    assertEquals(
      s.status.code === STATUS_ERROR,
      answer.error !== null || isToolError(answer),
      `status of ${req.method} ${req.tool_name}`,
    );
    assertEquals(s.attributes.get("network.transport"), transport === "stdio" ? "pipe" : "tcp");
  }
  // Spans of requests left out of the check (see `traced`) are not counted either way.
  const untraced = new Set(
    records.filter((r) => r.kind === "request" && !traced(r)).map((r) => r.seq),
  );
  assertEquals(
    spans.filter((s) => !untraced.has(Number(s.attributes.get("mcp_audit.seq")))).length,
    requests.filter((req) =>
      answers.some((a) =>
        a.seq > req.seq && a.session === req.session && a.direction !== req.direction &&
        JSON.stringify(a.jsonrpc_id) === JSON.stringify(req.jsonrpc_id)
      )
    ).length,
    "no other spans",
  );
}

/** The mixed workloads' config: every span to `endpoint`; `denied` denied, `limited` once a minute. */
function mixed(endpoint: string): Obj {
  return {
    otel: otel(endpoint, { methods: "all" }),
    policy: { enabled: true, rules: [{ action: "deny", tool_name: "denied", reason: "no" }] },
    middleware: { rate_limit: { tools: { limited: { requests_per_minute: 1 } } } },
  };
}

/**
 * Once the traffic is stored, and exported but for `unspanned` answers: the metrics and the spans
 * agree with the log ({@link assertAgrees}). Returns the metrics.
 */
async function assertAllAgree(
  proxy: Proxy,
  rx: OtlpReceiver,
  signal: AbortSignal,
  unspanned: number,
  traced?: (request: AuditRecord) => boolean,
): Promise<Samples> {
  const { records } = await readLog(proxy.logPath);
  const last = Math.max(...records.map((r) => r.seq));
  const answers = records.filter((r) => r.kind === "response" || r.kind === "error");
  // Every answered request that is checked has its span: a count alone could be reached early by a
  // span the check leaves out (HTTP initialize) while another is still on its way.
  const due = records.filter((req) =>
    req.kind === "request" && (traced?.(req) ?? true) &&
    answers.some((a) =>
      a.seq > req.seq && a.session === req.session && a.direction !== req.direction &&
      JSON.stringify(a.jsonrpc_id) === JSON.stringify(req.jsonrpc_id)
    )
  ).map((r) => r.seq);
  await rx.waitFor(
    () => {
      const spans = spansOf(rx);
      const seqs = new Set(spans.map((s) => s.attributes.get("mcp_audit.seq")));
      return spans.length >= answers.length - unspanned && due.every((seq) => seqs.has(seq));
    },
    "the spans",
    signal,
  );
  const m = await proxy.scrapeUntil((m) => sum(m, "mcp_audit_chain_seq") === last, `seq ${last}`);
  assertAgrees(m, records, spansOf(rx), traced);
  return m;
}

/** `initialize` in HTTP mode: see the finding about its span; every other request. */
const notInitialize = (r: AuditRecord) => r.method !== "initialize";

Deno.test("holds: stdio mixed workload — every metric family and every span agrees with the log exactly", async () => {
  await using dir = await tempDir("attack-mixed-stdio");
  await using rx = startReceiver();
  const signal = deadline(60_000);
  await using proxy = await new Proxy({
    cwd: dir.path,
    upstream: UPSTREAM,
    config: mixed(rx.url),
  }).listening();
  await proxy.send(INITIALIZE);
  await proxy.waitIds(["init"], signal);
  await proxy.send(
    { jsonrpc: "2.0", method: "notifications/initialized" },
    call(1, "echo"),
    call(2, "denied"),
    call(3, "limited"),
    call(4, "limited"),
    call(5, "fail", { message: "boom" }),
    call(6, "tool_error"),
    call(7, "ask"),
    { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } },
  );
  await proxy.waitIds([1, 2, 3, 4, 5, 6, 7, "ask-1"], signal);
  await proxy.send({ jsonrpc: "2.0", id: "ask-1", result: { roots: [] } });
  await proxy.write("this is not json\n");
  await proxy.send({ jsonrpc: "2.0", id: 8, method: "ping" });
  await proxy.waitIds([null, 8], signal);
  // Every answer has its span but the answer to the invalid message.
  const m = await assertAllAgree(proxy, rx, signal, 1);
  assertEquals(sum(m, "mcp_audit_upstream_processes_started_total"), 1);
  assertEquals((await proxy.finish(signal)).code, 0);
});

Deno.test("holds: HTTP mixed workload — every metric family and every span agrees with the log exactly, retries counted by reason", async () => {
  await using dir = await tempDir("attack-mixed-http");
  await using rx = startReceiver();
  const signal = deadline(60_000);
  let busy = 0;
  await using upstream = new ScriptedUpstream(({ request }) => {
    const m: unknown = JSON.parse(decoder.decode(request.body));
    if (!isObj(m) || m.id === undefined) return new Response(null, { status: 202 });
    if (m.method === "ping" && busy++ === 0) return new Response("busy", { status: 503 });
    const name = isObj(m.params) ? m.params.name : undefined;
    if (name === "fail") {
      return Response.json({ jsonrpc: "2.0", id: m.id, error: { code: -32000, message: "boom" } });
    }
    const result = m.method === "initialize"
      ? {
        protocolVersion: "2025-11-25",
        capabilities: { tools: {} },
        serverInfo: { name: "s", version: "1" },
      }
      : name === "tool_error"
      ? { content: [], isError: true }
      : { content: [{ type: "text", text: "ok" }] };
    return Response.json({ jsonrpc: "2.0", id: m.id, result }, {
      headers: m.method === "initialize" ? { "mcp-session-id": "session-1" } : {},
    });
  });
  await using proxy = await new Proxy({
    cwd: dir.path,
    upstream: upstream.url,
    config: {
      ...mixed(rx.url),
      proxy: { retry: { max_retries: 2, initial_interval_ms: 1, max_interval_ms: 2 } },
    },
  }).listening();
  const endpoint = await proxy.endpoint(signal);
  const post = async (body: unknown, session = true): Promise<number> => {
    const r = await fetch(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(session ? { "mcp-session-id": "session-1" } : {}),
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal,
    });
    await r.text();
    return r.status;
  };
  assertEquals(await post(INITIALIZE, false), 200);
  assertEquals(await post({ jsonrpc: "2.0", method: "notifications/initialized" }), 202);
  for (const [id, name] of [[1, "echo"], [2, "denied"], [3, "limited"], [4, "limited"]] as const) {
    assertEquals(await post(call(id, name)), 200);
  }
  assertEquals(await post(call(5, "fail")), 200);
  assertEquals(await post(call(6, "tool_error")), 200);
  assertEquals(await post({ jsonrpc: "2.0", id: 7, method: "ping" }), 200);
  await post("this is not json");
  // Every answer has its span but the answer to the invalid message; the initialize span is left
  // out of the check (`notInitialize`), so at least two fewer spans than answers are awaited.
  const m = await assertAllAgree(proxy, rx, signal, 2, notInitialize);
  assertEquals(
    series(m, "mcp_audit_http_upstream_retries_total").map((s) => [s.labels, s.value]),
    [[{ reason: "503" }, 1]],
  );
  assertEquals(sum(m, "mcp_audit_http_sessions_open"), 1);
  proxy.child.kill("SIGTERM");
  assertEquals((await proxy.exited(signal)).code, 0);
});

Deno.test({
  name:
    "holds: the metrics listener against wrong methods and paths, huge heads, too many connections, and scrapes racing shutdown",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-listener");
    const signal = deadline(60_000);
    await using proxy = await new Proxy({ cwd: dir.path, upstream: UPSTREAM }).listening();
    const port = proxy.port;
    const statusOf = (raw: string) => raw.slice(0, raw.indexOf("\r\n"));
    assertEquals(statusOf(await rawHttp(port, get("/metrics"))), "HTTP/1.1 200 OK");
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PROPFIND"]) {
      const r = await rawHttp(
        port,
        `${method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      assertEquals(statusOf(r), "HTTP/1.1 405 Method Not Allowed", method);
    }
    for (const path of ["/", "/metrics/", "/METRICS", "//metrics", "/metrics/../x", "/debug"]) {
      assertEquals(statusOf(await rawHttp(port, get(path))), "HTTP/1.1 404 Not Found", path);
    }
    const huge = await rawHttp(
      port,
      get("/metrics", "127.0.0.1", `X-Big: ${"a".repeat(20_000)}\r\n`),
    );
    assertEquals(statusOf(huge), "HTTP/1.1 431 Request Header Fields Too Large");
    // Garbage instead of HTTP.
    assert(
      statusOf(await rawHttp(port, "\u0000\u0001 not http\r\n\r\n")).startsWith("HTTP/1.1 400"),
    );

    // 64 held connections: the 65th is refused, and once they go the listener serves again.
    const held: Deno.Conn[] = [];
    for (let i = 0; i < 64; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    assertEquals(
      statusOf(await rawHttp(port, get("/metrics"))),
      "HTTP/1.1 503 Service Unavailable",
    );
    for (const c of held) c.close();
    let again = "";
    for (let i = 0; i < 200 && !again.startsWith("HTTP/1.1 200"); i++) {
      again = await rawHttp(port, get("/metrics"));
    }
    assert(again.startsWith("HTTP/1.1 200"), "served again once the connections closed");

    // Scrapes racing shutdown: each is answered whole or refused, never a 5xx or a hang.
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    const outcomes: string[] = [];
    const scraping = (async () => {
      for (let i = 0; i < 2000; i++) {
        try {
          const r = await proxy.scrape();
          const text = await r.text();
          outcomes.push(r.status === 200 && text.endsWith("\n") ? "ok" : `bad ${r.status}`);
        } catch (e) {
          // A scrape the listener never answers ends at its 10 s deadline: a hang, not a refusal.
          outcomes.push(e instanceof Error && e.name === "TimeoutError" ? "hang" : "refused");
          if (proxy.hasExited) return;
        }
      }
    })();
    await proxy.closeInput();
    assertEquals((await proxy.exited(signal)).code, 0);
    await scraping;
    assertEquals(outcomes.filter((o) => o !== "ok" && o !== "refused"), []);
    // Whether any scrape beat the shutdown is a race: only what the answers were is checked.
    assert(outcomes.length >= 1, "scrapes were tried");
  },
});

Deno.test({
  name: "holds: after SIGHUP reloads the metrics and the spans follow the new policy",
  ignore: STORAGE === "sqlite" || Deno.build.os === "windows",
  async fn() {
    await using dir = await tempDir("attack-reload");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    const config = (action: "allow" | "deny") => ({
      otel: otel(rx.url),
      policy: { enabled: true, rules: [{ action, tool_name: "echo", reason: "r" }] },
    });
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      config: config("allow"),
    }).listening();
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    // The file watcher may apply the change before the signal does: whichever comes first.
    await Deno.writeTextFile(proxy.configPath, JSON.stringify(config("deny")));
    proxy.child.kill("SIGHUP");
    await proxy.waitLogged("configuration reloaded", signal, (l) => l.outcome === "applied");
    await proxy.send(call(2, "echo"));
    await proxy.waitIds([2], signal);
    // Each signal logs one reload; the second changes nothing.
    proxy.child.kill("SIGHUP");
    const signalled = () =>
      proxy.logged("configuration reloaded").filter((l) => l.trigger === "signal").length;
    await proxy.stderr.waitFor(() => signalled() >= 2, "both signals' reloads", signal);
    await proxy.send(call(3, "echo"));
    await proxy.waitIds([3], signal);
    await rx.waitFor(() => spansOf(rx).length >= 3, "three spans", signal);
    const { records } = await readLog(proxy.logPath);
    const reloads = records.filter((r) => r.method === "audit/reload");
    const m = await proxy.scrapeUntil(
      (m) => sum(m, "mcp_audit_config_reloads_total") === reloads.length,
      `${reloads.length} reloads`,
    );
    assertEquals(
      [...tallyMetric(m, "mcp_audit_config_reloads_total")].sort(),
      [
        ...tally(reloads.map((r) => ({
          trigger: isObj(r.params) ? String(r.params.trigger) : "",
          outcome: isObj(r.params) ? String(r.params.outcome) : "",
        }))),
      ].sort(),
    );
    assertEquals(
      reloads.filter((r) => isObj(r.params) && r.params.outcome === "applied").length,
      1,
      "one reload changed the policy",
    );
    assertEquals(sum(m, "mcp_audit_policy_decisions_total", { action: "allow" }), 1);
    assertEquals(sum(m, "mcp_audit_policy_decisions_total", { action: "deny" }), 2);
    const spans = spansOf(rx).sort((a, b) =>
      Number(a.attributes.get("mcp_audit.seq")) - Number(b.attributes.get("mcp_audit.seq"))
    );
    assertEquals(spans.map((s) => s.attributes.get("error.type") ?? "ok"), [
      "ok",
      "policy_denied",
      "policy_denied",
    ]);
    assertEquals((await proxy.finish(signal)).code, 0);
  },
});

Deno.test({
  name:
    "holds: otel.headers values (tokens) never reach the proxy's log, the audit log or the metrics while exports fail",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-header-quiet");
    const token = "tok-5b8e1d0c7a9f4e2b";
    await using rx = startReceiver({
      respond: (req) =>
        new Response(`refused ${req.path}`, { status: req.path === "/v1/logs" ? 400 : 503 }),
    });
    const signal = deadline(60_000);
    await using proxy = await new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      flags: ["--log-level", "debug"],
      config: {
        otel: otel(rx.url, {
          logs: true,
          headers: { Authorization: `Bearer ${token}`, "X-Scope": token },
        }),
      },
    }).listening();
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    await rx.waitFor(
      () => rx.requests.filter((r) => r.path === "/v1/traces").length >= 3,
      "the traces export and its retries",
      signal,
    );
    assertEquals(rx.requests[0]!.headers.get("authorization"), `Bearer ${token}`);
    const scraped = await (await proxy.scrape()).text();
    assertEquals((await proxy.finish(signal)).code, 0);
    assert(proxy.logged("otel export failed").length >= 1, "the failures are logged");
    const { lines } = await readLog(proxy.logPath);
    assert(!proxy.stderr.text().includes(token), "not in the proxy's log");
    assert(!lines.some((l) => l.text.includes(token)), "not in the audit log");
    assert(!scraped.includes(token), "not in the metrics");
  },
});

Deno.test({
  name:
    "holds: secrets in a server's error message, in params and in _meta reach no span and no log record except as the stored, redacted line",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-redaction");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      metrics: false,
      config: { otel: otel(rx.url, { logs: true, methods: "all" }) },
    });
    const github = `ghp_${"A1b2C3d4E5".repeat(4)}`;
    const password = "hunter2-correct-horse";
    const bearer = "Bearer Zq9xW2vK7mP4tR8s";
    await proxy.send(
      call(1, "fail", { message: `upstream refused token ${github}` }),
      call(2, "echo", { password }, {
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
        authorization: bearer,
      }),
    );
    await proxy.waitIds([1, 2], signal);
    await proxy.send({ jsonrpc: "2.0", id: 3, method: "ping" });
    await proxy.waitIds([3], signal);
    assertEquals((await proxy.finish(signal)).code, 0);
    const { lines } = await readLog(proxy.logPath);
    const stored = lines.map((l) => l.text).join("\n");
    for (const secret of [github, password, bearer]) {
      assert(!stored.includes(secret), `the stored log is redacted (${secret.slice(0, 6)}…)`);
    }
    const exported = rx.requests.map((r) => decoder.decode(r.body)).join("\n");
    assert(exported.length > 0, "something was exported");
    for (const secret of [github, password, bearer, "Zq9xW2vK7mP4tR8s", "A1b2C3d4E5A1b2C3"]) {
      assert(!exported.includes(secret), `nothing exported holds ${secret.slice(0, 6)}…`);
    }
    // The traced call is still the client's child: its traceparent survived redaction.
    const echo = spansOf(rx).find((s) => s.name === "tools/call echo");
    assertEquals(echo?.parentSpanId, PARENT_ID);
  },
});

Deno.test({
  name:
    "holds: a 6 MiB record reaches the collector whole, as one log record, and forwarding does not notice",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-huge-record");
    await using rx = startReceiver();
    const signal = deadline(60_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      metrics: false,
      config: { otel: otel(rx.url, { logs: true, compression: "gzip" }) },
    });
    const big = 'é"\\\n'.repeat((6 << 20) / 4);
    await proxy.send(call(1, "echo", { big }), call(2, "big", { size: 6 << 20 }));
    await proxy.waitIds([1, 2], signal);
    await proxy.send(call(3, "echo"));
    await proxy.waitIds([3], signal);
    assertEquals((await proxy.finish(signal)).code, 0);
    const { lines } = await readLog(proxy.logPath);
    const stored = lines.filter((l) => l.record !== undefined).map((l) => l.text);
    const bodies = rx.requests.filter((r) => r.path === "/v1/logs").flatMap((r) =>
      decodeJsonLogs(r.body)
    ).map((l) => l.body);
    assertEquals(bodies.length, stored.length, "one log record per stored record");
    const huge = stored.filter((t) => t.length > 1 << 20);
    assertEquals(huge.length, 2, "the call and the answer are huge");
    for (const line of huge) assert(bodies.includes(line), "a huge line arrives whole");
  },
});

Deno.test({
  name:
    "holds: with the metrics port taken and the export on, the proxy exits 1 with one line, and audit/start and audit/stop still reach the collector",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-port-taken");
    await using rx = startReceiver();
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const signal = deadline(60_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      env: { MCP_AUDIT_METRICS_PORT: String(taken.addr.port) },
      config: { otel: otel(rx.url, { logs: true }) },
    });
    const status = await proxy.exited(signal);
    assertEquals(status.code, 1, proxy.stderr.text());
    assertEquals(proxy.logLines().filter((l) => l.level === "error").length, 1);
    assertEquals(proxy.out.length, 0, "nothing reached the client");
    const methods = rx.requests.filter((r) => r.path === "/v1/logs").flatMap((r) =>
      decodeJsonLogs(r.body)
    ).map((l) => l.attributes.get("mcp.method.name"));
    assertEquals(methods, ["audit/start", "audit/stop"]);
    const { records } = await readLog(proxy.logPath);
    assertEquals(records.map((r) => r.method), ["audit/start", "audit/stop"]);
  },
});

Deno.test({
  name:
    "holds: a collector that redirects is not followed, so otel.headers never reach the other host",
  ignore: STORAGE === "sqlite",
  async fn() {
    await using dir = await tempDir("attack-redirect");
    await using thief = startReceiver();
    await using rx = startReceiver({
      respond: (req) =>
        new Response(null, { status: 307, headers: { location: `${thief.url}${req.path}` } }),
    });
    const signal = deadline(60_000);
    await using proxy = new Proxy({
      cwd: dir.path,
      upstream: UPSTREAM,
      metrics: false,
      config: { otel: otel(rx.url, { logs: true, headers: { Authorization: "Bearer t0k3n-x" } }) },
    });
    await proxy.send(call(1, "echo"));
    await proxy.waitIds([1], signal);
    await proxy.waitLogged("otel export failed", signal);
    assertEquals((await proxy.finish(signal)).code, 0);
    assert(rx.requests.length >= 1, "the collector was asked");
    assertEquals(thief.requests.length, 0, "the redirect target got nothing");
    const failed = proxy.logged("otel export failed");
    assertEquals(failed[0]?.status, 307);
    assertEquals(failed[0]?.kind, "permanent_error");
  },
});
