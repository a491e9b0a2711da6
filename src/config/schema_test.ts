import assert from "node:assert/strict";
import { envName, SCHEMA } from "./schema.ts";

/**
 * Every configuration key and its default. The Go tool's keys carry the Go tool's defaults (its
 * README table and `setDefaults`); SPEC §2 additions carry theirs; keys of newer Go releases that
 * are accepted but ignored default to null. Changing a row is a CHANGELOG entry.
 */
const GOLDEN: Record<string, unknown> = {
  "proxy.transport": "stdio",
  "proxy.upstream": "",
  "proxy.port": 4422,
  "proxy.bind_address": "127.0.0.1",
  "proxy.upstream_timeout_ms": 30000,
  "proxy.forward_headers": [],
  "proxy.max_message_bytes": 16777216,
  "proxy.max_json_depth": 1000,
  "proxy.tls.ca_file": "",
  "proxy.tls.server_name": "",
  "proxy.tls.insecure_skip_verify": false,
  "proxy.tls.client_cert_file": "",
  "proxy.tls.client_key_file": "",
  "proxy.retry.max_retries": 0,
  "proxy.retry.initial_interval_ms": 200,
  "proxy.retry.max_interval_ms": 2000,
  "proxy.client_id": "claude-desktop",
  "proxy.server_id": "filesystem",
  "proxy.http.allowed_origins": [],
  "proxy.http.allowed_hosts": [],
  "proxy.http.max_request_body_bytes": 0,
  "proxy.http.max_header_bytes": 1048576,
  "proxy.http.read_header_timeout": 10000,
  "proxy.http.read_timeout": 30000,
  "proxy.http.write_timeout": 30000,
  "proxy.http.idle_timeout": 120000,
  "proxy.http.max_connections": 1024,
  "proxy.tls.enabled": null,
  "proxy.tls.cert_file": null,
  "proxy.tls.key_file": null,

  "audit.storage": "jsonl",
  "audit.path": "./audit.jsonl",
  "audit.follow_symlinks": false,
  "audit.anchor.path": "",
  "audit.sqlite_path": "./audit.db",
  "audit.sign": true,
  "audit.secret": "",
  "audit.key_id": "",
  "audit.signing.key_id": "",
  "audit.signing.private_key_file": "",
  "audit.signing.public_key_file": "",
  "audit.durability": "batch",
  "audit.sync_interval_ms": 10,
  "audit.async.enabled": false,
  "audit.async.queue_size": 4096,
  "audit.async.batch_size": 128,
  "audit.async.flush_interval_ms": 1000,
  "audit.rotation.max_size_bytes": 0,
  "audit.rotation.max_files": 0,
  "audit.rotation.interval": "",
  "audit.rotation.max_age_days": 0,
  "audit.rotation.compress": "",
  "audit.checkpoint.every_records": 0,
  "audit.checkpoint.every_seconds": 0,
  "audit.sqlite_busy_timeout_ms": 5000,

  "middleware.rate_limit.enabled": true,
  "middleware.rate_limit.requests_per_minute": 60,
  "middleware.rate_limit.burst": 0,
  "middleware.rate_limit.tools": {},
  "middleware.rate_limit.methods": {},
  "middleware.rate_limit.max_buckets": 10000,
  "middleware.rate_limit.key": "caller",
  "middleware.redact.enabled": true,
  "middleware.redact.patterns": [
    "password",
    "token",
    "secret",
    "api_key",
    "bearer",
    "authorization",
  ],
  "middleware.redact.detectors": [
    "private_key",
    "jwt",
    "bearer_token",
    "aws_secret_key",
    "aws_access_key",
    "github_token",
    "slack_token",
    "slack_webhook",
    "anthropic_key",
    "openai_key",
    "stripe_key",
    "google_api_key",
    "card_number",
    "email",
  ],
  "middleware.redact.custom_patterns": [],

  "policy.enabled": false,
  "policy.default_action": "allow",
  "policy.rules": [],
  "policy.deny_as": "error",
  "policy.scope": "tools_only",
  "policy.mode": "enforce",
  "policy.filter_tools": true,

  "pinning.enabled": true,
  "pinning.mode": "warn",
  "pinning.path": "",

  "auth.mode": null,
  "auth.static": null,
  "auth.oidc": null,

  "dashboard.enabled": true,
  "dashboard.bind_address": "127.0.0.1",
  "dashboard.port": 9090,
  "dashboard.auth.token": "",
  "dashboard.timezone": "UTC",

  "metrics.enabled": true,
  "metrics.bind_address": "127.0.0.1",
  "metrics.port": 9091,
  "metrics.path": "/metrics",
  "metrics.include_go_metrics": true,
  "metrics.include_process_metrics": true,
  "metrics.tool_labels": true,
  "metrics.max_tool_labels": 200,

  "otel.enabled": false,
  "otel.endpoint": "http://localhost:4318",
  "otel.service_name": "mcp-audit",
  "otel.headers": {},
  "otel.tls.ca_file": "",
  "otel.tls.server_name": "",
  "otel.tls.insecure_skip_verify": false,
  "otel.retry.max_retries": 3,
  "otel.retry.initial_interval_ms": 200,
  "otel.retry.max_interval_ms": 2000,
  "otel.queue_size": 1024,
  "otel.batch_size": 64,
  "otel.flush_interval_ms": 1000,
  "otel.timeout_ms": 5000,
  "otel.methods": "tools/call",
  "otel.logs": false,
  "otel.protocol": "http/json",
  "otel.compression": "none",
  "otel.shutdown_timeout_ms": 10000,
};

Deno.test("SCHEMA has exactly the golden keys", () => {
  assert.deepEqual(Object.keys(SCHEMA).sort(), Object.keys(GOLDEN).sort());
});

Deno.test("SCHEMA defaults equal the golden table, key by key", () => {
  for (const [key, want] of Object.entries(GOLDEN)) {
    assert.deepEqual(SCHEMA[key]?.default, want, key);
  }
});

Deno.test("SCHEMA defaults pass their own type checks", () => {
  for (const [key, spec] of Object.entries(SCHEMA)) {
    const t = spec.type;
    const d = spec.default;
    switch (t.kind) {
      case "int":
        assert.ok(typeof d === "number" && d >= t.min && d <= t.max, key);
        break;
      case "enum":
        assert.ok(typeof d === "string" && t.values.includes(d), key);
        break;
      case "string":
        assert.equal(typeof d, "string", key);
        break;
      case "bool":
        assert.equal(typeof d, "boolean", key);
        break;
      case "list":
      case "rules":
        assert.ok(Array.isArray(d), key);
        break;
      case "map":
        assert.ok(typeof d === "object" && d !== null && !Array.isArray(d), key);
        break;
      case "ignored":
        assert.equal(d, null, key);
        break;
    }
  }
});

Deno.test("envName maps a key to MCP_AUDIT_ and upper case with underscores", () => {
  assert.equal(envName("proxy.port"), "MCP_AUDIT_PROXY_PORT");
  assert.equal(envName("audit.rotation.max_size_bytes"), "MCP_AUDIT_AUDIT_ROTATION_MAX_SIZE_BYTES");
});

Deno.test("envName gives every key its own variable", () => {
  const names = Object.keys(SCHEMA).map(envName);
  assert.equal(new Set(names).size, names.length);
});
