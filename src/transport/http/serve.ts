/**
 * The HTTP listeners of the proxy and the bridge: a Hono app served by `node:http`, until a signal
 * ends it.
 *
 * Why `node:http` and not `Deno.serve`: measured with raw sockets on Deno 2.9.6, `Deno.serve` keeps
 * a connection that sends nothing, or half a request head, or nothing after a keep-alive answer, for
 * as long as the client likes, accepts any number of them, and fixes the header limit at 64 KiB; it
 * has no option for any of these. Deno's `node:http` is Node's HTTP server: it enforces the time to
 * receive a request head (`headersTimeout`), the idle time of a kept-alive connection
 * (`keepAliveTimeout`) and the header size (`maxHeaderSize`). What neither offers — a cap on open
 * connections that says why it refuses, a deadline on each gap of a request body and on a client
 * that stops reading — is kept here, by {@link ConnectionWatch}.
 *
 * @module
 */
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Hono } from "hono";
import type { LogFields, Logger } from "../../log.ts";
import { ConnectionWatch, sweepInterval } from "./connection_watch.ts";
import type { RequestInfo } from "./host_origin_guard.ts";
import { httpErrorHandler } from "./http_errors.ts";
import { nodeHandler } from "./node_adapter.ts";

/** Raised when the listen address cannot be bound. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** A running listener. */
export interface Listener {
  /** The bound address (the port is the real one when 0 was asked for). */
  addr: Deno.NetAddr;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

/** `proxy.http.*`: what one client may hold of the listener. Times in ms; 0 turns one off. */
export interface ServeLimits {
  /** Largest request head (request line and headers); larger ones get 431. */
  maxHeaderBytes: number;
  /** Time from a connection's first byte (or a kept-alive connection's next) to a whole head. */
  readHeaderTimeoutMs: number;
  /** Longest gap between bytes of a request body. */
  readTimeoutMs: number;
  /** Longest time a client takes nothing of what is waiting for it. */
  writeTimeoutMs: number;
  /** Longest time a kept-alive connection waits for its next request. */
  idleTimeoutMs: number;
  /** Most connections open at once; more are answered 503 and closed. */
  maxConnections: number;
}

/**
 * The limits from the `proxy.http` configuration keys (their shape, so that the transport needs
 * nothing of the configuration module).
 */
export function serveLimits(http: {
  max_header_bytes: number;
  read_header_timeout: number;
  read_timeout: number;
  write_timeout: number;
  idle_timeout: number;
  max_connections: number;
}): ServeLimits {
  return {
    maxHeaderBytes: http.max_header_bytes,
    readHeaderTimeoutMs: http.read_header_timeout,
    readTimeoutMs: http.read_timeout,
    writeTimeoutMs: http.write_timeout,
    idleTimeoutMs: http.idle_timeout,
    maxConnections: http.max_connections,
  };
}

/** A limit of {@link ServeLimits}, by the name of its `proxy.http.*` key. */
export type LimitKey =
  | "max_header_bytes"
  | "read_header_timeout"
  | "read_timeout"
  | "write_timeout"
  | "max_connections";

/** How to listen. */
export interface ListenOptions {
  hostname: string;
  port: number;
  signal: AbortSignal;
  logger: Logger;
  /** The listener's name in its log lines (`proxy`, `metrics`). */
  name: string;
  limits: ServeLimits;
  /**
   * Where a limit is set, as a refusal's log line names it so that the operator knows what to
   * change: by default its `proxy.http.*` key. A listener whose limits are fixed says so instead.
   */
  limitName?: (key: LimitKey) => string;
  /**
   * The `Allow` header of the 405 given to a method no `Request` can carry (TRACE, TRACK): the
   * methods this listener's app answers. By default every method the Fetch standard can send.
   */
  allow?: string;
  /**
   * Whether each `Request` carries the signal of the client leaving (default true). An app that
   * reads it from its bindings (`RequestInfo.closed`), as the proxy's does, sets false: a
   * `Request` built with a signal costs about 20 µs more.
   */
  requestSignal?: boolean;
}

/** Where a limit is set, by default: its configuration key. */
export function proxyLimitName(key: LimitKey): string {
  return `proxy.http.${key}`;
}

/** The methods a `Request` can carry, as an `Allow` value. */
const FETCH_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/**
 * Counts an event that may come in floods (refused connections, malformed requests) and logs the
 * first, then at most one summary line each 10 s: an attacker must not be able to fill the log.
 */
class Throttled {
  #last = -Infinity;
  #missed = 0;
  constructor(
    readonly logger: Logger,
    readonly msg: string,
    readonly fields: LogFields,
    readonly level: "warn" | "error" = "warn",
  ) {}

  note(fields: LogFields): void {
    const now = performance.now();
    if (now - this.#last < 10_000) {
      this.#missed++;
      return;
    }
    this.logger.log(this.level, this.msg, {
      ...this.fields,
      ...fields,
      not_logged_since_last: this.#missed,
    });
    this.#last = now;
    this.#missed = 0;
  }
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** A whole response written straight to a socket, for refusals made before any request exists. */
function rawResponse(status: number, text: string): string {
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ""}\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`;
}

/** The status for an error `node:http` raised while reading a request. */
function clientErrorStatus(code: string): number {
  if (code === "HPE_HEADER_OVERFLOW") return 431;
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return 408;
  return 400;
}

/**
 * Serves `app` on `hostname:port` until `signal` aborts; open connections, streams included, are
 * then closed. Every app served here maps errors through the one {@link httpErrorHandler}.
 * @throws {ListenError} when the address cannot be bound
 */
export async function listen(
  app: Hono<{ Bindings: RequestInfo }>,
  opts: ListenOptions,
): Promise<Listener> {
  const { logger, limits } = opts;
  const limitName = opts.limitName ?? proxyLimitName;
  const listener: LogFields = { listener: opts.name };
  app.onError(httpErrorHandler(logger));
  const stalls = new Throttled(logger, "closed a connection that stopped", listener);
  const watch = new ConnectionWatch({
    readTimeoutMs: limits.readTimeoutMs,
    writeTimeoutMs: limits.writeTimeoutMs,
    onStall: (stall) =>
      stalls.note({
        reason: stall === "read"
          ? `a request body sent nothing for ${limits.readTimeoutMs} ms (${
            limitName("read_timeout")
          })`
          : `the client took nothing of its answer for ${limits.writeTimeoutMs} ms (${
            limitName("write_timeout")
          })`,
      }),
  });
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    // Node checks the head deadline on this interval (30 s by default, far too coarse).
    connectionsCheckingInterval: sweepInterval(limits.readHeaderTimeoutMs),
    // A missing Host is refused by the app's guard, with the same answer and log line as a bad one.
    requireHostHeader: false,
  });
  server.headersTimeout = limits.readHeaderTimeoutMs;
  // No deadline on a whole request: a body may take long while it keeps coming (read_timeout).
  server.requestTimeout = 0;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  server.timeout = 0;

  // The connection cap is kept here rather than by `server.maxConnections`, which closes the
  // connections past it without a word to the client or the log. The HTTP server's own
  // `connection` listener is called only for connections within the cap.
  const refused = new Throttled(
    logger,
    `refused a connection: ${limitName("max_connections")} reached`,
    listener,
  );
  const [serveConnection] = server.listeners("connection");
  server.removeAllListeners("connection");
  server.on("connection", function admit(socket: Socket) {
    if (watch.size >= limits.maxConnections) {
      refused.note({ max_connections: limits.maxConnections });
      socket.end(rawResponse(503, "too many connections"), () => socket.destroy());
      return;
    }
    watch.track(socket);
    serveConnection?.call(server, socket);
  });
  // One throttle for every refusal a client can repeat at will, from the parser or the adapter.
  const malformed = new Throttled(logger, "refused a malformed or slow HTTP request", listener);
  server.on("clientError", (err: Error & { code?: string }, socket: Socket) => {
    const code = err.code ?? "";
    // With an answer under way, a refusal written now would land in its middle.
    if (code === "ECONNRESET" || !socket.writable || watch.isAnswering(socket)) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(code);
    malformed.note({
      status,
      code,
      ...(status === 431
        ? { limit: limitName("max_header_bytes") }
        : status === 408
        ? { limit: limitName("read_header_timeout") }
        : {}),
    });
    const text = status === 431
      ? "request head too large"
      : status === 408
      ? "request head not received in time"
      : "malformed request";
    socket.end(rawResponse(status, text), () => socket.destroy());
  });

  // A failure the app did not map is a bug, but one a client might be able to repeat.
  const failed = new Throttled(logger, "could not answer an HTTP request", listener, "error");
  const handler = nodeHandler((req, info) => app.fetch(req, info), {
    watch,
    // Never the client's Host: the guard has not read it yet when the Request is built.
    origin: "http://mcp-audit.invalid",
    allow: opts.allow ?? FETCH_METHODS,
    refused: (fields) => malformed.note(fields),
    failed: (fields) => failed.note(fields),
    requestSignal: opts.requestSignal ?? true,
  });
  server.on("request", handler);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port, opts.hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    throw new ListenError(
      `cannot listen on ${opts.hostname}:${opts.port}: ${e instanceof Error ? e.message : e}`,
    );
  }
  const bound: AddressInfo | string | null = server.address();
  if (bound === null || typeof bound === "string") {
    throw new ListenError(`cannot listen on ${opts.hostname}:${opts.port}: no TCP address`);
  }
  watch.start(sweepInterval(limits.readTimeoutMs, limits.writeTimeoutMs));
  const finished = new Promise<void>((resolve) => server.once("close", () => resolve()));
  const stop = (): void => {
    watch.stop();
    server.close();
    // Streams never end on their own: every connection goes, as with `Deno.serve`'s signal.
    server.closeAllConnections();
  };
  if (opts.signal.aborted) stop();
  else opts.signal.addEventListener("abort", stop, { once: true });

  const addr: Deno.NetAddr = { transport: "tcp", hostname: bound.address, port: bound.port };
  logger.info(`${opts.name} listening`, {
    address: `http://${
      addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname
    }:${addr.port}`,
  });
  return { addr, finished };
}
