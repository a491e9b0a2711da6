/**
 * Every configuration key, its type and its default. One table: the loader, the environment
 * mapping and the golden test all read it. The Go tool's keys keep their names and defaults.
 *
 * @module
 */
import { DETECTOR_NAMES } from "../audit/detectors.ts";
import { DEFAULT_KEY_PATTERNS } from "../audit/redact.ts";

/** How a key's value is checked. */
export type KeyType =
  | { kind: "string"; nonEmpty?: boolean }
  | { kind: "int"; min: number; max: number }
  /**
   * A Go duration (`"10s"`, `"1m30s"`, `"250ms"`), held as milliseconds; `0` turns it off. A bare
   * number other than 0 is refused: Go would read it as nanoseconds, which no one means.
   */
  | { kind: "duration"; maxMs: number }
  | { kind: "bool" }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "list" }
  | { kind: "map" }
  | { kind: "rules" }
  /**
   * A map or list whose content a guardrail checks when it is built (rate-limit overrides, custom
   * redaction patterns); the loader checks only its shape.
   */
  | { kind: "tree"; shape: "map" | "list" }
  /** Keys of newer Go releases that this program accepts but does not act on (a warning says so). */
  | { kind: "ignored" };

/** A value a key can hold after checking. */
export type ConfigValue =
  | string
  | number
  | boolean
  | string[]
  | Record<string, string>
  | PolicyRule[]
  | TreeValue
  | null;

/** A `tree` key's value: YAML (or JSON) as parsed, checked further by the guardrail using it. */
export type TreeValue = { readonly [key: string]: unknown } | readonly unknown[];

/** One policy rule as configured (Go-compatible fields). */
export type PolicyRule = {
  action: "allow" | "deny";
  client_id: string;
  server_id: string;
  tool_name: string;
  method: string;
  reason: string;
  /** Conditions on the request (`{path, op, value, negate}`), checked when the policy compiles. */
  when: unknown[];
};

/** One row of the table. */
export interface KeySpec {
  type: KeyType;
  default: ConfigValue;
}

const str = (d = ""): KeySpec => ({ type: { kind: "string" }, default: d });
const int = (d: number, min = 0, max = Number.MAX_SAFE_INTEGER): KeySpec => ({
  type: { kind: "int", min, max },
  default: d,
});
/** A port; `0` allowed (any free one) where `min` is 0. */
const port = (d: number, min = 1): KeySpec => int(d, min, 65535);
/** A duration key; its default is in milliseconds. */
const duration = (ms: number, maxMs = 24 * 3600_000): KeySpec => ({
  type: { kind: "duration", maxMs },
  default: ms,
});
const bool = (d: boolean): KeySpec => ({ type: { kind: "bool" }, default: d });
const oneOf = (d: string, ...values: string[]): KeySpec => ({
  type: { kind: "enum", values },
  default: d,
});
const list = (d: string[] = []): KeySpec => ({ type: { kind: "list" }, default: d });
const tree = (shape: "map" | "list"): KeySpec => ({
  type: { kind: "tree", shape },
  default: shape === "map" ? {} : [],
});
const ignored: KeySpec = { type: { kind: "ignored" }, default: null };

/** The configuration table. */
export const SCHEMA: Readonly<Record<string, KeySpec>> = {
  "proxy.transport": oneOf("stdio", "stdio", "http"),
  "proxy.upstream": str(),
  // 0 asks the system for a free port; the log line "proxy listening" names the one bound.
  "proxy.port": int(4422, 0, 65535),
  "proxy.bind_address": str("127.0.0.1"),
  "proxy.upstream_timeout_ms": int(30000, 1),
  "proxy.forward_headers": list(),
  "proxy.max_message_bytes": int(16777216, 1024, 1 << 30),
  // Deepest nesting of arrays and objects a message may have; deeper ones are refused unread.
  "proxy.max_json_depth": int(1000, 16, 4000),
  "proxy.tls.ca_file": str(),
  "proxy.tls.server_name": str(),
  "proxy.tls.insecure_skip_verify": bool(false),
  "proxy.tls.client_cert_file": str(),
  "proxy.tls.client_key_file": str(),
  "proxy.retry.max_retries": int(0, 0, 100),
  "proxy.retry.initial_interval_ms": int(200, 1),
  "proxy.retry.max_interval_ms": int(2000, 1),
  "proxy.client_id": str("claude-desktop"),
  "proxy.server_id": str("filesystem"),
  "proxy.http.allowed_origins": list(),
  "proxy.http.allowed_hosts": list(),
  // 0: proxy.max_message_bytes. A body is never reserved at its declared size, only as it arrives.
  "proxy.http.max_request_body_bytes": int(0, 0, 1 << 30),
  "proxy.http.max_header_bytes": int(1048576, 1024, 64 << 20),
  // Time to receive a request's headers; then every idle gap of its body; of a client not
  // reading an answer (never a whole stream's length); of a kept-alive connection between requests.
  "proxy.http.read_header_timeout": duration(10_000),
  "proxy.http.read_timeout": duration(30_000),
  "proxy.http.write_timeout": duration(30_000),
  "proxy.http.idle_timeout": duration(120_000),
  // Most connections open at once on the proxy's listener; past it new ones are turned away.
  "proxy.http.max_connections": int(1024, 1, 1_000_000),
  "proxy.tls.enabled": ignored,
  "proxy.tls.cert_file": ignored,
  "proxy.tls.key_file": ignored,

  "audit.storage": oneOf("jsonl", "jsonl", "sqlite"),
  "audit.path": str("./audit.jsonl"),
  // A log path that is a symbolic link is refused unless this is true.
  "audit.follow_symlinks": bool(false),
  // A signed head file kept away from the log (another path or volume): `verify --anchor` then
  // sees a log cut back to an earlier clean end. Empty: no anchor.
  "audit.anchor.path": str(),
  "audit.sqlite_path": str("./audit.db"),
  "audit.sign": bool(true),
  "audit.secret": str(),
  "audit.key_id": str(),
  "audit.signing.key_id": str(),
  "audit.signing.private_key_file": str(),
  "audit.signing.public_key_file": str(),
  "audit.durability": oneOf("batch", "none", "batch", "entry"),
  // durability batch: least time between the starts of two background fsyncs (one covers every
  // batch written meanwhile); 0 starts the next as soon as the last ends.
  "audit.sync_interval_ms": int(10, 0, 60_000),
  "audit.async.enabled": bool(false),
  "audit.async.queue_size": int(4096, 1),
  "audit.async.batch_size": int(128, 1),
  "audit.async.flush_interval_ms": int(1000, 1),
  "audit.rotation.max_size_bytes": int(0),
  "audit.rotation.max_files": int(0),
  "audit.rotation.interval": oneOf("", "", "hourly", "daily"),
  "audit.rotation.max_age_days": int(0),
  // Closed archives are gzip-compressed (`audit.jsonl.<time>.gz`); "" keeps them as they are.
  "audit.rotation.compress": oneOf("", "", "gzip"),
  // A signed audit/checkpoint event naming the chain head after this many records / seconds
  // (0: never), so that a log still being written verifies up to its last checkpoint.
  "audit.checkpoint.every_records": int(0, 0),
  "audit.checkpoint.every_seconds": int(0, 0),
  // How long a writer waits for another process holding the SQLite database's write lock.
  "audit.sqlite_busy_timeout_ms": int(5000, 0, 600_000),

  "middleware.rate_limit.enabled": bool(true),
  "middleware.rate_limit.requests_per_minute": int(60, 1),
  // 0: as many as requests_per_minute (the Go tool's burst).
  "middleware.rate_limit.burst": int(0),
  "middleware.rate_limit.tools": tree("map"),
  "middleware.rate_limit.methods": tree("map"),
  "middleware.rate_limit.max_buckets": int(10_000, 1, 10_000_000),
  // Whose budget a call spends: the session or client (caller), or the configured client_id (Go).
  "middleware.rate_limit.key": oneOf("caller", "caller", "client_id"),
  "middleware.redact.enabled": bool(true),
  "middleware.redact.patterns": list([...DEFAULT_KEY_PATTERNS]),
  "middleware.redact.detectors": list([...DETECTOR_NAMES]),
  "middleware.redact.custom_patterns": tree("list"),

  "policy.enabled": bool(false),
  "policy.default_action": oneOf("allow", "allow", "deny"),
  "policy.rules": { type: { kind: "rules" }, default: [] },
  "policy.deny_as": oneOf("error", "error", "tool_result"),
  "policy.scope": oneOf("tools_only", "tools_only", "all_operations"),
  "policy.mode": oneOf("enforce", "enforce", "monitor"),
  "policy.filter_tools": bool(true),

  "pinning.enabled": bool(true),
  "pinning.mode": oneOf("warn", "warn", "block"),
  // Empty: beside the audit log, `<name>.pins.json`.
  "pinning.path": str(),

  "auth.mode": ignored,
  "auth.static": ignored,
  "auth.oidc": ignored,

  "dashboard.enabled": bool(true),
  "dashboard.bind_address": { type: { kind: "string", nonEmpty: true }, default: "127.0.0.1" },
  // 0: any free port (the "dashboard listening" log line names it).
  "dashboard.port": port(9090, 0),
  "dashboard.auth.token": str(),
  // The IANA time zone whose midnight starts "today" in `/api/stats` (the Go tool: the host's).
  "dashboard.timezone": str("UTC"),

  "metrics.enabled": bool(true),
  "metrics.bind_address": { type: { kind: "string", nonEmpty: true }, default: "127.0.0.1" },
  // 0: any free port (the "metrics listening" log line names it).
  "metrics.port": port(9091, 0),
  "metrics.path": str("/metrics"),
  "metrics.include_go_metrics": bool(true),
  "metrics.include_process_metrics": bool(true),
  "metrics.tool_labels": bool(true),
  "metrics.max_tool_labels": int(200, 1, 100_000),

  "otel.enabled": bool(false),
  "otel.endpoint": str("http://localhost:4318"),
  "otel.service_name": str("mcp-audit"),
  "otel.headers": { type: { kind: "map" }, default: {} },
  "otel.tls.ca_file": str(),
  "otel.tls.server_name": str(),
  "otel.tls.insecure_skip_verify": bool(false),
  "otel.retry.max_retries": int(3, 0, 100),
  "otel.retry.initial_interval_ms": int(200, 1),
  "otel.retry.max_interval_ms": int(2000, 1),
  "otel.queue_size": int(1024, 1),
  "otel.batch_size": int(64, 1),
  "otel.flush_interval_ms": int(1000, 1),
  "otel.timeout_ms": int(5000, 1),
  "otel.methods": oneOf("tools/call", "tools/call", "all"),
  "otel.logs": bool(false),
  "otel.protocol": oneOf("http/json", "http/json", "http/protobuf"),
  "otel.compression": oneOf("none", "none", "gzip"),
  "otel.shutdown_timeout_ms": int(10_000, 0, 600_000),
};

/** The environment variable that sets `key`: `MCP_AUDIT_` + upper case, dots as underscores. */
export function envName(key: string): string {
  return "MCP_AUDIT_" + key.toUpperCase().replaceAll(".", "_");
}

/**
 * The keys the Go tool gives a default (`setDefaults` in its `cmd/mcp-audit/main.go`, v1.1.0):
 * its viper `AutomaticEnv()` lets an unprefixed variable set each of them (`AUDIT_PATH`,
 * `DASHBOARD_AUTH_TOKEN`, …; see {@link goEnvName}), below `MCP_AUDIT_*` and flags, above the
 * file. Keys the Go tool does not have are set by `MCP_AUDIT_*` only. `proxy.upstream` has no
 * default there, so `PROXY_UPSTREAM` counts only when the file sets the key (viper's rule);
 * `audit.secret` is `AUDIT_SECRET`, read on its own.
 */
export const GO_ENV_KEYS: readonly string[] = [
  "proxy.transport",
  "proxy.port",
  "proxy.upstream_timeout_ms",
  "proxy.forward_headers",
  "proxy.tls.ca_file",
  "proxy.tls.server_name",
  "proxy.tls.insecure_skip_verify",
  "proxy.tls.client_cert_file",
  "proxy.tls.client_key_file",
  "proxy.retry.max_retries",
  "proxy.retry.initial_interval_ms",
  "proxy.retry.max_interval_ms",
  "proxy.client_id",
  "proxy.server_id",
  "audit.storage",
  "audit.path",
  "audit.sqlite_path",
  "audit.sign",
  "audit.async.enabled",
  "audit.async.queue_size",
  "audit.async.batch_size",
  "audit.async.flush_interval_ms",
  "audit.rotation.max_size_bytes",
  "audit.rotation.max_files",
  "audit.rotation.interval",
  "audit.rotation.max_age_days",
  "middleware.rate_limit.enabled",
  "middleware.rate_limit.requests_per_minute",
  "middleware.redact.enabled",
  "middleware.redact.patterns",
  "policy.enabled",
  "policy.default_action",
  "policy.rules",
  "dashboard.enabled",
  "dashboard.bind_address",
  "dashboard.port",
  "dashboard.auth.token",
  "metrics.enabled",
  "metrics.port",
  "metrics.path",
  "metrics.include_go_metrics",
  "metrics.include_process_metrics",
  "metrics.tool_labels",
  "otel.enabled",
  "otel.endpoint",
  "otel.service_name",
  "otel.headers",
  "otel.tls.ca_file",
  "otel.tls.server_name",
  "otel.tls.insecure_skip_verify",
  "otel.retry.max_retries",
  "otel.retry.initial_interval_ms",
  "otel.retry.max_interval_ms",
  "otel.queue_size",
  "otel.batch_size",
  "otel.flush_interval_ms",
  "otel.timeout_ms",
];

/** The Go tool's variable for `key`: upper case, dots as underscores, no prefix (`AUDIT_PATH`). */
export function goEnvName(key: string): string {
  return key.toUpperCase().replaceAll(".", "_");
}
