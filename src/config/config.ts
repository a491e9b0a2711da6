/**
 * The typed configuration every other module receives.
 *
 * @module
 */
import type { ConfigValue, PolicyRule } from "./schema.ts";

/** Checked configuration. Key names follow `config.yaml`. */
export interface Config {
  proxy: {
    transport: "stdio" | "http";
    upstream: string;
    /** The upstream as argv, when given after `--` (not a config key). */
    upstream_argv: string[];
    port: number;
    bind_address: string;
    upstream_timeout_ms: number;
    forward_headers: string[];
    max_message_bytes: number;
    max_json_depth: number;
    tls: {
      ca_file: string;
      server_name: string;
      insecure_skip_verify: boolean;
      client_cert_file: string;
      client_key_file: string;
    };
    retry: { max_retries: number; initial_interval_ms: number; max_interval_ms: number };
    client_id: string;
    server_id: string;
    http: {
      allowed_origins: string[];
      allowed_hosts: string[];
      /** 0: as `max_message_bytes`. */
      max_request_body_bytes: number;
      max_header_bytes: number;
      /** Milliseconds; 0 is off. */
      read_header_timeout: number;
      read_timeout: number;
      write_timeout: number;
      idle_timeout: number;
      max_connections: number;
    };
  };
  audit: {
    storage: "jsonl" | "sqlite";
    path: string;
    follow_symlinks: boolean;
    anchor: { path: string };
    sqlite_path: string;
    sign: boolean;
    secret: string;
    key_id: string;
    signing: { private_key_file: string; public_key_file: string };
    durability: "none" | "batch" | "entry";
    sync_interval_ms: number;
    async: { enabled: boolean; queue_size: number; batch_size: number; flush_interval_ms: number };
    rotation: {
      max_size_bytes: number;
      max_files: number;
      interval: "" | "hourly" | "daily";
      max_age_days: number;
      compress: "" | "gzip";
    };
    checkpoint: { every_records: number; every_seconds: number };
    sqlite_busy_timeout_ms: number;
  };
  middleware: {
    rate_limit: {
      enabled: boolean;
      requests_per_minute: number;
      burst: number;
      /** Overrides by tool name or `*` pattern: `{requests_per_minute, burst}` each. */
      tools: { readonly [name: string]: unknown };
      /** Overrides by method or `*` pattern. */
      methods: { readonly [name: string]: unknown };
      max_buckets: number;
      key: "caller" | "client_id";
    };
    redact: {
      enabled: boolean;
      patterns: string[];
      detectors: string[];
      /** `{name, pattern}` each. */
      custom_patterns: readonly unknown[];
    };
  };
  policy: {
    enabled: boolean;
    default_action: "allow" | "deny";
    mode: "enforce" | "monitor";
    scope: "tools_only" | "all_operations";
    rules: PolicyRule[];
    deny_as: "error" | "tool_result";
    filter_tools: boolean;
  };
  pinning: { enabled: boolean; mode: "warn" | "block"; path: string };
  dashboard: {
    enabled: boolean;
    bind_address: string;
    port: number;
    auth: { token: string };
    /** The IANA time zone whose midnight starts "today" in `/api/stats`. */
    timezone: string;
  };
  metrics: {
    enabled: boolean;
    bind_address: string;
    port: number;
    path: string;
    include_go_metrics: boolean;
    include_process_metrics: boolean;
    tool_labels: boolean;
    /** Distinct tool names labelled by name; later ones are labelled `other`. */
    max_tool_labels: number;
  };
  otel: {
    enabled: boolean;
    endpoint: string;
    service_name: string;
    headers: Record<string, string>;
    tls: { ca_file: string; server_name: string; insecure_skip_verify: boolean };
    retry: { max_retries: number; initial_interval_ms: number; max_interval_ms: number };
    queue_size: number;
    batch_size: number;
    flush_interval_ms: number;
    timeout_ms: number;
    /** Which exchanges become spans: `tools/call` only (as the Go tool) or every method. */
    methods: "tools/call" | "all";
    /** Export every stored record as an OpenTelemetry LogRecord. */
    logs: boolean;
    protocol: "http/json" | "http/protobuf";
    compression: "none" | "gzip";
    /** How long shutdown waits for queued spans and log records to be exported. */
    shutdown_timeout_ms: number;
  };
}

function isTreeMap(v: ConfigValue): v is { readonly [name: string]: unknown } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Typed reads from checked flat values; a wrong type here is a bug in the schema table. */
export class FlatValues {
  #values: ReadonlyMap<string, ConfigValue>;
  constructor(values: ReadonlyMap<string, ConfigValue>) {
    this.#values = values;
  }
  #get(key: string): ConfigValue {
    if (!this.#values.has(key)) throw new Error(`config key ${key} is not in the schema`);
    return this.#values.get(key) ?? null;
  }
  str(key: string): string {
    const v = this.#get(key);
    if (typeof v !== "string") throw new Error(`config key ${key} is not a string`);
    return v;
  }
  oneOf<T extends string>(key: string, values: readonly T[]): T {
    const v = this.str(key);
    const found = values.find((x) => x === v);
    if (found === undefined) {
      throw new Error(`config key ${key} is not one of ${values.join(", ")}`);
    }
    return found;
  }
  int(key: string): number {
    const v = this.#get(key);
    if (typeof v !== "number") throw new Error(`config key ${key} is not a number`);
    return v;
  }
  bool(key: string): boolean {
    const v = this.#get(key);
    if (typeof v !== "boolean") throw new Error(`config key ${key} is not a boolean`);
    return v;
  }
  list(key: string): string[] {
    const v = this.#get(key);
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw new Error(`config key ${key} is not a list`);
    }
    return v.filter((x): x is string => typeof x === "string");
  }
  map(key: string): Record<string, string> {
    const v = this.#get(key);
    if (!isTreeMap(v)) throw new Error(`config key ${key} is not a map`);
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(v)) {
      if (typeof value !== "string") throw new Error(`config key ${key}.${name} is not a string`);
      out[name] = value;
    }
    return out;
  }
  treeMap(key: string): { readonly [name: string]: unknown } {
    const v = this.#get(key);
    if (!isTreeMap(v)) throw new Error(`config key ${key} is not a map`);
    return v;
  }
  treeList(key: string): readonly unknown[] {
    const v = this.#get(key);
    if (!Array.isArray(v)) throw new Error(`config key ${key} is not a list`);
    return v;
  }
  rules(key: string): PolicyRule[] {
    const v = this.#get(key);
    if (!Array.isArray(v)) throw new Error(`config key ${key} is not a rule list`);
    return v.filter((x): x is PolicyRule => typeof x === "object");
  }
}

/** The path the configured audit backend writes: `audit.sqlite_path` for SQLite, else `audit.path`. */
export function auditStorePath(audit: Config["audit"]): string {
  return audit.storage === "sqlite" ? audit.sqlite_path : audit.path;
}

/** Builds the typed configuration from checked flat values. */
export function buildConfig(f: FlatValues, upstreamArgv: string[]): Config {
  return {
    proxy: {
      transport: f.oneOf("proxy.transport", ["stdio", "http"]),
      upstream: f.str("proxy.upstream"),
      upstream_argv: upstreamArgv,
      port: f.int("proxy.port"),
      bind_address: f.str("proxy.bind_address"),
      upstream_timeout_ms: f.int("proxy.upstream_timeout_ms"),
      forward_headers: f.list("proxy.forward_headers"),
      max_message_bytes: f.int("proxy.max_message_bytes"),
      max_json_depth: f.int("proxy.max_json_depth"),
      tls: {
        ca_file: f.str("proxy.tls.ca_file"),
        server_name: f.str("proxy.tls.server_name"),
        insecure_skip_verify: f.bool("proxy.tls.insecure_skip_verify"),
        client_cert_file: f.str("proxy.tls.client_cert_file"),
        client_key_file: f.str("proxy.tls.client_key_file"),
      },
      retry: {
        max_retries: f.int("proxy.retry.max_retries"),
        initial_interval_ms: f.int("proxy.retry.initial_interval_ms"),
        max_interval_ms: f.int("proxy.retry.max_interval_ms"),
      },
      client_id: f.str("proxy.client_id"),
      server_id: f.str("proxy.server_id"),
      http: {
        allowed_origins: f.list("proxy.http.allowed_origins"),
        allowed_hosts: f.list("proxy.http.allowed_hosts"),
        max_request_body_bytes: f.int("proxy.http.max_request_body_bytes"),
        max_header_bytes: f.int("proxy.http.max_header_bytes"),
        read_header_timeout: f.int("proxy.http.read_header_timeout"),
        read_timeout: f.int("proxy.http.read_timeout"),
        write_timeout: f.int("proxy.http.write_timeout"),
        idle_timeout: f.int("proxy.http.idle_timeout"),
        max_connections: f.int("proxy.http.max_connections"),
      },
    },
    audit: {
      storage: f.oneOf("audit.storage", ["jsonl", "sqlite"]),
      path: f.str("audit.path"),
      follow_symlinks: f.bool("audit.follow_symlinks"),
      anchor: { path: f.str("audit.anchor.path") },
      sqlite_path: f.str("audit.sqlite_path"),
      sign: f.bool("audit.sign"),
      secret: f.str("audit.secret"),
      key_id: f.str("audit.key_id") || f.str("audit.signing.key_id"),
      signing: {
        private_key_file: f.str("audit.signing.private_key_file"),
        public_key_file: f.str("audit.signing.public_key_file"),
      },
      durability: f.oneOf("audit.durability", ["none", "batch", "entry"]),
      sync_interval_ms: f.int("audit.sync_interval_ms"),
      async: {
        enabled: f.bool("audit.async.enabled"),
        queue_size: f.int("audit.async.queue_size"),
        batch_size: f.int("audit.async.batch_size"),
        flush_interval_ms: f.int("audit.async.flush_interval_ms"),
      },
      rotation: {
        max_size_bytes: f.int("audit.rotation.max_size_bytes"),
        max_files: f.int("audit.rotation.max_files"),
        interval: f.oneOf("audit.rotation.interval", ["", "hourly", "daily"]),
        max_age_days: f.int("audit.rotation.max_age_days"),
        compress: f.oneOf("audit.rotation.compress", ["", "gzip"]),
      },
      checkpoint: {
        every_records: f.int("audit.checkpoint.every_records"),
        every_seconds: f.int("audit.checkpoint.every_seconds"),
      },
      sqlite_busy_timeout_ms: f.int("audit.sqlite_busy_timeout_ms"),
    },
    middleware: {
      rate_limit: {
        enabled: f.bool("middleware.rate_limit.enabled"),
        requests_per_minute: f.int("middleware.rate_limit.requests_per_minute"),
        burst: f.int("middleware.rate_limit.burst"),
        tools: f.treeMap("middleware.rate_limit.tools"),
        methods: f.treeMap("middleware.rate_limit.methods"),
        max_buckets: f.int("middleware.rate_limit.max_buckets"),
        key: f.oneOf("middleware.rate_limit.key", ["caller", "client_id"]),
      },
      redact: {
        enabled: f.bool("middleware.redact.enabled"),
        patterns: f.list("middleware.redact.patterns"),
        detectors: f.list("middleware.redact.detectors"),
        custom_patterns: f.treeList("middleware.redact.custom_patterns"),
      },
    },
    policy: {
      enabled: f.bool("policy.enabled"),
      default_action: f.oneOf("policy.default_action", ["allow", "deny"]),
      mode: f.oneOf("policy.mode", ["enforce", "monitor"]),
      scope: f.oneOf("policy.scope", ["tools_only", "all_operations"]),
      rules: f.rules("policy.rules"),
      deny_as: f.oneOf("policy.deny_as", ["error", "tool_result"]),
      filter_tools: f.bool("policy.filter_tools"),
    },
    pinning: {
      enabled: f.bool("pinning.enabled"),
      mode: f.oneOf("pinning.mode", ["warn", "block"]),
      path: f.str("pinning.path"),
    },
    dashboard: {
      enabled: f.bool("dashboard.enabled"),
      bind_address: f.str("dashboard.bind_address"),
      port: f.int("dashboard.port"),
      auth: { token: f.str("dashboard.auth.token") },
      timezone: f.str("dashboard.timezone"),
    },
    metrics: {
      enabled: f.bool("metrics.enabled"),
      bind_address: f.str("metrics.bind_address"),
      port: f.int("metrics.port"),
      path: f.str("metrics.path"),
      include_go_metrics: f.bool("metrics.include_go_metrics"),
      include_process_metrics: f.bool("metrics.include_process_metrics"),
      tool_labels: f.bool("metrics.tool_labels"),
      max_tool_labels: f.int("metrics.max_tool_labels"),
    },
    otel: {
      enabled: f.bool("otel.enabled"),
      endpoint: f.str("otel.endpoint"),
      service_name: f.str("otel.service_name"),
      headers: f.map("otel.headers"),
      tls: {
        ca_file: f.str("otel.tls.ca_file"),
        server_name: f.str("otel.tls.server_name"),
        insecure_skip_verify: f.bool("otel.tls.insecure_skip_verify"),
      },
      retry: {
        max_retries: f.int("otel.retry.max_retries"),
        initial_interval_ms: f.int("otel.retry.initial_interval_ms"),
        max_interval_ms: f.int("otel.retry.max_interval_ms"),
      },
      queue_size: f.int("otel.queue_size"),
      batch_size: f.int("otel.batch_size"),
      flush_interval_ms: f.int("otel.flush_interval_ms"),
      timeout_ms: f.int("otel.timeout_ms"),
      methods: f.oneOf("otel.methods", ["tools/call", "all"]),
      logs: f.bool("otel.logs"),
      protocol: f.oneOf("otel.protocol", ["http/json", "http/protobuf"]),
      compression: f.oneOf("otel.compression", ["none", "gzip"]),
      shutdown_timeout_ms: f.int("otel.shutdown_timeout_ms"),
    },
  };
}
