/**
 * The dashboard's data contract: the JSON shapes its HTTP API answers (the page in `dashboard/`
 * reads exactly these) and the services the HTTP app delegates to. The app turns a request into
 * one call here and the answer into JSON; it knows nothing of storage.
 *
 * Cursors are opaque strings: a client passes back `older` as `before`, or `newer` as `after`.
 * Items are always newest first.
 *
 * @module
 */
import type { PendingEntry, PinEntry } from "../guardrails/pins.ts";
import type { AuditRecord, Decision, Direction, RecordKind } from "../audit/record.ts";

/** A request's fault (a bad parameter): answered 400 with the message. */
export class BadRequestError extends Error {
  override name = "BadRequestError";
}

/** What the page is told about the dashboard it talks to. */
export interface Info {
  version: string;
  storage: "jsonl" | "sqlite";
  /** The log's file name (no directory). */
  log: string;
  /** True when a token is needed (the page then asks for it). */
  auth: boolean;
  /** The IANA zone "today" is counted in (`dashboard.timezone`). */
  timezone: string;
  /** True when a proxy writes the log in this process; false for `mcp-audit dashboard` alone. */
  live: boolean;
}

/** A page of stored records. */
export interface RecordsPage {
  items: AuditRecord[];
  /** Pass as `before` for the next older page; null when there is none. */
  older: string | null;
  /** Pass as `after` for what is newer than this page (null when the page is empty). */
  newer: string | null;
}

/** How an exchange ended. */
export type ExchangeState =
  | "ok"
  /** Answered with a JSON-RPC error, or a tool result with `isError: true`. */
  | "error"
  /** Refused by policy or pinning (the proxy answered). */
  | "denied"
  | "rate_limited"
  /** A request with no answer stored yet. */
  | "pending"
  /** A notification, event or invalid message: nothing answers it. */
  | "none";

/**
 * A request with its answer (response, error, or the proxy's refusal), or a record that stands
 * alone (notification, event, invalid message, an answer whose request is not found).
 */
export interface ExchangeSummary {
  /** Identifies the exchange (`GET /api/v1/exchanges/{key}`). */
  key: string;
  /** The kind of its first record. */
  kind: RecordKind;
  state: ExchangeState;
  /** The first record's time. */
  ts: string;
  direction: Direction;
  method: string | null;
  tool_name: string | null;
  session: string | null;
  client_id: string;
  server_id: string;
  /** `client_info.name` of the request, when known. */
  client_name: string | null;
  jsonrpc_id: string | number | null;
  duration_ms: number | null;
  decision: Decision | null;
  /** The answer's error message (at most 200 characters), when it is an error. */
  error_message: string | null;
  request_seq: number | null;
  answer_seq: number | null;
}

/** One exchange in full. */
export interface ExchangeDetail extends ExchangeSummary {
  request: AuditRecord | null;
  answer: AuditRecord | null;
}

/** A page of exchanges. */
export interface ExchangesPage {
  items: ExchangeSummary[];
  older: string | null;
  newer: string | null;
}

/** Latency percentiles in milliseconds; null when nothing was answered. */
export interface Latency {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

/** One time bucket of a window. */
export interface StatsBucket {
  /** The bucket's start (RFC 3339). */
  start: string;
  calls: number;
  errors: number;
  latency: Latency;
}

/** Counts over a window (`GET /api/v1/stats`). */
export interface WindowStats {
  from: string;
  to: string;
  bucket_ms: number;
  /** Client requests (of every method, or the `method` asked). */
  calls: number;
  /** Calls answered with an error (a refusal is not counted here). */
  errors: number;
  denied: number;
  rate_limited: number;
  /** Calls with no answer stored. */
  pending: number;
  latency: Latency;
  top_tools: { name: string; count: number; errors: number }[];
  top_clients: { name: string; count: number }[];
  buckets: StatsBucket[];
  /** Records read to answer. */
  records_read: number;
  /** True when the window held more records than are read for one answer (the counts are of the newest). */
  partial: boolean;
}

/** The chain's state as the dashboard last checked it (`GET /api/v1/verify`). */
export interface ChainStatus {
  /** `checking`: the first pass over the log is still running. */
  state: "checking" | "intact" | "problems" | "unavailable";
  /** Records checked so far. */
  records: number;
  /** The last seq checked. */
  last_seq: number | null;
  problems: number;
  first_problem: { seq: number | null; kind: string; detail: string } | null;
  /** False when no key was given: the structure is checked, not the signatures. */
  signatures_checked: boolean;
  /** When the status last changed or was brought up to date (RFC 3339). */
  checked_at: string;
  /** Why `unavailable`, or a note. */
  note: string | null;
  /** The command that checks the whole log from the shell. */
  command: string;
}

/** One session, as the records of it read show it. */
export interface SessionSummary {
  session: string;
  transport: "stdio" | "http" | null;
  client_id: string;
  server_id: string;
  client_name: string | null;
  first_seq: number;
  last_seq: number;
  first_ts: string;
  last_ts: string;
  records: number;
  calls: number;
  errors: number;
}

/** A page of sessions, most recently active first. */
export interface SessionsPage {
  items: SessionSummary[];
  older: string | null;
}

/** The pins file, read-only (`GET /api/v1/pins`). */
export interface PinsView {
  /** The pins file, or null when pinning is off / no file is known. */
  path: string | null;
  pins: PinEntry[];
  pending: PendingEntry[];
  /** Why the file could not be read, when it could not. */
  error: string | null;
}

/** One Go-tool entry of `GET /api/entries` (go-contract §0), in the Go key order. */
export interface GoEntry {
  id: string;
  timestamp: string;
  direction: "client→server" | "server→client";
  transport: string;
  method: string;
  request_id?: string;
  tool_name?: string;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  duration_ms: number;
  client_id: string;
  server_id: string;
  signature: string;
}

/** `GET /api/stats`, Go field names. */
export interface GoStats {
  total_today: number;
  error_rate: number;
  top_tools: { name: string; count: number }[];
}

/** What the HTTP app delegates to. Each `params` is the request's query string. */
export interface DashboardServices {
  info(): Info;
  records(params: URLSearchParams): Promise<RecordsPage>;
  record(seq: number): Promise<AuditRecord | null>;
  exchanges(params: URLSearchParams): Promise<ExchangesPage>;
  exchange(key: string): Promise<ExchangeDetail | null>;
  stats(params: URLSearchParams): Promise<WindowStats>;
  sessions(params: URLSearchParams): Promise<SessionsPage>;
  verify(): ChainStatus;
  pins(): Promise<PinsView>;
  /** @throws {BadRequestError} with the Go tool's text (`dashboard: invalid limit`, …) */
  goEntries(params: URLSearchParams): Promise<GoEntry[]>;
  goStats(): Promise<GoStats>;
  /**
   * The Server-Sent Events body of `GET /api/v1/stream`: every record after `after` (a seq; null:
   * from now), then each new one as it is stored, without gaps; ends when `signal` aborts.
   * `full`: each event's data is the exact stored line, else a {@link StreamItem}.
   */
  stream(after: number | null, full: boolean, signal: AbortSignal): ReadableStream<Uint8Array>;
  /** Stops background work (the feed, the chain check). Idempotent. */
  close(): void;
}

/** The data of a `record` event of the stream (unless `full`). */
export interface StreamItem {
  seq: number;
  ts: string;
  kind: RecordKind;
  direction: Direction;
  method: string | null;
  tool_name: string | null;
  session: string | null;
  jsonrpc_id: string | number | null;
  client_id: string;
  is_error: boolean;
  action: Decision["action"] | null;
}
