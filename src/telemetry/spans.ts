/**
 * Spans from stored audit records: one span per exchange, a request and the record that ended it
 * (its answer, the proxy's refusal, or the error the proxy sent in its place), made with the
 * OpenTelemetry tracer from the records the audit log stored, never from the wire.
 *
 * Attributes are the Go tool's (`mcp.method.name`, `network.transport`, `mcp_audit.entry_id`, …,
 * `error.type`) in its order, plus the seq and entry id of both records so that a span leads to
 * the signed records. Params and results are never exported. Every text a client or server chose
 * (method, tool name, id, session, error message) is cut to {@linkcode SPAN_TEXT_LIMIT} with a
 * marker: the stored record keeps it whole, and the span points at that record.
 *
 * When the request's `params._meta` carries a valid W3C `traceparent` (and `tracestate`), the
 * span is its child: the proxy appears inside the agent's own trace. Nothing is injected.
 *
 * @example
 * ```ts
 * import { TracerProvider } from "@opentelemetry/sdk-trace";
 * import { ExchangeSpans } from "./spans.ts";
 * import { Logger } from "../log.ts";
 *
 * const spans = new ExchangeSpans({
 *   tracer: new TracerProvider().getTracer("mcp-audit"),
 *   methods: "tools/call",
 *   storage: "jsonl",
 *   upstream: null,
 *   logger: new Logger("info", (line) => console.error(line.trimEnd())),
 * });
 * // log.observe((batch) => { for (const r of batch) spans.record(r.record); });
 * ```
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  type HrTime,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { AuditRecord, Decision, Direction, TransportName } from "../audit/record.ts";
import { EventMethod } from "../audit/record.ts";
import { isJsonObject, isRawNumber, type JsonObject, type JsonValue } from "../jsonrpc/json.ts";
import { idKey, type JsonRpcId } from "../jsonrpc/message.ts";
import type { Logger } from "../log.ts";
import { createHash } from "node:crypto";

/** JSON-RPC codes the proxy answers refusals with (SPEC), as the Go tool names them. */
const RATE_LIMITED = -32029;
const POLICY_DENIED = -32030;

/** How many unanswered requests of one session are remembered; its oldest is forgotten first. */
export const DEFAULT_MAX_PENDING = 4096;
/**
 * How many unanswered requests are remembered in all; past it, the session with the most waiting
 * forgets its oldest.
 */
export const DEFAULT_MAX_PENDING_TOTAL = 8192;
/**
 * How many sessions with unanswered requests are tracked; past it, the session whose last request
 * is the oldest is forgotten whole.
 */
export const DEFAULT_MAX_SESSIONS = 1024;

/**
 * The most UTF-16 code units of any text a span carries: its name, each string attribute, its
 * status message. Also the SDK's `attributeValueLengthLimit`, as a backstop.
 */
export const SPAN_TEXT_LIMIT = 1024;

/**
 * `text` whole when it has at most `limit` UTF-16 code units; else its start, cut on a code-point
 * boundary, then `…[truncated: N chars]` (N its whole length), all within `limit`. The result never
 * shares memory with `text`, so a kept cut does not keep a megabyte alive.
 *
 * @example
 * ```ts
 * import { cutText } from "./spans.ts";
 * cutText("x".repeat(5000), 64); // "xxx…x…[truncated: 5000 chars]", 64 code units
 * ```
 */
export function cutText(text: string, limit: number = SPAN_TEXT_LIMIT): string {
  if (text.length <= limit) return text;
  const marker = `…[truncated: ${text.length} chars]`;
  let end = Math.max(0, limit - marker.length);
  const last = text.charCodeAt(end - 1);
  // A high surrogate whose pair would be cut off goes with it.
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
  const cut = end === 0 ? marker.slice(0, limit) : text.slice(0, end) + marker;
  // A slice is a view of its parent string in V8; a JSON round trip makes a flat copy. A lone
  // string literal: JSON.parse reads it right (the V8 defect parseJson guards against is in member
  // names only), and structuredClone is not known to flatten.
  const copy: unknown = JSON.parse(JSON.stringify(cut));
  return typeof copy === "string" ? copy : cut;
}

/**
 * A map key for client-chosen text: the text itself when short, else its length and SHA-256, so
 * that a megabyte id waiting for its answer costs a few dozen bytes.
 */
function keyOf(text: string): string {
  if (text.length <= SPAN_TEXT_LIMIT) return `=${text}`;
  return `#${text.length}:${createHash("sha256").update(text).digest("base64")}`;
}

/** Settings of the span builder. */
export interface ExchangeSpansOptions {
  tracer: Tracer;
  /** `tools/call` exchanges only (the Go tool), or every request's. */
  methods: "tools/call" | "all";
  storage: "jsonl" | "sqlite";
  /** `proxy.upstream` when it is a URL: `server.address` / `server.port` when a record has none. */
  upstream: string | null;
  logger: Logger;
  /** Per session ({@linkcode DEFAULT_MAX_PENDING}). */
  maxPending?: number;
  /** In all ({@linkcode DEFAULT_MAX_PENDING_TOTAL}). */
  maxPendingTotal?: number;
  /** Sessions tracked ({@linkcode DEFAULT_MAX_SESSIONS}). */
  maxSessions?: number;
}

/** What is kept of a request until its exchange ends: no params beyond the trace context. */
interface PendingRequest {
  seq: number;
  id: string;
  tsMs: number;
  direction: Direction;
  transport: TransportName;
  upstream: string | null;
  /** This and the texts below are cut to {@linkcode SPAN_TEXT_LIMIT}. */
  session: string | null;
  /** As `jsonrpc.request.id` carries it. */
  jsonrpcId: string | null;
  /** The span's name. */
  name: string;
  method: string;
  toolName: string | null;
  clientId: string;
  serverId: string;
  signed: boolean;
  decision: Decision | null;
  parent: Context;
  /** It took the place of an older request waiting with the same session, direction and id. */
  replaced: boolean;
}

/** How an exchange ended, for the span's status and error attributes. */
type Ending =
  | { kind: "answer"; record: AuditRecord }
  | { kind: "cancelled"; record: AuditRecord }
  | { kind: "no_answer"; record: AuditRecord };

const getter: TextMapGetter<JsonObject> = {
  get(carrier, key) {
    const v = carrier[key];
    return typeof v === "string" ? v : undefined;
  },
  keys(carrier) {
    return Object.keys(carrier);
  },
};
const propagator = new W3CTraceContextPropagator();

/**
 * The trace context a request names in `params._meta.traceparent` / `tracestate` (the MCP
 * convention), or `ROOT_CONTEXT` when there is none or it is not valid W3C trace context.
 */
export function remoteParent(params: JsonValue): Context {
  if (!isJsonObject(params)) return ROOT_CONTEXT;
  const meta = params._meta;
  if (!isJsonObject(meta)) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, meta, getter);
}

/** A record's `ts` (ISO 8601, UTC) as epoch milliseconds; NaN when unreadable. */
function epochMs(ts: string): number {
  return Date.parse(ts);
}

/** Epoch milliseconds (fractions kept) as the SDK's `[seconds, nanoseconds]`. */
export function hrTimeOf(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1e6);
  if (nanos >= 1e9) nanos = 1e9 - 1;
  return [seconds, nanos];
}

/** `t` less `ms` milliseconds, in whole nanoseconds (a double of epoch ns would lose some). */
export function hrTimeMinus(t: HrTime, ms: number): HrTime {
  const total = BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]) - BigInt(Math.round(ms * 1e6));
  const clamped = total < 0n ? 0n : total;
  return [Number(clamped / 1_000_000_000n), Number(clamped % 1_000_000_000n)];
}

/**
 * A JSON-RPC id as the Go tool writes `jsonrpc.request.id`: strings bare, numbers as written; cut
 * to {@linkcode SPAN_TEXT_LIMIT}.
 */
function idText(id: JsonRpcId): string | null {
  if (id === null) return null;
  if (typeof id === "string") return cutText(id);
  if (typeof id === "number") return String(id);
  return cutText(id.rawJSON);
}

/** `server.address` and `server.port` of an upstream URL; null when it is not one. */
export function serverOf(upstream: string | null): { address: string; port: number } | null {
  if (upstream === null || upstream === "") return null;
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    return null;
  }
  const address = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (address === "") return null;
  const port = url.port !== ""
    ? Number(url.port)
    : url.protocol === "https:"
    ? 443
    : url.protocol === "http:"
    ? 80
    : null;
  return port === null ? null : { address, port };
}

function opposite(direction: Direction): Direction | null {
  if (direction === "client_to_server") return "server_to_client";
  if (direction === "server_to_client") return "client_to_server";
  return null;
}

function sessionKey(session: string | null): string {
  return session === null ? "-" : keyOf(session);
}

function requestKey(direction: Direction, id: JsonRpcId): string {
  return `${direction}\u0000${keyOf(idKey(id))}`;
}

/**
 * Pairs stored records into exchanges and makes one span for each exchange of a traced method.
 * A request is remembered until the record that ends it. What is remembered is bounded so that
 * whoever goes past a bound pays for it, never another session: a session past `maxPending`
 * forgets its own oldest; past `maxPendingTotal`, the session with the most waiting does; past
 * `maxSessions`, the session least recently heard from is forgotten whole. A request ends at:
 *
 * - its answer (`response` or `error`, the other way, same session and id), including the
 *   proxy's refusal and the error it sends when the server is gone;
 * - a `notifications/cancelled` naming it, from the side that sent it (status ERROR, `cancelled`);
 * - `audit/stop`: a request still unanswered when the proxy stops ends there (ERROR, `no_answer`).
 */
export class ExchangeSpans {
  #o: ExchangeSpansOptions;
  #maxPerSession: number;
  #maxTotal: number;
  #maxSessions: number;
  /** Each session's waiting requests, oldest first; sessions least recently heard from first. */
  #sessions = new Map<string, Map<string, PendingRequest>>();
  #size = 0;
  #evicted = 0;
  #fallback: { address: string; port: number } | null;

  constructor(options: ExchangeSpansOptions) {
    this.#o = options;
    this.#maxPerSession = Math.max(1, options.maxPending ?? DEFAULT_MAX_PENDING);
    this.#maxTotal = Math.max(1, options.maxPendingTotal ?? DEFAULT_MAX_PENDING_TOTAL);
    this.#maxSessions = Math.max(1, options.maxSessions ?? DEFAULT_MAX_SESSIONS);
    this.#fallback = serverOf(options.upstream);
  }

  /** Requests waiting for the record that ends their exchange. */
  get pending(): number {
    return this.#size;
  }

  /** Requests forgotten so far because too many were waiting. */
  get evicted(): number {
    return this.#evicted;
  }

  /**
   * Takes one stored record. Returns the trace context the record belongs to, for its log record:
   * the span it ended, or for a request the caller's context from `_meta`; otherwise
   * `ROOT_CONTEXT`.
   */
  record(r: AuditRecord): Context {
    switch (r.kind) {
      case "request":
        return this.#request(r);
      case "response":
      case "error": {
        const pending = this.#settle(r);
        return pending === undefined
          ? ROOT_CONTEXT
          : this.#end(pending, { kind: "answer", record: r });
      }
      case "notification":
        if (r.method === "notifications/cancelled") return this.#cancelled(r);
        return ROOT_CONTEXT;
      case "event":
        if (r.method === EventMethod.Stop) this.#stopped(r);
        return ROOT_CONTEXT;
      case "invalid":
        return ROOT_CONTEXT;
      default: {
        const never: never = r.kind;
        return never;
      }
    }
  }

  #traced(method: string | null): method is string {
    if (method === null) return false;
    return this.#o.methods === "all" || method === "tools/call";
  }

  #request(r: AuditRecord): Context {
    const parent = remoteParent(r.params);
    if (!this.#traced(r.method) || r.direction === "proxy") return parent;
    const tsMs = epochMs(r.ts);
    if (Number.isNaN(tsMs)) return parent;
    const session = sessionKey(r.session);
    let waiting = this.#sessions.get(session);
    if (waiting === undefined) waiting = new Map();
    // Last heard from now.
    else this.#sessions.delete(session);
    this.#sessions.set(session, waiting);
    const key = requestKey(r.direction, r.jsonrpc_id);
    // A reused id replaces the older request: only the newer one can still be answered.
    const replaced = waiting.delete(key);
    if (replaced) this.#size--;
    const method = cutText(r.method);
    const toolName = r.tool_name === null ? null : cutText(r.tool_name);
    waiting.set(key, {
      seq: r.seq,
      id: r.id,
      tsMs,
      direction: r.direction,
      transport: r.transport,
      upstream: r.upstream,
      session: r.session === null ? null : cutText(r.session),
      jsonrpcId: idText(r.jsonrpc_id),
      name: toolName === null ? method : cutText(`${method} ${toolName}`),
      method,
      toolName,
      clientId: cutText(r.client_id),
      serverId: cutText(r.server_id),
      signed: r.sig !== null,
      decision: r.decision,
      parent,
      replaced,
    });
    this.#size++;
    while (waiting.size > this.#maxPerSession) this.#forgetOldest(session, waiting);
    while (this.#sessions.size > this.#maxSessions) {
      const [quiet, forgotten] = this.#sessions.entries().next().value ?? [];
      if (quiet === undefined || forgotten === undefined) break;
      this.#sessions.delete(quiet);
      this.#size -= forgotten.size;
      this.#evicted += forgotten.size;
    }
    while (this.#size > this.#maxTotal) {
      const [busiest, most] = this.#busiest();
      if (busiest === undefined || most === undefined) break;
      this.#forgetOldest(busiest, most);
    }
    return parent;
  }

  /** The session with the most requests waiting; of equals, the least recently heard from. */
  #busiest(): [string, Map<string, PendingRequest>] | [] {
    let found: [string, Map<string, PendingRequest>] | [] = [];
    let most = 0;
    for (const entry of this.#sessions) {
      if (entry[1].size > most) {
        most = entry[1].size;
        found = entry;
      }
    }
    return found;
  }

  #forgetOldest(session: string, waiting: Map<string, PendingRequest>): void {
    const oldest = waiting.keys().next();
    if (oldest.done === true) return;
    waiting.delete(oldest.value);
    if (waiting.size === 0) this.#sessions.delete(session);
    this.#size--;
    this.#evicted++;
  }

  /** Takes the request waiting under `key` in `session` out; undefined when none is. */
  #take(session: string | null, key: string): PendingRequest | undefined {
    const sk = sessionKey(session);
    const waiting = this.#sessions.get(sk);
    const found = waiting?.get(key);
    if (waiting === undefined || found === undefined) return undefined;
    waiting.delete(key);
    if (waiting.size === 0) this.#sessions.delete(sk);
    this.#size--;
    return found;
  }

  /** The request `r` answers, taken out of the waiting ones. */
  #settle(r: AuditRecord): PendingRequest | undefined {
    const from = opposite(r.direction);
    if (from === null) return undefined;
    const keys = [requestKey(from, r.jsonrpc_id)];
    if (from === "client_to_server") {
      // A server answering `"1"` to the client's `1`: the proxy pairs them as the SDK clients do.
      const text = isRawNumber(r.jsonrpc_id) ? r.jsonrpc_id.rawJSON : r.jsonrpc_id;
      if (typeof text === "string" && text.trim() !== "" && Number.isFinite(Number(text))) {
        keys.push(requestKey(from, Number(text)));
      }
    }
    for (const key of keys) {
      const found = this.#take(r.session, key);
      if (found !== undefined) return found;
    }
    return this.#settleInitialize(r, keys);
  }

  /**
   * Over HTTP the server names the session in its answer to `initialize`: the request was stored
   * without one (session null), its answer with it. Such an answer, found under no session, takes
   * the sessionless `initialize` with its direction and id — unless two such requests were waiting
   * at once (clients' SDKs all start at id 0), when nothing tells which this answers: then neither
   * gets a span, rather than one that pairs the wrong records.
   */
  #settleInitialize(r: AuditRecord, keys: readonly string[]): PendingRequest | undefined {
    if (r.session === null || r.method !== "initialize") return undefined;
    const sessionless = this.#sessions.get(sessionKey(null));
    if (sessionless === undefined) return undefined;
    for (const key of keys) {
      const found = sessionless.get(key);
      if (found === undefined || found.method !== "initialize") continue;
      this.#take(null, key);
      if (found.replaced) {
        this.#o.logger.debug("otel: an initialize answer matches more than one request; no span", {
          seq: r.seq,
        });
        return undefined;
      }
      found.session = cutText(r.session);
      return found;
    }
    return undefined;
  }

  #cancelled(r: AuditRecord): Context {
    if (!isJsonObject(r.params)) return ROOT_CONTEXT;
    const requestId = r.params.requestId;
    if (typeof requestId !== "string" && typeof requestId !== "number" && !isRawNumber(requestId)) {
      return ROOT_CONTEXT;
    }
    const pending = this.#take(r.session, requestKey(r.direction, requestId));
    if (pending === undefined) return ROOT_CONTEXT;
    return this.#end(pending, { kind: "cancelled", record: r });
  }

  #stopped(r: AuditRecord): void {
    const waiting = [...this.#sessions.values()].flatMap((w) => [...w.values()]);
    this.#sessions.clear();
    this.#size = 0;
    for (const pending of waiting) this.#end(pending, { kind: "no_answer", record: r });
  }

  /** Makes and ends the span of one exchange; returns its context. */
  #end(req: PendingRequest, ending: Ending): Context {
    const endMs = epochMs(ending.record.ts);
    if (Number.isNaN(endMs)) return ROOT_CONTEXT;
    const end = hrTimeOf(endMs);
    const duration = ending.kind === "answer" ? ending.record.duration_ms : null;
    const start = duration !== null && Number.isFinite(duration) && duration >= 0
      ? hrTimeMinus(end, duration)
      : hrTimeOf(Math.min(req.tsMs, endMs));
    const { attributes, status } = this.#describe(req, ending);
    const span = this.#o.tracer.startSpan(req.name, {
      kind: req.direction === "client_to_server" ? SpanKind.CLIENT : SpanKind.SERVER,
      startTime: start,
      attributes,
    }, req.parent);
    span.setStatus(status);
    span.end(end);
    return trace.setSpan(ROOT_CONTEXT, span);
  }

  #describe(
    req: PendingRequest,
    ending: Ending,
  ): { attributes: Attributes; status: { code: SpanStatusCode; message?: string } } {
    const end = ending.record;
    const a: Attributes = {};
    // The Go tool's attributes, in its order.
    a["mcp.method.name"] = req.method;
    a["network.transport"] = req.transport === "stdio" ? "pipe" : "tcp";
    a["mcp_audit.entry_id"] = req.id;
    a["mcp_audit.direction"] = req.direction;
    a["mcp_audit.signature.present"] = req.signed;
    if (req.transport === "http") a["network.protocol.name"] = "http";
    if (req.method === "tools/call") a["gen_ai.operation.name"] = "execute_tool";
    const id = req.jsonrpcId;
    if (id !== null && id !== "") a["jsonrpc.request.id"] = id;
    if (req.toolName !== null && req.toolName !== "") a["gen_ai.tool.name"] = req.toolName;
    if (req.clientId !== "") a["mcp_audit.client_id"] = req.clientId;
    if (req.serverId !== "") a["mcp_audit.server_id"] = req.serverId;
    a["mcp_audit.storage"] = this.#o.storage;
    const server = serverOf(req.upstream) ?? this.#fallback;
    if (server !== null) {
      a["server.address"] = cutText(server.address);
      a["server.port"] = server.port;
    }
    let status: { code: SpanStatusCode; message?: string } = { code: SpanStatusCode.OK };
    switch (ending.kind) {
      case "answer": {
        if (end.error !== null) {
          const code = end.error.code;
          if (Number.isInteger(code)) a["rpc.response.status_code"] = code;
          a["error.type"] = code === RATE_LIMITED
            ? "rate_limited"
            : code === POLICY_DENIED
            ? "policy_denied"
            : "jsonrpc_error";
          status = { code: SpanStatusCode.ERROR, message: cutText(end.error.message) };
        } else if (isJsonObject(end.result) && end.result.isError === true) {
          a["error.type"] = "tool_error";
          status = { code: SpanStatusCode.ERROR, message: "tool_error" };
        }
        break;
      }
      case "cancelled":
        a["error.type"] = "cancelled";
        status = { code: SpanStatusCode.ERROR, message: "cancelled by its sender" };
        break;
      case "no_answer":
        a["error.type"] = "no_answer";
        status = { code: SpanStatusCode.ERROR, message: "no answer before the proxy stopped" };
        break;
      default: {
        const never: never = ending;
        return never;
      }
    }
    // Ours: both records of the exchange, the session, and the guardrail's word.
    a["mcp_audit.seq"] = req.seq;
    a["mcp_audit.response.seq"] = end.seq;
    a["mcp_audit.response.entry_id"] = end.id;
    if (req.session !== null) a["mcp.session.id"] = req.session;
    if (req.decision !== null) {
      a["mcp_audit.decision.action"] = req.decision.action;
      if (req.decision.by !== undefined) a["mcp_audit.decision.by"] = req.decision.by;
      if (req.decision.enforced === false) a["mcp_audit.decision.enforced"] = false;
    }
    return { attributes: a, status };
  }

  /** Logs, once per batch, how many requests were forgotten since the last call. */
  reportEvictions(before: number): void {
    const now = this.#evicted;
    if (now === before) return;
    this.#o.logger.warn("otel: too many unanswered requests; the oldest get no span", {
      evicted: now - before,
      evicted_total: now,
      max_pending: this.#maxPerSession,
      max_pending_total: this.#maxTotal,
      max_sessions: this.#maxSessions,
    });
  }
}
