/**
 * Loads configuration: defaults < file < the Go tool's unprefixed variables (`AUDIT_PATH`) <
 * `MCP_AUDIT_*` < flags, every value checked against the schema, unknown keys refused by name.
 * The file is YAML, or JSON when its name ends in `.json`.
 *
 * @module
 */
import { RULE_FIELDS } from "../guardrails/policy.ts";
import { parseJson as parseJsonText } from "../jsonrpc/json.ts";
import { buildConfig, type Config, FlatValues } from "./config.ts";
import { jsonSyntaxFault, lineColumn } from "./json_syntax.ts";
import {
  type ConfigValue,
  envName,
  GO_ENV_KEYS,
  goEnvName,
  type KeySpec,
  type PolicyRule,
  SCHEMA,
  type TreeValue,
} from "./schema.ts";
import { yamlFault, yamlValueFault } from "./yaml_syntax.ts";

/** A configuration problem, naming the key (or flag, or variable) at fault. Exit code 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly key: string, readonly problem: string) {
    super(`${key}: ${problem}`);
  }
}

/** What the loader reads. */
export interface LoadInput {
  /** The configuration file's path and text, when one is read. */
  file?: { path: string; text: string } | undefined;
  /** The process environment. */
  env: Readonly<Record<string, string>>;
  /** Values from flags, by key, with the flag's name for messages. */
  flags: ReadonlyMap<string, { flag: string; value: unknown }>;
  /** The upstream as argv, from after `--`. */
  upstreamArgv: string[];
}

/** The result of loading. */
export interface Loaded {
  config: Config;
  /** Things worth a warning: ignored keys, weak secrets. */
  warnings: string[];
  /** Flat values with secrets masked, for the `audit/start` digest. */
  effective: Record<string, ConfigValue>;
  /** The keys the configuration file set. */
  fromFile: string[];
  /**
   * The Go tool's unprefixed variables (`AUDIT_PATH`, …) whose values are in force, by name only:
   * such generic names may have been set for another program, so the proxy logs them.
   */
  goEnv: string[];
  /**
   * The variable or flag that set each key set by one (`PROXY_PORT`, `MCP_AUDIT_AUDIT_PATH`,
   * `--port`); a key from the file or a default is not in it. Errors name these.
   */
  setBy: ReadonlyMap<string, string>;
  /**
   * The variables this program reads that are set but empty, by name: an empty variable is not
   * set (as the Go tool's viper treats one), so these were ignored; the proxy logs them once.
   */
  emptyEnv: string[];
}

/**
 * The `yaml` package, once imported. Loading it costs 15–30 ms, which a run without a
 * configuration file does not pay: see {@link loadYamlParser}.
 */
let yamlModule: typeof import("yaml") | undefined;

/**
 * Imports the YAML parser that {@link loadConfig} reads a configuration file with. Await it before
 * loading a file without blocking: `main.ts` does, only when it has a file to read (and before a
 * reload). A `loadConfig` given a file before this resolved loads the parser synchronously.
 */
export async function loadYamlParser(): Promise<void> {
  yamlModule ??= await import("yaml");
}

/**
 * The parser, loaded now when {@link loadYamlParser} was not awaited (callers that load a file
 * synchronously, such as tests): the same module instance the import gives. One that cannot be
 * loaded fails the file like a bad one, so that a reload keeps the settings in force.
 */
function yamlParser(path: string): typeof import("yaml") {
  if (yamlModule !== undefined) return yamlModule;
  try {
    const { createRequire } = process.getBuiltinModule("node:module");
    const loaded: typeof import("yaml") = createRequire(import.meta.url)("yaml");
    return yamlModule = loaded;
  } catch (e) {
    throw new ConfigError(path, `cannot be parsed: the YAML parser did not load (${String(e)})`);
  }
}

/**
 * Time zones valid wherever `Intl` is, checked without it: the first `Intl.DateTimeFormat` loads
 * the time zone data (26–38 ms), and the default is one of these.
 */
export const UTC_TIME_ZONES: ReadonlySet<string> = new Set(["UTC", "Etc/UTC", "GMT", "Etc/GMT"]);

const SECRET_KEYS = new Set(["audit.secret", "dashboard.auth.token"]);

/** A key segment that names a secret, or a map of headers (whose values are credentials). */
const SECRET_SEGMENT = /secret|token|passw|credential|api_?key|auth|^headers$/i;

/** True when a key, or a key under it (a section given a scalar in its place), may hold a secret. */
function holdsSecret(key: string): boolean {
  const named = (k: string) =>
    SECRET_KEYS.has(k) || k.split(".").some((s) => SECRET_SEGMENT.test(s));
  if (named(key)) return true;
  const prefix = `${key}.`;
  for (const k of Object.keys(SCHEMA)) if (k.startsWith(prefix) && named(k)) return true;
  return false;
}

/**
 * What was found at `key`, for an error message: its type, and its value unless the key may hold
 * a secret. Errors are printed at startup and stored, signed, in the `audit/reload` record of a
 * rejected reload, so a secret's value must never be in one.
 */
function describe(key: string, value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number" && !Number.isFinite(value)) {
    return "a number too large to hold (over 1.8e308)";
  }
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  if (holdsSecret(key)) return `a ${typeof value} (not shown)`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** `raw` quoted for an error message about `key`, unless the key may hold a secret. */
function quoted(key: string, raw: unknown): string {
  return holdsSecret(key) ? "a value not shown" : JSON.stringify(raw);
}

function checkRules(key: string, raw: unknown): PolicyRule[] {
  if (!Array.isArray(raw)) {
    throw new ConfigError(key, `must be a list of rules, got ${describe(key, raw)}`);
  }
  return raw.map((item: unknown, i): PolicyRule => {
    const where = `${key}[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      throw new ConfigError(where, `must be a map, got ${describe(where, item)}`);
    }
    const fields = new Map<string, string>();
    for (const [name, value] of Object.entries(item)) {
      if (!(RULE_FIELDS as readonly string[]).includes(name)) {
        throw new ConfigError(
          `${where}.${name}`,
          `unknown rule field (known: ${RULE_FIELDS.join(", ")})`,
        );
      }
      if (value === null || value === undefined) continue;
      if (name === "when") continue;
      if (typeof value !== "string") {
        throw new ConfigError(
          `${where}.${name}`,
          `must be a string, got ${describe(`${where}.${name}`, value)}`,
        );
      }
      fields.set(name, value.trim());
    }
    const when: unknown = (item as Record<string, unknown>)["when"] ?? [];
    if (!Array.isArray(when)) {
      throw new ConfigError(
        `${where}.when`,
        `must be a list of conditions, got ${describe(`${where}.when`, when)}`,
      );
    }
    const action = (fields.get("action") ?? "").toLowerCase();
    if (action !== "allow" && action !== "deny") {
      throw new ConfigError(
        `${where}.action`,
        `must be allow or deny, got ${JSON.stringify(fields.get("action") ?? "")}`,
      );
    }
    return {
      action,
      client_id: fields.get("client_id") ?? "",
      server_id: fields.get("server_id") ?? "",
      tool_name: fields.get("tool_name") ?? "",
      method: fields.get("method") ?? "",
      reason: fields.get("reason") ?? "",
      when: [...when],
    };
  });
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration (`"1m30s"`, `"250ms"`) in milliseconds; `0` (number or text) is off. */
function checkDuration(key: string, raw: unknown, maxMs: number): number {
  if (raw === 0 || raw === "0") return 0;
  if (typeof raw !== "string") {
    throw new ConfigError(
      key,
      `must be a duration with a unit such as "10s" or "500ms" (or 0 for off), got ${
        describe(key, raw)
      }`,
    );
  }
  const text = raw.trim();
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (m === null) {
      throw new ConfigError(
        key,
        `must be a duration such as "10s", "1m30s" or "500ms", got ${quoted(key, raw)}`,
      );
    }
    ms += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? 0);
    at = part.lastIndex;
  }
  if (text === "") throw new ConfigError(key, 'must be a duration such as "10s", got ""');
  ms = Math.ceil(ms);
  if (ms > maxMs) {
    throw new ConfigError(key, `must be at most ${maxMs / 1000}s, got ${quoted(key, raw)}`);
  }
  return ms;
}

/** Checks a value from the file (or a parsed environment value) against its key's type. */
function check(key: string, spec: KeySpec, raw: unknown): ConfigValue {
  const t = spec.type;
  switch (t.kind) {
    case "string":
      if (typeof raw !== "string") {
        throw new ConfigError(key, `must be a string, got ${describe(key, raw)} (quote it)`);
      }
      if (t.nonEmpty && raw.trim() === "") throw new ConfigError(key, "must not be empty");
      return raw;
    case "int":
      if (typeof raw !== "number" || !Number.isInteger(raw)) {
        throw new ConfigError(key, `must be an integer, got ${describe(key, raw)}`);
      }
      if (raw < t.min || raw > t.max) {
        throw new ConfigError(key, `must be from ${t.min} to ${t.max}, got ${quoted(key, raw)}`);
      }
      return raw;
    case "duration":
      return checkDuration(key, raw, t.maxMs);
    case "bool":
      if (typeof raw !== "boolean") {
        throw new ConfigError(key, `must be true or false, got ${describe(key, raw)}`);
      }
      return raw;
    case "enum":
      // The Go tool lower-cases and trims these (`Deny` works there), so they work here too.
      if (typeof raw === "string" && t.values.includes(raw.trim().toLowerCase())) {
        return raw.trim().toLowerCase();
      }
      if (typeof raw !== "string" || !t.values.includes(raw)) {
        const shown = t.values.map((v) => v === "" ? '""' : v).join(", ");
        throw new ConfigError(key, `must be one of ${shown}, got ${describe(key, raw)}`);
      }
      return raw;
    case "list":
      if (!Array.isArray(raw)) {
        throw new ConfigError(key, `must be a list of strings, got ${describe(key, raw)}`);
      }
      return raw.map((item: unknown, i) => {
        if (typeof item !== "string") {
          throw new ConfigError(`${key}[${i}]`, `must be a string, got ${describe(key, item)}`);
        }
        return item;
      });
    case "map": {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new ConfigError(key, `must be a map of strings, got ${describe(key, raw)}`);
      }
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(raw)) {
        if (typeof value !== "string") {
          throw new ConfigError(
            `${key}.${name}`,
            `must be a string, got ${describe(`${key}.${name}`, value)}`,
          );
        }
        out[name] = value;
      }
      return out;
    }
    case "rules":
      return checkRules(key, raw);
    case "tree": {
      const value: TreeValue | undefined = t.shape === "list"
        ? (Array.isArray(raw) ? raw : undefined)
        : (isPlainMap(raw) ? raw : undefined);
      if (value === undefined) {
        throw new ConfigError(key, `must be a ${t.shape}, got ${describe(key, raw)}`);
      }
      return value;
    }
    case "ignored":
      return null;
  }
}

/** Parses an environment variable's text for a key's type. */
function fromEnv(name: string, key: string, spec: KeySpec, text: string): ConfigValue {
  const t = spec.type;
  let raw: unknown = text;
  switch (t.kind) {
    case "int":
      if (!/^-?\d+$/.test(text.trim())) {
        const range = t.max === Number.MAX_SAFE_INTEGER ? `≥ ${t.min}` : `${t.min}–${t.max}`;
        throw new ConfigError(name, `must be an integer ${range}, got ${quoted(key, text)}`);
      }
      raw = Number(text.trim());
      break;
    case "bool": {
      // Go's strconv.ParseBool words (1, t, true, 0, f, false), in any case.
      const v = text.trim().toLowerCase();
      raw = ["true", "t", "1"].includes(v) ? true : ["false", "f", "0"].includes(v) ? false : text;
      break;
    }
    case "list":
      // Comma-separated, as viper splits a variable for a list key; an empty item (a stray
      // comma) is dropped rather than becoming a pattern that matches every key.
      raw = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
      break;
    case "map":
    case "rules":
    case "tree":
      try {
        raw = parseJsonText(text);
      } catch (e) {
        // Told by place and kind only: the parser's message would quote the value.
        const fault = jsonSyntaxFault(text);
        const why = fault === undefined
          ? (e instanceof RangeError ? "nested too deeply" : "it cannot be parsed")
          : `${fault.reason} at character ${fault.offset + 1}`;
        throw new ConfigError(name, `must be JSON: ${why}`);
      }
      break;
    case "duration":
      raw = text.trim() === "0" ? 0 : text.trim();
      break;
    case "string":
    case "enum":
    case "ignored":
      break;
  }
  try {
    return check(key, spec, raw);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(name, e.problem);
    throw e;
  }
}

const isPlainMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function keyPrefixes(): Set<string> {
  const out = new Set<string>();
  for (const key of Object.keys(SCHEMA)) {
    const parts = key.split(".");
    for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join("."));
  }
  return out;
}

/** Walks the YAML tree down to schema keys. */
function flattenFile(tree: unknown, into: Map<string, unknown>): void {
  const prefixes = keyPrefixes();
  const walk = (node: Record<string, unknown>, path: string): void => {
    for (const [name, value] of Object.entries(node)) {
      const key = path === "" ? name : `${path}.${name}`;
      if (key in SCHEMA) {
        if (value !== null && value !== undefined) into.set(key, value);
      } else if (prefixes.has(key)) {
        if (value === null || value === undefined) continue;
        if (!isPlainMap(value)) {
          throw new ConfigError(key, `must be a map, got ${describe(key, value)}`);
        }
        walk(value, key);
      } else {
        throw new ConfigError(key, "unknown configuration key");
      }
    }
  };
  if (tree === null || tree === undefined) return;
  if (!isPlainMap(tree)) throw new ConfigError("config", "the file must hold a map of keys");
  walk(tree, "");
}

/** Formats viper reads that this program does not, by extension, with their names. */
const UNSUPPORTED_FORMATS: ReadonlyMap<string, string> = new Map([
  ["toml", "TOML"],
  ["hcl", "HCL"],
  ["tfvars", "HCL"],
  ["ini", "INI"],
  ["env", "dotenv"],
  ["dotenv", "dotenv"],
  ["properties", "Java properties"],
  ["props", "Java properties"],
  ["prop", "Java properties"],
]);

/**
 * How a configuration file is read, by its extension: `.json` as JSON; `.yaml`, `.yml`, none or
 * any other as YAML (as before JSON was read).
 * @throws {ConfigError} for the other formats the Go tool's viper reads (TOML, HCL, INI, dotenv,
 * properties)
 */
export function configFormat(path: string): "yaml" | "json" {
  const base = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  const dot = base.lastIndexOf(".");
  const ext = dot <= 0 ? "" : base.slice(dot + 1).toLowerCase();
  if (ext === "json") return "json";
  const format = UNSUPPORTED_FORMATS.get(ext);
  if (format !== undefined) {
    throw new ConfigError(
      path,
      `${format} (.${ext}) configuration files are not supported; convert it to YAML (.yaml) or JSON (.json) — the keys stay the same`,
    );
  }
  return "yaml";
}

/**
 * Parses a JSON configuration file strictly (no comments, no trailing commas, each key once).
 * Errors name the file, line and column, and say what is wrong in our own words: never with the
 * parser's message, which quotes the text around the fault (a secret's, maybe).
 */
function parseJson(path: string, text: string): unknown {
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  let tree: unknown;
  try {
    tree = parseJsonText(body);
  } catch (e) {
    const fault = jsonSyntaxFault(body);
    if (fault === undefined) {
      const reason = e instanceof RangeError ? "nested too deeply" : "the text cannot be parsed";
      throw new ConfigError(path, `not valid JSON: ${reason}`);
    }
    const { line, column } = lineColumn(body, fault.offset);
    throw new ConfigError(`${path}:${line}:${column}`, `not valid JSON: ${fault.reason}`);
  }
  // JSON.parse keeps the last of two equal keys; a file that says two things is refused, as a
  // YAML one is. The YAML parser reads JSON text and finds them with their place.
  const doc = yamlParser(path).parseDocument(body, { uniqueKeys: true });
  for (const error of doc.errors) {
    if (error.code !== "DUPLICATE_KEY") continue;
    const pos = error.linePos?.[0];
    const where = pos === undefined ? path : `${path}:${pos.line}:${pos.col}`;
    throw new ConfigError(where, "not valid JSON: a key is given twice in one object");
  }
  return tree;
}

/**
 * The file's tree: YAML or JSON by its extension ({@link configFormat}). A YAML warning (an
 * unknown tag, read as a plain value) is added to `warnings`, told as its errors are: by place
 * and kind, never with the file's text.
 */
function parseFile(file: { path: string; text: string }, warnings: string[]): unknown {
  if (configFormat(file.path) === "json") return parseJson(file.path, file.text);
  const yaml = yamlParser(file.path);
  let doc;
  try {
    doc = yaml.parseDocument(file.text, { uniqueKeys: true, prettyErrors: true });
  } catch (e) {
    throw new ConfigError(file.path, `not valid YAML: ${yamlValueFault(e)}`);
  }
  const error = doc.errors[0];
  if (error !== undefined) {
    const { at, reason } = yamlFault(error);
    throw new ConfigError(file.path, `not valid YAML: ${at}${reason}`);
  }
  for (const warning of doc.warnings) {
    const { at, reason } = yamlFault(warning);
    warnings.push(`${file.path}: ${at}${reason}; read as a plain value`);
  }
  try {
    return doc.toJS();
  } catch (e) {
    throw new ConfigError(file.path, `not valid YAML: ${yamlValueFault(e)}`);
  }
}

/**
 * Sets the keys the Go tool's unprefixed variables name ({@link GO_ENV_KEYS}), as its viper
 * `AutomaticEnv()` does: an empty variable is not set (its name is added to `empty`); a list is
 * comma-separated. A map or rule list cannot be given this way (viper fails to decode the text, so
 * the Go tool refused to start with one set), and is refused by name here too. Returns the
 * variable that set each key.
 */
function applyGoEnv(
  env: Readonly<Record<string, string>>,
  fromFile: readonly string[],
  values: Map<string, ConfigValue>,
  empty: string[],
): Map<string, string> {
  const setBy = new Map<string, string>();
  const keys = fromFile.includes("proxy.upstream")
    ? [...GO_ENV_KEYS, "proxy.upstream"]
    : GO_ENV_KEYS;
  for (const key of keys) {
    const name = goEnvName(key);
    const text = env[name];
    if (text === undefined) continue;
    if (text === "") {
      empty.push(name);
      continue;
    }
    const spec = SCHEMA[key]!;
    if (spec.type.kind === "map" || spec.type.kind === "rules") {
      throw new ConfigError(
        name,
        `cannot set ${key} (the Go tool refused to start with it set too): unset it, and set ${key} in the configuration file or as JSON in ${
          envName(key)
        }`,
      );
    }
    values.set(key, fromEnv(name, key, spec, text));
    setBy.set(key, name);
  }
  return setBy;
}

/**
 * The variables that may hold the HMAC secret, strongest first: the Go tool reads `AUDIT_SECRET`,
 * and its newer releases prefer `MCP_AUDIT_SIGNING_SECRET`. `MCP_AUDIT_AUDIT_SECRET` (the key's
 * own variable) comes below both.
 */
const SECRET_VARIABLES = ["MCP_AUDIT_SIGNING_SECRET", "AUDIT_SECRET"] as const;

/**
 * Loads and checks the configuration. An empty variable is not set, whichever it is (the Go
 * tool's viper ignores one too): an empty `MCP_AUDIT_DASHBOARD_AUTH_TOKEN` must not wipe the
 * file's token and serve the dashboard without one, nor an empty `AUDIT_SECRET` turn signing off.
 * @throws {ConfigError} on any unknown key or bad value, naming the key, variable or flag that
 *   set it
 */
export function loadConfig(input: LoadInput): Loaded {
  const values = new Map<string, ConfigValue>();
  for (const [key, spec] of Object.entries(SCHEMA)) values.set(key, spec.default);
  const warnings: string[] = [];
  const fromFile: string[] = [];
  const emptyEnv: string[] = [];

  if (input.file) {
    const tree = parseFile(input.file, warnings);
    const raw = new Map<string, unknown>();
    flattenFile(tree, raw);
    fromFile.push(...raw.keys());
    for (const [key, value] of raw) {
      const spec = SCHEMA[key]!;
      if (spec.type.kind === "ignored") {
        warnings.push(
          `${key} is a key of the Go tool that this program does not support; it is ignored`,
        );
        continue;
      }
      values.set(key, check(key, spec, value));
    }
  }

  const goEnv = applyGoEnv(input.env, fromFile, values, emptyEnv);
  const setBy = new Map(goEnv);
  const byEnv = new Map(Object.entries(SCHEMA).map(([key, spec]) => [envName(key), { key, spec }]));
  for (const [name, text] of Object.entries(input.env)) {
    if (!name.startsWith("MCP_AUDIT_") || name === "MCP_AUDIT_SIGNING_SECRET") continue;
    if (text === "") {
      emptyEnv.push(name);
      continue;
    }
    const found = byEnv.get(name);
    if (!found) throw new ConfigError(name, "unknown MCP_AUDIT_ environment variable");
    values.set(found.key, fromEnv(name, found.key, found.spec, text));
    goEnv.delete(found.key);
    setBy.set(found.key, name);
  }
  let secretSet = false;
  for (const name of SECRET_VARIABLES) {
    const secret = input.env[name];
    if (secret === "") emptyEnv.push(name);
    if (secret === undefined || secret === "" || secretSet) continue;
    values.set("audit.secret", secret);
    setBy.set("audit.secret", name);
    secretSet = true;
  }

  for (const [key, { flag, value }] of input.flags) {
    const spec = SCHEMA[key];
    if (spec === undefined) throw new ConfigError(flag, "sets no known key");
    try {
      values.set(key, check(key, spec, value));
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(flag, e.problem);
      throw e;
    }
    goEnv.delete(key);
    setBy.set(key, flag);
  }

  // As in the Go tool: an empty pattern list means the defaults, never "redact nothing".
  const patterns = values.get("middleware.redact.patterns");
  if (Array.isArray(patterns) && patterns.every((p) => typeof p === "string" && p.trim() === "")) {
    warnings.push(
      "middleware.redact.patterns is empty; using the default patterns (set middleware.redact.enabled: false to turn redaction off)",
    );
    values.set("middleware.redact.patterns", SCHEMA["middleware.redact.patterns"]!.default);
  }
  const config = buildConfig(new FlatValues(values), input.upstreamArgv);
  validate(config, warnings, (key) => setBy.get(key) ?? key);
  const effective: Record<string, ConfigValue> = {};
  for (const [key, value] of values) {
    if (SCHEMA[key]?.type.kind === "ignored") continue;
    effective[key] = SECRET_KEYS.has(key) && value !== "" ? "(set)" : value;
  }
  const headers = config.otel.headers;
  effective["otel.headers"] = Object.fromEntries(Object.keys(headers).map((h) => [h, "(set)"]));
  return {
    config,
    warnings,
    effective,
    fromFile,
    goEnv: [...goEnv.values()].sort(),
    setBy,
    emptyEnv: emptyEnv.sort(),
  };
}

/** A header name as RFC 9110 allows one: a token of tchar. */
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Rules that span keys. A value that breaks one is refused naming what set it (`source`: the
 * variable or flag, else the key itself); never with a secret's value.
 */
function validate(c: Config, warnings: string[], source: (key: string) => string): void {
  const fault = (key: string, problem: string, shown = key) => {
    const by = source(key);
    return by === key
      ? new ConfigError(shown, problem)
      : new ConfigError(by, `${problem} (${shown})`);
  };
  if (!c.metrics.path.startsWith("/")) throw fault("metrics.path", "must start with /");
  const tls = c.proxy.tls;
  if ((tls.client_cert_file === "") !== (tls.client_key_file === "")) {
    const set = tls.client_cert_file === ""
      ? "proxy.tls.client_key_file"
      : "proxy.tls.client_cert_file";
    throw fault(
      set,
      "proxy.tls.client_cert_file and proxy.tls.client_key_file must be set together",
    );
  }
  if (c.proxy.retry.initial_interval_ms > c.proxy.retry.max_interval_ms) {
    throw fault(
      "proxy.retry.initial_interval_ms",
      `must not exceed proxy.retry.max_interval_ms (set by ${
        source("proxy.retry.max_interval_ms")
      })`,
    );
  }
  for (const h of c.proxy.forward_headers) {
    if (!HEADER_TOKEN.test(h)) {
      throw fault(
        "proxy.forward_headers",
        `invalid header name ${
          JSON.stringify(h)
        }: a name is letters, digits and !#$%&'*+-.^_\`|~ only (no quotes, spaces, ":" or ";"; separate names with ",")`,
      );
    }
    if (["cookie", "set-cookie", "proxy-authorization"].includes(h.toLowerCase())) {
      throw fault("proxy.forward_headers", `cannot include ${h}`);
    }
  }
  // Checked here, as the exporter would check them, so that a bad one is refused by name — at
  // startup and at a reload alike — before anything could quote the value.
  for (const [name, value] of Object.entries(c.otel.headers)) {
    try {
      new Headers().set(name, value);
    } catch {
      throw fault(
        "otel.headers",
        "must be a valid HTTP header: a name that is a token, a value without a line break or NUL (the value is not shown)",
        `otel.headers.${name}`,
      );
    }
  }
  if (/\s/.test(c.dashboard.auth.token)) {
    throw fault("dashboard.auth.token", "must not contain whitespace");
  }
  if (!UTC_TIME_ZONES.has(c.dashboard.timezone)) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: c.dashboard.timezone });
    } catch {
      throw fault(
        "dashboard.timezone",
        `must be an IANA time zone such as "UTC" or "Europe/Paris", got ${
          JSON.stringify(c.dashboard.timezone)
        }`,
      );
    }
  }
  const signing = c.audit.signing;
  if (signing.private_key_file !== "" && c.audit.secret !== "") {
    warnings.push(
      "both an HMAC secret and an Ed25519 key are configured; records are signed with Ed25519",
    );
  }
  if (
    c.audit.sign && signing.private_key_file === "" && c.audit.secret !== "" &&
    new TextEncoder().encode(c.audit.secret).length < 32
  ) {
    warnings.push("the audit secret is shorter than 32 bytes; use at least 32 random bytes");
  }
  if (/[\s:]/.test(c.audit.key_id)) {
    throw fault("audit.key_id", "must not contain whitespace or colons");
  }
  const r = c.audit.rotation;
  if (r.interval !== "" || r.max_size_bytes > 0 || r.compress !== "") {
    if (c.audit.storage !== "jsonl") {
      const by = source("audit.storage");
      throw by === "audit.storage"
        ? new ConfigError("audit.rotation", "is only supported with jsonl storage")
        : new ConfigError(
          by,
          "sqlite storage does not rotate: unset audit.rotation.* or keep jsonl",
        );
    }
  }
}
