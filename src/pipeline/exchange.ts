/**
 * One exchange path for every transport: classify each message, correlate requests with their
 * answers in both directions, and record everything before it is forwarded.
 *
 * @module
 */
import { type AuditLog, sha256Hex } from "../audit/chain.ts";
import type { AuditFields, Direction, TransportName } from "../audit/record.ts";
import type { KeyRedactor } from "../audit/redact.ts";
import { isJsonObject, type JsonObject, type JsonValue } from "../jsonrpc/json.ts";
import { ErrorCode, ErrorMessage } from "../jsonrpc/errors.ts";
import {
  classifyLine,
  errorResponse,
  idKey,
  type JsonRpcId,
  type Message,
  paramsObject,
  type RpcError,
} from "../jsonrpc/message.ts";
import { looksLikeRequest, recoverId } from "../jsonrpc/recover_id.ts";
import type { Frame } from "../streams/line_splitter.ts";
import type { Logger } from "../log.ts";

/** The two ends of an exchange. */
export type Side = "client" | "server";

/** Bytes to write to one side. */
export interface Outbound {
  to: Side;
  bytes: Uint8Array;
}

/** What an exchange needs. */
export interface ExchangeDeps {
  log: AuditLog;
  transport: TransportName;
  redactor: KeyRedactor | null;
  /** Monotonic milliseconds, for durations. */
  mono: () => number;
  maxMessageBytes: number;
  logger: Logger;
  /** Most requests awaiting an answer per direction; the oldest is forgotten past it. */
  maxPending?: number;
}

interface Pending {
  id: JsonRpcId;
  method: string;
  toolName: string | null;
  start: number;
}

const encoder = new TextEncoder();
const other = (side: Side): Side => side === "client" ? "server" : "client";
const directionFrom = (side: Side): Direction =>
  side === "client" ? "client_to_server" : "server_to_client";

function toolNameOf(method: string, params: JsonValue | undefined): string | null {
  if (method !== "tools/call") return null;
  const name = paramsObject(params)?.name;
  return typeof name === "string" ? name : null;
}

function clientInfoOf(params: JsonValue | undefined): JsonObject | null {
  const info = paramsObject(params)?.clientInfo;
  if (!isJsonObject(info)) return null;
  const out: JsonObject = {};
  if (typeof info.name === "string") out.name = info.name;
  if (typeof info.version === "string") out.version = info.version;
  return out;
}

/** Client info sent per request in `_meta` (the stateless 2026-07-28 revision). */
function metaClientInfoOf(params: JsonValue | undefined): JsonObject | null {
  const meta = paramsObject(params)?._meta;
  if (!isJsonObject(meta)) return null;
  for (const key of Object.keys(meta)) {
    if (key === "io.modelcontextprotocol/clientInfo" || key === "clientInfo") {
      return clientInfoOf({ clientInfo: meta[key] ?? null });
    }
  }
  return null;
}

/**
 * The conversation between one client and one server (a stdio upstream process, or an HTTP
 * session). Every method records synchronously and returns the bytes to send; the caller sends
 * them only after the records are durable.
 */
export class Exchange {
  #deps: ExchangeDeps;
  #session: string | null;
  #clientInfo: JsonObject | null = null;
  /** Requests sent by each side that the other has not answered yet. */
  #pending: Record<Side, Map<string, Pending>> = { client: new Map(), server: new Map() };
  #maxPending: number;

  constructor(deps: ExchangeDeps, session: string | null) {
    this.#deps = deps;
    this.#session = session;
    this.#maxPending = deps.maxPending ?? 65536;
  }

  /** The session id recorded on every record. */
  get session(): string | null {
    return this.#session;
  }

  /** Names the session once the server has assigned one (HTTP `Mcp-Session-Id`). */
  set session(id: string | null) {
    this.#session = id;
  }

  /** Handles a frame read from `from`; returns what to send on. */
  receive(from: Side, frame: Frame): Outbound[] {
    if (frame.kind === "oversized") return this.rejectOversized(from, frame);
    this.record(from, frame.bytes.subarray(0, frame.contentLength));
    return [{ to: other(from), bytes: frame.bytes }];
  }

  /**
   * Records one message (or batch) exactly as it will be forwarded; returns what it held.
   * `content` is the message's bytes without framing.
   */
  record(from: Side, content: Uint8Array): Message[] {
    const wire = sha256Hex(content);
    const { messages } = classifyLine(content);
    for (const message of messages) this.#record(from, message, wire);
    return messages;
  }

  /**
   * The server is gone: answer every request the client is still waiting for with `-32603`, and
   * record each answer.
   */
  upstreamGone(reason: string): Outbound[] {
    return this.failPending([...this.#pending.client.values()].map((p) => p.id), reason);
  }

  /**
   * Answers the given client requests, those still waiting, with `-32603` and `data.reason`, and
   * records each answer. For an upstream that failed while these requests were in flight.
   */
  failPending(ids: readonly JsonRpcId[], reason: string): Outbound[] {
    const out: Outbound[] = [];
    for (const id of ids) {
      const pending = this.#settle("client", id);
      if (pending === undefined) continue;
      const error: RpcError = {
        code: ErrorCode.InternalError,
        message: ErrorMessage.UpstreamUnavailable,
        data: { reason },
      };
      out.push(this.#synthesize("client", pending.id, error, pending));
    }
    return out;
  }

  /**
   * Records that the answers to these client requests can no longer be delivered (the client
   * went away mid-stream): an `error` record with `wire_sha256: null` and `data.delivered: false`
   * for each one still waiting, so that no request ends silently.
   */
  undeliverable(ids: readonly JsonRpcId[], reason: string): void {
    for (const id of ids) {
      const pending = this.#settle("client", id);
      if (pending === undefined) continue;
      const f = this.#base("server", null);
      f.kind = "error";
      f.jsonrpc_id = pending.id;
      f.method = pending.method;
      f.tool_name = pending.toolName;
      f.duration_ms = Math.round((this.#deps.mono() - pending.start) * 1000) / 1000;
      f.error = {
        code: ErrorCode.InternalError,
        message: "answer not delivered",
        data: { reason, delivered: false },
      };
      this.#deps.log.append(f);
    }
  }

  /** True while any request, from either side, waits for an answer. */
  hasPending(): boolean {
    return this.#pending.client.size > 0 || this.#pending.server.size > 0;
  }

  /** True while `id`, sent by `side`, waits for an answer. */
  isPending(side: Side, id: JsonRpcId): boolean {
    return this.#pending[side].has(idKey(id));
  }

  /** A summary of requests still waiting for an answer, for the stop event. */
  pendingSummary(limit = 100): JsonObject[] {
    const out: JsonObject[] = [];
    for (const side of ["client", "server"] as const) {
      for (const p of this.#pending[side].values()) {
        if (out.length >= limit) return out;
        out.push({ from: side, id: p.id, method: p.method });
      }
    }
    return out;
  }

  #base(from: Side, wire: string | null): AuditFields {
    return {
      kind: "invalid",
      direction: directionFrom(from),
      transport: this.#deps.transport,
      session: this.#session,
      jsonrpc_id: null,
      method: null,
      tool_name: null,
      params: null,
      result: null,
      error: null,
      redacted: [],
      duration_ms: null,
      decision: null,
      client_info: this.#clientInfo,
      wire_sha256: wire,
    };
  }

  #redact(value: JsonValue, root: string, paths: string[]): JsonValue {
    const r = this.#deps.redactor;
    if (r === null) return value;
    const out = r.redact(value, root);
    paths.push(...out.paths);
    return out.value;
  }

  #remember(side: Side, pending: Pending): void {
    const map = this.#pending[side];
    if (map.size >= this.#maxPending) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) {
        map.delete(oldest);
        this.#deps.logger.warn("too many unanswered requests; forgetting the oldest", {
          id: oldest.slice(1),
        });
      }
    }
    map.set(idKey(pending.id), pending);
  }

  #settle(side: Side, id: JsonRpcId): Pending | undefined {
    const key = idKey(id);
    const map = this.#pending[side];
    const pending = map.get(key);
    if (pending === undefined) return undefined;
    map.delete(key);
    return pending;
  }

  #record(from: Side, message: Message, wire: string): void {
    const f = this.#base(from, wire);
    const now = this.#deps.mono();
    switch (message.kind) {
      case "request": {
        if (from === "client") {
          const info = message.method === "initialize"
            ? clientInfoOf(message.params)
            : metaClientInfoOf(message.params);
          if (info !== null) {
            this.#clientInfo = info;
            f.client_info = info;
          }
        }
        const toolName = toolNameOf(message.method, message.params);
        this.#remember(from, { id: message.id, method: message.method, toolName, start: now });
        f.kind = "request";
        f.jsonrpc_id = message.id;
        f.method = message.method;
        f.tool_name = toolName;
        if (message.params !== undefined) {
          f.params = this.#redact(message.params, "params", f.redacted);
        }
        break;
      }
      case "notification":
        f.kind = "notification";
        f.method = message.method;
        if (message.params !== undefined) {
          f.params = this.#redact(message.params, "params", f.redacted);
        }
        break;
      case "response":
      case "error": {
        const pending = this.#settle(other(from), message.id);
        f.kind = message.kind;
        f.jsonrpc_id = message.id;
        if (pending) {
          f.method = pending.method;
          f.tool_name = pending.toolName;
          f.duration_ms = Math.round((now - pending.start) * 1000) / 1000;
        }
        if (message.kind === "response") {
          f.result = this.#redact(message.result, "result", f.redacted);
        } else {
          const error: RpcError = { code: message.error.code, message: message.error.message };
          if (message.error.data !== undefined) {
            error.data = this.#redact(message.error.data, "error.data", f.redacted);
          }
          f.error = error;
        }
        break;
      }
      case "invalid":
        f.kind = "invalid";
        f.jsonrpc_id = message.id ?? null;
        f.error = { code: ErrorCode.ParseError, message: message.reason };
        break;
      default: {
        const never: never = message;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
    this.#deps.log.append(f);
  }

  /** Sends `error` for request `id` to `to`, recording it as an answer from the other side. */
  #synthesize(to: Side, id: JsonRpcId, error: RpcError, pending: Pending | undefined): Outbound {
    const text = errorResponse(id, error);
    const content = encoder.encode(text);
    const f = this.#base(other(to), sha256Hex(content));
    f.kind = "error";
    f.jsonrpc_id = id;
    f.error = error;
    if (pending) {
      f.method = pending.method;
      f.tool_name = pending.toolName;
      f.duration_ms = Math.round((this.#deps.mono() - pending.start) * 1000) / 1000;
    }
    this.#deps.log.append(f);
    return { to, bytes: encoder.encode(text + "\n") };
  }

  /**
   * A message over the limit, from its size and first and last bytes: recorded as `invalid`,
   * not forwarded, and answered with `-32600` when its id can be read.
   */
  rejectOversized(
    from: Side,
    frame: { size: number; head: Uint8Array; tail: Uint8Array },
  ): Outbound[] {
    const limit = this.#deps.maxMessageBytes;
    const id = recoverId(frame.head, frame.tail);
    const f = this.#base(from, null);
    f.jsonrpc_id = id ?? null;
    f.error = {
      code: ErrorCode.InvalidRequest,
      message: ErrorMessage.TooLarge,
      data: { limit_bytes: limit, size_bytes: frame.size, forwarded: false },
    };
    this.#deps.log.append(f);
    this.#deps.logger.warn("dropped a message over proxy.max_message_bytes", {
      from,
      size_bytes: frame.size,
      limit_bytes: limit,
      id_recovered: id !== undefined,
    });
    if (id === undefined) return [];
    const error: RpcError = {
      code: ErrorCode.InvalidRequest,
      message: ErrorMessage.TooLarge,
      data: { limit_bytes: limit },
    };
    // An answer to a request the other side is waiting for: that side gets the error instead.
    const answering = !looksLikeRequest(frame.head) ? this.#settle(other(from), id) : undefined;
    if (answering) return [this.#synthesize(other(from), id, error, answering)];
    return [this.#synthesize(from, id, error, undefined)];
  }
}
