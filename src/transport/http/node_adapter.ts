/**
 * A fetch-style handler (a Hono app's `fetch`) served by `node:http`: each `IncomingMessage`
 * becomes a `Request` whose signal aborts when the client goes, and each `Response` is written
 * back, waiting for the client to take each chunk of a stream.
 *
 * A small body with a declared length (at most {@link EAGER_READ_BYTES}) is gathered here and
 * handed over in one piece, as the app would read it anyway; any other body streams with
 * backpressure, and the app decides how much of it to read. Nothing is ever reserved at a declared
 * size: bytes are held as they arrive.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { LogFields } from "../../log.ts";
import { EAGER_READ_BYTES } from "../../streams/read_capped.ts";
import type { ConnectionWatch } from "./connection_watch.ts";
import type { RequestInfo } from "./host_origin_guard.ts";

/** What the adapter calls for each request. */
export type FetchHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/** The client went away before its answer was written. */
class ClientClosed extends Error {
  override name = "ClientClosed";
}

const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
/**
 * Methods `node:http` reads but `new Request` refuses (the Fetch standard's forbidden methods;
 * CONNECT never reaches a `request` listener): answered 405 here, before any `Request` is made.
 */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
/** Most bytes of a body the app stopped reading that are read and dropped before closing. */
const DISCARD_BYTES = 1 << 20;
/** Answers at most this long with a `Content-Length` are written in one piece. */
const ONE_PIECE_BYTES = 1 << 20;
const TEXT = { "content-type": "text/plain; charset=utf-8", connection: "close" };

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

/** The whole of a small body: its chunks as they arrive, joined once at the end. */
function wholeBody(req: IncomingMessage): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    req.on("data", (chunk: Uint8Array) => {
      parts.push(chunk);
      size += chunk.byteLength;
    });
    req.once("end", () => {
      ended = true;
      const first = parts[0];
      if (parts.length === 1 && first !== undefined && first.buffer instanceof ArrayBuffer) {
        resolve(new Uint8Array(first.buffer, first.byteOffset, first.byteLength));
        return;
      }
      const out = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.byteLength;
      }
      resolve(out);
    });
    req.once("error", reject);
    // Destroyed without an error (the connection closed under it): no body will come.
    req.once("close", () => {
      if (!ended) reject(new ClientClosed());
    });
  });
}

/** Resolves when `res` can take more, rejects when the connection closes first. */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.reject(new ClientClosed());
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

/** The status and headers of `response` onto `res`, sent with the first body bytes. */
function head(res: ServerResponse, response: Response): void {
  const headers: Record<string, string> = {};
  // `forEach` rather than the iterator: this runs for every answer.
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  // Our own `Connection` keeps node:http from adding `Keep-Alive: timeout=…`, which a client
  // would take for the upstream's hop-by-hop header having crossed.
  if (res.shouldKeepAlive && headers.connection === undefined) headers.connection = "keep-alive";
  if (response.statusText !== "") res.statusMessage = response.statusText;
  res.writeHead(response.status, headers);
}

/**
 * Writes `response` to `res`. A body whose length is declared and small goes in one write; an
 * event stream has its headers sent at once, so that a client sees the stream open before the first
 * event; anything else is sent chunk by chunk as it comes.
 */
async function write(
  res: ServerResponse,
  response: Response,
  method: string,
  onClose: (cancel: () => void) => void,
): Promise<void> {
  head(res, response);
  const body = response.body;
  if (body === null || method === "HEAD") {
    await body?.cancel();
    res.end();
    return;
  }
  const length = Number(response.headers.get("content-length") ?? "NaN");
  if (length <= ONE_PIECE_BYTES) {
    res.end(await response.bytes());
    return;
  }
  const reader = body.getReader();
  const cancel = (): void => {
    reader.cancel(new ClientClosed()).catch(() => {});
  };
  // Gone while the answer was being made: nothing will read it.
  if (res.destroyed) return cancel();
  onClose(cancel);
  try {
    if ((response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
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
  }
}

/** What {@link nodeHandler} needs besides the handler. */
export interface NodeHandlerOptions {
  /** Told while a request body is expected and while an answer is being written. */
  watch: ConnectionWatch;
  /** The origin of every `Request` URL (never the client's `Host`). */
  origin: string;
  /** The `Allow` header of the 405 for a method no `Request` can carry. */
  allow: string;
  /**
   * Logs a request refused before the app saw it (a forbidden method, a header Fetch refuses). A
   * client can send these at will: the listener throttles them.
   */
  refused: (fields: LogFields) => void;
  /** Logs a request that could not be answered (a failure the app did not map); throttled too. */
  failed: (fields: LogFields) => void;
  /**
   * Whether each `Request` carries the signal of the client leaving (default true). The signal is
   * always in `info.closed`; an app that reads it there is spared the `Request`'s own, which costs
   * about 20 µs a request to build.
   */
  requestSignal?: boolean;
}

/**
 * Builds the `request` listener of a `node:http` server that hands every request to `fetch`.
 * `watch` is told while a request body is expected (for `proxy.http.read_timeout`) and while an
 * answer is being written (so that a parse error then does not write into its middle).
 */
export function nodeHandler(
  fetch: FetchHandler,
  opts: NodeHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { watch, origin, allow, refused, failed } = opts;
  const requestSignal = opts.requestSignal ?? true;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const socket = req.socket;
    const method = req.method ?? "GET";
    const target = req.url ?? "/";
    const gone = new AbortController();
    let cancelBody: (() => void) | undefined;
    watch.answering(socket, true);
    res.once("close", () => {
      watch.answering(socket, false);
      if (res.writableFinished) return;
      gone.abort(new ClientClosed());
      cancelBody?.();
    });
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
      // The body, if any, is never read: the connection closes after the answer.
      res.writeHead(405, { ...TEXT, allow });
      res.end("method not allowed\n");
      refused({ status: 405, reason: `method ${method} cannot be served` });
      return;
    }
    let body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null = null;
    const length = req.headers["content-length"];
    const chunked = req.headers["transfer-encoding"] !== undefined;
    if (!NO_BODY_METHODS.has(method) && (chunked || (length !== undefined && length !== "0"))) {
      watch.reading(socket, true);
      if (!chunked && Number(length) <= EAGER_READ_BYTES) {
        try {
          body = await wholeBody(req);
        } catch {
          // The client left, or stopped sending (read_timeout), before the body was whole.
          return;
        } finally {
          watch.reading(socket, false);
        }
      } else {
        body = bodyStream(req, () => watch.reading(socket, false));
      }
    }
    // The URL is ours, not the client's: `Host` may be anything until the app has checked it, and
    // the app reads the target as sent from `info.target`.
    const url = origin + (target.startsWith("/") ? target : "/");
    const request = requestSignal
      ? new Request(url, { method, body, signal: gone.signal })
      : new Request(url, { method, body });
    // Filled in place: handing `new Request` a Headers object copies it, at four times the cost.
    const headers = request.headers;
    const raw = req.rawHeaders;
    try {
      for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header node:http reads but the Fetch standard does not (a NUL in a value, say).
      await request.body?.cancel();
      res.writeHead(400, TEXT);
      res.end("malformed header\n");
      refused({ status: 400, reason: "a header the Fetch standard refuses" });
      return;
    }
    const response = await fetch(request, {
      remote: socket.remoteAddress,
      target,
      closed: gone.signal,
    });
    await write(res, response, method, (cancel) => cancelBody = cancel);
  }

  return function handle(req, res) {
    serve(req, res).catch((e: unknown) => {
      failed({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
      if (!res.headersSent) {
        res.writeHead(500, TEXT);
        res.end("internal error\n");
      } else {
        res.destroy();
      }
    });
  };
}
