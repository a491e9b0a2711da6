/**
 * OTLP over HTTP: the `IExporterTransport` the official OTLP export delegate sends its encoded
 * requests through. The delegate and the `@opentelemetry/otlp-transformer` serializers do the
 * encoding; this transport decides where and how the bytes go, as the Go tool did: the URL, the
 * headers, gzip, a timeout per attempt, and retries with backoff and `Retry-After`.
 *
 * The library's own transports are not used: they read `OTEL_*` variables and Node's `http`
 * agent, and retry on their own terms. This one uses the `fetch` it is given (the TLS settings
 * live there), reads no environment, and reports every attempt to {@linkcode ExportHealth}.
 *
 * @example
 * ```ts
 * import { OtlpHttpTransport, otlpUrl } from "./otlp_transport.ts";
 * import { NO_EXPORT_HEALTH } from "./export_health.ts";
 * import { Logger } from "../log.ts";
 *
 * const stop = new AbortController();
 * const transport = new OtlpHttpTransport({
 *   signal: "traces",
 *   url: otlpUrl("http://127.0.0.1:4318", "traces"),
 *   protocol: "http/json",
 *   compression: "gzip",
 *   headers: { Authorization: "Bearer x" },
 *   userAgent: "mcp-audit/0.1.0",
 *   timeoutMs: 5000,
 *   retry: { max_retries: 3, initial_interval_ms: 200, max_interval_ms: 2000 },
 *   fetch,
 *   health: NO_EXPORT_HEALTH,
 *   logger: new Logger("info", (line) => console.error(line.trimEnd())),
 *   stop: stop.signal,
 * });
 * transport.carrying(1);
 * const response = await transport.send(new TextEncoder().encode("{}"), 5000);
 * ```
 *
 * @module
 */
import type { ExportResponse, IExporterTransport } from "@opentelemetry/otlp-exporter-base";
import type { ExportHealth, ExportSignal } from "./export_health.ts";
import type { Logger } from "../log.ts";

/** `fetch`'s shape: what `main.ts` builds from `otel.tls.*`. */
export type OtlpFetch = (input: Request | URL | string, init?: RequestInit) => Promise<Response>;

/** An `otel.*` setting that cannot be used. */
export class OtelConfigError extends Error {
  override name = "OtelConfigError";
  constructor(readonly key: string, readonly problem: string, options?: ErrorOptions) {
    super(`${key}: ${problem}`, options);
  }
}

/**
 * Why an export gave up: its last attempt failed (`error`), the collector refused it for good
 * (`permanent_error`), it could not be compressed (`encode_error`), or shutdown's deadline passed
 * (`shutdown`). The export queue turns it into a drop reason.
 */
export type OtlpFailureKind = "error" | "permanent_error" | "encode_error" | "shutdown";

/** The error a failed export ends with: a kind, the last HTTP status when there was one. */
export class OtlpExportError extends Error {
  override name = "OtlpExportError";
  constructor(
    readonly kind: OtlpFailureKind,
    message: string,
    readonly status: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const SIGNAL_PATH: Record<ExportSignal, string> = { traces: "/v1/traces", logs: "/v1/logs" };

/**
 * The URL a signal is posted to: `otel.endpoint` with `/v1/traces` or `/v1/logs` appended, unless
 * its path already ends so. An endpoint configured with either signal's path (a Go configuration
 * names `/v1/traces`) serves both: the path is swapped. Throws {@linkcode OtelConfigError} unless
 * the endpoint is an `http:` or `https:` URL with a host.
 */
export function otlpUrl(endpoint: string, signal: ExportSignal): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new OtelConfigError("otel.endpoint", `${JSON.stringify(endpoint)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OtelConfigError("otel.endpoint", `must be an http or https URL, not ${url.protocol}`);
  }
  if (url.hostname === "") throw new OtelConfigError("otel.endpoint", "has no host");
  let path = url.pathname.replace(/\/+$/, "");
  for (const suffix of Object.values(SIGNAL_PATH)) {
    if (path.endsWith(suffix)) path = path.slice(0, -suffix.length);
  }
  url.pathname = path + SIGNAL_PATH[signal];
  url.hash = "";
  return url;
}

/**
 * The URL as it may be logged: without user name, password, query or fragment, any of which may
 * carry a token.
 */
export function loggableUrl(url: URL): string {
  const copy = new URL(url);
  copy.username = "";
  copy.password = "";
  copy.search = "";
  copy.hash = "";
  return copy.href;
}

const CONTENT_TYPE = {
  "http/json": "application/json",
  "http/protobuf": "application/x-protobuf",
} as const;

/** A header name as HTTP allows it (RFC 9110 `token`). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Why `otel.headers` cannot send this header, or null when it can. Names the fault, never the
 * value: values are tokens, and a token read from a file often ends in a newline.
 */
export function headerProblem(name: string, value: string): string | null {
  if (!HEADER_NAME.test(name)) return "is not a valid HTTP header name";
  let wide = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) {
      return "its value has a line break or NUL, which HTTP does not allow (the value is not shown)";
    }
    if (c > 0xff) wide = true;
  }
  return wide
    ? "its value has a character beyond Latin-1, which HTTP does not allow (the value is not shown)"
    : null;
}

/**
 * The headers of every request: `otel.headers`, then `Content-Type` for the protocol (a configured
 * one would mislabel the body), `Content-Encoding` only for gzip, and `User-Agent` unless
 * configured. Throws {@linkcode OtelConfigError} for a name or value HTTP does not allow, naming
 * the header and never showing its value.
 */
export function otlpHeaders(
  configured: Readonly<Record<string, string>>,
  protocol: keyof typeof CONTENT_TYPE,
  compression: "none" | "gzip",
  userAgent: string,
): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(configured)) {
    const problem = headerProblem(name, value);
    if (problem !== null) throw new OtelConfigError(`otel.headers.${name}`, problem);
    try {
      headers.set(name, value);
    } catch {
      // The platform's message (and so a cause) would quote the value.
      throw new OtelConfigError(
        `otel.headers.${name}`,
        "is not a valid HTTP header (the value is not shown)",
      );
    }
  }
  headers.set("content-type", CONTENT_TYPE[protocol]);
  headers.delete("content-encoding");
  headers.delete("content-length");
  if (compression === "gzip") headers.set("content-encoding", "gzip");
  if (!headers.has("user-agent")) headers.set("user-agent", userAgent);
  return headers;
}

/**
 * How long `Retry-After` asks to wait, in ms: delta-seconds or an HTTP date (a past date is 0).
 * `null` when absent or unreadable.
 */
export function retryAfterMs(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/** Statuses worth another attempt, as the Go tool decides: 408, 429 and 5xx but 501. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** At most this much of a failed response's body is read, to be logged. */
export const ERROR_BODY_LIMIT = 1024;
/** At most this much of a successful response's body is read (then the rest is cancelled). */
const OK_BODY_LIMIT = 64 * 1024;

/** Settings of one transport; one per signal. */
export interface OtlpTransportOptions {
  signal: ExportSignal;
  url: URL;
  protocol: "http/json" | "http/protobuf";
  compression: "none" | "gzip";
  headers: Readonly<Record<string, string>>;
  /** Sent as `User-Agent` unless `headers` has one. */
  userAgent: string;
  /** Each attempt (request and response body) must end within this. */
  timeoutMs: number;
  retry: { max_retries: number; initial_interval_ms: number; max_interval_ms: number };
  fetch: OtlpFetch;
  health: ExportHealth;
  logger: Logger;
  /** Aborted when shutdown's deadline passes: the attempt in progress and any wait end at once. */
  stop: AbortSignal;
  /** The wall clock, for `Retry-After` dates. */
  now?: () => number;
}

/** What one attempt came to. */
type Attempt =
  | { kind: "ok" }
  | { kind: "retryable"; status: number | null; reason: string; waitMs: number | null }
  | { kind: "permanent"; status: number; body: string }
  | { kind: "stopped" };

/**
 * Sends encoded OTLP requests over HTTP with the Go tool's retry rules: `max_retries + 1`
 * attempts; a network error, a timeout, 408, 429 and 5xx but 501 are tried again after
 * `initial_interval_ms × 2^n` (at most `max_interval_ms`), or after `Retry-After` (also at most
 * `max_interval_ms`, and then the backoff does not grow). Any other status fails at once. On the
 * final failure the first KiB of the response body is logged.
 *
 * `send` never rejects: it resolves `success`, or `failure` with an {@linkcode OtlpExportError}.
 */
export class OtlpHttpTransport implements IExporterTransport {
  #o: OtlpTransportOptions;
  #headers: Headers;
  #items = 0;
  #failing = 0;

  constructor(options: OtlpTransportOptions) {
    this.#o = options;
    this.#headers = otlpHeaders(
      options.headers,
      options.protocol,
      options.compression,
      options.userAgent,
    );
  }

  /**
   * How many spans or log records the next `send` carries, for the health reports. The delegate
   * calls `send` synchronously inside `export`, so the queue sets this just before.
   */
  carrying(items: number): void {
    this.#items = items;
  }

  async send(data: Uint8Array, _timeoutMillis: number): Promise<ExportResponse> {
    const items = this.#items;
    this.#items = 0;
    const o = this.#o;
    let body: Uint8Array;
    try {
      body = o.compression === "gzip" ? await gzip(data) : data;
    } catch (e) {
      return this.#failed(new OtlpExportError("encode_error", `gzip failed: ${message(e)}`), items);
    }
    let step = 0;
    for (let attempt = 1;; attempt++) {
      if (o.stop.aborted) return this.#failed(stopped(), items);
      const last = attempt > o.retry.max_retries;
      const started = performance.now();
      const outcome = await this.#attempt(body, last);
      const seconds = (performance.now() - started) / 1000;
      switch (outcome.kind) {
        case "ok":
          o.health.attempt(o.signal, "ok", items, seconds);
          if (this.#failing > 0) {
            o.logger.info("otel export recovered", {
              signal: o.signal,
              failed_exports: this.#failing,
            });
            this.#failing = 0;
          }
          return { status: "success" };
        case "stopped":
          o.health.attempt(o.signal, "error", items, seconds);
          return this.#failed(stopped(), items);
        case "permanent":
          o.health.attempt(o.signal, "permanent_error", items, seconds);
          return this.#failed(
            new OtlpExportError(
              "permanent_error",
              `HTTP ${outcome.status}${outcome.body === "" ? "" : `: ${outcome.body}`}`,
              outcome.status,
            ),
            items,
            { attempts: attempt, status: outcome.status, body: outcome.body },
          );
        case "retryable": {
          if (last) {
            o.health.attempt(o.signal, "error", items, seconds);
            return this.#failed(
              new OtlpExportError("error", outcome.reason, outcome.status),
              items,
              { attempts: attempt, status: outcome.status, body: outcome.reason },
            );
          }
          o.health.attempt(o.signal, "retry", items, seconds);
          let wait: number;
          if (outcome.waitMs !== null) {
            // As the Go tool: the server's wait, within the cap, and the backoff does not grow.
            wait = Math.min(outcome.waitMs, o.retry.max_interval_ms);
          } else {
            wait = Math.min(o.retry.initial_interval_ms * 2 ** step, o.retry.max_interval_ms);
            step++;
          }
          o.logger.debug("otel export retrying", {
            signal: o.signal,
            attempt,
            status: outcome.status,
            reason: outcome.reason,
            wait_ms: wait,
          });
          if (!(await delay(wait, o.stop))) return this.#failed(stopped(), items);
        }
      }
    }
  }

  shutdown(): void {
    // Nothing of its own to close: the fetch (and its connections) belongs to the caller.
  }

  async #attempt(body: Uint8Array, last: boolean): Promise<Attempt> {
    const o = this.#o;
    const signal = AbortSignal.any([o.stop, AbortSignal.timeout(o.timeoutMs)]);
    try {
      const response = await o.fetch(o.url, {
        method: "POST",
        headers: this.#headers,
        body: new Uint8Array(body),
        signal,
        // A redirect could take the configured headers (credentials) to another host.
        redirect: "manual",
      });
      if (response.ok) {
        await readPrefix(response, OK_BODY_LIMIT);
        return { kind: "ok" };
      }
      const status = response.status;
      if (retryableStatus(status)) {
        const waitMs = retryAfterMs(response.headers.get("retry-after"), (o.now ?? Date.now)());
        const text = last ? await readPrefix(response, ERROR_BODY_LIMIT) : "";
        if (!last) await response.body?.cancel().catch(() => {});
        return { kind: "retryable", status, reason: `HTTP ${status}: ${text}`.trim(), waitMs };
      }
      return { kind: "permanent", status, body: await readPrefix(response, ERROR_BODY_LIMIT) };
    } catch (e) {
      if (o.stop.aborted) return { kind: "stopped" };
      const reason = signal.aborted
        ? `no answer within otel.timeout_ms (${o.timeoutMs} ms)`
        : `network error: ${networkError(e)}`;
      return { kind: "retryable", status: null, reason, waitMs: null };
    }
  }

  #failed(
    error: OtlpExportError,
    items: number,
    fields?: { attempts: number; status: number | null; body: string },
  ): ExportResponse {
    const o = this.#o;
    if (error.kind !== "shutdown") {
      this.#failing++;
      // The first failure of a run of them says everything; the rest would repeat it each flush.
      const level = this.#failing === 1 ? "warn" : "debug";
      o.logger.log(level, "otel export failed", {
        signal: o.signal,
        url: loggableUrl(o.url),
        kind: error.kind,
        items,
        attempts: fields?.attempts,
        status: fields?.status ?? null,
        error: fields?.body ?? error.message,
      });
    }
    return { status: "failure", error };
  }
}

function stopped(): OtlpExportError {
  return new OtlpExportError("shutdown", "shutdown deadline passed before the export ended");
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** At most this much of a network error's description is logged. */
const NETWORK_ERROR_LIMIT = 1024;
/** A URL within an error message (Deno's: `error sending request for url (http://…)`). */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s()<>"']+/gi;

/**
 * What a failed `fetch` says, with its causes: Deno's message is "fetch failed", and the reason
 * (refused, DNS, TLS) is in `cause`. Every URL in it loses user, password, query and fragment.
 */
export function networkError(e: unknown): string {
  const parts: string[] = [];
  let at: unknown = e;
  for (let depth = 0; depth < 4 && at !== undefined && at !== null; depth++) {
    const text = message(at).trim();
    if (text !== "" && !parts.includes(text)) parts.push(text);
    at = at instanceof Error ? at.cause : undefined;
  }
  const said = parts.join(": ").replace(URL_IN_TEXT, (url) => {
    try {
      return loggableUrl(new URL(url));
    } catch {
      return url.replace(/\/\/[^/]*@/, "//").replace(/[?#].*$/, "");
    }
  });
  return said.length <= NETWORK_ERROR_LIMIT ? said : `${said.slice(0, NETWORK_ERROR_LIMIT)}…`;
}

/** Waits `ms`, or less when `stop` aborts; true when the full wait passed. */
function delay(ms: number, stop: AbortSignal): Promise<boolean> {
  if (stop.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      stop.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    stop.addEventListener("abort", onAbort, { once: true });
  });
}

/** gzip in one piece, with the platform's `CompressionStream`. */
async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([new Uint8Array(data)]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Reads at most `limit` bytes of a response body, cancels the rest, and returns them as text
 * (lossy UTF-8). A body that fails midway gives what was read.
 */
async function readPrefix(response: Response, limit: number): Promise<string> {
  const body = response.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < limit) {
      const { done, value } = await reader.read();
      if (done) return decode(chunks, length, limit);
      chunks.push(value);
      length += value.length;
    }
    await reader.cancel().catch(() => {});
  } catch {
    // What was read is what there is.
  } finally {
    reader.releaseLock();
  }
  return decode(chunks, length, limit);
}

function decode(chunks: readonly Uint8Array[], length: number, limit: number): string {
  const all = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all.subarray(0, limit));
}
