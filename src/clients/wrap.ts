/**
 * The rewrite behind `mcp-audit wrap` and `unwrap`: a client's parsed configuration in, text edits
 * out. Nothing here touches a file.
 *
 * A wrapped entry describes itself, so that unwrap needs nothing but the file:
 *
 * ```
 * stdio:  command: LAUNCHER, args: [...LAUNCHER_ARGS, --server-id NAME, --client-id CLIENT,
 *                                   --config SHARED, --no-dashboard, --no-metrics, --, CMD, ...ARGS]
 * remote: command: LAUNCHER, args: [...same..., --upstream URL]   (type "http" becomes "stdio")
 * ```
 *
 * LAUNCHER_ARGS is empty for the compiled binary, and `run FLAGS... /abs/main.ts` from source.
 * Edits keep the original bytes where they can: a stdio entry's original `args` items stay where
 * they are (ours are inserted before them, in the array's own layout), a remote entry's `command`
 * and `args` take the place of its URL member. Unwrap proposes the original and accepts it only
 * if wrapping it again gives the current text exactly; an entry edited since (say, reformatted)
 * is still unwrapped, with its values rewritten in the file's style. Wrap in turn keeps an entry
 * only if unwrap gives it back byte for byte, and otherwise skips it with the reason.
 *
 * @example
 * ```ts
 * import { parseJsonc } from "./jsonc.ts";
 * import { applyEdits } from "./edit.ts";
 * import { unwrapDocument, wrapDocument } from "./wrap.ts";
 *
 * const doc = parseJsonc('{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "fs"]}}}');
 * const wrapped = wrapDocument(doc, {
 *   clientId: "cursor",
 *   sharedConfig: "/home/me/.config/mcp-audit/config.yaml",
 *   launcher: () => ({ command: "/usr/local/bin/mcp-audit", args: [] }),
 * });
 * const text = applyEdits(doc.text, wrapped.edits);
 * const back = parseJsonc(text);
 * applyEdits(back.text, unwrapDocument(back).edits) === doc.text; // true
 * ```
 *
 * @module
 */
import {
  type JsoncDocument,
  type JsoncMember,
  type JsoncNode,
  lineColumn,
  parseJsonc,
} from "./jsonc.ts";
import {
  applyEdits,
  insertMember,
  removeMember,
  renderJson,
  replaceMemberValue,
  type TextEdit,
} from "./edit.ts";
import { remoteUrlKey } from "./catalog.ts";

/** An object node. */
export type ObjectNode = Extract<JsoncNode, { kind: "object" }>;

/** A file whose shape is not a client configuration's, at a line and column (1-based). */
export class ShapeError extends Error {
  override name = "ShapeError";
  constructor(readonly line: number, readonly column: number, readonly reason: string) {
    super(`${line}:${column}: ${reason}`);
  }
}

/** What a wrapped entry starts: a command (argv), or a remote server through the bridge. */
export type Upstream =
  | { kind: "stdio"; argv: string[] }
  | { kind: "remote"; url: string };

/** How mcp-audit is started: the command and the arguments before its own flags. */
export interface Launch {
  command: string;
  args: string[];
}

/** What wrapping needs. */
export interface WrapOptions {
  /** `--client-id` of every wrapped entry. */
  clientId: string;
  /** The shared configuration file's absolute path (`--config`). */
  sharedConfig: string;
  /** Only these servers (by entry name); all when undefined or empty. */
  only?: ReadonlySet<string> | undefined;
  /** The launcher for one upstream (the permission flags depend on it). */
  launcher: (upstream: { kind: "stdio"; command: string } | { kind: "remote"; url: URL }) => Launch;
}

/** What became of one server entry. */
export interface Outcome {
  server: string;
  /** Where its list is, e.g. `mcpServers` or `projects./home/me/app.mcpServers`. */
  where: string;
  result: "wrapped" | "already wrapped" | "unwrapped" | "not wrapped" | "skipped";
  /** Why it was skipped, or how it was unwrapped when not byte for byte. */
  reason?: string;
}

/** The edits for a document and what they do, entry by entry. */
export interface Rewrite {
  edits: TextEdit[];
  outcomes: Outcome[];
}

/** A list of servers in the document. */
export interface ServerMap {
  /** The keys leading to it from the root. */
  path: string[];
  node: ObjectNode;
  /** The nesting depth of its entries (the root is 0). */
  entryDepth: number;
}

/** A wrapped entry, read back from its argv. */
export interface WrappedArgv {
  launcherArgs: string[];
  serverId: string;
  clientId: string;
  config: string;
  upstream: Upstream;
}

const MARK_FLAGS = ["--server-id", "--client-id", "--config", "--no-dashboard", "--no-metrics"];

/** The argv of a wrapped entry (after its command). */
export function wrappedArgs(
  launcherArgs: readonly string[],
  serverId: string,
  clientId: string,
  config: string,
  upstream: Upstream,
): string[] {
  const tail = upstream.kind === "stdio" ? ["--", ...upstream.argv] : ["--upstream", upstream.url];
  return [
    ...launcherArgs,
    "--server-id",
    serverId,
    "--client-id",
    clientId,
    "--config",
    config,
    "--no-dashboard",
    "--no-metrics",
    ...tail,
  ];
}

/**
 * Reads a wrapped entry's argv back; undefined when `args` is not ours. Ours: an optional
 * launcher part (nothing, or `run ... main.ts`), then our flags in their order, then `-- ARGV`
 * or `--upstream URL`.
 */
export function parseWrapped(args: readonly string[]): WrappedArgv | undefined {
  const i = args.indexOf(MARK_FLAGS[0]!);
  if (i < 0 || args.length < i + 10) return undefined;
  const launcherArgs = args.slice(0, i);
  if (
    launcherArgs.length > 0 &&
    (launcherArgs[0] !== "run" || !/main\.ts$/.test(launcherArgs.at(-1) ?? ""))
  ) {
    return undefined;
  }
  if (
    args[i + 2] !== "--client-id" || args[i + 4] !== "--config" ||
    args[i + 6] !== "--no-dashboard" || args[i + 7] !== "--no-metrics"
  ) {
    return undefined;
  }
  const base = {
    launcherArgs,
    serverId: args[i + 1]!,
    clientId: args[i + 3]!,
    config: args[i + 5]!,
  };
  const rest = args.slice(i + 8);
  if (rest[0] === "--" && rest.length >= 2) {
    return { ...base, upstream: { kind: "stdio", argv: rest.slice(1) } };
  }
  if (rest[0] === "--upstream" && rest.length === 2) {
    return { ...base, upstream: { kind: "remote", url: rest[1]! } };
  }
  return undefined;
}

function kindName(node: JsoncNode): string {
  return node.kind === "object" ? "an object" : node.kind === "array" ? "a list" : `a ${node.kind}`;
}

function shapeError(doc: JsoncDocument, offset: number, reason: string): ShapeError {
  const { line, column } = lineColumn(doc.text, offset);
  return new ShapeError(line, column, reason);
}

function memberOf(node: ObjectNode, key: string): JsoncMember | undefined {
  return node.members.find((m) => m.key === key);
}

function objectAt(doc: JsoncDocument, member: JsoncMember, what: string): ObjectNode {
  if (member.value.kind !== "object") {
    throw shapeError(
      doc,
      member.value.span.start,
      `${what} is ${kindName(member.value)}, not an object`,
    );
  }
  return member.value;
}

/**
 * The server lists of a client configuration: `servers` (VS Code), `mcpServers` (the others),
 * and `projects.<path>.mcpServers` (Claude Code's `~/.claude.json`).
 * @throws {ShapeError} when the file is not a configuration or a list or entry is not an object
 */
export function serverMaps(doc: JsoncDocument): ServerMap[] {
  const root = doc.root;
  if (root.kind !== "object") {
    throw shapeError(doc, root.span.start, `the file holds ${kindName(root)}, not a JSON object`);
  }
  const maps: ServerMap[] = [];
  for (const key of ["mcpServers", "servers"]) {
    const member = memberOf(root, key);
    if (member !== undefined) {
      maps.push({ path: [key], node: objectAt(doc, member, `"${key}"`), entryDepth: 2 });
    }
  }
  const projects = memberOf(root, "projects");
  if (projects !== undefined && projects.value.kind === "object") {
    for (const project of projects.value.members) {
      if (project.value.kind !== "object") continue;
      const member = memberOf(project.value, "mcpServers");
      if (member === undefined) continue;
      maps.push({
        path: ["projects", project.key, "mcpServers"],
        node: objectAt(doc, member, `"projects.${project.key}.mcpServers"`),
        entryDepth: 4,
      });
    }
  }
  if (maps.length === 0) {
    throw shapeError(
      doc,
      root.span.start,
      'no "mcpServers" or "servers" object at the top: not an MCP client configuration',
    );
  }
  for (const map of maps) {
    for (const entry of map.node.members) {
      if (entry.value.kind !== "object") {
        throw shapeError(
          doc,
          entry.value.span.start,
          `server "${entry.key}" is ${kindName(entry.value)}, not an object`,
        );
      }
    }
  }
  return maps;
}

function where(map: ServerMap): string {
  return map.path.join(".");
}

/** The entry `name` of the list at `path`, in a (re-parsed) document. */
function findEntry(
  doc: JsoncDocument,
  path: readonly string[],
  name: string,
): ObjectNode | undefined {
  let node: JsoncNode = doc.root;
  for (const key of [...path, name]) {
    if (node.kind !== "object") return undefined;
    const member = memberOf(node, key);
    if (member === undefined) return undefined;
    node = member.value;
  }
  return node.kind === "object" ? node : undefined;
}

function stringList(node: JsoncNode): string[] | undefined {
  if (node.kind !== "array") return undefined;
  const out: string[] = [];
  for (const item of node.items) {
    if (item.kind !== "string") return undefined;
    out.push(item.value);
  }
  return out;
}

function stringOf(member: JsoncMember | undefined): string | undefined {
  return member?.value.kind === "string" ? member.value.value : undefined;
}

/** The white space just before `offset` (back to the previous token). */
function whitespaceBefore(text: string, offset: number): string {
  let i = offset;
  while (i > 0 && /\s/.test(text[i - 1]!)) i--;
  return text.slice(i, offset);
}

/** One entry's place: its list, name and node. */
interface EntryAt {
  map: ServerMap;
  name: string;
  node: ObjectNode;
}

type EntryEdits = { kind: "edits"; edits: TextEdit[] } | { kind: "skip"; reason: string };

/**
 * The edits that wrap one entry, with a launcher and marker given, with no check that unwrap
 * gives it back (see {@link wrapEntry}).
 */
function wrapEdits(
  doc: JsoncDocument,
  at: EntryAt,
  serverId: string,
  clientId: string,
  config: string,
  launcher: WrapOptions["launcher"],
): EntryEdits {
  const entry = at.node;
  const valueDepth = at.map.entryDepth + 1;
  const command = memberOf(entry, "command");
  const urlMember = memberOf(entry, "url") ?? memberOf(entry, "serverUrl");
  if (command !== undefined) {
    if (command.value.kind !== "string") return { kind: "skip", reason: "command is not a string" };
    if (urlMember !== undefined) {
      return { kind: "skip", reason: `has both command and ${urlMember.key}` };
    }
    const argsMember = memberOf(entry, "args");
    const args = argsMember === undefined ? [] : stringList(argsMember.value);
    if (args === undefined) return { kind: "skip", reason: "args is not a list of strings" };
    const launch = launcher({ kind: "stdio", command: command.value.value });
    const full = wrappedArgs(launch.args, serverId, clientId, config, {
      kind: "stdio",
      argv: [command.value.value, ...args],
    });
    const edits: TextEdit[] = [replaceMemberValue(doc, command, launch.command, valueDepth)];
    if (argsMember === undefined) {
      edits.push(insertMember(doc, entry, "args", full, at.map.entryDepth));
    } else if (argsMember.value.kind === "array" && argsMember.value.items.length > 0) {
      // Ours go before the first original item, laid out as the array is: one per line if it
      // is, else on its line with the gap it uses after a comma.
      const items = argsMember.value.items;
      const first = items[0]!;
      const lead = whitespaceBefore(doc.text, first.span.start);
      const second = items[1];
      const gap = lead.includes("\n")
        ? lead
        : second === undefined
        ? " "
        : whitespaceBefore(doc.text, second.span.start);
      const ours = full.slice(0, full.length - args.length);
      edits.push({
        span: { start: first.span.start, end: first.span.start },
        text: ours.map((a) => JSON.stringify(a) + "," + gap).join(""),
      });
    } else {
      edits.push(replaceMemberValue(doc, argsMember, full, valueDepth));
    }
    return { kind: "edits", edits };
  }
  if (urlMember === undefined) return { kind: "skip", reason: "neither command nor url" };
  if (urlMember.value.kind !== "string") {
    return { kind: "skip", reason: `${urlMember.key} is not a string` };
  }
  const headers = memberOf(entry, "headers");
  if (
    headers !== undefined &&
    !(headers.value.kind === "object" && headers.value.members.length === 0)
  ) {
    const names = headers.value.kind === "object"
      ? headers.value.members.map((m) => m.key).join(", ")
      : "headers";
    return {
      kind: "skip",
      reason: `its headers (${names}) cannot be sent by the stdio-to-HTTP bridge; ` +
        "wrapping it would drop them",
    };
  }
  const type = memberOf(entry, "type");
  const typeValue = stringOf(type);
  if (type !== undefined && typeValue !== "http") {
    return {
      kind: "skip",
      reason: typeValue === "sse"
        ? 'type "sse": the bridge speaks Streamable HTTP only (type "http")'
        : `type ${JSON.stringify(toText(type.value, doc))}: only "http" remote entries are wrapped`,
    };
  }
  let url: URL;
  try {
    url = new URL(urlMember.value.value);
  } catch {
    return { kind: "skip", reason: `${urlMember.key} is not a URL the bridge can reach` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { kind: "skip", reason: `${urlMember.key} is not an http(s) URL` };
  }
  const launch = launcher({ kind: "remote", url });
  const full = wrappedArgs(launch.args, serverId, clientId, config, {
    kind: "remote",
    url: urlMember.value.value,
  });
  const lead = whitespaceBefore(doc.text, urlMember.span.start);
  const sep = lead === "" ? " " : lead;
  const edits: TextEdit[] = [{
    span: urlMember.span,
    text: `"command": ${JSON.stringify(launch.command)},${sep}"args": ${
      renderJson(full, doc, valueDepth)
    }`,
  }];
  if (type !== undefined) edits.push(replaceMemberValue(doc, type, "stdio", valueDepth));
  return { kind: "edits", edits };
}

function toText(node: JsoncNode, doc: JsoncDocument): string {
  return doc.text.slice(node.span.start, node.span.end);
}

/** The document's text after `edits`, parsed again (undefined if it does not parse). */
function reparse(doc: JsoncDocument, edits: TextEdit[]): JsoncDocument | undefined {
  try {
    return parseJsonc(applyEdits(doc.text, edits));
  } catch {
    return undefined;
  }
}

type UnwrapEdits =
  | { kind: "edits"; edits: TextEdit[]; exact: boolean }
  | { kind: "not ours" };

/** True when the entry's `command` and `args` are a wrapped entry's (see {@link parseWrapped}). */
function isWrapped(entry: ObjectNode): boolean {
  const args = memberOf(entry, "args");
  const list = args === undefined ? undefined : stringList(args.value);
  return stringOf(memberOf(entry, "command")) !== undefined && list !== undefined &&
    parseWrapped(list) !== undefined;
}

/**
 * The edits that unwrap one entry: the first proposed original that wraps back to the current
 * text exactly, else the original values rewritten in the file's style (`exact: false`).
 */
function unwrapEdits(doc: JsoncDocument, at: EntryAt): UnwrapEdits {
  const entry = at.node;
  const valueDepth = at.map.entryDepth + 1;
  const command = memberOf(entry, "command");
  const argsMember = memberOf(entry, "args");
  if (command?.value.kind !== "string" || argsMember?.value.kind !== "array") {
    return { kind: "not ours" };
  }
  const args = stringList(argsMember.value);
  const wrapped = args === undefined ? undefined : parseWrapped(args);
  if (wrapped === undefined) return { kind: "not ours" };
  const launchCommand = command.value.value;
  const rewrap = (candidate: TextEdit[]): boolean => {
    const back = reparse(doc, candidate);
    if (back === undefined) return false;
    const node = findEntry(back, at.map.path, at.name);
    if (node === undefined) return false;
    const again = wrapEdits(
      back,
      { map: at.map, name: at.name, node },
      wrapped.serverId,
      wrapped.clientId,
      wrapped.config,
      () => ({ command: launchCommand, args: wrapped.launcherArgs }),
    );
    return again.kind === "edits" && applyEdits(back.text, again.edits) === doc.text;
  };
  const candidates: TextEdit[][] = [];
  let fallback: TextEdit[];
  const upstream = wrapped.upstream;
  if (upstream.kind === "stdio") {
    const original = upstream.argv.slice(1);
    const items = argsMember.value.items;
    const cmd = replaceMemberValue(doc, command, upstream.argv[0]!, valueDepth);
    const firstKept = items[items.length - original.length];
    if (firstKept !== undefined && items[0] !== undefined) {
      candidates.push([cmd, {
        span: { start: items[0].span.start, end: firstKept.span.start },
        text: "",
      }]);
    }
    if (original.length === 0) {
      candidates.push([cmd, removeMember(doc, entry, argsMember)]);
      candidates.push([cmd, replaceMemberValue(doc, argsMember, [], valueDepth)]);
    }
    fallback = [cmd, replaceMemberValue(doc, argsMember, original, valueDepth)];
  } else {
    const key = remoteUrlKey(wrapped.clientId);
    const urlText = `"${key}": ${JSON.stringify(upstream.url)}`;
    const type = memberOf(entry, "type");
    const typeEdit = type !== undefined && stringOf(type) === "stdio"
      ? [replaceMemberValue(doc, type, "http", valueDepth)]
      : [];
    const between = doc.text.slice(command.span.end, argsMember.span.start);
    if (/^\s*,\s*$/.test(between)) {
      const joined = {
        span: { start: command.span.start, end: argsMember.span.end },
        text: urlText,
      };
      candidates.push([joined, ...typeEdit]);
      fallback = [joined, ...typeEdit];
    } else {
      fallback = [
        { span: command.span, text: urlText },
        removeMember(doc, entry, argsMember),
        ...typeEdit,
      ];
    }
  }
  for (const candidate of candidates) {
    if (rewrap(candidate)) return { kind: "edits", edits: candidate, exact: true };
  }
  return { kind: "edits", edits: fallback, exact: false };
}

function selected(only: ReadonlySet<string> | undefined, name: string): boolean {
  return only === undefined || only.size === 0 || only.has(name);
}

function entries(maps: ServerMap[]): EntryAt[] {
  const out: EntryAt[] = [];
  for (const map of maps) {
    for (const member of map.node.members) {
      if (member.value.kind === "object") out.push({ map, name: member.key, node: member.value });
    }
  }
  return out;
}

/**
 * The edits that wrap every (selected) entry of `doc`.
 * @throws {ShapeError} when the file is not shaped as a client configuration
 */
export function wrapDocument(doc: JsoncDocument, options: WrapOptions): Rewrite {
  const edits: TextEdit[] = [];
  const outcomes: Outcome[] = [];
  for (const at of entries(serverMaps(doc))) {
    if (!selected(options.only, at.name)) continue;
    const base = { server: at.name, where: where(at.map) };
    if (isWrapped(at.node)) {
      outcomes.push({ ...base, result: "already wrapped" });
      continue;
    }
    const made = wrapEdits(
      doc,
      at,
      at.name,
      options.clientId,
      options.sharedConfig,
      options.launcher,
    );
    if (made.kind === "skip") {
      outcomes.push({ ...base, result: "skipped", reason: made.reason });
      continue;
    }
    const problem = roundTripProblem(doc, at, made.edits, options.clientId);
    if (problem !== undefined) {
      outcomes.push({ ...base, result: "skipped", reason: problem });
      continue;
    }
    edits.push(...made.edits);
    outcomes.push({ ...base, result: "wrapped" });
  }
  return { edits, outcomes };
}

/** Why unwrapping the wrapped entry would not give back the original bytes, if it would not. */
function roundTripProblem(
  doc: JsoncDocument,
  at: EntryAt,
  edits: TextEdit[],
  clientId: string,
): string | undefined {
  const back = reparse(doc, edits);
  const node = back === undefined ? undefined : findEntry(back, at.map.path, at.name);
  if (back === undefined || node === undefined) {
    return "its wrapped form would not parse (this is a bug: please report it)";
  }
  const undo = unwrapEdits(back, { map: at.map, name: at.name, node });
  if (undo.kind === "edits" && undo.exact && applyEdits(back.text, undo.edits) === doc.text) {
    return undefined;
  }
  const urlMember = memberOf(at.node, "url") ?? memberOf(at.node, "serverUrl");
  if (urlMember !== undefined && memberOf(at.node, "command") === undefined) {
    return `its URL is in "${urlMember.key}", which unwrap would not give back ` +
      `(${clientId} entries use "${remoteUrlKey(clientId)}")`;
  }
  return "unwrap would not give it back byte for byte (unusual escapes or layout?)";
}

/**
 * The edits that unwrap every (selected) entry of `doc` that mcp-audit wrapped.
 * @throws {ShapeError} when the file is not shaped as a client configuration
 */
export function unwrapDocument(
  doc: JsoncDocument,
  options: { only?: ReadonlySet<string> | undefined } = {},
): Rewrite {
  const edits: TextEdit[] = [];
  const outcomes: Outcome[] = [];
  for (const at of entries(serverMaps(doc))) {
    if (!selected(options.only, at.name)) continue;
    const base = { server: at.name, where: where(at.map) };
    const undo = unwrapEdits(doc, at);
    if (undo.kind === "not ours") {
      outcomes.push({ ...base, result: "not wrapped" });
      continue;
    }
    edits.push(...undo.edits);
    outcomes.push(
      undo.exact ? { ...base, result: "unwrapped" } : {
        ...base,
        result: "unwrapped",
        reason: "the entry changed after it was wrapped; its original values are written " +
          "in the file's layout",
      },
    );
  }
  return { edits, outcomes };
}
