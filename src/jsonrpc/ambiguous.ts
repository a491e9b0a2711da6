/**
 * Finds member names that a peer may read differently from us. JSON.parse keeps the last of two
 * equal names, as most parsers do; but Go's encoding/json matches struct fields ignoring case
 * (with Unicode folding: `ſ` is `s`, `K` is `k`) and takes the last match, so
 * `{"name":"read_file","Name":"delete_file"}` is `read_file` to a guardrail and `delete_file` to a
 * Go server. A message holding such names cannot be judged safely.
 *
 * @module
 */
import { isJsonObject, isRawNumber, type JsonValue } from "./json.ts";

/** Names that need folding before they are compared: anything but ASCII lower case and digits. */
const NEEDS_FOLDING = /[^a-z0-9_$.\-/]/;

/**
 * A name as Go's case-insensitive match sees it, in lower case. Go folds each character as
 * upper case of its lower case, with the one-character (simple) mappings. JavaScript's are the full
 * ones, which for lower case differ only at `İ` (U+0130): `i̇` in full, `i` in Go, so `urİ` is `uri`
 * to a Go server. Where an upper-case mapping grows (`ß` to `SS`) Go keeps the character: folding it
 * here makes the check refuse more, never less.
 */
export function foldName(name: string): string {
  return name.replaceAll("\u0130", "i").toLowerCase().toUpperCase().toLowerCase();
}

const fold = foldName;

/** Members of a message, and of its `params`, whose meaning every peer must read alike. */
const MESSAGE_MEMBERS = new Set(["jsonrpc", "id", "method", "params", "result", "error"]);
const PARAMS_MEMBERS = new Set(["name", "arguments", "_meta", "uri", "cursor", "tool_name"]);

/** A name that is one of `known` in another case (`Name` for `name`), or undefined. */
function otherCase(keys: readonly string[], known: ReadonlySet<string>): string | undefined {
  return keys.find((k) => !known.has(k) && NEEDS_FOLDING.test(k) && known.has(fold(k)));
}

/**
 * The path of the first object in `value` with two member names equal but for case, and the two
 * names — or with a protocol member (`method`, `params`, `params.name`, …) spelt in another case;
 * null when there is none. Iterative, so deep nesting cannot exhaust the stack.
 *
 * @example
 * ```ts
 * import { ambiguousMember } from "./ambiguous.ts";
 *
 * ambiguousMember({ params: { name: "a", Name: "b" } });
 * // { path: "params", names: ["name", "Name"] }
 * ```
 */
export function ambiguousMember(
  value: JsonValue,
): { path: string; names: [string, string] } | null {
  // A lone `Name` or `Params`: nothing for us to read, a call for a peer that ignores case.
  if (isJsonObject(value)) {
    const top = otherCase(Object.keys(value), MESSAGE_MEMBERS);
    if (top !== undefined) return { path: "", names: [fold(top), top] };
    const params = value.params;
    if (isJsonObject(params)) {
      const inner = otherCase(Object.keys(params), PARAMS_MEMBERS);
      if (inner !== undefined) return { path: "params", names: [fold(inner), inner] };
    }
  }
  const stack: { value: JsonValue; path: string }[] = [{ value, path: "" }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        const item = v[i]!;
        if (typeof item === "object" && item !== null) stack.push({ value: item, path });
      }
      continue;
    }
    if (!isJsonObject(v) || isRawNumber(v)) continue;
    const keys = Object.keys(v);
    let seen: Map<string, string> | undefined;
    if (keys.length > 1 && keys.some((k) => NEEDS_FOLDING.test(k))) {
      seen = new Map();
      for (const k of keys) {
        const f = fold(k);
        const other = seen.get(f);
        if (other !== undefined) return { path, names: [other, k] };
        seen.set(f, k);
      }
    }
    for (const k of keys) {
      const item = v[k]!;
      if (typeof item === "object" && item !== null) {
        stack.push({ value: item, path: path === "" ? k : `${path}.${k}` });
      }
    }
  }
  return null;
}
