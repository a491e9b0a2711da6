/**
 * What every SIEM format says of a record alike: how it ended, a one-line summary, the deciding
 * rule's name, the upstream's host and port, and who started the exchange. OCSF and CEF both map
 * from this, so a record reads the same in either.
 *
 * @module
 */
import { isJsonObject } from "../jsonrpc/json.ts";
import type { AuditRecord } from "../audit/record.ts";
import { isErrorRecord } from "../audit/storage/query.ts";

/** Raised when a record cannot be exported in a format: its `ts` is not a time. */
export class RecordMappingError extends Error {
  override name = "RecordMappingError";
}

/**
 * The record's `ts` in milliseconds since the epoch.
 * @throws {RecordMappingError} when it is not a time
 */
export function timeOf(r: AuditRecord): number {
  const time = typeof r.ts === "string" ? Date.parse(r.ts) : NaN;
  if (!Number.isSafeInteger(time)) {
    throw new RecordMappingError(`record seq ${r.seq}: ts ${JSON.stringify(r.ts)} is not a time`);
  }
  return time;
}

/** A guardrail's refusal recorded on a record. */
export type Refusal =
  | {
    kind: "deny";
    /** The guardrail that refused: the policy (rules, default action) or tool pinning. */
    by: "policy" | "pinning";
    /** False in monitor mode: the denial was recorded, not carried out. */
    enforced: boolean;
    reason: string;
  }
  | { kind: "rate_limited"; reason: string };

/** What the record says of the answer. */
export type Answer =
  | { kind: "success" }
  | { kind: "error"; code: number | null; message: string }
  | { kind: "tool_error" }
  /** A request, notification, event or invalid message: its outcome is another record's. */
  | { kind: "none" };

/** The shared reading of a record. */
export interface Description {
  refusal: Refusal | null;
  answer: Answer;
  /** True when the exchange failed: an enforced refusal, a rate limit, an error, a tool error. */
  failed: boolean;
  /** How much it matters: 1 nothing wrong, 2 an error or rate limit, 3 a policy denial. */
  level: 1 | 2 | 3;
  /** e.g. `tools/call delete_file denied by policy`. Never params or results. */
  summary: string;
  /** The refusal's reason, else the error's message, else `tool_error`; null when none. */
  detail: string | null;
  /** The deciding rule as `rules[N]`, else the guardrail (`pinning`, `rate_limit`, …). */
  policyName: string | null;
  /** True when the server started the exchange (a server request, notification or the answer). */
  serverInitiated: boolean;
  /** The upstream URL's host and port, for an HTTP upstream. */
  upstream: { host: string; isIp: boolean; port: number | null } | null;
}

/** Reads a record for export. */
export function describeRecord(r: AuditRecord): Description {
  const refusal = refusalOf(r);
  const answer = answerOf(r);
  const failed = (refusal !== null && (refusal.kind === "rate_limited" || refusal.enforced)) ||
    answer.kind === "error" || answer.kind === "tool_error";
  const level = refusal?.kind === "deny"
    ? 3
    : refusal !== null || answer.kind === "error" || answer.kind === "tool_error" ||
        r.kind === "invalid"
    ? 2
    : 1;
  return {
    refusal,
    answer,
    failed,
    level,
    summary: summaryOf(r, refusal, answer),
    detail: refusal?.reason ??
      (answer.kind === "error"
        ? answer.message
        : answer.kind === "tool_error"
        ? "tool_error"
        : null),
    policyName: policyNameOf(r),
    serverInitiated: serverInitiated(r),
    upstream: upstreamOf(r.upstream),
  };
}

function refusalOf(r: AuditRecord): Refusal | null {
  const d = r.decision;
  if (d === null || typeof d !== "object") return null;
  const reason = typeof d.reason === "string" ? d.reason : "";
  if (d.action === "deny") {
    return {
      kind: "deny",
      by: d.by === "pinning" ? "pinning" : "policy",
      enforced: d.enforced !== false,
      reason,
    };
  }
  if (d.action === "rate_limited") return { kind: "rate_limited", reason };
  return null;
}

function answerOf(r: AuditRecord): Answer {
  const e = r.error;
  if (e !== null && typeof e === "object") {
    return {
      kind: "error",
      code: typeof e.code === "number" && Number.isSafeInteger(e.code) ? e.code : null,
      message: typeof e.message === "string" ? e.message : "",
    };
  }
  if (isErrorRecord(r)) return { kind: "tool_error" };
  return r.kind === "response" ? { kind: "success" } : { kind: "none" };
}

function summaryOf(r: AuditRecord, refusal: Refusal | null, answer: Answer): string {
  const subject = [
    r.method ?? (r.kind === "invalid" ? "invalid message" : r.kind),
    ...(r.tool_name === null ? [] : [r.tool_name]),
  ].join(" ");
  if (refusal?.kind === "deny") {
    return `${subject} denied by ${refusal.by}` +
      (refusal.enforced ? "" : " (monitor mode, not enforced)");
  }
  if (refusal?.kind === "rate_limited") return `${subject} rate limited`;
  switch (answer.kind) {
    case "error":
      return `${subject} failed with error ${answer.code ?? "(no code)"}`;
    case "tool_error":
      return `${subject} failed (tool error)`;
    case "success":
      return `${subject} answered`;
    case "none":
      return subject;
    default: {
      const never: never = answer;
      throw new Error(`unknown answer ${JSON.stringify(never)}`);
    }
  }
}

function policyNameOf(r: AuditRecord): string | null {
  const d = r.decision;
  if (d === null || typeof d !== "object") return null;
  if (typeof d.rule === "number") return `rules[${d.rule}]`;
  if (d.by === "pinning") return "pinning";
  switch (d.action) {
    case "rate_limited":
      return "rate_limit";
    case "filter":
      return "tool_filter";
    default:
      // The default action, or a refusal of the policy as a whole (a batch, a message that
      // cannot be judged).
      return "policy";
  }
}

/**
 * The server started it: its request or notification, or the client's answer to its request.
 * The proxy's own events are nobody's but the proxy's, and read as the client side's.
 */
function serverInitiated(r: AuditRecord): boolean {
  switch (r.kind) {
    case "request":
    case "notification":
      return r.direction === "server_to_client";
    case "response":
    case "error":
      return r.direction === "client_to_server";
    default:
      return false;
  }
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

function upstreamOf(upstream: string | null): Description["upstream"] {
  if (typeof upstream !== "string" || upstream === "") return null;
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    return null;
  }
  if (url.hostname === "") return null;
  const bracketed = url.hostname.startsWith("[") && url.hostname.endsWith("]");
  const host = bracketed ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port !== ""
    ? Number(url.port)
    : url.protocol === "https:"
    ? 443
    : url.protocol === "http:"
    ? 80
    : null;
  return { host, isIp: bracketed || IPV4.test(host), port };
}

/** A client's `name/version` from its `initialize` params, when it sent them as text. */
export function clientApplication(r: AuditRecord): string | null {
  const info = r.client_info;
  if (info === null || !isJsonObject(info)) return null;
  const name = info["name"];
  const version = info["version"];
  if (typeof name !== "string") return null;
  return typeof version === "string" ? `${name}/${version}` : name;
}

/** The client's name from its `initialize` params, when it sent one. */
export function clientName(r: AuditRecord): string | null {
  const info = r.client_info;
  if (info === null || !isJsonObject(info)) return null;
  const name = info["name"];
  return typeof name === "string" && name !== "" ? name : null;
}
