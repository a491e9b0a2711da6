/**
 * YAML faults told in our own words. The `yaml` package's messages may quote the file
 * (`Invalid escape sequence \q…`, `Unresolved tag: !…`, `Block scalar header includes extra
 * characters: …`, and with `prettyErrors` the lines around the fault), and a configuration
 * error is printed, shown by `doctor` and stored, signed, in a rejected reload's `audit/reload`
 * record: text next to a secret must never reach one. Each fault is told by its code and place.
 *
 * @module
 */
import type { ErrorCode, YAMLError } from "yaml";

const REASONS: Readonly<Record<ErrorCode, string>> = {
  ALIAS_PROPS: "an alias (*name) must not have a tag or an anchor",
  BAD_ALIAS: "a malformed alias or anchor name",
  BAD_DIRECTIVE: "a malformed % directive",
  BAD_DQ_ESCAPE: "an invalid escape sequence in a double-quoted string",
  BAD_INDENT: "the items of a list or map do not start at the same column",
  BAD_PROP_ORDER: "an anchor or tag in the wrong place",
  BAD_SCALAR_START: "a plain value starts with a reserved character (quote the value)",
  BLOCK_AS_IMPLICIT_KEY: "a nested map or list where a key was expected (check the indentation)",
  BLOCK_IN_FLOW: "an indented map or list inside [ ] or { }",
  DUPLICATE_KEY: "a key is given twice in one map",
  IMPOSSIBLE: "a structure the parser cannot read",
  KEY_OVER_1024_CHARS: "a key longer than 1024 characters",
  MISSING_CHAR:
    "a character is missing (a closing quote or bracket, a comma, a space after a colon, or a value after a key)",
  MULTILINE_IMPLICIT_KEY: "a key spread over several lines (a missing colon or closing quote?)",
  MULTIPLE_ANCHORS: "a value with more than one anchor",
  MULTIPLE_DOCS: "more than one document (---); a configuration file holds one",
  MULTIPLE_TAGS: "a value with more than one tag",
  NON_STRING_KEY: "a key that is not a plain string",
  RESOURCE_EXHAUSTION: "aliases expand to too much (an alias bomb?)",
  TAB_AS_INDENT: "a tab used as indentation (indent with spaces)",
  TAG_RESOLVE_FAILED: "an unknown tag (!name)",
  UNEXPECTED_TOKEN: "an unexpected character or token",
  BAD_COLLECTION_TYPE: "a tag that does not fit its map or list",
};

/** Library messages with no file text in them that say more than their code's reason. */
const PLAIN_MESSAGES: readonly [RegExp, string][] = [
  [/^Missing closing "?quote/, "a quoted string is not closed"],
  [/^Missing , or : between/, 'a "," or ":" is missing between items in [ ] or { }'],
  [/^Missing , between/, 'a "," is missing between items in [ ] or { }'],
  [/^Missing space after :/, 'a space is missing after ":"'],
  [/^Implicit map keys need to be followed by map values/, 'a key without ":" and a value'],
  [/^Comments must be separated/, "a # comment must follow a space"],
  [/^Tabs are not allowed/, "a tab used as indentation (indent with spaces)"],
  [/^Expected a flow scalar value/, "a value is missing"],
  [/^Nested mappings are not allowed in compact mappings/, "a map nested on one line (a: b: c)"],
];

/**
 * A fault's place (`line 3, column 1: `, or nothing when the parser gave none) and reason.
 *
 * @example
 * ```ts
 * const doc = parseDocument("a: [", { uniqueKeys: true });
 * yamlFault(doc.errors[0]!); // { at: "line 1, column 5: ", reason: "a character is missing …" }
 * ```
 */
export function yamlFault(error: YAMLError): { at: string; reason: string } {
  const pos = error.linePos?.[0];
  const at = pos === undefined ? "" : `line ${pos.line}, column ${pos.col}: `;
  // The message's first line only: the lines after it (prettyErrors) show the file.
  const first = error.message.split("\n")[0] ?? "";
  const plain = PLAIN_MESSAGES.find(([re]) => re.test(first));
  return { at, reason: plain?.[1] ?? REASONS[error.code] ?? "a syntax error" };
}

/**
 * A reason for an error thrown while the document is turned into values (an alias whose anchor
 * is missing, too many aliases, a stack overflow), without the thrown message, which may quote
 * the file (`Unresolved alias (…): *name`).
 */
export function yamlValueFault(e: unknown): string {
  if (e instanceof RangeError) return "nested too deeply";
  const text = e instanceof Error ? e.message : "";
  if (/^Unresolved alias/.test(text)) {
    return "an alias (*name) whose anchor (&name) is not set before it";
  }
  if (/alias count/i.test(text)) return "aliases expand to too much (an alias bomb?)";
  return `the document cannot be read (${e instanceof Error ? e.name : "error"})`;
}
