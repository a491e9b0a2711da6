/**
 * The HTTP reverse proxy as a Hono app: every request is forwarded to the upstream MCP endpoint,
 * and every JSON-RPC message in request bodies, JSON responses and SSE streams is recorded before
 * it is passed on.
 *
 * @module
 */
import { Hono } from "hono";
import type { Exchange, Outbound } from "../../pipeline/exchange.ts";
import type { JsonRpcId, Message } from "../../jsonrpc/message.ts";
import { ownBytes, readCapped, readDeclared } from "../../streams/read_capped.ts";
import { type SseEvent, SseTap } from "../../streams/sse_tap.ts";
import type { Logger } from "../../log.ts";
import { clientResponseHeaders, upstreamRequestHeaders, upstreamUrl } from "./headers.ts";
import type { SessionRegistry } from "./sessions.ts";
import type { UpstreamFetch } from "./upstream_tls.ts";
import { mayRetry, type RetryPolicy, withRetries } from "./retry.ts";
import { hostOriginGuard } from "./host_origin_guard.ts";
import { repliesBody } from "./replies.ts";

/** What the proxy app needs. */
export interface HttpProxyOptions {
  upstream: URL;
  fetch: UpstreamFetch;
  sessions: SessionRegistry;
  logger: Logger;
  maxMessageBytes: number;
  /** Bounds the wait for response headers and every idle gap of a body; never a whole stream. */
  upstreamTimeoutMs: number;
  /** Lower-case names of headers allowed upstream that are stripped by default. */
  forwardHeaders: ReadonlySet<string>;
  /** Host names (lower-case, no port) our listener answers to. */
  allowedHosts: ReadonlySet<string>;
  /** Origins allowed besides loopback ones. */
  allowedOrigins: ReadonlySet<string>;
  /** Makes records written so far reach the log; called before any bytes go out. */
  beforeWrite: () => void;
  /** `proxy.retry.*`; `maxRetries: 0` turns retries off. */
  retry: RetryPolicy;
}

/** Values Deno.serve hands each request. */
export interface ProxyBindings {
  remote: string | undefined;
}

const encoder = new TextEncoder();
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
/** How much of a body declared too large is read, to recover its id from its first bytes. */
const ID_SEARCH_BYTES = 4095;

class UpstreamTimeout extends Error {
  override name = "UpstreamTimeout";
}
class ClientGone extends Error {
  override name = "ClientGone";
}

function requestIds(messages: Message[]): JsonRpcId[] {
  return messages.flatMap((m) => m.kind === "request" ? [m.id] : []);
}

function isJson(contentType: string | null): boolean {
  return contentType !== null && /^application\/([\w.+-]*\+)?json\b/i.test(contentType.trim());
}

/** Whether untyped bytes begin, after white space, with `{` or `[`. */
function startsLikeJson(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b || b === 0x5b;
  }
  return false;
}

/** The `sessionId` of a legacy `endpoint` event's URL, if it has one. */
function legacySession(endpoint: string): string | null {
  try {
    return new URL(endpoint.trim(), "http://upstream").searchParams.get("sessionId");
  } catch {
    return null;
  }
}

/** An error answer: the JSON-RPC errors when there are ids to answer, else one line of text. */
function failure(status: number, reply: Uint8Array<ArrayBuffer> | null, text: string): Response {
  return reply === null
    ? new Response(`${text}\n`, { status, headers: { "content-type": "text/plain" } })
    : new Response(reply, { status, headers: { "content-type": "application/json" } });
}

/** The bytes of `outs` meant for the client, as SSE events. */
function sseEvents(outs: Outbound[]): Uint8Array | null {
  const texts = outs.filter((o) => o.to === "client").map((o) =>
    new TextDecoder().decode(o.bytes).trimEnd()
  );
  if (texts.length === 0) return null;
  return encoder.encode(texts.map((t) => `event: message\ndata: ${t}\n\n`).join(""));
}

/** One SSE `message` event carrying `json`, keeping the original event's id and retry hint. */
function sseEvent(json: Uint8Array, original: SseEvent): Uint8Array {
  const retry = original.retry === undefined ? "" : `retry: ${original.retry}\n`;
  const id = original.id === undefined ? "" : `id: ${original.id}\n`;
  const data = new TextDecoder().decode(json);
  return encoder.encode(`${retry}${id}event: message\ndata: ${data}\n\n`);
}

/** The JSON text of an SSE event's data, for id recovery: from the first `data:` on. */
function afterData(head: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(head.subarray(0, 256));
  const at = text.indexOf("data:");
  if (at === -1) return head;
  const skip = encoder.encode(text.slice(0, at + 5)).length;
  return head.subarray(head[skip] === 0x20 ? skip + 1 : skip);
}

/** Builds the app. */
export function createProxyApp(opts: HttpProxyOptions): Hono<{ Bindings: ProxyBindings }> {
  const app = new Hono<{ Bindings: ProxyBindings }>();
  const { logger } = opts;
  app.use("*", hostOriginGuard(opts.allowedHosts, opts.allowedOrigins));

  app.all("*", async function forward(c) {
    const req = c.req.raw;
    const url = new URL(req.url);
    const target = upstreamUrl(opts.upstream, url);
    // The legacy HTTP+SSE transport names its session in the query of its message endpoint.
    const exchange: Exchange = opts.sessions.forRequest(
      req.headers.get("mcp-session-id") ?? url.searchParams.get("sessionId"),
    );
    let ids: JsonRpcId[] = [];
    let messages: Message[] = [];
    let body: Uint8Array<ArrayBuffer> | undefined;

    if (BODY_METHODS.has(req.method) && req.body !== null) {
      const declared = Number(req.headers.get("content-length") ?? "NaN");
      // Over the limit by its own account: read only enough to find its id, never the rest.
      const read = declared > opts.maxMessageBytes
        ? await readCapped(req.body, ID_SEARCH_BYTES).then((head) => ({
          kind: "oversized" as const,
          size: declared,
          head: head.kind === "oversized" ? head.head : head.bytes,
          // Cut short, so its last bytes are not the message's end: no tail to misread.
          tail: new Uint8Array(0),
        }))
        : await readDeclared(req, declared, opts.maxMessageBytes);
      if (read.kind === "oversized") {
        const outs = exchange.rejectOversized("client", read);
        opts.beforeWrite();
        const reply = repliesBody(outs);
        return failure(413, reply, `request body over ${opts.maxMessageBytes} bytes`);
      }
      body = read.bytes;
      if (body.length > 0) {
        const passage = exchange.pass("client", body);
        messages = passage.messages;
        if (passage.forward === null) {
          // Refused by a guardrail: the proxy answers, and the upstream never sees it.
          opts.beforeWrite();
          return new Response(repliesBody(passage.replies), {
            status: 200,
            headers: { "content-type": "application/json" },
          });
        }
        ids = requestIds(messages);
      }
    }
    opts.beforeWrite();

    // One controller for the upstream request: the client leaving, or the upstream going quiet
    // for longer than the timeout (waiting for headers, or between body chunks), aborts it.
    const upstreamAbort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => upstreamAbort.abort(new UpstreamTimeout()), opts.upstreamTimeoutMs);
    };
    const disarm = (): void => clearTimeout(timer);
    const onClientGone = (): void => upstreamAbort.abort(new ClientGone());
    req.signal.addEventListener("abort", onClientGone, { once: true });
    const done = (): void => {
      disarm();
      req.signal.removeEventListener("abort", onClientGone);
    };
    /**
     * The upstream exchange failed: a client that left gets its requests recorded as undelivered;
     * otherwise the client gets a 502 with a -32603 answer for each request, recorded.
     */
    const upstreamFailed = (e: unknown, gone: string, quiet: string, failed: string): Response => {
      done();
      const cause = upstreamAbort.signal.reason;
      if (cause instanceof ClientGone) {
        exchange.undeliverable(ids, gone);
        opts.beforeWrite();
        return new Response(null, { status: 499 });
      }
      const reason = cause instanceof UpstreamTimeout
        ? quiet
        : `${failed}: ${(e as Error).message}`;
      logger.warn("upstream request failed", { url: target.href, reason });
      const reply = repliesBody(exchange.failPending(ids, reason));
      opts.beforeWrite();
      return failure(502, reply, reason);
    };

    let res: Response;
    const headers = upstreamRequestHeaders(req.headers, {
      forward: opts.forwardHeaders,
      clientAddress: c.env?.remote,
    });
    const send = (): Promise<Response> => {
      arm();
      return opts.fetch(target, {
        method: req.method,
        headers,
        body: body ?? null,
        signal: upstreamAbort.signal,
        redirect: "manual",
      });
    };
    try {
      res = opts.retry.maxRetries > 0 && mayRetry(req.method, messages)
        ? await withRetries(send, opts.retry, upstreamAbort.signal, (reason, delayMs) => {
          disarm();
          logger.warn("retrying upstream request", { reason, delay_ms: delayMs, url: target.href });
        })
        : await send();
    } catch (e) {
      return upstreamFailed(
        e,
        "the client disconnected before the upstream answered",
        `upstream sent no response headers within ${opts.upstreamTimeoutMs} ms`,
        "upstream unreachable",
      );
    }

    const session = res.headers.get("mcp-session-id");
    // A session the server names, or confirms by answering within it, is one we can vouch for.
    if (session !== null && session !== exchange.session) opts.sessions.adopt(exchange, session);
    else if (session !== null && res.ok) exchange.vouch();
    const sent = req.headers.get("mcp-session-id");
    if (req.method === "DELETE" && res.ok && sent !== null) opts.sessions.end(sent);
    const answerHeaders = clientResponseHeaders(res.headers);

    if (res.body === null) {
      done();
      if (res.status >= 400) {
        exchange.undeliverable(
          ids,
          `upstream answered HTTP ${res.status} without a JSON-RPC response`,
        );
      }
      opts.beforeWrite();
      return new Response(null, {
        status: res.status,
        statusText: res.statusText,
        headers: answerHeaders,
      });
    }

    if ((res.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")) {
      answerHeaders.set("x-accel-buffering", "no");
      return new Response(
        streamEvents(res.body, exchange, ids, opts, {
          arm,
          disarm,
          upstreamAbort,
          req,
          onClientGone,
        }),
        { status: res.status, statusText: res.statusText, headers: answerHeaders },
      );
    }

    let read;
    try {
      read = await readDeclared(
        res,
        Number(res.headers.get("content-length") ?? "NaN"),
        opts.maxMessageBytes,
        arm,
      );
    } catch (e) {
      return upstreamFailed(
        e,
        "the client disconnected while the upstream answered",
        `upstream went quiet for ${opts.upstreamTimeoutMs} ms mid-response`,
        "upstream response failed",
      );
    }
    done();
    if (read.kind === "oversized") {
      const reply = repliesBody(exchange.rejectOversized("server", read));
      opts.beforeWrite();
      return failure(502, reply, `upstream response over ${opts.maxMessageBytes} bytes`);
    }
    let bytes = read.bytes;
    // A JSON body (typed so, or untyped and shaped so) is a message; text such as a legacy
    // server's "Accepted" is not, and an error status is recorded below as the request's end.
    const type = res.headers.get("content-type");
    if (bytes.length > 0 && (isJson(type) || (type === null && startsLikeJson(bytes)))) {
      const forward = exchange.pass("server", bytes).forward;
      if (forward !== null && forward !== bytes) bytes = ownBytes(forward);
    }
    if (res.status >= 400) {
      exchange.undeliverable(
        ids,
        `upstream answered HTTP ${res.status} without a JSON-RPC response`,
      );
    }
    opts.beforeWrite();
    return new Response(bytes, {
      status: res.status,
      statusText: res.statusText,
      headers: answerHeaders,
    });
  });

  return app;
}

interface StreamControl {
  arm: () => void;
  disarm: () => void;
  upstreamAbort: AbortController;
  req: Request;
  onClientGone: () => void;
}

/**
 * The upstream's SSE body, passed on event by event with each message recorded first. The idle
 * timeout restarts with every chunk; the stream itself may last as long as it likes.
 */
function streamEvents(
  body: ReadableStream<Uint8Array>,
  exchange: Exchange,
  ids: JsonRpcId[],
  opts: HttpProxyOptions,
  ctl: StreamControl,
): ReadableStream<Uint8Array> {
  // A stream whose events carry ids can be resumed (GET with Last-Event-ID), so answers it did
  // not bring may still come; one without ids cannot.
  let resumable = false;
  const tap = new SseTap(opts.maxMessageBytes + 65536, {
    onEvent(event) {
      if (event.id !== undefined && event.id !== "") resumable = true;
      if (event.event === "endpoint") {
        // A legacy HTTP+SSE server names the session its later POSTs will carry.
        const session = legacySession(event.data);
        if (session !== null) opts.sessions.adopt(exchange, session);
        return undefined;
      }
      // Events without a message (a resumption primer's empty data, comments, retry hints) pass.
      if (event.hasData && event.event === "message" && event.data.trim() !== "") {
        const content = encoder.encode(event.data);
        const forward = exchange.pass("server", content).forward;
        opts.beforeWrite();
        // Rewritten (a filtered tools/list): the same event, with the new data.
        if (forward !== null && forward !== content) return sseEvent(forward, event);
      }
      return undefined;
    },
    onOversized(size, head, tail) {
      const outs = exchange.rejectOversized("server", { size, head: afterData(head), tail });
      opts.beforeWrite();
      const events = sseEvents(outs);
      return events === null ? null : ownBytes(events);
    },
  });
  const reader = body.getReader();
  const out = tap.writable.getWriter();
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    ctl.disarm();
    ctl.req.signal.removeEventListener("abort", ctl.onClientGone);
  };
  (async () => {
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        ctl.arm();
        await out.write(value);
      }
      finish();
      if (!resumable) {
        const events = sseEvents(
          exchange.failPending(ids, "upstream ended the stream without answering"),
        );
        opts.beforeWrite();
        if (events) await out.write(ownBytes(events));
      }
      await out.close();
    } catch (e) {
      finish();
      const cause = ctl.upstreamAbort.signal.reason;
      if (cause instanceof ClientGone) {
        exchange.undeliverable(ids, "the client disconnected mid-stream");
        opts.beforeWrite();
        await out.abort(cause).catch(() => {});
        return;
      }
      const reason = cause instanceof UpstreamTimeout
        ? `upstream stream went quiet for ${opts.upstreamTimeoutMs} ms`
        : `upstream stream failed: ${(e as Error).message}`;
      opts.logger.warn("upstream stream ended with an error", { reason });
      // The requests of this POST that got no answer hear why before the stream closes.
      const events = sseEvents(exchange.failPending(ids, reason));
      opts.beforeWrite();
      try {
        if (events) await out.write(events);
        await out.close();
      } catch {
        // The client is gone too.
      }
    }
  })();
  return tap.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      cancel(reason) {
        // The client went away: stop the upstream request; the pump records what is left.
        ctl.upstreamAbort.abort(new ClientGone(String(reason)));
        reader.cancel(reason).catch(() => {});
      },
    }),
  );
}
