/**
 * Key-based redaction of the audit copy. The wire is never touched: this works on parsed values
 * and returns new ones, sharing every subtree it did not change.
 *
 * ## The matching rule
 * A key is split into words at `_`, `-`, `.`, spaces and camelCase boundaries, and lower-cased
 * (`X-Api-Key` → `x api key`, `refreshToken` → `refresh token`). A pattern is compared the same
 * way with its separators removed. The key matches when some run of its consecutive words, joined,
 * equals the pattern. So `token` matches `token`, `access_token`, `refreshToken` but not
 * `max_tokens` or `tokenizer`; `api_key` (or `apikey`) matches `api_key`, `apiKey`, `X-API-KEY`.
 * The Go tool's plain substring match would also hide `max_tokens` and `input_tokens`.
 *
 * Two places are exempt because they name no secret value: the MCP protocol's own
 * `progressToken` (a correlation id that records need intact), and the property names inside the
 * `inputSchema` / `outputSchema` of a tool in a `tools/list` result (`properties.api_token` there
 * describes an argument; the argument's value is still redacted when a call sends it).
 *
 * @module
 */
import { isJsonObject, type JsonObject, type JsonValue } from "../jsonrpc/json.ts";

/** What replaces a redacted value. */
export const REDACTED = "[REDACTED]";

/** The Go tool's default key patterns. */
export const DEFAULT_KEY_PATTERNS: readonly string[] = [
  "password",
  "token",
  "secret",
  "api_key",
  "bearer",
  "authorization",
];

const WORD = /[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+/g;

/** The lower-cased words of a key. */
export function keyWords(key: string): string[] {
  return (key.match(WORD) ?? []).map((w) => w.toLowerCase());
}

/** Protocol fields that match a pattern but never hold a secret. */
const PROTOCOL_KEYS = new Set(["progressToken"]);
const SCHEMA_KEYS = new Set(["inputSchema", "outputSchema"]);

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Appends a member name to a path: `a.b`, or `a["x-y"]` when the name is not an identifier. */
export function childPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Where in a value the walk is: ordinary data, a JSON Schema, or a schema's `properties` map. */
const enum Mode {
  Data,
  Schema,
  SchemaProperties,
}

// Only the tool definitions of a tools/list result; a call's arguments named `inputSchema` are data.
const TOOL_DEFINITION = /^result\.tools\[\d+\]$/;

function childMode(mode: Mode, key: string, path: string): Mode {
  if (mode === Mode.Data) {
    return SCHEMA_KEYS.has(key) && TOOL_DEFINITION.test(path) ? Mode.Schema : Mode.Data;
  }
  if (mode === Mode.Schema) return key === "properties" ? Mode.SchemaProperties : Mode.Schema;
  return Mode.Schema;
}

/** Result of redacting one value. */
export interface Redacted {
  value: JsonValue;
  /** Paths of the values replaced, e.g. `params.arguments.token`. */
  paths: string[];
}

/** Replaces the values of sensitive keys. */
export class KeyRedactor {
  #patterns: string[];
  #cache = new Map<string, boolean>();
  static readonly #CACHE_LIMIT = 4096;

  constructor(patterns: readonly string[]) {
    this.#patterns = patterns.map((p) => keyWords(p).join("")).filter((p) => p !== "");
  }

  /** True when `key` names a secret. */
  sensitive(key: string): boolean {
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit;
    const result = this.#match(key);
    if (this.#cache.size >= KeyRedactor.#CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(key, result);
    return result;
  }

  #match(key: string): boolean {
    const words = keyWords(key);
    for (let i = 0; i < words.length; i++) {
      let joined = "";
      for (let j = i; j < words.length; j++) {
        joined += words[j];
        for (const p of this.#patterns) if (p === joined) return true;
      }
    }
    return false;
  }

  /** Redacts `value`, found at `path`. Returns the same object when nothing matched. */
  redact(value: JsonValue, path: string): Redacted {
    const paths: string[] = [];
    const out = this.#walk(value, path, paths, Mode.Data);
    return { value: out, paths };
  }

  #walk(value: JsonValue, path: string, paths: string[], mode: Mode): JsonValue {
    if (Array.isArray(value)) {
      let copy: JsonValue[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const item = value[i]!;
        const next = this.#walk(
          item,
          `${path}[${i}]`,
          paths,
          mode === Mode.SchemaProperties ? Mode.Schema : mode,
        );
        if (next !== item) {
          copy ??= value.slice();
          copy[i] = next;
        }
      }
      return copy ?? value;
    }
    if (!isJsonObject(value)) return value;
    let copy: JsonObject | undefined;
    for (const key of Object.keys(value)) {
      const item = value[key]!;
      const here = childPath(path, key);
      let next: JsonValue;
      if (mode !== Mode.SchemaProperties && !PROTOCOL_KEYS.has(key) && this.sensitive(key)) {
        next = REDACTED;
        paths.push(here);
      } else {
        next = this.#walk(item, here, paths, childMode(mode, key, path));
      }
      if (next !== item) {
        copy ??= { ...value };
        // A plain assignment to "__proto__" would change the prototype, not add a member.
        Object.defineProperty(copy, key, {
          value: next,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    }
    return copy ?? value;
  }
}
