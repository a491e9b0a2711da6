/**
 * The HTTP end-to-end harness, beside the stdio one in `helpers.ts`: the proxy as a real process
 * with `--transport http`, the reference server over Streamable HTTP, an in-process scripted
 * upstream that keeps what it receives, a recording `fetch` for the SDK client, a raw HTTP/1.1
 * client for headers `fetch` will not send, an SSE parser written independently of the proxy's,
 * and a wait for a record to reach the log.
 *
 * Nothing here sleeps: every wait is for an event (a log line, a request, bytes, a file change, a
 * process exit), with an `AbortSignal` only as a safety net.
 *
 * @module
 */
import {
  assert,
  assertChain,
  assertEquals,
  assertNoStrays,
  auditEnv,
  type AuditRecord,
  cleanEnv,
  Collector,
  concatBytes,
  deadline,
  DENO_JSON,
  type Json,
  killChild,
  MAIN,
  raceAbort,
  readLog,
  SECRET,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import { parseJson } from "../src/jsonrpc/json.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The reference server, run with `streamableHttp`. */
export const EVERYTHING_PACKAGE = "npm:@modelcontextprotocol/server-everything@2026.8.31";

/** A port nothing listens on right now (bound and released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

export { cleanEnv };

/** The structured (JSON) lines of a process's stderr. */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of lines) {
    try {
      const v = parseJson(line);
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        out.push(v as Record<string, unknown>);
      }
    } catch {
      // Not one of ours.
    }
  }
  return out;
}

/** How to start an HTTP proxy. */
export interface HttpProxyOptions {
  /** Working directory; also the marker for processes left behind. */
  cwd: string;
  /** The upstream MCP endpoint URL. */
  upstream: string;
  /** Audit log path; default `audit.jsonl` in `cwd`. */
  logPath?: string;
  /** More environment (`MCP_AUDIT_*` keys). */
  env?: Record<string, string>;
}

/** `deno run main.ts --transport http --upstream URL --port 0`, started and listening. */
export class HttpProxy implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly logPath: string;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;
  /** `http://127.0.0.1:PORT`, from the "proxy listening" log line. */
  origin = "";
  /** The proxy's port. */
  port = 0;

  private constructor(opts: HttpProxyOptions) {
    this.logPath = opts.logPath ?? `${opts.cwd}/audit.jsonl`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN,
        "--transport",
        "http",
        "--upstream",
        opts.upstream,
        "--port",
        "0",
        "--no-dashboard",
        "--no-metrics",
      ],
      cwd: opts.cwd,
      env: {
        ...cleanEnv(),
        AUDIT_SECRET: SECRET,
        ...auditEnv(this.logPath),
        ...opts.env,
      },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Starts a proxy and waits until it listens. */
  static async start(opts: HttpProxyOptions, signal: AbortSignal): Promise<HttpProxy> {
    const proxy = new HttpProxy(opts);
    try {
      const find = () => proxy.logLines().find((l) => l.msg === "proxy listening");
      await proxy.stderr.waitFor(() => find() !== undefined, "the proxy to listen", signal);
      const address = find()?.address;
      assert(typeof address === "string", "the listening line names the address");
      const url = new URL(address);
      assert(url.port !== "0" && url.port !== "", `a real port is named: ${address}`);
      proxy.origin = url.origin;
      proxy.port = Number(url.port);
    } catch (e) {
      await proxy[Symbol.asyncDispose]();
      throw e;
    }
    return proxy;
  }

  /** The MCP endpoint on the proxy. */
  get endpoint(): string {
    return `${this.origin}/mcp`;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** The proxy's structured log lines. */
  logLines(): Record<string, unknown>[] {
    return jsonLines(this.stderr.lines);
  }

  /** SIGTERM, then waits for the exit and the end of stderr. */
  async stop(signal: AbortSignal): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.child.kill("SIGTERM");
    const status = await raceAbort(
      this.status,
      signal,
      "the proxy to exit after SIGTERM",
      () => this.#tail(),
    );
    await raceAbort(this.stderr.done, signal, "the proxy's stderr to end", () => this.#tail());
    return status;
  }

  #tail(): string {
    const t = this.stderr.text();
    return t.slice(Math.max(0, t.length - 3000));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.stderr.done;
  }
}

/** `server-everything streamableHttp` on a free port. */
export class EverythingHttpServer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly port: number;
  readonly stdout: Collector;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;

  private constructor(cwd: string) {
    this.port = freePort();
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", EVERYTHING_PACKAGE, "streamableHttp"],
      cwd,
      env: { ...cleanEnv(), PORT: String(this.port) },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stdout = new Collector(this.child.stdout);
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** Starts the server and waits for "listening on port N". */
  static async start(cwd: string, signal: AbortSignal): Promise<EverythingHttpServer> {
    const server = new EverythingHttpServer(cwd);
    try {
      await server.stderr.waitFor(
        (c) => c.text().includes(`listening on port ${server.port}`),
        "server-everything to listen",
        signal,
      );
    } catch (e) {
      await server[Symbol.asyncDispose]();
      throw e;
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await Promise.all([this.stdout.done, this.stderr.done]);
  }
}

/** One HTTP exchange as the client saw it. */
export interface RecordedExchange {
  method: string;
  url: string;
  requestHeaders: Headers;
  /** The request body exactly as sent (the SDK sends strings). */
  requestBody: string | null;
  status: number;
  responseHeaders: Headers;
  /** Response body chunks, as they were handed to the client. */
  chunks: Uint8Array[];
  /** True once the response body has ended (or failed). */
  ended: boolean;
  /** Resolves when the response body has ended (or failed). */
  done: Promise<void>;
}

/**
 * A `fetch` for the SDK client that keeps each request and the exact response bytes it handed on,
 * over its own `Deno.HttpClient` so that every connection is closed on dispose.
 */
export class RecordingFetch implements AsyncDisposable {
  readonly exchanges: RecordedExchange[] = [];
  readonly client: Deno.HttpClient = Deno.createHttpClient({});
  #waiters = new Set<() => void>();

  /** The wrapped fetch. */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const body = typeof init?.body === "string" ? init.body : null;
    const res = await fetch(input, { ...init, client: this.client });
    let endOf: () => void = () => {};
    const exchange: RecordedExchange = {
      method: request.method,
      url: request.url,
      requestHeaders: new Headers(request.headers),
      requestBody: body,
      status: res.status,
      responseHeaders: new Headers(res.headers),
      chunks: [],
      ended: false,
      done: new Promise<void>((resolve) => endOf = resolve),
    };
    const end = (): void => {
      exchange.ended = true;
      endOf();
      this.#notify();
    };
    this.exchanges.push(exchange);
    this.#notify();
    if (res.body === null) {
      end();
      return res;
    }
    // Passed on chunk by chunk as it arrives; a failed body (the client aborted, the connection
    // broke) ends the exchange too.
    const reader = res.body.getReader();
    const tapped = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { value, done } = await reader.read();
          if (done) {
            end();
            controller.close();
            return;
          }
          exchange.chunks.push(value.slice());
          this.#notify();
          controller.enqueue(value);
        } catch (e) {
          end();
          controller.error(e);
        }
      },
      cancel: async (reason) => {
        end();
        await reader.cancel(reason).catch(() => {});
      },
    });
    return new Response(tapped, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `condition` holds; rejects when `signal` aborts. */
  waitFor(condition: () => boolean, what: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        finish();
        resolve();
      };
      const onAbort = (): void => {
        finish();
        reject(new Error(`timed out waiting for ${what}`));
      };
      const finish = (): void => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      this.#waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
      check();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}

/** All body bytes of an exchange so far. */
export function bodyBytes(exchange: RecordedExchange): Uint8Array {
  return concatBytes(exchange.chunks);
}

/** One parsed server-sent event. */
export interface ParsedEvent {
  /** The `data` lines joined with `\n`, or null when there was none. */
  data: string | null;
  event: string | null;
  id: string | null;
  retry: string | null;
  /** Comment lines, without the colon. */
  comments: string[];
}

/**
 * Parses a complete SSE byte stream (the WHATWG rules: lines end in CRLF, LF or CR; events end at a
 * blank line). Written here independently of the proxy's tap. A trailing incomplete event is left
 * out.
 */
export function parseSse(bytes: Uint8Array): ParsedEvent[] {
  const text = decoder.decode(bytes).replace(/^\uFEFF/, "");
  const events: ParsedEvent[] = [];
  let current: ParsedEvent = { data: null, event: null, id: null, retry: null, comments: [] };
  let touched = false;
  const lines = text.split(/\r\n|\r|\n/);
  // The last piece has no line end: it is incomplete.
  lines.pop();
  for (const line of lines) {
    if (line === "") {
      if (touched) events.push(current);
      current = { data: null, event: null, id: null, retry: null, comments: [] };
      touched = false;
      continue;
    }
    touched = true;
    if (line.startsWith(":")) {
      current.comments.push(line.slice(1));
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") current.data = current.data === null ? value : `${current.data}\n${value}`;
    else if (name === "event") current.event = value;
    else if (name === "id") current.id = value;
    else if (name === "retry") current.retry = value;
  }
  return events;
}

/** The JSON-RPC payloads of the `message` events of an SSE body. */
export function sseMessages(bytes: Uint8Array): string[] {
  return parseSse(bytes).flatMap((e) =>
    e.data !== null && e.data.trim() !== "" && (e.event === null || e.event === "message")
      ? [e.data]
      : []
  );
}

/**
 * Waits until the audit log holds a record passing `test` (watching the file's directory), and
 * returns it.
 */
export async function waitForRecord(
  logPath: string,
  test: (r: AuditRecord) => boolean,
  what: string,
  signal: AbortSignal,
): Promise<AuditRecord> {
  const dir = logPath.slice(0, logPath.lastIndexOf("/")) || "/";
  const find = async (): Promise<AuditRecord | undefined> => {
    try {
      return (await readLog(logPath)).records.find(test);
    } catch {
      return undefined;
    }
  };
  const watcher = Deno.watchFs(dir, { recursive: false });
  const onAbort = (): void => watcher.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const first = await find();
    if (first !== undefined) return first;
    for await (const _ of watcher) {
      const found = await find();
      if (found !== undefined) return found;
    }
    throw new Error(`timed out waiting for a record: ${what}`);
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      watcher.close();
    } catch {
      // Closed by the abort.
    }
  }
}

/** A request the scripted upstream received. */
export interface UpstreamRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: Headers;
  /** Every header line as a pair, in order, names lower-cased. */
  headerList: [string, string][];
  body: Uint8Array;
  /** Resolves when the request's signal aborts (the proxy gave up on it). */
  aborted: Promise<void>;
  /** True once the signal has aborted. */
  wasAborted: boolean;
}

/** What a scripted upstream handler gets. */
export interface UpstreamContext {
  request: UpstreamRequest;
  signal: AbortSignal;
}

/**
 * An upstream MCP endpoint in this process (`Deno.serve` on a free port): it keeps every request
 * (headers and exact body bytes) and answers through `handler`. Counts requests in flight, so that
 * a test can see the proxy has let go of every upstream request.
 */
export class ScriptedUpstream implements AsyncDisposable {
  readonly requests: UpstreamRequest[] = [];
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  #waiters = new Set<() => void>();
  #inFlight = 0;

  constructor(handler: (ctx: UpstreamContext) => Response | Promise<Response>) {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const body = new Uint8Array(await req.arrayBuffer());
        const url = new URL(req.url);
        let onAbort: () => void = () => {};
        const recorded: UpstreamRequest = {
          method: req.method,
          path: url.pathname + url.search,
          headers: new Headers(req.headers),
          headerList: [...req.headers],
          body,
          aborted: new Promise<void>((resolve) => onAbort = resolve),
          wasAborted: false,
        };
        const aborted = (): void => {
          recorded.wasAborted = true;
          onAbort();
          this.#notify();
        };
        if (req.signal.aborted) aborted();
        else req.signal.addEventListener("abort", aborted, { once: true });
        this.requests.push(recorded);
        this.#inFlight++;
        this.#notify();
        let response: Response;
        try {
          response = await handler({ request: recorded, signal: req.signal });
        } catch (e) {
          this.#settle();
          throw e;
        }
        if (response.body === null) {
          this.#settle();
          return response;
        }
        // In flight until the body has been sent or cancelled.
        const counted = response.body.pipeThrough(
          new TransformStream({ flush: () => this.#settle(), cancel: () => this.#settle() }),
        );
        return new Response(counted, {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
        });
      },
    );
  }

  #settle(): void {
    this.#inFlight--;
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  get port(): number {
    return this.server.addr.port;
  }

  /** The upstream URL `http://127.0.0.1:PORT/mcp`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  /** Requests whose response is not yet complete. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Resolves once `condition` holds; rejects when `signal` aborts. */
  waitFor(condition: () => boolean, what: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        finish();
        resolve();
      };
      const onAbort = (): void => {
        finish();
        reject(new Error(`timed out waiting for ${what}`));
      };
      const finish = (): void => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      this.#waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
      check();
    });
  }

  /** Waits for the `n`th request (1-based) and returns it. */
  async nth(n: number, signal: AbortSignal): Promise<UpstreamRequest> {
    await this.waitFor(() => this.requests.length >= n, `upstream request ${n}`, signal);
    return this.requests[n - 1]!;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.shutdown();
    await this.server.finished;
  }
}

/** A body written in the given pieces, each its own chunk on the wire. */
export function chunkedBody(pieces: readonly (Uint8Array | string)[]): ReadableStream<Uint8Array> {
  const queue = pieces.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
  });
}

/** A response body under the test's control: `push` writes bytes as one chunk, `end` closes. */
export class ControlledBody {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  /** Resolves when the reader cancels (the proxy let go). */
  readonly cancelled: Promise<void>;

  constructor() {
    let onCancel: () => void = () => {};
    this.cancelled = new Promise<void>((resolve) => onCancel = resolve);
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      cancel: () => {
        this.#closed = true;
        onCancel();
      },
    });
  }

  push(bytes: Uint8Array | string): void {
    if (this.#closed) return;
    this.#controller.enqueue(typeof bytes === "string" ? encoder.encode(bytes) : bytes);
  }

  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#controller.close();
  }
}

/** A raw HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  /** Header pairs as received, names lower-cased. */
  headers: [string, string][];
  /** The body after de-chunking. */
  body: Uint8Array;
}

/**
 * Sends one request over a fresh TCP connection exactly as written (`head` without the final blank
 * line; `Connection: close` is added) and reads the response to the end of the connection. For the
 * headers `fetch` decides itself (`Host`).
 */
export async function rawHttp(
  port: number,
  head: string,
  body: Uint8Array = new Uint8Array(0),
  signal: AbortSignal,
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const onAbort = (): void => {
    try {
      conn.close();
    } catch {
      // Closed.
    }
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const request = concatBytes([
      encoder.encode(`${head.replace(/\r?\n$/, "")}\r\nConnection: close\r\n\r\n`),
      body,
    ]);
    let at = 0;
    while (at < request.length) at += await conn.write(request.subarray(at));
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      parts.push(buf.slice(0, n));
    }
    return parseRawResponse(concatBytes(parts));
  } finally {
    signal.removeEventListener("abort", onAbort);
    onAbort();
  }
}

function parseRawResponse(all: Uint8Array): RawResponse {
  const text = decoder.decode(all);
  const split = text.indexOf("\r\n\r\n");
  assert(split !== -1, `a complete response head: ${JSON.stringify(text.slice(0, 300))}`);
  const [statusLine, ...headerLines] = text.slice(0, split).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1]);
  const headers = headerLines.map((l): [string, string] => {
    const colon = l.indexOf(":");
    return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()];
  });
  let body = all.subarray(encoder.encode(text.slice(0, split + 4)).length);
  if (headers.some(([n, v]) => n === "transfer-encoding" && /chunked/i.test(v))) {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < body.length) {
      const lineEnd = body.indexOf(0x0a, at);
      const size = parseInt(decoder.decode(body.subarray(at, lineEnd)).trim(), 16);
      if (!(size > 0)) break;
      out.push(body.subarray(lineEnd + 1, lineEnd + 1 + size));
      at = lineEnd + 1 + size + 2;
    }
    body = concatBytes(out);
  }
  return { status, headers, body };
}

/** Asserts that none of `names` is among `headers`. */
export function assertNoHeaders(headers: Headers, names: readonly string[], where: string): void {
  const present = names.filter((n) => headers.has(n));
  assertEquals(present, [], `${where}: headers that must not cross`);
}

/** UTF-8 bytes of a string, typed for `fetch` and `Response` bodies. */
export function u8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** A JSON-RPC message as text. */
export function rpc(message: Record<string, unknown>): string {
  return JSON.stringify({ jsonrpc: "2.0", ...message });
}

/** What a proxy run left behind. */
export interface ProxyRun {
  /** The log file's text. */
  text: string;
  records: AuditRecord[];
  /** The proxy's structured log lines. */
  logLines: Record<string, unknown>[];
}

/**
 * Starts a proxy in front of `upstream` in a fresh directory, runs `body` with it and a fetch client
 * of its own, then stops the proxy with SIGTERM and checks what every run must leave: exit code 0,
 * no process of the run alive, an intact chain ending in `audit/stop`, `verify` exit 0.
 */
export async function withProxy(
  label: string,
  upstream: string,
  env: Record<string, string>,
  body: (proxy: HttpProxy, client: Deno.HttpClient, signal: AbortSignal, dir: string) => Promise<
    void
  >,
): Promise<ProxyRun> {
  await using dir = await tempDir(label);
  const signal = deadline(30_000);
  const logPath = `${dir.path}/audit.jsonl`;
  let logLines: Record<string, unknown>[];
  {
    await using proxy = await HttpProxy.start({ cwd: dir.path, upstream, env }, signal);
    using client = Deno.createHttpClient({});
    await body(proxy, client, signal, dir.path);
    assertEquals((await proxy.stop(signal)).code, 0, "the proxy exits 0 on SIGTERM");
    logLines = proxy.logLines();
  }
  await assertNoStrays(dir.path);
  const file = await readLog(logPath);
  const text = decoder.decode(file.bytes);
  // The test's own chain check parses records with JSON.parse, which cannot hold integers past
  // 2^53; `verify` checks those logs.
  if (!/\d{17}/.test(text)) await assertChain(file);
  const verify = await verifyLog(logPath);
  assertEquals(verify.code, 0, `verify exits 0:\n${verify.stdout}${verify.stderr}`);
  return { text, records: file.records, logLines };
}

/** The value at `path` inside a JSON value. */
export function dig(value: Json | undefined, ...path: (string | number)[]): Json | undefined {
  let at = value;
  for (const key of path) {
    if (typeof at !== "object" || at === null) return undefined;
    at = Array.isArray(at) ? at[Number(key)] : at[String(key)];
  }
  return at;
}

/** A process's resident memory now (`VmRSS`) and at its peak (`VmHWM`), in MB (Linux). */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    assert(m !== null, `/proc/${pid}/status has ${field}`);
    return Number(m[1]) / 1024;
  };
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/**
 * A raw TCP connection to the proxy, for requests that stop halfway, clients that read nothing, and
 * waiting for the proxy to close the connection. Reads only when asked.
 */
export class RawConnection implements Disposable {
  readonly conn: Deno.TcpConn;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(port: number): Promise<RawConnection> {
    return new RawConnection(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes all of `data`. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  /**
   * Reads until the proxy closes the connection (end of stream or reset) and returns what came;
   * rejects when `signal` aborts first.
   */
  async untilClosed(signal: AbortSignal): Promise<string> {
    const parts: Uint8Array[] = [];
    const onAbort = (): void => this[Symbol.dispose]();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const buf = new Uint8Array(65536);
      while (true) {
        let n: number | null;
        try {
          n = await this.conn.read(buf);
        } catch (e) {
          if (signal.aborted) throw new Error("timed out waiting for the proxy to close");
          if (e instanceof Deno.errors.ConnectionReset) break;
          throw e;
        }
        if (n === null) break;
        parts.push(buf.slice(0, n));
      }
      if (signal.aborted) throw new Error("timed out waiting for the proxy to close");
      return decoder.decode(concatBytes(parts));
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Reads until `text` holds `pattern`, and returns all read; rejects if the connection ends. */
  async until(pattern: RegExp, signal: AbortSignal): Promise<string> {
    let text = "";
    const buf = new Uint8Array(65536);
    const onAbort = (): void => this[Symbol.dispose]();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!pattern.test(text)) {
        const n = await this.conn.read(buf);
        if (n === null) throw new Error(`connection closed before ${pattern}: ${text}`);
        text += decoder.decode(buf.subarray(0, n));
      }
      return text;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Closed by the proxy.
    }
  }
}
