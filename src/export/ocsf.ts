/**
 * A record as an OCSF 1.1.0 API Activity event (class 6003), mapped as go-contract.md §8.1 says.
 * Every attribute the schema requires of the class and of the objects used is always present; the
 * evidence fields (`seq`, `id`, `prev`, `sig`, …) are kept in `unmapped`, so an event in a SIEM can
 * be traced back to its line in the signed log. Params and results are never exported.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { type CanonicalInput, canonicalize } from "../audit/canonical.ts";
import {
  isJsonObject,
  isRawNumber,
  type JsonObject,
  type JsonValue,
  parseLossless,
} from "../jsonrpc/json.ts";
import { VERSION } from "../version.ts";
import { escapeJsonControls } from "./controls.ts";
import {
  clientApplication,
  clientName,
  describeRecord,
  type Description,
  timeOf,
} from "./describe.ts";

/** The OCSF schema version emitted. */
export const OCSF_VERSION = "1.1.0";

/** Options of {@link ocsfEvent}. */
export interface OcsfOptions {
  /** `metadata.log_name`: the audit log's file name. */
  logName?: string;
}

interface Endpoint {
  name?: string;
  hostname?: string;
  ip?: string;
  port?: number;
  svc_name?: string;
}

/** An OCSF 1.1.0 API Activity event, as far as this mapping fills it. */
export interface OcsfApiActivity {
  class_uid: 6003;
  class_name: "API Activity";
  category_uid: 6;
  category_name: "Application Activity";
  activity_id: 0 | 1 | 2 | 4 | 99;
  activity_name: string;
  type_uid: number;
  type_name: string;
  time: number;
  start_time?: number;
  end_time?: number;
  duration?: number;
  severity_id: 1 | 2 | 3;
  severity: "Informational" | "Low" | "Medium";
  status_id: 0 | 1 | 2;
  status: "Unknown" | "Success" | "Failure";
  status_code?: string;
  status_detail?: string;
  message: string;
  metadata: {
    version: string;
    uid: string;
    original_time: string;
    correlation_uid?: string;
    sequence: number;
    log_name?: string;
    product: { name: string; vendor_name: string; version: string };
  };
  actor: {
    user: { uid: string; name: string };
    session?: { uid: string };
    invoked_by?: string;
    authorizations?: { decision: string; policy: { name: string; desc: string } }[];
  };
  api: {
    operation: string;
    request: { uid: string };
    response?: { code?: number; error: string; error_message?: string };
    service: { name: string };
  };
  src_endpoint: Endpoint;
  dst_endpoint: Endpoint;
  resources?: { type: string; name?: string; uid?: string }[];
  unmapped: JsonObject;
}

// Methods that read (go-contract.md §8.1): every `*/list`, and these.
const READS = new Set([
  "resources/read",
  "prompts/get",
  "completion/complete",
  "ping",
  "initialize",
]);

function activityOf(r: AuditRecord, d: Description): { id: 0 | 1 | 2 | 4 | 99; name: string } {
  const method = r.method;
  if (method === null || method === "") return { id: 0, name: "Unknown" };
  // The proxy's events, notifications and what the server asks of the client are not CRUD on
  // the server's API: named by their method.
  if (r.kind === "event" || r.kind === "notification" || d.serverInitiated) {
    return { id: 99, name: method };
  }
  if (method.endsWith("/list") || READS.has(method)) return { id: 2, name: "Read" };
  if (method === "resources/subscribe") return { id: 1, name: "Create" };
  if (method === "resources/unsubscribe") return { id: 4, name: "Delete" };
  return { id: 99, name: method };
}

const TYPE_CAPTION = { 0: "Unknown", 1: "Create", 2: "Read", 4: "Delete", 99: "Other" } as const;
const SEVERITY = { 1: "Informational", 2: "Low", 3: "Medium" } as const;

/** A JSON-RPC id as text: a number's digits, a string itself. */
export function idText(id: AuditRecord["jsonrpc_id"]): string | null {
  if (id === null) return null;
  if (typeof id === "string") return id;
  if (typeof id === "number") return String(id);
  return isRawNumber(id) ? id.rawJSON : null;
}

/** The endpoint of the MCP server: its id, and the upstream's host and port over HTTP. */
function serverEndpoint(r: AuditRecord, d: Description): Endpoint {
  const e: Endpoint = { name: r.server_id, svc_name: r.server_id };
  if (d.upstream !== null) {
    if (d.upstream.isIp) e.ip = d.upstream.host;
    else e.hostname = d.upstream.host;
    if (d.upstream.port !== null) e.port = d.upstream.port;
  }
  return e;
}

/**
 * Maps one record.
 * @throws {RecordMappingError} when the record's `ts` is not a time
 */
export function ocsfEvent(r: AuditRecord, options: OcsfOptions = {}): OcsfApiActivity {
  const time = timeOf(r);
  const d = describeRecord(r);
  const activity = activityOf(r, d);
  const status = d.failed
    ? { status_id: 2 as const, status: "Failure" as const }
    : d.answer.kind === "success"
    ? { status_id: 1 as const, status: "Success" as const }
    : { status_id: 0 as const, status: "Unknown" as const };
  const client: Endpoint = { name: r.client_id };
  const server = serverEndpoint(r, d);
  const correlation = r.session ?? idText(r.jsonrpc_id);
  const duration = (r.kind === "response" || r.kind === "error") &&
      typeof r.duration_ms === "number"
    ? Math.round(r.duration_ms)
    : null;
  const invokedBy = clientApplication(r);
  const resources = resourcesOf(r);
  // Members in the order a reader wants them: what, when, how it went, who, the evidence last.
  return {
    class_uid: 6003,
    class_name: "API Activity",
    category_uid: 6,
    category_name: "Application Activity",
    activity_id: activity.id,
    activity_name: activity.name,
    type_uid: 600300 + activity.id,
    type_name: `API Activity: ${TYPE_CAPTION[activity.id]}`,
    time,
    ...(duration === null ? {} : { start_time: time - duration, end_time: time, duration }),
    severity_id: d.level,
    severity: SEVERITY[d.level],
    ...status,
    ...(d.answer.kind === "error" && d.answer.code !== null
      ? { status_code: String(d.answer.code) }
      : {}),
    ...(d.detail === null ? {} : { status_detail: d.detail }),
    message: d.summary,
    metadata: {
      version: OCSF_VERSION,
      uid: r.id,
      original_time: r.ts,
      ...(correlation === null ? {} : { correlation_uid: correlation }),
      sequence: r.seq,
      ...(options.logName === undefined ? {} : { log_name: options.logName }),
      product: { name: "mcp-audit", vendor_name: "mcp-audit", version: VERSION },
    },
    actor: {
      user: { uid: r.client_id, name: clientName(r) ?? r.client_id },
      ...(r.session === null ? {} : { session: { uid: r.session } }),
      ...(invokedBy === null ? {} : { invoked_by: invokedBy }),
      ...(r.decision === null || d.policyName === null ? {} : {
        authorizations: [{
          decision: r.decision.action,
          policy: { name: d.policyName, desc: r.decision.reason },
        }],
      }),
    },
    api: {
      operation: r.method ?? r.kind,
      request: { uid: idText(r.jsonrpc_id) ?? r.id },
      ...responseOf(d),
      service: { name: r.server_id },
    },
    src_endpoint: d.serverInitiated ? server : client,
    dst_endpoint: d.serverInitiated ? client : server,
    ...(resources.length === 0 ? {} : { resources }),
    unmapped: unmapped(r),
  };
}

function responseOf(d: Description): Pick<OcsfApiActivity["api"], "response"> {
  switch (d.answer.kind) {
    case "error":
      return {
        response: {
          ...(d.answer.code === null ? {} : { code: d.answer.code }),
          error: d.answer.code === null ? "error" : String(d.answer.code),
          error_message: d.answer.message,
        },
      };
    case "tool_error":
      return { response: { error: "tool_error" } };
    default:
      return {};
  }
}

/**
 * {@link ocsfEvent} as one line of JSON (no newline). `JSON.stringify` escapes C0 controls but
 * leaves DEL, C1 (NEL among them), U+2028 and U+2029 raw, on which some line readers split an
 * event and a terminal may act: they are written as `\uXXXX` escapes too, the same JSON value.
 */
export function ocsfLine(r: AuditRecord, options: OcsfOptions = {}): string {
  return escapeJsonControls(JSON.stringify(ocsfEvent(r, options)));
}

function resourcesOf(r: AuditRecord): NonNullable<OcsfApiActivity["resources"]> {
  if (r.method === "tools/call" && r.tool_name !== null && r.tool_name !== "") {
    return [{ type: "mcp.tool", name: r.tool_name }];
  }
  if (
    r.method === "resources/read" || r.method === "resources/subscribe" ||
    r.method === "resources/unsubscribe"
  ) {
    const params = r.params;
    const uri = params !== null && isJsonObject(params) ? params["uri"] : undefined;
    if (typeof uri === "string" && uri !== "") return [{ type: "mcp.resource", uid: uri }];
  }
  return [];
}

/**
 * A copy of a value with its members in canonical (stored) order, so the export reads the same
 * whether the record came from the stored line or was built in memory.
 */
function canonicalCopy(value: CanonicalInput): JsonValue {
  return parseLossless(canonicalize(value));
}

/** The evidence fields, as stored: enough to find the record in the signed log and check it. */
function unmapped(r: AuditRecord): JsonObject {
  const out: JsonObject = {
    v: r.v,
    seq: r.seq,
    id: r.id,
    kind: r.kind,
    direction: r.direction,
    transport: r.transport,
    upstream: r.upstream,
    jsonrpc_id: r.jsonrpc_id,
    client_id: r.client_id,
    server_id: r.server_id,
    client_info: r.client_info === null ? null : canonicalCopy(r.client_info),
    redacted: r.redacted,
    wire_sha256: r.wire_sha256,
    prev: r.prev,
    sig: r.sig,
  };
  // The decision's particulars that no attribute holds: monitor mode, the tools a filter hid.
  if (r.decision !== null) out["decision"] = canonicalCopy(r.decision);
  // An event's details are the proxy's own facts (why it recovered, which archive it rotated
  // to), never the traffic's content.
  if (r.kind === "event") out["event"] = canonicalCopy(r.params);
  return out;
}
