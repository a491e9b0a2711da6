/**
 * The HTTP reverse proxy as a Hono app: every request is forwarded to the upstream MCP endpoint,
 * and every JSON-RPC message in request bodies, JSON responses and SSE streams is recorded before
 * it is passed on.
 *
 * @module
 */
import type { ProxyStats } from "../../telemetry/proxy_stats.ts";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Exchange, Outbound } from "../../pipeline/exchange.ts";
import type { JsonRpcId, Message } from "../../jsonrpc/message.ts";
import { ownBytes, readCapped, readDeclared } from "../../streams/read_capped.ts";
import { type SseEvent, SseTap } from "../../streams/sse_tap.ts";
import { encodeSseEvent } from "../../streams/sse_encoder.ts";
import type { Logger } from "../../log.ts";
import { copyClientResponseHeaders, upstreamHeaderList, upstreamUrl } from "./headers.ts";
import type { SessionRegistry } from "./sessions.ts";
import type { UpstreamFetch } from "./upstream_tls.ts";
import { mayRetry, type RetryPolicy, withRetries } from "./retry.ts";
import { HostOriginCheck, rawTarget, type RequestInfo } from "./host_origin_guard.ts";
import { httpErrorHandler } from "./http_errors.ts";
import { type RequestTarget, TargetError } from "./request_target.ts";
import { type Expiring, IdleDeadlines } from "./idle_deadlines.ts";
import { TurnCommit } from "./turn_commit.ts";
import { repliesBody } from "./replies.ts";

/** What the proxy app needs. */
export interface HttpProxyOptions {
  upstream: URL;
  fetch: UpstreamFetch;
  sessions: SessionRegistry;
  logger: Logger;
  maxMessageBytes: number;
  /** Largest request body read (`proxy.http.max_request_body_bytes`, at most `maxMessageBytes`). */
  maxRequestBodyBytes: number;
  /** Bounds the wait for response headers and every idle gap of a body; never a whole stream. */
  upstreamTimeoutMs: number;
  /** Lower-case names of headers allowed upstream that are stripped by default. */
  forwardHeaders: ReadonlySet<string>;
  /** Host names (lower-case, no port) our listener answers to. */
  allowedHosts: ReadonlySet<string>;
  /** Origins allowed besides loopback ones. */
  allowedOrigins: ReadonlySet<string>;
  /**
   * Makes records written so far reach the log (throws when they cannot). Called once an
   * event-loop turn for every request of the turn, before any of their bytes go out.
   */
  beforeWrite: () => void;
  /** `proxy.retry.*`; `maxRetries: 0` turns retries off. */
  retry: RetryPolicy;
  /** Counts retries, for metrics. */
  stats?: ProxyStats;
}

/** What the listener hands each request: the client's address and the target as sent. */
export type ProxyBindings = RequestInfo;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
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

/**
 * A legacy HTTP+SSE server's `endpoint` event, read against the upstream URL: where its client is
 * to POST, and the session that names. An endpoint on another origin than the upstream's is null:
 * the client would take its messages there, past the proxy and the log.
 */
function legacyEndpoint(
  data: string,
  upstream: URL,
): { path: string; session: string | null; absolute: boolean } | null {
  let url: URL;
  try {
    url = new URL(data.trim(), upstream);
  } catch {
    return null;
  }
  if (url.origin !== upstream.origin) return null;
  return {
    path: url.pathname + url.search,
    session: url.searchParams.get("sessionId"),
    // Written with an authority (`http://h/…`, `//h/…`): the client would go there directly.
    absolute: /^\s*(?:[a-z][a-z0-9+.-]*:)?\/\//i.test(data),
  };
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
    encodeSseEvent({ event: "message", data: decoder.decode(o.bytes).trimEnd() })
  );
  return texts.length === 0 ? null : encoder.encode(texts.join(""));
}

/** One SSE `message` event carrying `json`, keeping the original event's id and retry hint. */
function sseEvent(json: Uint8Array, original: SseEvent): Uint8Array {
  return encoder.encode(encodeSseEvent({
    event: "message",
    data: decoder.decode(json),
    ...(original.id === undefined ? {} : { id: original.id }),
    ...(original.retry === undefined ? {} : { retry: original.retry }),
  }));
}

/** The JSON text of an SSE event's data, for id recovery: from the first `data:` on. */
function afterData(head: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(head.subarray(0, 256));
  const at = text.indexOf("data:");
  if (at === -1) return head;
  const skip = encoder.encode(text.slice(0, at + 5)).length;
  return head.subarray(head[skip] === 0x20 ? skip + 1 : skip);
}

/** A long value from a peer, cut for a log line. */
function shown(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * The upstream's `Location`, made to keep the client with the proxy: one on the upstream's origin
 * becomes its path (the client then asks the proxy, which asks the upstream); one elsewhere is
 * dropped, since following it would take the client's messages past the log. The proxy itself
 * never follows a redirect.
 */
function keepLocation(headers: Headers, upstream: URL, logger: Logger): void {
  const location = headers.get("location");
  if (location === null) return;
  let url: URL | null;
  try {
    url = new URL(location, upstream);
  } catch {
    url = null;
  }
  if (url !== null && url.origin === upstream.origin) {
    headers.set("location", url.pathname + url.search + url.hash);
    return;
  }
  headers.delete("location");
  logger.warn("dropped a redirect to another origin than the upstream's", {
    location: shown(location),
    upstream: upstream.origin,
  });
}

/** The records-first gate, the one deadline timer and the checks worked out once, per app. */
class HttpProxy {
  readonly opts: HttpProxyOptions;
  readonly logger: Logger;
  readonly deadlines: IdleDeadlines;
  #turns: TurnCommit;
  #checks: HostOriginCheck;
  /** The upstream URL of each request target seen (bounded, like the checks' memory). */
  #urls = new Map<string, string>();
  /** Whether a request may be retried at all (`proxy.retry.max_retries` above 0). */
  #retries: boolean;

  constructor(opts: HttpProxyOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.deadlines = new IdleDeadlines(opts.upstreamTimeoutMs);
    this.#turns = new TurnCommit(opts.beforeWrite);
    this.#checks = new HostOriginCheck(opts.allowedHosts, opts.allowedOrigins);
    this.#retries = opts.retry.maxRetries > 0;
  }

  /**
   * Records first: resolves with `out` once every record appended so far has reached the log, one
   * commit for all the requests of this event-loop turn. Every byte the proxy sends on, to the
   * upstream or the client, waits here. A log that cannot store them rejects, and nothing is sent.
   */
  async deliver<T>(out: T): Promise<T> {
    await this.#turns.wait();
    return out;
  }

  /** Commits what was recorded where no bytes follow (a client that left), without waiting. */
  commitSoon(): void {
    this.#turns.wait().catch(() => {});
  }

  /** The URL on the upstream of a request target, as text. */
  #upstreamUrl(raw: string, target: RequestTarget): string {
    const known = this.#urls.get(raw);
    if (known !== undefined) return known;
    let href: string;
    try {
      href = upstreamUrl(this.opts.upstream, target).href;
    } catch (e) {
      if (!(e instanceof TargetError)) throw e;
      throw new HTTPException(e.status, { message: `request target refused: ${e.message}` });
    }
    if (this.#urls.size >= 256) this.#urls.clear();
    this.#urls.set(raw, href);
    return href;
  }

  /** One request, from the checks to the answer. */
  async forward(req: Request, env: ProxyBindings | undefined): Promise<Response> {
    const { opts } = this;
    const raw = rawTarget(env, req.url);
    const sent = this.#checks.check(req.headers, raw);
    // Every record of this exchange names the URL it reached.
    const via = this.#upstreamUrl(raw, sent);
    const query = sent.query;
    // The legacy HTTP+SSE transport names its session in the query of its message endpoint.
    const exchange: Exchange = opts.sessions.forRequest(
      req.headers.get("mcp-session-id") ??
        (query.includes("sessionId") ? new URLSearchParams(query).get("sessionId") : null),
    );
    let ids: JsonRpcId[] = NO_IDS;
    let messages: Message[] = NO_MESSAGES;
    let body: Uint8Array<ArrayBuffer> | null = null;

    if (BODY_METHODS.has(req.method) && req.body !== null) {
      const declared = Number(req.headers.get("content-length") ?? "NaN");
      let read;
      try {
        // Over the limit by its own account: read only enough to find its id, never the rest.
        read = declared > opts.maxRequestBodyBytes
          ? await readCapped(req.body, ID_SEARCH_BYTES).then((head) => ({
            kind: "oversized" as const,
            size: declared,
            head: head.kind === "oversized" ? head.head : head.bytes,
            // Cut short, so its last bytes are not the message's end: no tail to misread.
            tail: new Uint8Array(0),
          }))
          : await readDeclared(req, declared, opts.maxRequestBodyBytes);
      } catch {
        // The client left, or stopped sending (proxy.http.read_timeout), before the body was
        // whole: there is no message to record, and no one to answer.
        throw new HTTPException(400, { message: "the request body did not arrive whole" });
      }
      if (read.kind === "oversized") {
        const outs = exchange.rejectOversized("client", read, via);
        opts.sessions.settle(exchange);
        const reply = repliesBody(outs);
        return this.deliver(
          failure(413, reply, `request body over ${opts.maxRequestBodyBytes} bytes`),
        );
      }
      body = read.bytes;
      if (body.length > 0) {
        const passage = exchange.pass("client", body, via);
        messages = passage.messages;
        if (passage.forward === null) {
          // Refused by a guardrail or the wire rules: the proxy answers, and the upstream never
          // sees it.
          opts.sessions.settle(exchange);
          const reply = repliesBody(passage.replies);
          if (reply === null) {
            // Nothing to answer (no id could be read): say why in plain words.
            const why = passage.violation?.reason ?? "refused";
            return this.deliver(failure(400, null, `request body not forwarded: ${why}`));
          }
          return this.deliver(
            new Response(reply, { status: 200, headers: { "content-type": "application/json" } }),
          );
        }
        ids = requestIds(messages);
      }
    }
    const upstream = new Forwarding(this, env?.closed ?? req.signal, exchange, via, ids);
    const init: RequestInit = {
      method: req.method,
      headers: upstreamHeaderList(req.headers, {
        forward: opts.forwardHeaders,
        clientAddress: env?.remote,
      }),
      body: await this.deliver(body),
      signal: upstream.abort.signal,
      // A redirect is passed to the client (its Location kept on the upstream), never followed.
      redirect: "manual",
    };
    let res: Response;
    try {
      res = this.#retries && mayRetry(req.method, messages)
        ? await withRetries(
          () => upstream.send(init),
          opts.retry,
          upstream.abort.signal,
          (reason, delayMs) => {
            upstream.disarm();
            opts.stats?.retried(reason);
            this.logger.warn("retrying upstream request", { reason, delay_ms: delayMs, url: via });
          },
        )
        : await upstream.send(init);
    } catch (e) {
      return upstream.failed(
        e,
        "the client disconnected before the upstream answered",
        `upstream sent no response headers within ${opts.upstreamTimeoutMs} ms`,
        "upstream unreachable",
      );
    }
    return this.#answer(req, res, upstream);
  }

  /** The upstream's answer, recorded and passed on. */
  async #answer(req: Request, res: Response, upstream: Forwarding): Promise<Response> {
    const { opts } = this;
    const { exchange, ids, via } = upstream;
    const session = res.headers.get("mcp-session-id");
    // A session the server names, or confirms by answering within it, is one we can vouch for.
    if (session !== null && session !== exchange.session) opts.sessions.adopt(exchange, session);
    else if (session !== null && res.ok) exchange.vouch();
    const sent = req.headers.get("mcp-session-id");
    if (req.method === "DELETE" && res.ok && sent !== null) opts.sessions.end(sent);
    // An answer that is not a success and carries no JSON-RPC answer ends the requests it leaves.
    const unanswered = res.status >= 300
      ? `upstream answered HTTP ${res.status} without a JSON-RPC response`
      : null;

    if (res.body === null) {
      upstream.done();
      if (unanswered !== null) exchange.undeliverable(ids, unanswered, via);
      opts.sessions.settle(exchange);
      return this.deliver(this.#passOn(res, null));
    }

    if ((res.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")) {
      const answer = this.#passOn(res, streamEvents(res.body, this, upstream));
      answer.headers.set("x-accel-buffering", "no");
      return answer;
    }

    let read;
    try {
      read = await readDeclared(
        res,
        Number(res.headers.get("content-length") ?? "NaN"),
        opts.maxMessageBytes,
        (): void => upstream.arm(),
      );
    } catch (e) {
      return upstream.failed(
        e,
        "the client disconnected while the upstream answered",
        `upstream went quiet for ${opts.upstreamTimeoutMs} ms mid-response`,
        "upstream response failed",
      );
    }
    upstream.done();
    if (read.kind === "oversized") {
      const reply = repliesBody(exchange.rejectOversized("server", read, via));
      opts.sessions.settle(exchange);
      return this.deliver(
        failure(502, reply, `upstream response over ${opts.maxMessageBytes} bytes`),
      );
    }
    let bytes = read.bytes;
    // A JSON body (typed so, or untyped and shaped so) is a message; text such as a legacy
    // server's "Accepted" is not, and an error status is recorded below as the request's end.
    const type = res.headers.get("content-type");
    if (bytes.length > 0 && (isJson(type) || (type === null && startsLikeJson(bytes)))) {
      const forward = exchange.pass("server", bytes, via).forward;
      if (forward === null && ids.length === 0) {
        // Refused unread, on the POST of a notification or an answer, which nobody awaits: the
        // upstream took what was sent, and its body, which no one reads, goes no further.
        opts.sessions.settle(exchange);
        const answer = new Response(null, { status: 202 });
        this.#headersInto(res, answer.headers);
        answer.headers.delete("content-type");
        return this.deliver(answer);
      }
      if (forward === null) {
        // Refused unread, and no request of this client's to answer in its place: nothing of it
        // reaches the client; what the client still waits for fails as from a broken upstream.
        const reply = repliesBody(
          exchange.failPending(ids, "the upstream's answer was refused: not safe to forward", via),
        );
        opts.sessions.settle(exchange);
        return this.deliver(failure(502, reply, "upstream answer refused: not safe to forward"));
      }
      if (forward !== bytes) bytes = ownBytes(forward);
    }
    if (unanswered !== null) exchange.undeliverable(ids, unanswered, via);
    opts.sessions.settle(exchange);
    const answer = this.#passOn(res, bytes);
    answer.headers.set("content-length", String(bytes.length));
    return this.deliver(answer);
  }

  /** The client's answer: the upstream's status, its headers cleaned once, in place, and `body`. */
  #passOn(res: Response, body: BodyInit | null): Response {
    const answer = new Response(body, { status: res.status, statusText: res.statusText });
    this.#headersInto(res, answer.headers);
    return answer;
  }

  /** The upstream's headers cleaned for the client, a redirect kept on the proxy. */
  #headersInto(res: Response, headers: Headers): void {
    copyClientResponseHeaders(res.headers, headers);
    if (res.status >= 300 && res.status < 400) {
      keepLocation(headers, this.opts.upstream, this.logger);
    }
  }
}

const NO_IDS: JsonRpcId[] = [];
const NO_MESSAGES: Message[] = [];

/**
 * One upstream request: its abort (the client leaving, or the upstream going quiet for longer than
 * the timeout — waiting for headers, or between body chunks), its idle deadline on the app's one
 * timer, and what it waits for. It listens for the client leaving itself (`handleEvent`), so the
 * hot path makes no closures for it.
 */
class Forwarding implements Expiring {
  readonly abort = new AbortController();
  expiresAt = 0;
  #proxy: HttpProxy;
  /** Aborts when the client leaves. */
  #closed: AbortSignal;
  readonly exchange: Exchange;
  readonly via: string;
  readonly ids: JsonRpcId[];
  #finished = false;

  constructor(
    proxy: HttpProxy,
    closed: AbortSignal,
    exchange: Exchange,
    via: string,
    ids: JsonRpcId[],
  ) {
    this.#proxy = proxy;
    this.#closed = closed;
    this.exchange = exchange;
    this.via = via;
    this.ids = ids;
    closed.addEventListener("abort", this, { once: true });
  }

  /** The client left: the upstream request goes too. */
  handleEvent(): void {
    this.abort.abort(new ClientGone());
  }

  /** The upstream was quiet for the whole timeout. */
  expire(): void {
    this.abort.abort(new UpstreamTimeout());
  }

  /** Restarts the idle deadline (a body chunk arrived). */
  arm(): void {
    this.#proxy.deadlines.arm(this);
  }

  /** Stops the idle deadline (between retries: the backoff is not the upstream's silence). */
  disarm(): void {
    this.#proxy.deadlines.disarm(this);
  }

  send(init: RequestInit): Promise<Response> {
    this.arm();
    return this.#proxy.opts.fetch(this.via, init);
  }

  /** Nothing more is awaited of the upstream: no deadline, no listening for the client. */
  done(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#proxy.deadlines.disarm(this);
    this.#closed.removeEventListener("abort", this);
  }

  /** Why the upstream request was aborted, if it was. */
  get cause(): unknown {
    return this.abort.signal.reason;
  }

  /** The client left (or the proxy cut the stream for it). */
  clientGone(reason?: string): void {
    this.abort.abort(new ClientGone(reason));
  }

  /**
   * The upstream exchange failed: a client that left gets its requests recorded as undelivered;
   * otherwise the client gets a 502 with a -32603 answer for each request, recorded.
   */
  failed(e: unknown, gone: string, quiet: string, failed: string): Promise<Response> {
    this.done();
    const proxy = this.#proxy;
    const { sessions } = proxy.opts;
    const cause = this.cause;
    if (cause instanceof ClientGone) {
      this.exchange.undeliverable(this.ids, gone, this.via);
      sessions.settle(this.exchange);
      return proxy.deliver(new Response(null, { status: 499 }));
    }
    const reason = cause instanceof UpstreamTimeout
      ? quiet
      : `${failed}: ${e instanceof Error ? e.message : String(e)}`;
    proxy.logger.warn("upstream request failed", { url: this.via, reason });
    const reply = repliesBody(this.exchange.failPending(this.ids, reason, this.via));
    sessions.settle(this.exchange);
    return proxy.deliver(failure(502, reply, reason));
  }
}

/** Builds the app: one handler for every request, which checks, records and forwards it. */
export function createProxyApp(opts: HttpProxyOptions): Hono<{ Bindings: ProxyBindings }> {
  const app = new Hono<{ Bindings: ProxyBindings }>();
  app.onError(httpErrorHandler(opts.logger));
  const proxy = new HttpProxy(opts);
  app.all("*", function forward(c) {
    return proxy.forward(c.req.raw, c.env);
  });
  return app;
}

/**
 * The upstream's SSE body, passed on event by event with each message recorded first. The idle
 * timeout restarts with every chunk; the stream itself may last as long as it likes.
 */
function streamEvents(
  body: ReadableStream<Uint8Array>,
  proxy: HttpProxy,
  upstream: Forwarding,
): ReadableStream<Uint8Array> {
  const { opts } = proxy;
  const { exchange, ids, via } = upstream;
  // A stream whose events carry ids can be resumed (GET with Last-Event-ID), so answers it did
  // not bring may still come; one without ids cannot.
  let resumable = false;
  const tap = new SseTap(opts.maxMessageBytes + 65536, {
    onEvent(event) {
      if (event.id !== undefined && event.id !== "") resumable = true;
      if (event.event === "endpoint") {
        // A legacy HTTP+SSE server names where its client is to POST, and so the session.
        const endpoint = legacyEndpoint(event.data, opts.upstream);
        if (endpoint === null) {
          opts.logger.warn("dropped a legacy endpoint event naming another origin", {
            endpoint: shown(event.data),
            upstream: opts.upstream.origin,
          });
          return null;
        }
        if (endpoint.session !== null) opts.sessions.adopt(exchange, endpoint.session);
        if (!endpoint.absolute) return undefined;
        // Named with its host: the client would POST there, past the proxy. Its path keeps the
        // client with us.
        return encoder.encode(encodeSseEvent({
          event: "endpoint",
          data: endpoint.path,
          ...(event.id === undefined ? {} : { id: event.id }),
          ...(event.retry === undefined ? {} : { retry: event.retry }),
        }));
      }
      // Events without a message (a resumption primer's empty data, comments, retry hints) pass.
      // What is recorded here is stored before the event leaves: the gate below waits for it.
      if (event.hasData && event.event === "message" && event.data.trim() !== "") {
        const content = event.invalidData ?? encoder.encode(event.data);
        const forward = exchange.pass("server", content, via).forward;
        // Refused unread, with no waiting request to answer in its place: the event is dropped,
        // its record committed all the same.
        if (forward === null) {
          proxy.commitSoon();
          return null;
        }
        // Rewritten (a filtered tools/list, a refused answer): the same event, with the new data.
        if (forward !== content) return sseEvent(forward, event);
      }
      return undefined;
    },
    onOversized(size, head, tail) {
      const outs = exchange.rejectOversized("server", { size, head: afterData(head), tail }, via);
      const events = sseEvents(outs);
      // Recorded, if nothing goes out for it.
      if (events === null) proxy.commitSoon();
      return events === null ? null : ownBytes(events);
    },
  });
  const reader = body.getReader();
  const out = tap.writable.getWriter();
  // The abort ends the upstream body and whatever the pump waits on itself: a fetch body does not
  // always end its read, nor its connection, when its request is aborted between chunks, and a
  // stream gone quiet would then be waited on (and held open upstream) for ever.
  const aborted = new Promise<never>((_, reject) => {
    const signal = upstream.abort.signal;
    const end = (): void => {
      reject(signal.reason);
      reader.cancel(signal.reason).catch(() => {});
    };
    if (signal.aborted) end();
    else signal.addEventListener("abort", end, { once: true });
  });
  aborted.catch(() => {});
  (async () => {
    try {
      while (true) {
        const { value, done } = await Promise.race([reader.read(), aborted]);
        // A body ended by the abort's cancel is the abort's doing, not the upstream's end.
        if (done && upstream.abort.signal.aborted) throw upstream.cause;
        if (done) break;
        upstream.arm();
        await Promise.race([out.write(value), aborted]);
      }
      upstream.done();
      if (!resumable) {
        const events = sseEvents(
          exchange.failPending(ids, "upstream ended the stream without answering", via),
        );
        if (events) await out.write(ownBytes(events));
      }
      await out.close();
    } catch (e) {
      upstream.done();
      const cause = upstream.cause;
      if (cause instanceof ClientGone) {
        exchange.undeliverable(ids, "the client disconnected mid-stream", via);
        // No bytes follow these records: they are committed all the same.
        proxy.commitSoon();
        await out.abort(cause).catch(() => {});
        return;
      }
      const reason = cause instanceof UpstreamTimeout
        ? `upstream stream went quiet for ${opts.upstreamTimeoutMs} ms`
        : `upstream stream failed: ${e instanceof Error ? e.message : String(e)}`;
      opts.logger.warn("upstream stream ended with an error", { url: via, reason });
      // Whatever ended the stream (the client's side failing, or the log), the upstream body goes.
      reader.cancel(e).catch(() => {});
      // The requests of this POST that got no answer hear why before the stream closes.
      const events = sseEvents(exchange.failPending(ids, reason, via));
      proxy.commitSoon();
      try {
        if (events) await out.write(events);
        await out.close();
      } catch {
        // The client is gone too.
      }
    } finally {
      opts.sessions.settle(exchange);
    }
  })();
  return tap.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      // Records first: each chunk leaves once what was recorded before it is stored.
      async transform(chunk, controller) {
        controller.enqueue(await proxy.deliver(chunk));
      },
      cancel(reason) {
        // The client went away: stop the upstream request; the pump records what is left.
        upstream.clientGone(String(reason));
        reader.cancel(reason).catch(() => {});
      },
    }),
  );
}
