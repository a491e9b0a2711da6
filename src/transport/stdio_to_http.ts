/**
 * The stdio-to-HTTP bridge: a stdio-only client (our stdin and stdout) reaches a remote
 * Streamable HTTP server. Each line the client writes is recorded and POSTed; each message the
 * server answers with, as JSON or as SSE events, is recorded and written to the client as a line.
 *
 * @module
 */
import type { Exchange, Outbound, Passage, Side } from "../pipeline/exchange.ts";
import type { JsonRpcId, Message } from "../jsonrpc/message.ts";
import { isJsonObject, parseLossless } from "../jsonrpc/json.ts";
import { toLine } from "../jsonrpc/framing.ts";
import { BatchWriter } from "../streams/batch_writer.ts";
import { LineSplitter } from "../streams/line_splitter.ts";
import { ownBytes, readCapped } from "../streams/read_capped.ts";
import { SseTap } from "../streams/sse_tap.ts";
import type { Logger } from "../log.ts";
import type { UpstreamFetch } from "./http/upstream_tls.ts";

/** What the bridge needs. */
export interface StdioToHttpOptions {
  upstream: URL;
  fetch: UpstreamFetch;
  client: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
  exchange: Exchange;
  /** Stores the records appended so far; throws when it cannot. Called before any byte goes on. */
  beforeWrite: () => void;
  maxMessageBytes: number;
  upstreamTimeoutMs: number;
  logger: Logger;
  signal: AbortSignal;
}

/** How the bridge ended. */
export interface BridgeOutcome {
  exitCode: 0 | 1;
  reason: string;
}

const encoder = new TextEncoder();
const LF = 0x0a;

function withNewline(line: Uint8Array): Uint8Array {
  const out = new Uint8Array(line.length + 1);
  out.set(line);
  out[line.length] = LF;
  return out;
}

function requestIds(messages: Message[]): JsonRpcId[] {
  return messages.flatMap((m) => m.kind === "request" ? [m.id] : []);
}

const NO_MESSAGES: Message[] = [];

/** Runs the bridge until the client closes its input or a signal arrives. */
export async function runStdioToHttp(opts: StdioToHttpOptions): Promise<BridgeOutcome> {
  const { exchange, logger } = opts;
  /** Stores every record appended so far; throws the log's error when it cannot. */
  const commit = opts.beforeWrite;
  const toClient = new BatchWriter(opts.client.writable, { beforeWrite: commit });
  let session: string | null = null;
  let protocolVersion: string | null = null;
  let getStream: Promise<void> | undefined;
  const inFlight = new Set<Promise<void>>();
  const stop = new AbortController();
  const aborted = AbortSignal.any([opts.signal, stop.signal]);

  /**
   * Records first: every message the bridge sends on leaves through here, once what was recorded
   * before it is stored. To the client, a line (its newline included) on the batched writer, which
   * stores the records before each batch it writes; to the server, a POST of one message (no
   * newline), sent after the records are stored here. Throws the log's error when they cannot be
   * (nothing is sent); a client writer that has failed throws too.
   */
  const send = (to: Side, bytes: Uint8Array, messages: Message[] = NO_MESSAGES): void => {
    if (to === "client") {
      toClient.push(bytes)?.catch(() => {});
      return;
    }
    commit();
    const p = post(bytes, messages).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  /** Sends the proxy's own answers: to the client as lines, to the server as POSTs. */
  const answer = (replies: readonly Outbound[]): void => {
    for (const out of replies) {
      send(out.to, out.to === "client" ? out.bytes : out.bytes.subarray(0, out.bytes.length - 1));
    }
  };
  /** A message from the server, written to the client as one line, or refused. */
  const deliver = (content: Uint8Array): void => {
    const p: Passage = exchange.passLine("server", toLine(content));
    answer(p.replies);
    if (p.forward !== null) send("client", withNewline(p.forward));
  };
  /** The client's share of the proxy's answers to an oversized message (none is posted). */
  const refuseOversized = (outs: readonly Outbound[]): void => {
    for (const out of outs) if (out.to === "client") send("client", out.bytes);
  };
  const failAll = (ids: JsonRpcId[], reason: string): void => {
    answer(exchange.failPending(ids, reason));
  };

  const headersFor = (accept: string): Headers => {
    const h = new Headers({ accept });
    if (session !== null) h.set("mcp-session-id", session);
    if (protocolVersion !== null) h.set("mcp-protocol-version", protocolVersion);
    return h;
  };

  /** Reads a response: JSON body, SSE events, or nothing; delivers every message in it. */
  const consume = async (res: Response, signal: AbortSignal): Promise<void> => {
    if (res.body === null) return;
    const type = (res.headers.get("content-type") ?? "").toLowerCase();
    if (type.startsWith("text/event-stream")) {
      const tap = new SseTap(opts.maxMessageBytes + 65536, {
        onEvent(event) {
          if (event.hasData && event.event === "message" && event.data.trim() !== "") {
            // Bytes that are not UTF-8 reach the gate as they came, to be refused there.
            deliver(event.invalidData ?? encoder.encode(event.data));
          }
          return null;
        },
        onOversized(size, head, tail) {
          refuseOversized(exchange.rejectOversized("server", { size, head, tail }));
          return null;
        },
      });
      const reader = res.body.pipeThrough(tap).getReader();
      const cancel = (): void => {
        reader.cancel().catch(() => {});
      };
      signal.addEventListener("abort", cancel, { once: true });
      try {
        while (!(await reader.read()).done) { /* events are delivered by the tap */ }
      } finally {
        signal.removeEventListener("abort", cancel);
      }
      return;
    }
    const read = await readCapped(res.body, opts.maxMessageBytes);
    if (read.kind === "oversized") {
      refuseOversized(exchange.rejectOversized("server", read));
      return;
    }
    if (read.bytes.length > 0 && type.includes("json")) deliver(read.bytes);
  };

  /** The server's own stream (GET), for requests and notifications outside any POST. */
  const openGetStream = (): void => {
    getStream = (async () => {
      try {
        const res = await opts.fetch(opts.upstream, {
          method: "GET",
          headers: headersFor("text/event-stream"),
          signal: aborted,
        });
        if (!res.ok) {
          await res.body?.cancel();
          logger.debug("the upstream offers no GET stream", { status: res.status });
          return;
        }
        await consume(res, aborted);
      } catch (e) {
        if (!aborted.aborted) logger.warn("the upstream's GET stream failed", { error: String(e) });
      }
    })();
  };

  const post = async (line: Uint8Array, messages: Message[]): Promise<void> => {
    const ids = requestIds(messages);
    const timeout = AbortSignal.timeout(opts.upstreamTimeoutMs);
    let res: Response;
    try {
      const h = headersFor("application/json, text/event-stream");
      h.set("content-type", "application/json");
      res = await opts.fetch(opts.upstream, {
        method: "POST",
        headers: h,
        body: ownBytes(line),
        signal: AbortSignal.any([aborted, timeout]),
      });
    } catch (e) {
      const reason = timeout.aborted
        ? `upstream sent no response headers within ${opts.upstreamTimeoutMs} ms`
        : `upstream unreachable: ${(e as Error).message}`;
      if (!aborted.aborted) logger.warn("upstream request failed", { reason });
      failAll(ids, aborted.aborted ? "proxy shutting down" : reason);
      return;
    }
    const assigned = res.headers.get("mcp-session-id");
    if (assigned !== null && session === null) {
      session = assigned;
      // Records carry the server's session id from here on, as on the HTTP transport.
      exchange.session = assigned;
      exchange.vouch();
    }
    try {
      await consume(res, aborted);
    } catch (e) {
      if (!aborted.aborted) logger.warn("upstream response failed", { error: String(e) });
    }
    if (!res.ok) failAll(ids, `upstream answered HTTP ${res.status}`);
    // The answer to initialize names the protocol version every later request must carry.
    for (const m of messages) {
      if (
        m.kind === "request" && m.method === "initialize" && !exchange.isPending("client", m.id)
      ) {
        if (getStream === undefined) openGetStream();
      }
    }
  };

  const noteVersion = (line: Uint8Array, messages: Message[]): void => {
    for (const m of messages) {
      if (m.kind !== "request" || m.method !== "initialize") continue;
      try {
        const v = parseLossless(new TextDecoder().decode(line));
        const params = isJsonObject(v) ? v.params : undefined;
        const version = isJsonObject(params) ? params.protocolVersion : undefined;
        if (typeof version === "string") protocolVersion = version;
      } catch {
        // Not JSON after all: nothing to note.
      }
    }
  };

  const reader = opts.client.readable.pipeThrough(new LineSplitter(opts.maxMessageBytes))
    .getReader();
  const cancel = (): void => {
    reader.cancel().catch(() => {});
  };
  opts.signal.addEventListener("abort", cancel, { once: true });
  let failure: string | undefined;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const frame of value) {
        if (frame.kind === "oversized") {
          const outs = exchange.rejectOversized("client", frame);
          // Stored now, answered or not: a log that cannot store them ends the bridge here.
          commit();
          refuseOversized(outs);
          continue;
        }
        const line = frame.bytes.subarray(0, frame.contentLength);
        const passage = exchange.passLine("client", line, frame.terminated);
        answer(passage.replies);
        if (passage.forward === null) {
          // Records of what is sent nowhere (a refused line without an id) reach the file too.
          if (passage.replies.length === 0) commit();
          continue;
        }
        // What goes on: the line itself, or in place of a refused answer to one of the server's
        // requests, the proxy's error for that request.
        noteVersion(passage.forward, passage.messages);
        send("server", passage.forward, passage.messages);
      }
    }
  } catch (e) {
    if (!opts.signal.aborted) failure = `reading from the client failed: ${String(e)}`;
  } finally {
    opts.signal.removeEventListener("abort", cancel);
  }
  // The client is done: let the answers it is owed arrive, then end the session.
  await Promise.all(inFlight);
  stop.abort();
  if (getStream !== undefined) await getStream;
  if (session !== null) {
    try {
      const res = await opts.fetch(opts.upstream, {
        method: "DELETE",
        headers: headersFor("application/json"),
        signal: AbortSignal.timeout(opts.upstreamTimeoutMs),
      });
      await res.body?.cancel();
    } catch (e) {
      logger.debug("ending the upstream session failed", { error: String(e) });
    }
  }
  await toClient.close();
  if (failure !== undefined) return { exitCode: 1, reason: failure };
  return {
    exitCode: 0,
    reason: opts.signal.aborted ? "shutdown signal" : "client closed its input",
  };
}
