/**
 * Label values with bounded cardinality. Everything a label carries comes from traffic or from a
 * server, and every distinct value is a series Prometheus keeps for ever: a method outside the MCP
 * specification is `other`, tool names and client ids beyond the first few hundred are `other`
 * (the server's listed tools before names only a client called), and an empty value is `unknown`
 * (as the Go tool writes it).
 *
 * @module
 */

/** Every JSON-RPC method of the MCP specification, 2025-11-25 schema (requests and notifications). */
export const MCP_METHODS: ReadonlySet<string> = new Set([
  "completion/complete",
  "elicitation/create",
  "initialize",
  "logging/setLevel",
  "notifications/cancelled",
  "notifications/elicitation/complete",
  "notifications/initialized",
  "notifications/message",
  "notifications/progress",
  "notifications/prompts/list_changed",
  "notifications/resources/list_changed",
  "notifications/resources/updated",
  "notifications/roots/list_changed",
  "notifications/tasks/status",
  "notifications/tools/list_changed",
  "ping",
  "prompts/get",
  "prompts/list",
  "resources/list",
  "resources/read",
  "resources/subscribe",
  "resources/templates/list",
  "resources/unsubscribe",
  "roots/list",
  "sampling/createMessage",
  "tasks/cancel",
  "tasks/get",
  "tasks/list",
  "tasks/result",
  "tools/call",
  "tools/list",
]);

/** The value of a label with nothing to say. */
export const UNKNOWN = "unknown";
/** The value of a label past its bound, or outside the values it may take. */
export const OTHER = "other";

/** `method`: a specification method, `other`, or `unknown` when the record has none. */
export function methodLabel(method: string | null): string {
  if (method === null || method === "") return UNKNOWN;
  return MCP_METHODS.has(method) ? method : OTHER;
}

/** A label value taken from a fixed set: itself when in it, `unknown` when empty, else `other`. */
export function oneOf(value: unknown, allowed: ReadonlySet<string>): string {
  if (value === null || value === undefined || value === "") return UNKNOWN;
  return typeof value === "string" && allowed.has(value) ? value : OTHER;
}

/** A tool name as the MCP specification allows them: 1–128 of `A-Z a-z 0-9 _ - .`. */
export function isToolName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,128}$/.test(name);
}

/** Anything printable up to 128 characters: what a configured id may be. */
export function isPlainId(id: string): boolean {
  if (id.length > 128) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/**
 * Keeps the first `max` distinct valid values as they are; later ones, and invalid ones, become
 * `other`. Holds at most `max` strings.
 *
 * @example
 * ```ts
 * import { BoundedLabel } from "./labels.ts";
 * const tools = new BoundedLabel(1, (n) => n !== "");
 * tools.label("echo"); // "echo"
 * tools.label("add"); // "other"
 * tools.label(null); // "unknown"
 * ```
 */
export class BoundedLabel {
  #max: number;
  #valid: (value: string) => boolean;
  #seen = new Set<string>();

  constructor(max: number, valid: (value: string) => boolean) {
    this.#max = max;
    this.#valid = valid;
  }

  label(value: string | null): string {
    if (value === null || value === "") return UNKNOWN;
    if (this.#seen.has(value)) return value;
    if (!this.#valid(value) || this.#seen.size >= this.#max) return OTHER;
    this.#seen.add(value);
    return value;
  }

  /** Distinct values kept so far. */
  get size(): number {
    return this.#seen.size;
  }
}

/**
 * Tool-name labels: at most `max` names keep their own, the server's tools first, so that a
 * client calling made-up names cannot take the labels from the tools that exist.
 *
 * - A name the server listed (in a `tools/list` answer, see {@link listed}) gets its own label
 *   while fewer than `max` names have one.
 * - A name that is called but was never listed gets its own label only while fewer than `max`
 *   names have one *and* such called-only names hold fewer than half of `max` (rounded down):
 *   the other half is always there for listed names, whichever comes first. A called-only name
 *   that a later answer lists becomes a listed one, freeing its place in the half.
 * - Invalid names are `other`, an empty or missing one `unknown`. A name keeps its label for the
 *   life of the process (a series, once made, stays), so at most `max` strings are held.
 *
 * @example
 * ```ts
 * import { ToolLabels } from "./labels.ts";
 * const tools = new ToolLabels(3);
 * tools.listed(["echo"]);
 * tools.label("made_up_1"); // "made_up_1": one called-only name of at most 1 (3 / 2)
 * tools.label("made_up_2"); // "other"
 * tools.label("echo"); // "echo"
 * ```
 */
export class ToolLabels {
  #max: number;
  #calledMax: number;
  #listed = new Set<string>();
  #called = new Set<string>();

  constructor(max: number) {
    this.#max = max;
    this.#calledMax = Math.floor(max / 2);
  }

  /** Names from a server's `tools/list` answer. */
  listed(names: Iterable<string>): void {
    for (const name of names) {
      if (this.#listed.has(name) || !isToolName(name)) continue;
      if (this.#called.delete(name)) this.#listed.add(name);
      else if (this.size < this.#max) this.#listed.add(name);
    }
  }

  /** The label of a called tool's name. */
  label(name: string | null): string {
    if (name === null || name === "") return UNKNOWN;
    if (this.#listed.has(name) || this.#called.has(name)) return name;
    if (!isToolName(name) || this.size >= this.#max || this.#called.size >= this.#calledMax) {
      return OTHER;
    }
    this.#called.add(name);
    return name;
  }

  /** Names with a label of their own. */
  get size(): number {
    return this.#listed.size + this.#called.size;
  }
}
