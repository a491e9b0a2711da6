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

/** The mode of member `key` of the object `frame` walks in `mode`, below `stack`. */
function memberMode(
  mode: Mode,
  key: string,
  stack: readonly WalkFrame<Mode>[],
  frame: WalkFrame<Mode>,
): Mode {
  if (mode === Mode.Data) {
    return SCHEMA_KEYS.has(key) && TOOL_DEFINITION.test(framePath(stack, frame))
      ? Mode.Schema
      : Mode.Data;
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
  /** One walk for `redact`, made when first needed. */
  #walk: Redaction | undefined;

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
    return (this.#walk ??= new Redaction(this, null)).redact(value, path);
  }
}

/** What value redaction (`detectors.ts`) does to one string. */
export interface TextRedactor {
  /** `text` with what it hides replaced; `text` itself when nothing is. */
  redactText(text: string): string;
}

/**
 * Key redaction and value redaction in one walk over a value, with the result of applying them
 * in turn — keys first, then every string of what that left, paths deduplicated — which each
 * walking the whole value would cost twice: the same value, and the same `paths` in the same
 * order (every replaced key's path, then every changed string's path that is not one of those).
 * Either part may be absent.
 *
 * @example
 * ```ts
 * import { KeyRedactor, Redaction } from "./redact.ts";
 *
 * const r = new Redaction(new KeyRedactor(["token"]), { redactText: (t) => t.replace("ana", "*") });
 * r.redact({ note: "ana", token: "t" }, "params");
 * // { value: { note: "*", token: "[REDACTED]" }, paths: ["params.token", "params.note"] }
 * ```
 */
export class Redaction {
  #keys: KeyRedactor | null;
  #text: TextRedactor | null;
  /** What a sensitive key's value becomes: `[REDACTED]`, as value redaction leaves it. */
  #hidden: string;

  constructor(keys: KeyRedactor | null, text: TextRedactor | null) {
    this.#keys = keys;
    this.#text = text;
    this.#hidden = text === null ? REDACTED : text.redactText(REDACTED);
  }

  /** Redacts `value`, found at `path`. Returns the same object when nothing matched. */
  redact(value: JsonValue, path: string): Redacted {
    const paths: string[] = [];
    if (typeof value === "string") {
      const text = this.#text === null ? value : this.#text.redactText(value);
      if (text !== value) paths.push(path);
      return { value: text, paths };
    }
    if (!isContainer(value)) return { value, paths };
    // The paths of changed strings come after those of replaced keys, as when applied in turn. A
    // sensitive key's value is never among them: its path is listed already.
    const strings = this.#keys !== null && this.#text !== null ? [] : paths;
    const out = this.#walk(value, path, paths, strings);
    if (strings !== paths) { for (const p of strings) paths.push(p); }
    return { value: out, paths };
  }

  /**
   * Iterative, with its own stack, so that no nesting overflows the call stack; members are
   * visited in the order a recursive walk would take, and a path is built only for a member
   * that changes.
   */
  #walk(root: Container, rootPath: string, keyPaths: string[], textPaths: string[]): JsonValue {
    const keys = this.#keys;
    const text = this.#text;
    const hidden = this.#hidden;
    const stack: WalkFrame<Mode>[] = [];
    let frame = enter(root, Mode.Data, rootPath);
    for (;;) {
      let child: Container | null = null;
      let childMode = Mode.Data;
      const value = frame.value;
      if (Array.isArray(value)) {
        while (frame.at < value.length) {
          const i = frame.at++;
          const item = value[i]!;
          if (typeof item === "string") {
            if (text === null) continue;
            const next = text.redactText(item);
            if (next === item) continue;
            textPaths.push(framePath(stack, frame, i));
            setMember(frame, i, next);
          } else if (isContainer(item)) {
            child = item;
            childMode = frame.mode === Mode.SchemaProperties ? Mode.Schema : frame.mode;
            break;
          }
        }
      } else {
        const names = frame.keys!;
        const mode = frame.mode;
        while (frame.at < names.length) {
          const key = names[frame.at++]!;
          const item = value[key]!;
          if (
            keys !== null && mode !== Mode.SchemaProperties && !PROTOCOL_KEYS.has(key) &&
            keys.sensitive(key)
          ) {
            keyPaths.push(framePath(stack, frame, key));
            if (item !== hidden) setMember(frame, key, hidden);
          } else if (typeof item === "string") {
            if (text === null) continue;
            const next = text.redactText(item);
            if (next === item) continue;
            textPaths.push(framePath(stack, frame, key));
            setMember(frame, key, next);
          } else if (isContainer(item)) {
            child = item;
            // Modes matter to key redaction only.
            childMode = keys === null ? Mode.Data : memberMode(mode, key, stack, frame);
            break;
          }
        }
      }
      if (child !== null) {
        stack.push(frame);
        frame = enter(child, childMode);
        continue;
      }
      const done = frame.copy ?? frame.value;
      const parent = stack.pop();
      if (parent === undefined) return done;
      if (done !== frame.value) setMember(parent, memberAt(parent), done);
      frame = parent;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// An iterative walk that copies only what changes, shared with value redaction (detectors.ts).

/** An array or object: what a walk descends into (a number kept as its text is neither). */
export type Container = JsonValue[] | JsonObject;

/** True for arrays and objects. */
export function isContainer(value: JsonValue): value is Container {
  return Array.isArray(value) || isJsonObject(value);
}

/** A container being walked: where its next member is, and its copy once a member changed. */
export interface WalkFrame<M> {
  readonly value: Container;
  /** The member names of an object, in walking order; null for an array. */
  readonly keys: string[] | null;
  /** The position of the next member; the member being walked is the one before it. */
  at: number;
  copy: Container | undefined;
  readonly mode: M;
  /** The container's path: given for the root, worked out for the others when first needed. */
  path: string | undefined;
}

/** A frame for walking `value`; `path` for the root only. */
export function enter<M>(value: Container, mode: M, path?: string): WalkFrame<M> {
  return {
    value,
    keys: Array.isArray(value) ? null : Object.keys(value),
    at: 0,
    copy: undefined,
    mode,
    path,
  };
}

/** The index or name of the member a frame is walking. */
export function memberAt(frame: WalkFrame<unknown>): string | number {
  return frame.keys === null ? frame.at - 1 : frame.keys[frame.at - 1]!;
}

/** Sets a member in the frame's copy, making the copy first. */
export function setMember(frame: WalkFrame<unknown>, key: string | number, next: JsonValue): void {
  const value = frame.value;
  if (Array.isArray(value)) {
    const copy = (frame.copy ??= value.slice());
    if (Array.isArray(copy) && typeof key === "number") copy[key] = next;
    return;
  }
  const copy = (frame.copy ??= { ...value });
  // The copy has the member already, as its own: an assignment sets it, and keeps the copy a
  // fast object where defining a property would not. Only "__proto__" is defined, to be sure of
  // a member and never the prototype.
  if (Array.isArray(copy)) return;
  if (key !== "__proto__") {
    copy[key] = next;
    return;
  }
  Object.defineProperty(copy, key, {
    value: next,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * The path of the container `frame` walks (below `stack`, its enclosing frames, outermost first,
 * the root's path given); with `key`, the path of that member of it. Worked out only when needed,
 * since most walks need no path at all, and kept in the frames: a path built afresh for each of
 * many members deep down would cost time in the depth times their number.
 */
export function framePath(
  stack: readonly WalkFrame<unknown>[],
  frame: WalkFrame<unknown>,
  key?: string | number,
): string {
  if (frame.path === undefined) {
    let i = stack.length - 1;
    while (stack[i]!.path === undefined) i--;
    for (; i < stack.length; i++) {
      const parent = stack[i]!;
      const child = i + 1 < stack.length ? stack[i + 1]! : frame;
      child.path = memberPath(parent.path!, memberAt(parent));
    }
  }
  return key === undefined ? frame.path! : memberPath(frame.path!, key);
}

function memberPath(path: string, key: string | number): string {
  return typeof key === "number" ? `${path}[${key}]` : childPath(path, key);
}
