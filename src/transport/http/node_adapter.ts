/**
 * A fetch-style handler (a Hono app's `fetch`) served by `node:http`: each `IncomingMessage`
 * becomes a `Request` whose body streams with backpressure and whose signal aborts when the client
 * goes, and each `Response` is written back chunk by chunk, waiting for the client to take each one.
 * Nothing is gathered whole here: the app decides how much of a body it reads.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../log.ts";
import type { ConnectionWatch } from "./connection_watch.ts";
import type { RequestInfo } from "./host_origin_guard.ts";

/** What the adapter calls for each request. */
export type FetchHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/** The client went away before its answer was written. */
class ClientClosed extends Error {
  override name = "ClientClosed";
}

const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
/** Most bytes of a body the app stopped reading that are read and dropped before closing. */
const DISCARD_BYTES = 1 << 20;

/** The request body as a stream that reads from the socket only as fast as it is consumed. */
function bodyStream(req: IncomingMessage, done: () => void): ReadableStream<Uint8Array> {
  let onData: (chunk: Uint8Array) => void = () => {};
  let onEnd: () => void = () => {};
  let onError: (e: Error) => void = () => {};
  const detach = (): void => {
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onError);
    done();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      onData = (chunk) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) req.pause();
      };
      onEnd = () => {
        detach();
        controller.close();
      };
      onError = (e) => {
        detach();
        controller.error(e);
      };
      req.on("data", onData);
      req.once("end", onEnd);
      req.once("error", onError);
    },
    pull() {
      req.resume();
    },
    cancel() {
      // The app has read all it wants (a body over the limit). The rest is read and dropped, so
      // that a client still sending can read the answer (closing now would reset the connection
      // under it), but only so much: past that the connection is closed.
      detach();
      let dropped = 0;
      req.on("data", (chunk: Uint8Array) => {
        dropped += chunk.byteLength;
        if (dropped > DISCARD_BYTES) req.socket.destroy();
      });
      req.resume();
    },
  });
}

/** Resolves when `res` can take more, rejects when the connection closes first. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      res.off("close", onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off("drain", onDrain);
      reject(new ClientClosed());
    };
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

/** Copies a `Response`'s status and headers onto `res` (without sending them yet). */
function head(res: ServerResponse, response: Response): void {
  res.statusCode = response.status;
  if (response.statusText !== "") res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    const prior = res.getHeader(name);
    if (prior === undefined) res.setHeader(name, value);
    else res.setHeader(name, [prior, value].flat().map(String));
  }
  // Our own `Connection` keeps node:http from adding `Keep-Alive: timeout=…`, which a client
  // would take for the upstream's hop-by-hop header having crossed.
  if (res.shouldKeepAlive && !res.hasHeader("connection")) {
    res.setHeader("connection", "keep-alive");
  }
}

/**
 * Writes `response` to `res`. A body of known length (the header, or one that ends within its first
 * two chunks) goes with `Content-Length`; an event stream has its headers sent at once, so that a
 * client sees the stream open before the first event; anything else is sent chunked.
 */
async function write(res: ServerResponse, response: Response, method: string): Promise<void> {
  head(res, response);
  const body = response.body;
  if (body === null || method === "HEAD") {
    await body?.cancel();
    res.end();
    return;
  }
  const reader = body.getReader();
  const onClose = (): void => {
    reader.cancel(new ClientClosed()).catch(() => {});
  };
  res.once("close", onClose);
  try {
    const known = response.headers.has("content-length");
    const events = (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
    if (!known && !events) {
      // Most answers are one piece: send them with their length rather than chunked.
      const first = await reader.read();
      if (first.done) {
        res.setHeader("content-length", "0");
        res.end();
        return;
      }
      const second = await reader.read();
      if (second.done) {
        res.setHeader("content-length", String(first.value.byteLength));
        res.end(first.value);
        return;
      }
      res.write(first.value);
      if (!res.write(second.value)) await drained(res);
    } else if (events) {
      res.flushHeaders();
    }
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (e) {
    reader.cancel(e).catch(() => {});
    if (!(e instanceof ClientClosed)) throw e;
  } finally {
    res.off("close", onClose);
  }
}

/**
 * Builds the `request` listener of a `node:http` server that hands every request to `fetch`.
 * `watch` is told while a request body is expected, for `proxy.http.read_timeout`.
 */
export function nodeHandler(
  fetch: FetchHandler,
  opts: { watch: ConnectionWatch; logger: Logger; origin: string },
): (req: IncomingMessage, res: ServerResponse) => void {
  const { watch, logger, origin } = opts;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    const method = req.method ?? "GET";
    const target = req.url ?? "/";
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort(new ClientClosed());
    });
    const headers = new Headers();
    const raw = req.rawHeaders;
    try {
      for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header node:http reads but the Fetch standard does not (a NUL in a value, say).
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end("malformed header\n");
      logger.warn("request refused", { status: 400, reason: "malformed header" });
      return;
    }
    const hasBody = !NO_BODY_METHODS.has(method) &&
      (req.headers["transfer-encoding"] !== undefined ||
        (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0"));
    if (hasBody) watch.reading(socket, true);
    // The URL is ours, not the client's: `Host` may be anything until the app has checked it, and
    // the app reads the target as sent from `info.target`.
    const request = new Request(origin + (target.startsWith("/") ? target : "/"), {
      method,
      headers,
      body: hasBody ? bodyStream(req, () => watch.reading(socket, false)) : null,
      signal: gone.signal,
    });
    const response = await fetch(request, { remote: socket.remoteAddress, target });
    await write(res, response, method);
  }

  return function handle(req, res) {
    serve(req, res).catch((e: unknown) => {
      logger.error("could not answer an HTTP request", {
        error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
      });
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8", connection: "close" });
        res.end("internal error\n");
      } else {
        res.destroy();
      }
    });
  };
}
