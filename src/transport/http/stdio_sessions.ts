/**
 * The HTTP-to-stdio bridge: a stdio MCP server served over Streamable HTTP, one upstream process
 * per session. Every message is recorded as it crosses, exactly as on the other transports.
 *
 * Routing of what the server writes: an answer goes to the POST stream that carries its request;
 * a message tied to a request by its progress token goes to that request's stream; anything else
 * goes to the session's GET stream, or, without one, to the newest open POST stream, or waits
 * (a bounded queue) for the next GET stream.
 *
 * @module
 */
import type { ProxyStats } from "../../telemetry/proxy_stats.ts";
import { Hono } from "hono";
import { isJsonObject, type JsonValue } from "../../jsonrpc/json.ts";
import { classifyLine, idKey, type JsonRpcId, type Message } from "../../jsonrpc/message.ts";
import { toLine, type Violation } from "../../jsonrpc/framing.ts";
import { ErrorCode, ErrorMessage } from "../../jsonrpc/errors.ts";
import type { Exchange, Outbound, Passage } from "../../pipeline/exchange.ts";
import { BatchWriter } from "../../streams/batch_writer.ts";
import { LineSplitter } from "../../streams/line_splitter.ts";
import { ownBytes, readCapped } from "../../streams/read_capped.ts";
import { encodeSseEvent } from "../../streams/sse_encoder.ts";
import type { Logger } from "../../log.ts";
import { repliesBody } from "./replies.ts";
import { awaitExitOrEnd, reapGroup, SpawnError, spawnUpstream } from "../upstream_process.ts";
import type { ProxyBindings } from "./proxy_app.ts";
import { hostOriginGuard } from "./host_origin_guard.ts";
import { TurnCommit } from "./turn_commit.ts";

/** What the bridge needs. */
export interface StdioSessionsOptions {
  argv: string[];
  env: Record<string, string>;
  newExchange: (session: string) => Exchange;
  newSessionId: () => string;
  /**
   * Stores the records appended so far; throws when it cannot. Called once an event-loop turn for
   * everything of that turn, before any of its bytes go out.
   */
  beforeWrite: () => void;
  maxMessageBytes: number;
  maxSessions: number;
  /** A session with no request for this long is ended. */
  idleMs: number;
  graceMs: number;
  logger: Logger;
  /** Counts upstream processes started and ended, and reads the sessions open, for metrics. */
  stats?: ProxyStats;
  allowedHosts: ReadonlySet<string>;
  allowedOrigins: ReadonlySet<string>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_QUEUED = 1000;
const NO_MESSAGES: Message[] = [];

/**
 * The bridge's one way out for bytes, records first: `deliver` resolves with what it is given once
 * every record appended so far is stored; `commitSoon` stores records that no bytes follow.
 */
interface RecordsFirst {
  deliver<T>(out: T): Promise<T>;
  commitSoon(): void;
}

/** What one frame of the server's sends on, once the records of its read are stored. */
interface Sending {
  replies: readonly Outbound[];
  forward: Uint8Array | null;
  messages: Message[];
}

/** One message as one SSE `message` event, written by the one encoder the proxy has. */
function sseEvent(line: Uint8Array): Uint8Array {
  return encoder.encode(encodeSseEvent({ event: "message", data: decoder.decode(line) }));
}

/** The messages of one of the proxy's own answers, to route it like the server's. */
function ownMessages(out: Outbound): Message[] {
  return classifyLine(out.bytes.subarray(0, out.bytes.length - 1)).messages;
}

/** A refused body that earns no JSON-RPC answer (no id could be read): why, for the client. */
function refusedBody(violation: Violation): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify({
    jsonrpc: "2.0",
    id: null,
    error: {
      code: ErrorCode.InvalidRequest,
      message: ErrorMessage.InvalidRequest,
      data: { violation: violation.code, reason: `refused unread: ${violation.reason}` },
    },
  }));
}

function progressToken(params: JsonValue | undefined): string | undefined {
  if (!isJsonObject(params)) return undefined;
  const meta = params._meta;
  const token = isJsonObject(meta) ? meta.progressToken : params.progressToken;
  return typeof token === "string" || typeof token === "number" ? String(token) : undefined;
}

/** An SSE response body the session writes events into. */
class EventStream {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  /** Requests whose answers this stream carries, by id key; it closes when all are answered. */
  readonly awaiting = new Map<string, JsonRpcId>();
  /** Progress tokens of those requests. */
  readonly tokens = new Set<string>();

  constructor(onCancel: () => void) {
    this.body = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      cancel: () => {
        this.#closed = true;
        onCancel();
      },
    });
  }
  get closed(): boolean {
    return this.#closed;
  }
  send(bytes: Uint8Array): void {
    if (!this.#closed) this.#controller.enqueue(bytes);
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#controller.close();
  }
}

/** One upstream process and its HTTP streams. */
class StdioSession {
  readonly id: string;
  readonly exchange: Exchange;
  readonly child: Deno.ChildProcess;
  /** The server's stdin; only bytes whose records are stored are pushed (see `RecordsFirst`). */
  readonly #toServer: BatchWriter;
  readonly #opts: StdioSessionsOptions;
  readonly #records: RecordsFirst;
  readonly #posts: EventStream[] = [];
  #get: EventStream | undefined;
  #queue: Uint8Array[] = [];
  lastActive = Date.now();
  readonly ended: Promise<void>;

  constructor(
    id: string,
    opts: StdioSessionsOptions,
    records: RecordsFirst,
    onEnd: (s: StdioSession) => void,
  ) {
    this.id = id;
    this.#opts = opts;
    this.#records = records;
    this.exchange = opts.newExchange(id);
    this.child = spawnUpstream(opts.argv, opts.env, {
      logger: opts.logger,
      graceMs: opts.graceMs,
      ...(opts.stats === undefined ? {} : { stats: opts.stats }),
    });
    this.#toServer = new BatchWriter(this.child.stdin);
    opts.logger.info("session upstream started", { session: id, pid: this.child.pid });
    this.ended = this.#pump().finally(() => onEnd(this));
  }

  /**
   * Opens the stream for the answers to the client's requests in `messages`, if any. Made as soon
   * as they are recorded, so that whatever answers them (the server, or the proxy when the server
   * ends) finds it.
   */
  expect(messages: Message[]): EventStream | undefined {
    let stream: EventStream | undefined;
    for (const m of messages) {
      if (m.kind !== "request") continue;
      stream ??= new EventStream(() => this.#dropPost(stream!));
      stream.awaiting.set(idKey(m.id), m.id);
      const token = progressToken(m.params);
      if (token !== undefined) stream.tokens.add(token);
    }
    if (stream !== undefined) this.#posts.push(stream);
    return stream;
  }

  /** Forgets a stream whose request was never sent (its records could not be stored). */
  unexpect(stream: EventStream): void {
    const at = this.#posts.indexOf(stream);
    if (at !== -1) this.#posts.splice(at, 1);
  }

  /** Writes the client's message to the upstream as one line. Its records are stored. */
  write(line: Uint8Array): void {
    this.lastActive = Date.now();
    const out = new Uint8Array(line.length + 1);
    out.set(line);
    out[line.length] = 0x0a;
    this.#toServer.push(out)?.catch(() => {});
  }

  /**
   * Delivers the proxy's own answers, whose records are stored: to the upstream's stdin, or to
   * the client on the stream that awaits them (the answer to a request routes like the server's
   * answer would).
   */
  answer(outs: readonly Outbound[]): void {
    for (const out of outs) {
      if (out.to === "server") this.#toServer.push(out.bytes)?.catch(() => {});
      else this.#route(out.bytes.subarray(0, out.bytes.length - 1), ownMessages(out));
    }
  }

  /** Opens the session's own stream; queued messages go out first. */
  openGet(): EventStream | undefined {
    if (this.#get !== undefined && !this.#get.closed) return undefined;
    const stream = new EventStream(() => {
      if (this.#get === stream) this.#get = undefined;
    });
    this.#get = stream;
    for (const bytes of this.#queue) stream.send(bytes);
    this.#queue = [];
    return stream;
  }

  /** Ends the upstream: stdin closed, then signals if it lingers. */
  async end(): Promise<void> {
    await this.#toServer.close();
    await awaitExitOrEnd(this.child, this.#opts.graceMs, this.#opts.logger);
    await this.ended;
  }

  #dropPost(stream: EventStream): void {
    const at = this.#posts.indexOf(stream);
    if (at !== -1) this.#posts.splice(at, 1);
    if (stream.awaiting.size > 0) {
      this.exchange.undeliverable(
        [...stream.awaiting.values()],
        "the client closed the stream before the answer",
      );
      // No bytes follow these records: they are committed all the same.
      this.#records.commitSoon();
    }
  }

  /** Sends a message whose records are stored to the client it is for (see the module doc). */
  #route(line: Uint8Array, messages: Message[]): void {
    const event = sseEvent(line);
    for (const m of messages) {
      if (m.kind === "response" || m.kind === "error") {
        const key = idKey(m.id);
        const stream = this.#posts.find((s) => s.awaiting.has(key));
        if (stream) {
          stream.send(event);
          stream.awaiting.delete(key);
          if (stream.awaiting.size === 0) {
            stream.close();
            this.#posts.splice(this.#posts.indexOf(stream), 1);
          }
          return;
        }
      } else if (m.kind === "notification" || m.kind === "request") {
        const token = progressToken(m.params);
        const stream = token === undefined
          ? undefined
          : this.#posts.find((s) => s.tokens.has(token));
        if (stream) return stream.send(event);
      }
    }
    if (this.#get !== undefined && !this.#get.closed) return this.#get.send(event);
    const newest = this.#posts.at(-1);
    if (newest) return newest.send(event);
    if (this.#queue.length < MAX_QUEUED) this.#queue.push(event);
    else {this.#opts.logger.warn(
        "no stream to deliver a server message to; dropped (it is recorded)",
      );}
  }

  async #pump(): Promise<void> {
    const reader = this.child.stdout.pipeThrough(new LineSplitter(this.#opts.maxMessageBytes))
      .getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        const sendings: Sending[] = [];
        for (const frame of value) {
          if (frame.kind === "oversized") {
            const replies = this.exchange.rejectOversized("server", frame);
            sendings.push({ replies, forward: null, messages: NO_MESSAGES });
            continue;
          }
          const line = frame.bytes.subarray(0, frame.contentLength);
          const { replies, forward, violation, messages } = this.exchange.passLine(
            "server",
            line,
            frame.terminated,
          );
          sendings.push({
            replies,
            forward,
            // A refused answer goes on as the proxy's error for the request it answered.
            messages: forward === null || violation === null
              ? messages
              : classifyLine(forward).messages,
          });
        }
        if (sendings.length === 0) continue;
        // Records first: what this read recorded is stored before any of it goes on.
        for (const { replies, forward, messages } of await this.#records.deliver(sendings)) {
          this.answer(replies);
          if (forward !== null) this.#route(forward, messages);
        }
      }
    } catch (e) {
      this.#opts.logger.warn("reading the session's upstream failed", {
        session: this.id,
        error: String(e),
      });
    }
    const status = await this.child.status;
    await reapGroup(this.child);
    const reason = status.signal !== null
      ? `upstream ended by ${status.signal}`
      : `upstream exited with code ${status.code}`;
    this.#opts.logger.info("session upstream ended", { session: this.id, reason });
    try {
      this.answer(await this.#records.deliver(this.exchange.upstreamGone(reason)));
    } catch (e) {
      // Their records cannot be stored, so the proxy's answers are not sent: the streams just end.
      this.#opts.logger.error("cannot record the answers to the session's waiting requests", {
        session: this.id,
        error: String(e),
      });
    }
    for (const s of this.#posts) s.close();
    this.#get?.close();
  }
}

/** The sessions of the bridge, and the Hono app that serves them. */
export class StdioSessions implements RecordsFirst {
  #opts: StdioSessionsOptions;
  #sessions = new Map<string, StdioSession>();
  #reaper: ReturnType<typeof setInterval>;
  #turns: TurnCommit;

  constructor(opts: StdioSessionsOptions) {
    this.#opts = opts;
    this.#turns = new TurnCommit(opts.beforeWrite);
    this.#reaper = setInterval(() => this.#reap(), Math.max(1000, Math.min(opts.idleMs, 60_000)));
    // Web timers are numbers in Deno; the Node types in scope widen the type.
    Deno.unrefTimer(Number(this.#reaper));
  }

  /**
   * Records first: resolves with `out` once every record appended so far is stored, one commit
   * for everything of this event-loop turn, every session's. Every byte the bridge sends on, to a
   * server's stdin or to a client, waits here; a log that cannot store them rejects, and nothing
   * of the turn is sent (whether a later turn may try again is the log's to say).
   */
  async deliver<T>(out: T): Promise<T> {
    await this.#turns.wait();
    return out;
  }

  /** Commits what was recorded where no bytes follow (a client that left), without waiting. */
  commitSoon(): void {
    this.#turns.wait().catch(() => {});
  }

  /** Sessions open now. */
  get open(): number {
    return this.#sessions.size;
  }

  /** Every session's exchange, for the stop record. */
  exchanges(): Exchange[] {
    return [...this.#sessions.values()].map((s) => s.exchange);
  }

  /** Ends every session and its upstream. */
  async close(): Promise<void> {
    clearInterval(this.#reaper);
    await Promise.all([...this.#sessions.values()].map((s) => s.end()));
  }

  #reap(): void {
    const now = Date.now();
    for (const s of this.#sessions.values()) {
      if (now - s.lastActive > this.#opts.idleMs) {
        this.#opts.logger.info("ending idle session", { session: s.id });
        s.end().catch(() => {});
      }
    }
  }

  /**
   * The answer to a POST the proxy did not send on: the upstream never sees it. A request gets the
   * proxy's JSON-RPC answer (refused by a guardrail, or unreadable with its id found) with 200; an
   * unreadable body without an id gets 400 saying why. What is owed to the upstream (the client
   * answered one of its requests unreadably: the proxy's error for it) goes to its stdin. Sent
   * once the records are stored; a log that cannot store them throws (500).
   */
  async #refused(
    passage: Passage,
    session: StdioSession | null,
    headers = new Headers(),
  ): Promise<Response> {
    await this.deliver(passage);
    if (session !== null) {
      if (passage.forward !== null) session.write(passage.forward);
      session.answer(passage.replies.filter((out) => out.to === "server"));
    }
    headers.set("content-type", "application/json");
    const body = repliesBody(passage.replies);
    if (body === null && passage.violation !== null) {
      return new Response(refusedBody(passage.violation), { status: 400, headers });
    }
    return new Response(body, { status: 200, headers });
  }

  /** The app: POST, GET and DELETE on any path. */
  app(): Hono<{ Bindings: ProxyBindings }> {
    const app = new Hono<{ Bindings: ProxyBindings }>();
    const o = this.#opts;
    app.use("*", hostOriginGuard(o.allowedHosts, o.allowedOrigins));
    const sse = {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    };
    const jsonError = (status: number, message: string) =>
      new Response(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message } }), {
        status,
        headers: { "content-type": "application/json" },
      });

    app.post("*", async (c) => {
      const req = c.req.raw;
      if (req.body === null) return jsonError(400, "Bad Request: empty body");
      const read = await readCapped(req.body, o.maxMessageBytes);
      const sessionId = req.headers.get("mcp-session-id");
      let session = sessionId === null ? undefined : this.#sessions.get(sessionId);
      if (sessionId !== null && session === undefined) return jsonError(404, "Session not found");
      if (read.kind === "oversized") {
        // Recorded on the session when there is one; a stray oversized body still has a record.
        const exchange = session?.exchange ?? o.newExchange("");
        const outs = exchange.rejectOversized("client", read);
        const reply = outs.find((x) => x.to === "client");
        return this.deliver(
          new Response(reply ? ownBytes(reply.bytes) : null, {
            status: 413,
            headers: { "content-type": "application/json" },
          }),
        );
      }
      // One body, one stdio line: the line rules then hold for what the upstream reads.
      const line = toLine(read.bytes);
      if (session === undefined) {
        // Only an initialize starts a session. What it is must be known before a session (and its
        // exchange) exists; a body that is no message is recorded on a stray exchange.
        const stray = o.newExchange("");
        const reading = stray.inspect(line, "line");
        if (reading.kind === "violation") {
          return this.#refused(stray.passLine("client", line), null);
        }
        if (!reading.messages.some((m) => m.kind === "request" && m.method === "initialize")) {
          return jsonError(400, "Bad Request: no valid session id; send initialize first");
        }
        if (this.#sessions.size >= o.maxSessions) return jsonError(503, "too many sessions");
        try {
          session = new StdioSession(
            o.newSessionId(),
            o,
            this,
            (s) => this.#sessions.delete(s.id),
          );
        } catch (e) {
          if (e instanceof SpawnError) {
            o.logger.error(e.message);
            return jsonError(502, "upstream could not be started");
          }
          throw e;
        }
        this.#sessions.set(session.id, session);
      }
      const passage = session.exchange.passLine("client", line);
      const initialize = passage.messages.some((m) =>
        m.kind === "request" && m.method === "initialize"
      );
      const headers = new Headers(initialize ? { "mcp-session-id": session.id } : {});
      if (passage.violation !== null || passage.forward === null) {
        // A refused answer to one of the server's requests: the server gets the proxy's error.
        return this.#refused(passage, session, headers);
      }
      const stream = session.expect(passage.messages);
      try {
        session.write(await this.deliver(passage.forward));
      } catch (e) {
        // Not recorded, so not sent: nothing will answer on this stream.
        if (stream !== undefined) session.unexpect(stream);
        throw e;
      }
      if (stream === undefined) return new Response(null, { status: 202, headers });
      for (const [k, v] of Object.entries(sse)) headers.set(k, v);
      return new Response(stream.body, { status: 200, headers });
    });

    app.get("*", (c) => {
      const sessionId = c.req.header("mcp-session-id");
      const session = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
      if (session === undefined) {
        return jsonError(sessionId === undefined ? 400 : 404, "Session not found");
      }
      session.lastActive = Date.now();
      const stream = session.openGet();
      if (stream === undefined) {
        return jsonError(409, "Conflict: a stream is already open for this session");
      }
      return new Response(stream.body, { status: 200, headers: sse });
    });

    app.delete("*", async (c) => {
      const sessionId = c.req.header("mcp-session-id");
      const session = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
      if (session === undefined) return jsonError(404, "Session not found");
      await session.end();
      return new Response(null, { status: 200 });
    });

    app.all(
      "*",
      () => new Response(null, { status: 405, headers: { allow: "GET, POST, DELETE" } }),
    );
    return app;
  }
}
