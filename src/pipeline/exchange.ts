/**
 * One exchange path for every transport: classify each message, correlate requests with their
 * answers in both directions, and record everything before it is forwarded.
 *
 * @module
 */
import { type AuditLog, sha256Hex } from "../audit/chain.ts";
import {
  type AuditFields,
  type Decision,
  type Direction,
  EventMethod,
  type TransportName,
} from "../audit/record.ts";
import { KeyRedactor, Redaction } from "../audit/redact.ts";
import { ValueRedactor } from "../audit/detectors.ts";
import type { Answer, Guard, JudgedRequest, Verdict } from "../guardrails/guard.ts";
import type { Observation } from "../guardrails/pins.ts";
import { isJsonObject, isRawNumber, type JsonObject, type JsonValue } from "../jsonrpc/json.ts";
import { ErrorCode, ErrorMessage } from "../jsonrpc/errors.ts";
import {
  calledTool,
  errorResponse,
  idKey,
  type JsonRpcId,
  paramsObject,
  type RpcError,
  type WireMessage,
} from "../jsonrpc/message.ts";
import {
  DEFAULT_MAX_JSON_DEPTH,
  type Reading,
  readWire,
  type Violation,
  type WireRules,
} from "../jsonrpc/framing.ts";
import { looksLikeRequest, recoverId } from "../jsonrpc/recover_id.ts";
import { ambiguousMember } from "../jsonrpc/ambiguous.ts";
import type { Frame } from "../streams/line_splitter.ts";
import type { Logger } from "../log.ts";

/** The two ends of an exchange. */
export type Side = "client" | "server";

/** Bytes to write to one side. */
export interface Outbound {
  to: Side;
  bytes: Uint8Array;
}

/** Makes the audit copy of a value: secrets replaced, and the paths of what was replaced. */
export interface Redactor {
  redact(value: JsonValue, path: string): { value: JsonValue; paths: string[] };
}

/** Settings a reload replaces; every exchange reads them afresh for each message. */
export interface LiveSettings {
  guard: Guard | null;
  /** Applied in order to the audit copy of every message. */
  redactors: readonly Redactor[];
}

/**
 * What became of one message (or batch) passing through: what to send on, and what the proxy
 * answers the sender itself.
 */
export interface Passage {
  /** The messages read; none for a violation. */
  messages: WireMessage[];
  /**
   * The bytes to send on, without framing: `content` itself when unchanged; other bytes when
   * rewritten (a filtered `tools/list` answer, or, for a refused answer, the proxy's `-32600` to
   * the request it answered, which the other side awaits in its place); or null.
   */
  forward: Uint8Array | null;
  /** The proxy's own answers to the sender, one line each, for what it refused of its requests. */
  replies: Outbound[];
  /** Whether the content was a batch (its answers then go back as one array over HTTP). */
  batch: boolean;
  /** Why the content was refused unread, when it was: it is then never sent on. */
  violation: Violation | null;
}

/** What an exchange needs. */
export interface ExchangeDeps {
  log: AuditLog;
  transport: TransportName;
  live: LiveSettings;
  /** Monotonic milliseconds, for durations. */
  mono: () => number;
  maxMessageBytes: number;
  logger: Logger;
  /** Most requests awaiting an answer per direction; the oldest is forgotten past it. */
  maxPending?: number;
  /** `proxy.max_json_depth`: deeper messages are refused before anything parses them. */
  maxJsonDepth?: number;
}

interface Pending {
  id: JsonRpcId;
  method: string;
  toolName: string | null;
  start: number;
  /** For `tools/list`: whether the request asked for the first page (no cursor). */
  firstPage: boolean;
}

/** A message's record, before it is appended, and what the message becomes on the wire. */
interface Draft {
  message: WireMessage;
  fields: AuditFields;
  /** The request's awaited answer, for a response. */
  answering: Pending | undefined;
  /** The message rewritten (a filtered `tools/list` result), and the decision that did it. */
  rewritten?: { message: JsonObject; decision: Decision };
  observation?: Observation | null;
}

const encoder = new TextEncoder();
const PASS: Verdict = { kind: "pass" };
/** How much of an unreadable message's head and tail is searched for its id. */
const ID_SEARCH = 4096;
const REFUSED_WITH_BATCH = "refused with its batch: another request in it was refused";
const other = (side: Side): Side => side === "client" ? "server" : "client";
const directionFrom = (side: Side): Direction =>
  side === "client" ? "client_to_server" : "server_to_client";

function withNewline(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 0x0a;
  return out;
}

/** A message as a JSON value again, to send it on inside a rebuilt batch. */
function messageValue(m: WireMessage): JsonObject {
  switch (m.kind) {
    case "request":
      return m.params === undefined
        ? { jsonrpc: "2.0", id: m.id, method: m.method }
        : { jsonrpc: "2.0", id: m.id, method: m.method, params: m.params };
    case "notification":
      return m.params === undefined
        ? { jsonrpc: "2.0", method: m.method }
        : { jsonrpc: "2.0", method: m.method, params: m.params };
    case "response":
      return { jsonrpc: "2.0", id: m.id, result: m.result };
    case "error":
      return { jsonrpc: "2.0", id: m.id, error: m.error };
  }
}

/** The tool a `tools/call` names, as the guardrails read it: `name`, else the Go tool's `tool_name`. */
function toolNameOf(method: string, params: JsonValue | undefined): string | null {
  return method === "tools/call" ? calledTool(params) : null;
}

/**
 * The redactors, applied in turn, as one redactor. Key redaction then value redaction, as the
 * configuration builds them, is one walk over the value ({@link Redaction}) with the same result;
 * other lists walk once per redactor. Null when there are none.
 */
function oneWalk(redactors: readonly Redactor[]): Redactor | null {
  const [first, second] = redactors;
  if (first === undefined) return null;
  if (redactors.length === 1) return first;
  if (redactors.length === 2 && first instanceof KeyRedactor && second instanceof ValueRedactor) {
    return new Redaction(first, second);
  }
  return {
    redact(value, root) {
      let out = value;
      const paths: string[] = [];
      for (const r of redactors) {
        const step = r.redact(out, root);
        for (const p of step.paths) if (!paths.includes(p)) paths.push(p);
        out = step.value;
      }
      return { value: out, paths };
    },
  };
}

/** A method of the `notifications/` namespace, which carries no call. */
function isNotificationMethod(method: string): boolean {
  return method.startsWith("notifications/");
}

/** The JSON text of the proxy's answer to request `id`. */
function answerText(id: JsonRpcId, answer: Answer): string {
  return answer.kind === "error"
    ? errorResponse(id, answer.error)
    : JSON.stringify({ jsonrpc: "2.0", id, result: answer.result });
}

/** A refusal of a message no guardrail can judge. */
function unjudgeable(reason: string): Verdict {
  return {
    kind: "refuse",
    decision: { action: "deny", rule: null, reason: `cannot be judged: ${reason}` },
    answer: {
      kind: "error",
      error: {
        code: ErrorCode.InvalidRequest,
        message: ErrorMessage.InvalidRequest,
        data: { reason: `refused unread while guardrails are on: ${reason}` },
      },
    },
  };
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
  /** Whether the session was named by the proxy or the server, not merely claimed by the client. */
  #vouched = false;
  #clientInfo: JsonObject | null = null;
  /** Requests sent by each side that the other has not answered yet. */
  #pending: Record<Side, Map<string, Pending>> = { client: new Map(), server: new Map() };
  #maxPending: number;
  /** The upstream URL records name by default (null for a stdio upstream). */
  #upstream: string | null;
  /** The upstream URL of the call in progress: records made during it name this one. */
  #via: string | null;
  /** How messages are read: made once, since every message is read by one of them. */
  #lineRules: WireRules;
  #bodyRules: WireRules;
  /** The redactors in force, as one walk: made again when a reload replaces them. */
  #redaction: { from: readonly Redactor[]; walk: Redactor | null } | null = null;

  /**
   * @param upstream the HTTP upstream's URL, named on every record unless a call names the exact
   *   URL it reached; null for a stdio upstream
   */
  constructor(deps: ExchangeDeps, session: string | null, upstream: string | null = null) {
    this.#deps = deps;
    this.#session = session;
    this.#maxPending = deps.maxPending ?? 65536;
    this.#upstream = upstream;
    this.#via = upstream;
    const maxDepth = deps.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
    this.#lineRules = { framing: "line", terminated: true, maxDepth };
    this.#bodyRules = { framing: "body", terminated: true, maxDepth };
  }

  /** Runs `fn` with records naming `via` as the upstream URL reached (when given). */
  #through<T>(via: string | undefined, fn: () => T): T {
    if (via === undefined) return fn();
    this.#via = via;
    try {
      return fn();
    } finally {
      this.#via = this.#upstream;
    }
  }

  /** The session id recorded on every record. */
  get session(): string | null {
    return this.#session;
  }

  /** Names the session once the server has assigned one (HTTP `Mcp-Session-Id`). */
  set session(id: string | null) {
    this.#session = id;
    this.#vouched = false;
  }

  /**
   * Marks the session as named by the proxy or the upstream server. Only such a session picks
   * the caller's rate budget; a session id a client merely sends could be new on every call.
   */
  vouch(): void {
    this.#vouched = this.#session !== null;
  }

  /** Handles a line-framed frame read from `from`; returns what to send, and to whom. */
  receive(from: Side, frame: Frame): Outbound[] {
    if (frame.kind === "oversized") return this.rejectOversized(from, frame);
    const content = frame.bytes.subarray(0, frame.contentLength);
    const p = this.#pass(from, content, this.#rules("line", frame.terminated));
    const out = p.replies;
    if (p.forward === content) out.push({ to: other(from), bytes: frame.bytes });
    else if (p.forward !== null) out.push({ to: other(from), bytes: withNewline(p.forward) });
    return out;
  }

  /**
   * Judges, records and (rarely) rewrites one message or batch from `from`. `content` is one
   * whole HTTP body or SSE event's data. The records are appended before this returns; send
   * nothing before they are written.
   *
   * Bytes that not every MCP SDK reads as the message the proxy reads (see `readWire`) are a
   * violation: recorded as `invalid`, never sent on, and answered `-32600` when their id can be
   * found — to the sender, or to the other side when they were the answer it awaits.
   *
   * A client request the guardrails refuse is not sent on: the proxy answers it. A batch holding
   * a refused request is refused whole — each of its requests answered, its other messages
   * dropped — since forwarding part of a batch would be a batch the client never sent.
   */
  pass(from: Side, content: Uint8Array, via?: string): Passage {
    const rules = this.#rules("body");
    // Most calls name no other upstream: no closure for them.
    if (via === undefined) return this.#pass(from, content, rules);
    return this.#through(via, () => this.#pass(from, content, rules));
  }

  /**
   * As {@link pass}, for one stdio line without its terminator (a bridge's pump), held to the line
   * rules too: no `\r` or `\n` inside it, nothing after the message, and a terminator.
   */
  passLine(from: Side, line: Uint8Array, terminated = true, via?: string): Passage {
    const rules = this.#rules("line", terminated);
    if (via === undefined) return this.#pass(from, line, rules);
    return this.#through(via, () => this.#pass(from, line, rules));
  }

  /**
   * How bytes would be read by {@link pass} (`body`) or {@link passLine} (`line`), without
   * recording anything: for a transport that must know what a message is before it has an
   * exchange to pass it through.
   */
  inspect(content: Uint8Array, framing: "line" | "body"): Reading {
    return readWire(content, this.#rules(framing));
  }

  #rules(framing: "line" | "body", terminated = true): WireRules {
    if (framing === "body") return this.#bodyRules;
    return terminated ? this.#lineRules : { ...this.#lineRules, terminated };
  }

  #pass(from: Side, content: Uint8Array, rules: WireRules): Passage {
    const reading = readWire(content, rules);
    if (reading.kind === "violation") return this.#reject(from, content, reading.violation);
    const wire = sha256Hex(content);
    const { messages, batch, values } = reading;
    const guard = this.#deps.live.guard;
    const verdicts = from === "client" && guard !== null
      ? this.#judge(guard, messages, values)
      : [];
    if (verdicts.some((v) => v.kind === "refuse")) {
      return this.#refuse(messages, verdicts, wire, batch);
    }
    const drafts: Draft[] = [];
    let changed = false;
    for (let i = 0; i < messages.length; i++) {
      const draft = this.#draft(from, messages[i]!, wire, verdicts[i]);
      if (from === "server" && guard !== null) this.#listing(guard, draft, wire);
      if (draft.rewritten !== undefined) changed = true;
      drafts.push(draft);
    }
    let forward: Uint8Array = content;
    if (changed) {
      const values = drafts.map((d) => d.rewritten?.message ?? messageValue(d.message));
      forward = encoder.encode(JSON.stringify(batch ? values : values[0]));
      const forwardWire = sha256Hex(forward);
      for (const d of drafts) {
        d.fields.wire_sha256 = forwardWire;
        if (d.rewritten === undefined) continue;
        // The record describes what the client received, and says what was taken out.
        const redacted: string[] = [];
        d.fields.result = this.#redact(d.rewritten.message.result ?? null, "result", redacted);
        d.fields.redacted = redacted;
        d.fields.decision = d.rewritten.decision;
      }
    }
    for (const d of drafts) {
      this.#deps.log.append(d.fields);
      if (d.observation) this.#pinEvents(d.observation);
    }
    return { messages, forward, replies: [], batch, violation: null };
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
  failPending(ids: readonly JsonRpcId[], reason: string, via?: string): Outbound[] {
    return this.#through(via, () => this.#failPending(ids, reason));
  }

  #failPending(ids: readonly JsonRpcId[], reason: string): Outbound[] {
    const out: Outbound[] = [];
    for (const id of ids) {
      const pending = this.#settle("client", id);
      if (pending === undefined) continue;
      const error: RpcError = {
        code: ErrorCode.InternalError,
        message: ErrorMessage.UpstreamUnavailable,
        data: { reason },
      };
      out.push(this.#synthesize("client", pending.id, { kind: "error", error }, pending));
    }
    return out;
  }

  /**
   * Records that the answers to these client requests can no longer be delivered (the client
   * went away mid-stream): an `error` record with `wire_sha256: null` and `data.delivered: false`
   * for each one still waiting, so that no request ends silently.
   */
  undeliverable(ids: readonly JsonRpcId[], reason: string, via?: string): void {
    this.#through(via, () => this.#undeliverable(ids, reason));
  }

  #undeliverable(ids: readonly JsonRpcId[], reason: string): void {
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
      upstream: this.#via,
    };
  }

  #redact(value: JsonValue, root: string, paths: string[]): JsonValue {
    const list = this.#deps.live.redactors;
    if (this.#redaction?.from !== list) this.#redaction = { from: list, walk: oneWalk(list) };
    const walk = this.#redaction.walk;
    if (walk === null) return value;
    const step = walk.redact(value, root);
    // A record's paths are gathered from a few roots (`error.message`, `error.data`); one walk's
    // are distinct already.
    const fresh = paths.length === 0;
    for (const p of step.paths) if (fresh || !paths.includes(p)) paths.push(p);
    return step.value;
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

  /**
   * A server's answer whose id is the text of a client request's number (`"2"` for `2`): the
   * TypeScript SDK's client takes it as that request's answer (it looks answers up by
   * `Number(id)`), so the proxy must too — or a server could answer `tools/list` unseen by
   * pinning and filtering.
   */
  #settleCoerced(id: JsonRpcId): Pending | undefined {
    // Number text that a double reads as another number (`1.0000000000000000000001`, `-0`) is kept
    // as written, and so keyed apart from the client's `1` or `0`; `Number()` makes them one, as
    // the SDK clients do.
    const text = isRawNumber(id) ? id.rawJSON : id;
    if (typeof text !== "string" || text.trim() === "") return undefined;
    const n = Number(text);
    return Number.isFinite(n) ? this.#settle("client", n) : undefined;
  }

  #settle(side: Side, id: JsonRpcId): Pending | undefined {
    const key = idKey(id);
    const map = this.#pending[side];
    const pending = map.get(key);
    if (pending === undefined) return undefined;
    map.delete(key);
    return pending;
  }

  /**
   * The guard's verdicts on a message or batch, one per message. Requests are judged, and so are
   * notifications outside `notifications/` (a `tools/call` without an id is still a call to a
   * server that acts on it). While a guardrail judges what requests say, a message whose member
   * names a peer may read differently cannot be judged, and is refused. (What is not JSON-RPC at
   * all never gets here: it is a violation in every mode.)
   */
  #judge(
    guard: Guard,
    messages: readonly WireMessage[],
    values: readonly JsonValue[],
  ): Verdict[] {
    const strict = guard.judgesContent;
    const verdicts: Verdict[] = messages.map(() => PASS);
    const requests: JudgedRequest[] = [];
    const slots: number[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.kind !== "request" && (m.kind !== "notification" || isNotificationMethod(m.method))) {
        continue;
      }
      const value = values[i];
      const twice = strict && value !== undefined ? ambiguousMember(value) : null;
      if (twice !== null) {
        const where = twice.path === "" ? "the message" : twice.path;
        verdicts[i] = unjudgeable(
          `member names in ${where} differ only in case (${twice.names.join(", ")})`,
        );
        continue;
      }
      requests.push({ method: m.method, params: m.params });
      slots.push(i);
    }
    if (requests.length === 0 || verdicts.some((v) => v.kind === "refuse")) return verdicts;
    const judged = guard.judgeAll(requests, { session: this.#vouched ? this.#session : null });
    slots.forEach((slot, k) => (verdicts[slot] = judged[k]!));
    return verdicts;
  }

  #noteClientInfo(message: Extract<WireMessage, { kind: "request" }>): JsonObject | null {
    const info = message.method === "initialize"
      ? clientInfoOf(message.params)
      : metaClientInfoOf(message.params);
    if (info !== null) this.#clientInfo = info;
    return info;
  }

  /** The record of one message; a request is remembered as awaiting its answer. */
  #draft(from: Side, message: WireMessage, wire: string, verdict: Verdict | undefined): Draft {
    const f = this.#base(from, wire);
    const now = this.#deps.mono();
    let answering: Pending | undefined;
    switch (message.kind) {
      case "request": {
        if (from === "client") {
          const info = this.#noteClientInfo(message);
          if (info !== null) f.client_info = info;
        }
        const pending = this.#pendingOf(message, now);
        this.#remember(from, pending);
        this.#requestFields(f, message, pending.toolName);
        if (verdict?.kind === "allow") f.decision = verdict.decision;
        break;
      }
      case "notification":
        f.kind = "notification";
        f.method = message.method;
        if (verdict?.kind === "allow") f.decision = verdict.decision;
        if (message.params !== undefined) {
          f.params = this.#redact(message.params, "params", f.redacted);
        }
        break;
      case "response":
      case "error": {
        answering = this.#settle(other(from), message.id) ??
          (from === "server" ? this.#settleCoerced(message.id) : undefined);
        f.kind = message.kind;
        f.jsonrpc_id = message.id;
        if (answering) {
          f.method = answering.method;
          f.tool_name = answering.toolName;
          f.duration_ms = Math.round((now - answering.start) * 1000) / 1000;
        }
        if (message.kind === "response") {
          f.result = this.#redact(message.result, "result", f.redacted);
        } else {
          // The message is text a server wrote, and may quote what it was given: redacted too.
          const text = this.#redact(message.error.message, "error.message", f.redacted);
          const error: RpcError = {
            code: message.error.code,
            message: typeof text === "string" ? text : message.error.message,
          };
          if (message.error.data !== undefined) {
            error.data = this.#redact(message.error.data, "error.data", f.redacted);
          }
          f.error = error;
        }
        break;
      }
      default: {
        const never: never = message;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
    return { message, fields: f, answering };
  }

  #pendingOf(message: Extract<WireMessage, { kind: "request" }>, now: number): Pending {
    return {
      id: message.id,
      method: message.method,
      toolName: toolNameOf(message.method, message.params),
      start: now,
      firstPage: paramsObject(message.params)?.cursor === undefined,
    };
  }

  #requestFields(
    f: AuditFields,
    message: Extract<WireMessage, { kind: "request" }>,
    toolName = toolNameOf(message.method, message.params),
  ): void {
    f.kind = "request";
    f.jsonrpc_id = message.id;
    f.method = message.method;
    f.tool_name = toolName;
    if (message.params !== undefined) {
      f.params = this.#redact(message.params, "params", f.redacted);
    }
  }

  /** A server's answer to `tools/list`: pinning looks at it, and the policy may filter it. */
  #listing(guard: Guard, draft: Draft, wire: string): void {
    const { message, answering } = draft;
    if (message.kind !== "response" || answering?.method !== "tools/list") return;
    const result = message.result;
    const next = isJsonObject(result) ? result.nextCursor : undefined;
    const listing = guard.toolsListed(result, {
      first: answering.firstPage,
      last: next === undefined || next === null || next === "",
    });
    draft.observation = listing.observation;
    if (listing.result === null) return;
    draft.rewritten = {
      message: { jsonrpc: "2.0", id: message.id, result: listing.result },
      decision: {
        action: "filter",
        rule: null,
        reason: `${listing.hidden.length} of the server's tools hidden from this client`,
        hidden: listing.hidden.map((h) => ({ name: h.name, reason: h.reason })),
        upstream_sha256: wire,
      },
    };
  }

  /** Records what pinning saw of a server's tools as events, and warns of changes. */
  #pinEvents(o: Observation): void {
    const guard = this.#deps.live.guard;
    if (guard === null) return;
    const serverId = guard.parts.serverId;
    if (o.error !== null) {
      this.#deps.logger.error("cannot keep the tool pins file", { error: o.error.message });
    }
    if (o.firstPin && o.pinned.length > 0) {
      this.#deps.log.event(EventMethod.ToolsPinned, {
        server_id: serverId,
        tools: o.pinned,
      }, this.#session);
    }
    if (o.changes.length === 0) return;
    const total = guard.countToolChanges(o.changes.length);
    this.#deps.log.event(EventMethod.ToolsChanged, {
      server_id: serverId,
      mode: guard.parts.pinMode,
      changes: o.changes.map((c) => ({
        name: c.name,
        change: c.change,
        pinned: c.pinned,
        seen: c.seen,
      })),
      changes_total: total,
    }, this.#session);
    this.#deps.logger.warn("a tool definition changed since it was pinned", {
      server_id: serverId,
      tools: o.changes.map((c) => `${c.name} (${c.change})`).join(", "),
      mode: guard.parts.pinMode,
    });
  }

  /**
   * Refuses a message or batch holding a refused message: every message is recorded, nothing is
   * sent on, and each request is answered — a batch with one array,
   * whose digest each answer's record carries. The client's answers to server requests inside a
   * refused batch never reach the server, so those requests stay waiting.
   */
  #refuse(
    messages: WireMessage[],
    verdicts: Verdict[],
    wire: string,
    batch: boolean,
  ): Passage {
    const now = this.#deps.mono();
    const answers: { id: JsonRpcId; answer: Answer; pending: Pending | undefined }[] = [];
    const withBatch: Decision = { action: "deny", rule: null, reason: REFUSED_WITH_BATCH };
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      const verdict = verdicts[i]!;
      const decision = verdict.kind === "refuse" ? verdict.decision : withBatch;
      if (message.kind === "response" || message.kind === "error") {
        const f = this.#base("client", wire);
        f.kind = message.kind;
        f.jsonrpc_id = message.id;
        f.decision = decision;
        this.#deps.log.append(f);
        continue;
      }
      if (message.kind !== "request") {
        const d = this.#draft("client", message, wire, undefined);
        d.fields.decision = decision;
        this.#deps.log.append(d.fields);
        continue;
      }
      const f = this.#base("client", wire);
      const info = this.#noteClientInfo(message);
      if (info !== null) f.client_info = info;
      this.#requestFields(f, message);
      f.decision = decision;
      this.#deps.log.append(f);
      const answer: Answer = verdict.kind === "refuse" ? verdict.answer : {
        kind: "error",
        error: {
          code: ErrorCode.PolicyDenied,
          message: ErrorMessage.PolicyDenied,
          data: { action: "deny", reason: REFUSED_WITH_BATCH, rule_index: -1 },
        },
      };
      answers.push({ id: message.id, answer, pending: this.#pendingOf(message, now) });
    }
    if (answers.length === 0) {
      return { messages, forward: null, replies: [], batch, violation: null };
    }
    const texts = answers.map((a) => answerText(a.id, a.answer));
    // A batch is answered with one array (JSON-RPC 2.0 §6), its members recorded one by one.
    const sent = batch ? [`[${texts.join(",")}]`] : texts;
    const digest = batch ? sha256Hex(sent[0]!) : undefined;
    answers.forEach((a, k) => {
      this.#answerRecord("client", a.id, a.answer, a.pending, digest ?? sha256Hex(texts[k]!));
    });
    const replies = sent.map((t): Outbound => ({ to: "client", bytes: encoder.encode(t + "\n") }));
    return { messages, forward: null, replies, batch, violation: null };
  }

  /** Sends `answer` to request `id` to `to`, recording it as an answer from the other side. */
  #synthesize(to: Side, id: JsonRpcId, answer: Answer, pending: Pending | undefined): Outbound {
    const text = answerText(id, answer);
    this.#answerRecord(to, id, answer, pending, sha256Hex(text));
    return { to, bytes: encoder.encode(text + "\n") };
  }

  /** Records the proxy's `answer` to request `id`, sent to `to` in bytes of digest `wire`. */
  #answerRecord(
    to: Side,
    id: JsonRpcId,
    answer: Answer,
    pending: Pending | undefined,
    wire: string,
  ): void {
    const f = this.#base(other(to), wire);
    f.jsonrpc_id = id;
    if (answer.kind === "error") {
      f.kind = "error";
      f.error = answer.error;
    } else {
      f.kind = "response";
      f.result = answer.result;
    }
    if (pending) {
      f.method = pending.method;
      f.tool_name = pending.toolName;
      f.duration_ms = Math.round((this.#deps.mono() - pending.start) * 1000) / 1000;
    }
    this.#deps.log.append(f);
  }

  /**
   * A message that breaks the wire rules: one `invalid` record naming the violation, with the
   * digest of the bytes received; it is never sent on. Its sender hears `-32600` when the message
   * is a request (or may be one) whose id can be found; when it was the answer to a request the
   * other side awaits, that side gets `-32600` for its request in its place (as `forward`), so
   * that nobody waits forever.
   * A client's message whose id cannot be found is answered with id null.
   */
  #reject(from: Side, content: Uint8Array, violation: Violation): Passage {
    // Read far enough to know its id, a message is not searched again; else its bytes are.
    const unread = violation.id === undefined && violation.request === undefined;
    const head = content.subarray(0, ID_SEARCH);
    const id = unread ? recoverId(head, content.subarray(-ID_SEARCH)) : violation.id;
    const request = unread ? (looksLikeRequest(head) || undefined) : violation.request;
    const data: JsonObject = { violation: violation.code, reason: violation.reason };
    if (violation.code === "max_json_depth") {
      data.max_json_depth = this.#deps.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
    }
    const f = this.#base(from, sha256Hex(content));
    f.jsonrpc_id = id ?? null;
    f.error = {
      code: ErrorCode.InvalidRequest,
      message: ErrorMessage.InvalidRequest,
      data: { ...data, forwarded: false },
    };
    // While guardrails judge what requests say, the record says they could not judge this one.
    if (from === "client" && this.#deps.live.guard?.judgesContent === true) {
      f.decision = { action: "deny", rule: null, reason: `cannot be judged: ${violation.reason}` };
    }
    this.#deps.log.append(f);
    this.#deps.logger.warn("refused a message that is not safe to forward", {
      from,
      violation: violation.code,
      id_found: id !== undefined,
    });
    const passage: Passage = { messages: [], forward: null, replies: [], batch: false, violation };
    const answer: Answer = {
      kind: "error",
      error: {
        code: ErrorCode.InvalidRequest,
        message: ErrorMessage.InvalidRequest,
        data: { ...data, reason: `refused unread: ${violation.reason}` },
      },
    };
    if (id === undefined) {
      // JSON-RPC 2.0 answers a request whose id cannot be read with id null; an HTTP client needs
      // the answer as its body. A blank line asked nothing, and a server is owed no such answer.
      if (from === "client" && request !== false && violation.code !== "blank") {
        passage.replies.push(this.#synthesize(from, null, answer, undefined));
      }
      return passage;
    }
    const answering = request === true ? undefined : this.#settle(other(from), id) ??
      (from === "server" ? this.#settleCoerced(id) : undefined);
    if (answering !== undefined) {
      // Sent on in the refused answer's place: where it would have gone (an HTTP response, an
      // SSE event, a line) the waiting side finds the answer to its request.
      const out = this.#synthesize(other(from), answering.id, answer, answering);
      passage.forward = out.bytes.subarray(0, out.bytes.length - 1);
    } else if (request !== false) {
      passage.replies.push(this.#synthesize(from, id, answer, undefined));
    }
    return passage;
  }

  /**
   * A message over the limit, from its size and first and last bytes: recorded as `invalid`,
   * not forwarded, and answered with `-32600` when its id can be read.
   */
  rejectOversized(
    from: Side,
    frame: { size: number; head: Uint8Array; tail: Uint8Array },
    via?: string,
  ): Outbound[] {
    return this.#through(via, () => this.#rejectOversized(from, frame));
  }

  #rejectOversized(
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
    const answer: Answer = { kind: "error", error };
    if (answering) return [this.#synthesize(other(from), id, answer, answering)];
    return [this.#synthesize(from, id, answer, undefined)];
  }
}
