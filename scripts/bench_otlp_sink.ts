/**
 * The benches' OpenTelemetry collector stand-in: an OTLP/HTTP receiver on loopback that answers
 * `200 {}` to every `POST /v1/traces` and `POST /v1/logs` and counts what it received — the spans
 * and log records in each OTLP/JSON body, gunzipped when it came with `Content-Encoding: gzip` —
 * so that the telemetry configurations of `deno task bench` (stdio and HTTP) can report
 * that the export really happened, and how much of it. A protobuf body is answered and counted as
 * a request, its items not decoded (the benches' proxies export OTLP/JSON, the default).
 *
 * It parses every JSON body it gets, as a collector would, and runs as a process of its own, so
 * that its work is on the machine the way a collector on loopback is, not inside the bench's
 * client.
 *
 * Usage: `deno run --allow-net=127.0.0.1 scripts/bench_otlp_sink.ts [--port N]` (default 0: any
 * free port). Writes `{"msg":"otlp sink listening","address":"http://127.0.0.1:PORT"}` to stderr
 * once it listens, and ends on SIGTERM or SIGINT. Besides the OTLP paths it answers:
 *
 * - `GET /counts`: the {@link SinkCounts} so far, as JSON;
 * - `GET /wait?spans=N&logs=M&requests=R&timeout_ms=T`: the counts once at least N spans, M log
 *   records and R export requests (traces and logs together) have arrived, or after T ms (at most
 *   {@link MAX_WAIT_MS}) with `reached: false` — how a bench waits for an export without polling.
 *
 * @module
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** What the sink has received. */
export interface SinkCounts {
  /** `POST /v1/traces` requests answered 200. */
  traceRequests: number;
  /** `POST /v1/logs` requests answered 200. */
  logRequests: number;
  /** Spans in the OTLP/JSON trace bodies. */
  spans: number;
  /** Log records in the OTLP/JSON log bodies. */
  logRecords: number;
  /** Requests that came gzipped. */
  gzipped: number;
  /** Requests answered whose body was not JSON (protobuf): their items are not counted. */
  undecoded: number;
  /** Requests refused: a body too large, not OTLP/JSON, a bad encoding, a wrong path or method. */
  rejected: number;
  /** Bytes of the bodies as they came (compressed when gzipped). */
  bytes: number;
  /**
   * CPU time the sink's process has used, user and system, in seconds: its share of the machine,
   * which the proxies measured beside it do not get.
   */
  cpuSeconds: number;
}

/** The answer to `GET /wait`: the counts, and whether they reached what was asked. */
export interface WaitResult {
  reached: boolean;
  counts: SinkCounts;
}

/** The largest body read, decompressed; a larger one is answered 413. */
export const MAX_BODY = 64 << 20;
/** The longest `GET /wait`. */
export const MAX_WAIT_MS = 60_000;
/** How many `GET /wait` may be waiting at once; more are answered 503. */
const MAX_WAITERS = 64;

/** The sink's stderr line once it listens; the first group is its base URL. */
export const SINK_LISTENING = /"otlp sink listening".*?"address":"([^"]+)"/;

/** The command line that runs the sink as a process of its own. */
export function sinkArgv(): string[] {
  return [
    Deno.execPath(),
    "run",
    "--allow-net=127.0.0.1",
    fileURLToPath(import.meta.url),
  ];
}

function emptyCounts(): SinkCounts {
  return {
    traceRequests: 0,
    logRequests: 0,
    spans: 0,
    logRecords: 0,
    gzipped: 0,
    undecoded: 0,
    rejected: 0,
    bytes: 0,
    cpuSeconds: 0,
  };
}

/** Why a request was refused, with its HTTP status. */
class Refused extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "Refused";
    this.status = status;
  }
}

/** `value[key]` when `value` is an object that has it; `undefined` otherwise. */
function member(value: unknown, key: string): unknown {
  if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
  return Reflect.get(value, key);
}

/** `value[key]` when it is an array; an empty one when it is absent; throws otherwise. */
function list(value: unknown, key: string): readonly unknown[] {
  const found = member(value, key);
  if (found === undefined) return [];
  if (!Array.isArray(found)) throw new Refused(400, `${key} is not an array`);
  return found;
}

/**
 * The items of an OTLP/JSON export request: `resourceSpans[].scopeSpans[].spans[]` for traces,
 * `resourceLogs[].scopeLogs[].logRecords[]` for logs.
 */
export function countItems(body: unknown, signal: "traces" | "logs"): number {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Refused(400, "the body is not a JSON object");
  }
  const [resources, scopes, items] = signal === "traces"
    ? ["resourceSpans", "scopeSpans", "spans"]
    : ["resourceLogs", "scopeLogs", "logRecords"];
  let n = 0;
  for (const resource of list(body, resources)) {
    for (const scope of list(resource, scopes)) n += list(scope, items).length;
  }
  return n;
}

/** Reads `stream` whole, refusing it once it passes {@link MAX_BODY}. */
async function readCapped(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BODY) {
        await reader.cancel().catch(() => {});
        throw new Refused(413, `the body is over ${MAX_BODY} bytes`);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Counts the bytes that pass. */
class ByteCounter extends TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>> {
  bytes = 0;
  constructor() {
    super({
      transform: (chunk, controller) => {
        this.bytes += chunk.length;
        controller.enqueue(chunk);
      },
    });
  }
}

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * The receiver: {@link OtlpSink.handle} answers a request; {@link OtlpSink.counts} is what it has
 * received.
 *
 * @example
 * ```ts
 * const sink = new OtlpSink();
 * const res = await sink.handle(
 *   new Request("http://127.0.0.1/v1/traces", {
 *     method: "POST",
 *     headers: { "content-type": "application/json" },
 *     body: JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{}, {}] }] }] }),
 *   }),
 * );
 * console.assert(res.status === 200 && sink.counts.spans === 2);
 * ```
 */
export class OtlpSink {
  #counts: SinkCounts = emptyCounts();
  #waiters = new Set<() => void>();

  /** A copy of what has been received so far. */
  get counts(): SinkCounts {
    const { user, system } = process.cpuUsage();
    return { ...this.#counts, cpuSeconds: (user + system) / 1e6 };
  }

  /** Answers one request. */
  async handle(req: Request): Promise<Response> {
    const { pathname, searchParams } = new URL(req.url);
    try {
      if (pathname === "/v1/traces" || pathname === "/v1/logs") {
        if (req.method !== "POST") throw new Refused(405, "POST only");
        return await this.#export(req, pathname === "/v1/traces" ? "traces" : "logs");
      }
      if (pathname === "/counts" && req.method === "GET") {
        return Response.json(this.counts);
      }
      if (pathname === "/wait" && req.method === "GET") {
        return Response.json(await this.#wait(searchParams, req.signal));
      }
      throw new Refused(404, `no ${req.method} ${pathname} here`);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      this.#counts.rejected++;
      await req.body?.cancel().catch(() => {});
      return Response.json({ error: e.message }, { status: e.status });
    }
  }

  async #export(req: Request, signal: "traces" | "logs"): Promise<Response> {
    const contentType = req.headers.get("content-type") ?? "";
    const encoding = (req.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
    if (encoding !== "identity" && encoding !== "gzip") {
      throw new Refused(415, `content-encoding ${encoding} is not gzip`);
    }
    const counter = new ByteCounter();
    const counted = (req.body ?? new Blob().stream()).pipeThrough(counter);
    const body: ReadableStream<Uint8Array> = encoding === "gzip"
      ? counted.pipeThrough(new DecompressionStream("gzip"))
      : counted;
    let bytes: Uint8Array;
    try {
      bytes = await readCapped(body);
    } catch (e) {
      if (e instanceof Refused) throw e;
      throw new Refused(400, `unreadable body: ${e instanceof Error ? e.message : String(e)}`);
    }
    const json = contentType.toLowerCase().startsWith("application/json");
    let items = 0;
    if (json) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(bytes));
      } catch {
        throw new Refused(400, "the body is not JSON");
      }
      items = countItems(parsed, signal);
    }
    const c = this.#counts;
    c.bytes += counter.bytes;
    if (encoding === "gzip") c.gzipped++;
    if (!json) c.undecoded++;
    if (signal === "traces") {
      c.traceRequests++;
      c.spans += items;
    } else {
      c.logRequests++;
      c.logRecords += items;
    }
    for (const wake of [...this.#waiters]) wake();
    // An empty export response: `{}` in JSON, no bytes in protobuf.
    return json
      ? new Response("{}", { headers: JSON_HEADERS })
      : new Response(new Uint8Array(0), { headers: { "content-type": "application/x-protobuf" } });
  }

  async #wait(params: URLSearchParams, abort: AbortSignal): Promise<WaitResult> {
    const number = (name: string, fallback: number): number => {
      const text = params.get(name);
      if (text === null) return fallback;
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < 0) throw new Refused(400, `${name}: not a count`);
      return n;
    };
    const spans = number("spans", 0);
    const logs = number("logs", 0);
    const requests = number("requests", 0);
    const timeoutMs = Math.min(number("timeout_ms", MAX_WAIT_MS), MAX_WAIT_MS);
    const c = this.#counts;
    const reached = (): boolean =>
      c.spans >= spans && c.logRecords >= logs && c.traceRequests + c.logRequests >= requests;
    if (reached()) return { reached: true, counts: this.counts };
    if (this.#waiters.size >= MAX_WAITERS) throw new Refused(503, "too many waiting");
    const done = AbortSignal.any([abort, AbortSignal.timeout(timeoutMs)]);
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        this.#waiters.delete(check);
        done.removeEventListener("abort", finish);
        resolve();
      };
      const check = (): void => {
        if (reached()) finish();
      };
      this.#waiters.add(check);
      done.addEventListener("abort", finish, { once: true });
    });
    return { reached: reached(), counts: this.counts };
  }
}

/** Whether `value` is a {@link SinkCounts}. */
export function isSinkCounts(value: unknown): value is SinkCounts {
  const keys: (keyof SinkCounts)[] = [
    "traceRequests",
    "logRequests",
    "spans",
    "logRecords",
    "gzipped",
    "undecoded",
    "rejected",
    "bytes",
    "cpuSeconds",
  ];
  return keys.every((k) => typeof member(value, k) === "number");
}

/** The counts of the sink at `base` (its address, from {@link SINK_LISTENING}). */
export async function sinkCounts(base: string): Promise<SinkCounts> {
  const res = await fetch(`${base}/counts`);
  const body: unknown = await res.json();
  if (!res.ok || !isSinkCounts(body)) {
    throw new Error(`the OTLP sink answered /counts with HTTP ${res.status}`);
  }
  return body;
}

/** What {@link sinkWait} waits for: at least so many of each, in all since the sink started. */
export interface WaitFor {
  spans?: number;
  logs?: number;
  /** Export requests, traces and logs together. */
  requests?: number;
}

/** Waits, at the sink at `base`, for `until`, at most `timeoutMs`. */
export async function sinkWait(
  base: string,
  until: WaitFor,
  timeoutMs: number,
): Promise<WaitResult> {
  const count = (n: number | undefined): string => String(Math.max(0, Math.floor(n ?? 0)));
  const query = new URLSearchParams({
    spans: count(until.spans),
    logs: count(until.logs),
    requests: count(until.requests),
    timeout_ms: String(Math.min(MAX_WAIT_MS, Math.max(0, Math.ceil(timeoutMs)))),
  });
  const res = await fetch(`${base}/wait?${query}`);
  const body: unknown = await res.json();
  const counts = member(body, "counts");
  const reached = member(body, "reached");
  if (!res.ok || !isSinkCounts(counts) || typeof reached !== "boolean") {
    throw new Error(`the OTLP sink answered /wait with HTTP ${res.status}`);
  }
  return { reached, counts };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" } },
    strict: true,
  });
  const sink = new OtlpSink();
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.abort());
  }
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: Number(values.port ?? "0"),
    signal: stop.signal,
    onListen: ({ hostname, port }) => {
      console.error(JSON.stringify({
        msg: "otlp sink listening",
        address: `http://${hostname}:${port}`,
      }));
    },
  }, (req) => sink.handle(req));
  await server.finished;
  console.error(JSON.stringify({ msg: "otlp sink stopped", ...sink.counts }));
  Deno.exit(0);
}
