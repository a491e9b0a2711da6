import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config/load.ts";
import { buildSettings, pinsPath, policyDigest } from "./settings.ts";

const deps = { mono: () => 0, now: () => new Date(0) };

function config(yaml: string) {
  return loadConfig({
    file: { path: "config.yaml", text: yaml },
    env: {},
    flags: new Map(),
    upstreamArgv: [],
  }).config;
}

function failsAt(key: string, yaml: string): void {
  assert.throws(
    () => buildSettings(config(yaml), deps),
    (e) => e instanceof ConfigError && e.key === key,
    `expected a ConfigError naming ${key}`,
  );
}

const NO_PINS = "pinning:\n  enabled: false\n";

Deno.test("settings errors name the key at fault, down to the condition", () => {
  failsAt(
    "policy.rules[1].when[0].op",
    NO_PINS +
      "policy:\n  enabled: true\n  rules:\n    - action: allow\n    - action: deny\n      when: [{ path: a, op: near, value: 1 }]\n",
  );
  failsAt(
    "policy.rules[0].when[0].value",
    NO_PINS +
      "policy:\n  enabled: true\n  rules:\n    - action: deny\n      when: [{ path: a, op: regex, value: '(a)\\1' }]\n",
  );
  failsAt(
    "middleware.redact.detectors",
    NO_PINS + "middleware:\n  redact:\n    detectors: [dna]\n",
  );
  failsAt(
    "middleware.redact.custom_patterns[0].pattern",
    NO_PINS + "middleware:\n  redact:\n    custom_patterns: [{ name: x }]\n",
  );
  failsAt(
    "middleware.redact.custom_patterns",
    NO_PINS + "middleware:\n  redact:\n    custom_patterns: [{ name: x, pattern: '(' }]\n",
  );
  failsAt(
    "middleware.rate_limit.tools.echo.rpm",
    NO_PINS + "middleware:\n  rate_limit:\n    tools: { echo: { rpm: 3 } }\n",
  );
  failsAt(
    "middleware.rate_limit.tools.echo.requests_per_minute",
    NO_PINS + "middleware:\n  rate_limit:\n    tools: { echo: { requests_per_minute: 0 } }\n",
  );
});

Deno.test("a malformed pins file is a configuration error naming pinning.path", () => {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-settings-" });
  try {
    Deno.writeTextFileSync(`${dir}/pins.json`, "{ not json");
    failsAt("pinning.path", `pinning:\n  path: ${dir}/pins.json\n`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the pins file sits beside the audit log unless configured", () => {
  assert.equal(
    pinsPath(config("audit:\n  path: /var/log/mcp/audit.jsonl\n")),
    "/var/log/mcp/audit.pins.json",
  );
  assert.equal(pinsPath(config("pinning:\n  path: /srv/pins.json\n")), "/srv/pins.json");
});

Deno.test("a rebuild keeps the rate buckets when the rate settings are unchanged", () => {
  const a = config(NO_PINS + "policy:\n  enabled: true\n");
  const first = buildSettings(a, deps);
  const policyOnly = buildSettings(config(NO_PINS + "policy:\n  enabled: false\n"), deps, first);
  assert.equal(policyOnly.parts.limiter, first.parts.limiter);
  assert.notEqual(policyOnly.policyDigest, first.policyDigest);
  const faster = config(NO_PINS + "middleware:\n  rate_limit:\n    requests_per_minute: 5\n");
  assert.notEqual(buildSettings(faster, deps, first).parts.limiter, first.parts.limiter);
});

Deno.test("the policy digest covers the rules and their conditions", () => {
  const base = "policy:\n  rules:\n    - action: deny\n      tool_name: rm\n";
  const withWhen = base + "      when: [{ path: arguments.path, op: prefix, value: /tmp/ }]\n";
  assert.notEqual(policyDigest(config(base)), policyDigest(config(withWhen)));
  assert.equal(policyDigest(config(withWhen)), policyDigest(config(withWhen)));
});

Deno.test("redaction off means no redactors, detectors off means key redaction only", () => {
  const off = buildSettings(config(NO_PINS + "middleware:\n  redact:\n    enabled: false\n"), deps);
  assert.equal(off.redactors.length, 0);
  const keys = buildSettings(config(NO_PINS + "middleware:\n  redact:\n    detectors: []\n"), deps);
  assert.equal(keys.redactors.length, 1);
  assert.equal(buildSettings(config(NO_PINS), deps).redactors.length, 2);
});
