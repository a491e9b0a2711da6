/**
 * Builds the settings a reload can replace — the guardrails and the redactors — from the typed
 * configuration, checking everything the configuration loader leaves to them (rule conditions,
 * rate-limit overrides, detector names, custom patterns, the pin file). Any problem is a
 * {@linkcode ConfigError} naming the key, at start and on every reload alike.
 *
 * @module
 */
import { sha256Hex } from "../audit/chain.ts";
import { canonicalize } from "../audit/canonical.ts";
import { type CustomPattern, DetectorConfigError, ValueRedactor } from "../audit/detectors.ts";
import { KeyRedactor } from "../audit/redact.ts";
import { auditStorePath, type Config } from "../config/config.ts";
import { ConfigError } from "../config/load.ts";
import { Guard, type GuardParts } from "../guardrails/guard.ts";
import { defaultPinsPath, PinError, PinStore } from "../guardrails/pins.ts";
import { compilePolicy, GuardrailConfigError } from "../guardrails/policy.ts";
import { RateLimiter } from "../guardrails/rate_limiter.ts";
import { asJsonValue, DepthError, type JsonValue } from "../jsonrpc/json.ts";
import type { LiveSettings, Redactor } from "./exchange.ts";

/** What building needs besides the configuration. */
export interface SettingsDeps {
  /** Monotonic milliseconds, for rate limits. */
  mono: () => number;
  /** Wall-clock time, for pin timestamps. */
  now: () => Date;
}

/** Built settings, with the digests that tell whether a reload changed them. */
export interface BuiltSettings {
  parts: GuardParts;
  redactors: Redactor[];
  /** SHA-256 of the canonical policy settings (for `audit/start` and `audit/reload`). */
  policyDigest: string;
  /** SHA-256 of the canonical rate-limit settings; equal digests keep the old buckets. */
  limitsDigest: string;
}

function json(key: string, value: unknown): JsonValue {
  let v: JsonValue | undefined;
  try {
    v = asJsonValue(value);
  } catch (e) {
    if (!(e instanceof DepthError)) throw e;
    throw new ConfigError(key, `${e.message}, or refers to itself`);
  }
  if (v === undefined) throw new ConfigError(key, "holds a value that is not plain JSON data");
  return v;
}

/** The policy settings in a canonical form, for its digest. */
export function policyDigest(config: Config): string {
  const p = config.policy;
  return sha256Hex(canonicalize({
    enabled: p.enabled,
    default_action: p.default_action,
    mode: p.mode,
    scope: p.scope,
    deny_as: p.deny_as,
    filter_tools: p.filter_tools,
    rules: json("policy.rules", p.rules),
  }));
}

function limitsDigest(config: Config): string {
  return sha256Hex(canonicalize(json("middleware.rate_limit", config.middleware.rate_limit)));
}

function customPatterns(list: readonly unknown[]): CustomPattern[] {
  return list.map((item, i) => {
    const key = `middleware.redact.custom_patterns[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      throw new ConfigError(key, "must be a map with name and pattern");
    }
    const entries = new Map(Object.entries(item));
    for (const name of entries.keys()) {
      if (name !== "name" && name !== "pattern") {
        throw new ConfigError(`${key}.${name}`, "unknown key (known: name, pattern)");
      }
    }
    const name = entries.get("name");
    const pattern = entries.get("pattern");
    if (typeof name !== "string") throw new ConfigError(`${key}.name`, "must be a string");
    if (typeof pattern !== "string" || pattern === "") {
      throw new ConfigError(`${key}.pattern`, "must be a non-empty string");
    }
    return { name, pattern };
  });
}

function redactors(config: Config): Redactor[] {
  const r = config.middleware.redact;
  if (!r.enabled) return [];
  const out: Redactor[] = [new KeyRedactor(r.patterns)];
  const custom = customPatterns(r.custom_patterns);
  if (r.detectors.length > 0 || custom.length > 0) {
    try {
      out.push(new ValueRedactor({ detectors: r.detectors, custom }));
    } catch (e) {
      if (!(e instanceof DetectorConfigError)) throw e;
      const key = e.code === "unknown_detector"
        ? "middleware.redact.detectors"
        : "middleware.redact.custom_patterns";
      throw new ConfigError(key, e.message);
    }
  }
  return out;
}

/** Where the pins are kept. */
export function pinsPath(config: Config): string {
  return config.pinning.path !== ""
    ? config.pinning.path
    : defaultPinsPath(auditStorePath(config.audit));
}

/**
 * Builds settings from `config`. `previous`, on a reload, lends what is unchanged: the rate
 * buckets (so a reload is no way to refill a budget) and the open pin store.
 * @throws {ConfigError} naming the key at fault
 */
export function buildSettings(
  config: Config,
  deps: SettingsDeps,
  previous?: BuiltSettings,
): BuiltSettings {
  const p = config.policy;
  const rl = config.middleware.rate_limit;
  try {
    const policy = p.enabled
      ? compilePolicy(p.rules, { default_action: p.default_action, mode: p.mode, scope: p.scope })
      : null;
    const digest = limitsDigest(config);
    const limiter = !rl.enabled
      ? null
      : previous !== undefined && previous.limitsDigest === digest
      ? previous.parts.limiter
      : new RateLimiter({
        requests_per_minute: rl.requests_per_minute,
        burst: rl.burst,
        tools: limitTable("middleware.rate_limit.tools", rl.tools),
        methods: limitTable("middleware.rate_limit.methods", rl.methods),
        max_buckets: rl.max_buckets,
      }, deps.mono);
    const path = pinsPath(config);
    const pins = !config.pinning.enabled
      ? null
      : previous?.parts.pins?.path === path
      ? previous.parts.pins
      : PinStore.open(path, deps.now);
    return {
      parts: {
        policy,
        denyAs: p.deny_as,
        filterTools: p.filter_tools,
        limiter,
        limiterKey: rl.key,
        pins,
        pinMode: config.pinning.mode,
        clientId: config.proxy.client_id,
        serverId: config.proxy.server_id,
      },
      redactors: redactors(config),
      policyDigest: policyDigest(config),
      limitsDigest: digest,
    };
  } catch (e) {
    if (e instanceof GuardrailConfigError) throw new ConfigError(e.key, e.problem);
    if (e instanceof PinError) throw new ConfigError("pinning.path", e.message);
    throw e;
  }
}

/** A rate-limit override table, each entry checked by the limiter itself. */
function limitTable(
  key: string,
  table: { readonly [name: string]: unknown },
): Record<string, { requests_per_minute?: number; burst?: number }> {
  const out: Record<string, { requests_per_minute?: number; burst?: number }> = {};
  for (const [name, value] of Object.entries(table)) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new ConfigError(`${key}.${name}`, "must be a map with requests_per_minute and burst");
    }
    const limit: { requests_per_minute?: number; burst?: number } = {};
    for (const [field, v] of Object.entries(value)) {
      if (field !== "requests_per_minute" && field !== "burst") {
        throw new ConfigError(
          `${key}.${name}.${field}`,
          "unknown key (known: requests_per_minute, burst)",
        );
      }
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        throw new ConfigError(`${key}.${name}.${field}`, "must be a whole number");
      }
      limit[field] = v;
    }
    Object.defineProperty(out, name, { value: limit, enumerable: true });
  }
  return out;
}

/** Live settings for the exchanges, from built ones. */
export function liveSettings(built: BuiltSettings): LiveSettings {
  return { guard: new Guard(built.parts), redactors: built.redactors };
}

/** Puts rebuilt settings in force in `live`, keeping its guard (and its counters). */
export function applySettings(live: LiveSettings, built: BuiltSettings): void {
  if (live.guard === null) live.guard = new Guard(built.parts);
  else live.guard.replace(built.parts);
  live.redactors = built.redactors;
}

/** SHA-256 of the effective configuration (secrets masked), for `audit/start` and reloads. */
export function configDigest(effective: Readonly<Record<string, unknown>>): string {
  return sha256Hex(canonicalize(json("config", effective)));
}
