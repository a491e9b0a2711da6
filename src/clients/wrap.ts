/**
 * The rewrite behind `mcp-audit wrap` and `unwrap`: a client's parsed configuration in, text edits
 * out. Nothing here touches a file. The wrapped argv and how it is recognised are in
 * {@link ./wrapped_argv.ts}.
 *
 * Every edit of an entry lies inside the entry's braces and depends only on the entry's own text
 * (and, for a new list in an entry spread over lines, on how the file writes lists), so each entry
 * is wrapped and checked on its own text, and the file is parsed once. Edits keep the original
 * bytes where they can: a stdio entry's original `args` items stay where they are (ours are
 * inserted before them, in the array's own layout); an entry without `args` gets one after its
 * last member, on its line when the entry is on one line; a remote entry's `command` and `args`
 * take the place of its URL member.
 *
 * Unwrap proposes the original and accepts it as exact only if wrapping it again gives the
 * current text; an entry edited since (say, reformatted) is still unwrapped, with its values
 * rewritten in the file's style. Wrap in turn keeps an entry only if unwrap gives it back byte for
 * byte, and then checks the whole file the same way.
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
import { applyEdits, removeMember, type TextEdit } from "./edit.ts";
import { remoteUrlKey } from "./catalog.ts";
import { classifyArgv, wrappedArgs, type WrappedArgv } from "./wrapped_argv.ts";

export {
  classifyArgv,
  EMPTY_ARGS_MARK,
  isOurLauncher,
  parseWrapped,
  type Upstream,
  wrappedArgs,
  type WrappedArgv,
} from "./wrapped_argv.ts";

/** An object node. */
export type ObjectNode = Extract<JsoncNode, { kind: "object" }>;
type ArrayNode = Extract<JsoncNode, { kind: "array" }>;

/** A file whose shape is not a client configuration's, at a line and column (1-based). */
export class ShapeError extends Error {
  override name = "ShapeError";
  constructor(readonly line: number, readonly column: number, readonly reason: string) {
    super(`${line}:${column}: ${reason}`);
  }
}

/** How mcp-audit is started: the command and the arguments before its own flags. */
export interface Launch {
  command: string;
  args: string[];
}

/** What a launcher is asked to start: a command (with the names its entry's `env` sets), a URL. */
export type LaunchTarget =
  | { kind: "stdio"; command: string; envNames: readonly string[] }
  | { kind: "remote"; url: URL };

/** What wrapping needs. */
export interface WrapOptions {
  /** `--client-id` of every wrapped entry. */
  clientId: string;
  /** The shared configuration file's absolute path (`--config`). */
  sharedConfig: string;
  /** Only these servers (by entry name); all when undefined or empty. */
  only?: ReadonlySet<string> | undefined;
  /**
   * The launcher for one upstream (the permission flags depend on it), or why that upstream
   * cannot be started through it.
   */
  launcher: (upstream: LaunchTarget) => Launch | { skip: string };
  /** The command this run writes (`Deno.execPath()`): an entry starting it is ours. */
  self?: string | undefined;
}

/** What became of one server entry. */
export interface Outcome {
  server: string;
  /** Where its list is, e.g. `mcpServers` or `projects./home/me/app.mcpServers`. */
  where: string;
  result: "wrapped" | "already wrapped" | "unwrapped" | "not wrapped" | "skipped" | "edited";
  /** Why it was skipped or left alone, or how it was unwrapped when not byte for byte. */
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

/** True when some entry of the file gives its URL as Windsurf does, in `serverUrl`. */
export function hasServerUrlEntries(doc: JsoncDocument): boolean {
  return entries(serverMaps(doc)).some((at) => memberOf(at.node, "serverUrl") !== undefined);
}

function where(map: ServerMap): string {
  return map.path.join(".");
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

// ---------------------------------------------------------------------------------------------
// One entry's text: a small document of its own.

/**
 * An entry as a document of its own: the entry's text after the leading white space of its first
 * line (and a comment standing for the rest of that line), so that everything the edits look at
 * (the entry's lines and their indentation) is as in the file. `delta` maps its offsets back.
 */
interface View {
  doc: JsoncDocument;
  node: ObjectNode;
  delta: number;
}

function lineStart(text: string, offset: number): number {
  let i = offset;
  while (i > 0 && text[i - 1] !== "\n" && text[i - 1] !== "\r") i--;
  return i;
}

/** The white space that starts the line holding `offset`. */
function lineIndent(text: string, offset: number): string {
  const start = lineStart(text, offset);
  return /^[ \t]*/.exec(text.slice(start, offset))?.[0] ?? "";
}

/** The entry `node` of `text` as a view; undefined if its text does not parse alone (a bug). */
function viewOf(text: string, node: ObjectNode): View | undefined {
  const prefix = lineIndent(text, node.span.start) + "/**/";
  const doc = parseOrUndefined(prefix + text.slice(node.span.start, node.span.end));
  if (doc === undefined || doc.root.kind !== "object") return undefined;
  return { doc, node: doc.root, delta: node.span.start - prefix.length };
}

function parseOrUndefined(text: string): JsoncDocument | undefined {
  try {
    return parseJsonc(text);
  } catch {
    return undefined;
  }
}

function shifted(edits: readonly TextEdit[], delta: number): TextEdit[] {
  return edits.map((e) => ({
    span: { start: e.span.start + delta, end: e.span.end + delta },
    text: e.text,
  }));
}

// ---------------------------------------------------------------------------------------------
// Layout of new lists.

/** How a new list is written: on one line, or one item per line. */
type ArrayLayout =
  | { kind: "inline"; comma: string }
  | { kind: "lines"; nl: string; itemIndent: string; closeIndent: string };

/** What a layout rule may look at where a new list goes. */
interface Site {
  /** The entry is on one line. */
  oneLine: boolean;
  /** Between items on one line: ", ", or "," in an entry written without spaces. */
  comma: string;
  /** The indentation of the line the list's member is on. */
  indent: string;
  /** The entry's line ending. */
  nl: string;
}

type LayoutRule = (site: Site) => ArrayLayout;

/**
 * Wrap's rule: a list in an entry on one line is on one line too; elsewhere as the file writes
 * lists of strings (on one line, or one item per line in its indent unit).
 */
function fileRule(doc: JsoncDocument): LayoutRule {
  return (site) =>
    site.oneLine || doc.inlineScalarArrays ? { kind: "inline", comma: site.comma } : {
      kind: "lines",
      nl: site.nl,
      itemIndent: site.indent + doc.indent,
      closeIndent: site.indent,
    };
}

/** The layout a (wrapped) list is written in, to check a proposed original against it. */
function layoutOf(text: string, array: ArrayNode): LayoutRule {
  const [first, second] = array.items;
  let layout: ArrayLayout;
  if (first === undefined || isOneLine(text, array.span.start, array.span.end)) {
    const between = second === undefined ? ", " : text.slice(first!.span.end, second.span.start);
    layout = { kind: "inline", comma: /^,[ \t]*$/.test(between) ? between : ", " };
  } else {
    const lead = whitespaceBefore(text, first.span.start);
    const close = whitespaceBefore(text, array.span.end - 1);
    layout = {
      kind: "lines",
      nl: /\r\n|\n|\r/.exec(lead)?.[0] ?? "\n",
      itemIndent: lead.replace(/^[\s\S]*[\r\n]/, ""),
      closeIndent: close.replace(/^[\s\S]*[\r\n]/, ""),
    };
  }
  return () => layout;
}

function renderArray(items: readonly string[], layout: ArrayLayout): string {
  const quoted = items.map((s) => JSON.stringify(s));
  if (quoted.length === 0) return "[]";
  if (layout.kind === "inline") return "[" + quoted.join(layout.comma) + "]";
  const { nl, itemIndent, closeIndent } = layout;
  return "[" + nl + itemIndent + quoted.join("," + nl + itemIndent) + nl + closeIndent + "]";
}

function isOneLine(text: string, start: number, end: number): boolean {
  return !/[\r\n]/.test(text.slice(start, end));
}

/** The white space just before `offset` (back to the previous token). */
function whitespaceBefore(text: string, offset: number): string {
  let i = offset;
  while (i > 0 && /\s/.test(text[i - 1]!)) i--;
  return text.slice(i, offset);
}

/** The text between a member's key and value when it is a plain colon with spaces; else ": ". */
function colonOf(text: string, member: JsoncMember): string {
  const between = text.slice(member.keySpan.end, member.value.span.start);
  return /^[ \t]*:[ \t]*$/.test(between) ? between : ": ";
}

function siteOf(view: View, member: JsoncMember): Site {
  const text = view.doc.text;
  const { start, end } = view.node.span;
  return {
    oneLine: isOneLine(text, start, end),
    comma: /\s$/.test(colonOf(text, member)) ? ", " : ",",
    indent: lineIndent(text, member.span.start),
    nl: /\r\n|\n|\r/.exec(text.slice(start, end))?.[0] ?? "\n",
  };
}

/**
 * What follows a member on its line: spaces, comments that end on that line, at most one comma.
 */
function scanTrailer(text: string, offset: number): { end: number; comma: boolean } {
  let i = offset;
  let comma = false;
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t") {
      i++;
    } else if (c === "," && !comma) {
      comma = true;
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n" && text[i] !== "\r") i++;
      break;
    } else if (c === "/" && text[i + 1] === "*") {
      const close = text.indexOf("*/", i + 2);
      if (close < 0 || !isOneLine(text, i, close)) break;
      i = close + 2;
    } else {
      break;
    }
  }
  return { end: i, comma };
}

/**
 * Adds `"args": LIST` after the entry's last member: on the entry's line when it is on one line,
 * else on a line of its own indented as the last member's, keeping a trailing comma there.
 */
function appendArgs(view: View, colonFrom: JsoncMember, items: string[], rule: LayoutRule) {
  const text = view.doc.text;
  const members = view.node.members;
  const last = members.at(-1)!;
  const colon = colonOf(text, colonFrom);
  const site = siteOf(view, colonFrom);
  const member = (layout: ArrayLayout) => `"args"${colon}${renderArray(items, layout)}`;
  if (site.oneLine) {
    const a = members.at(-2);
    const between = a === undefined ? "" : text.slice(a.span.end, last.span.start);
    const sep = /^[ \t]*,([ \t]*)$/.exec(between)?.[1] ?? (/\s$/.test(colon) ? " " : "");
    return {
      span: { start: last.span.end, end: last.span.end },
      text: "," + sep + member(rule(site)),
    };
  }
  const indent = lineIndent(text, last.span.start);
  const value = member(rule({ ...site, indent }));
  const trailer = scanTrailer(text, last.span.end);
  if (trailer.comma) {
    return { span: { start: trailer.end, end: trailer.end }, text: site.nl + indent + value + "," };
  }
  return {
    span: { start: last.span.end, end: trailer.end },
    text: "," + text.slice(last.span.end, trailer.end) + site.nl + indent + value,
  };
}

// ---------------------------------------------------------------------------------------------
// Wrapping one entry.

/** What an entry starts, read from its members; or why it starts nothing wrap can carry. */
type Plan =
  | {
    kind: "stdio";
    command: JsoncMember;
    commandValue: string;
    argsMember: JsoncMember | undefined;
    args: string[];
    envNames: string[];
  }
  | { kind: "remote"; urlMember: JsoncMember; url: string; type: JsoncMember | undefined }
  | { kind: "skip"; reason: string };

/** The entry's plan, by its structure only. */
function planOf(view: View): Plan {
  const entry = view.node;
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
    const env = memberOf(entry, "env");
    const envNames = env?.value.kind === "object" ? env.value.members.map((m) => m.key) : [];
    return {
      kind: "stdio",
      command,
      commandValue: command.value.value,
      argsMember,
      args,
      envNames,
    };
  }
  if (urlMember === undefined) return { kind: "skip", reason: "neither command nor url" };
  if (urlMember.value.kind !== "string") {
    return { kind: "skip", reason: `${urlMember.key} is not a string` };
  }
  return {
    kind: "remote",
    urlMember,
    url: urlMember.value.value,
    type: memberOf(entry, "type"),
  };
}

/**
 * Why wrap leaves an entry of this plan alone though it could write it: the wrapped entry would
 * not start, would drop what the entry sends, or would put a secret on a command line.
 */
function policySkip(view: View, plan: Plan): string | undefined {
  if (plan.kind === "skip") return plan.reason;
  if (plan.kind === "stdio") {
    return plan.commandValue === "" ? "command is empty: there is nothing to start" : undefined;
  }
  const entry = view.node;
  const key = plan.urlMember.key;
  const headers = memberOf(entry, "headers");
  if (
    headers !== undefined &&
    !(headers.value.kind === "object" && headers.value.members.length === 0)
  ) {
    const names = headers.value.kind === "object"
      ? headers.value.members.map((m) => m.key).join(", ")
      : "headers";
    return `its headers (${names}) cannot be sent by the stdio-to-HTTP bridge; ` +
      "wrapping it would drop them";
  }
  const type = plan.type;
  if (type !== undefined) {
    const value = stringOf(type);
    if (value === "sse") return 'type "sse": the bridge speaks Streamable HTTP only (type "http")';
    if (value !== "http") {
      const shown = value === undefined ? `is ${kindName(type.value)}` : JSON.stringify(value);
      return `type ${shown}: only "http" remote entries are wrapped`;
    }
  }
  if (plan.url.includes("${")) {
    return `its ${key} holds \${...}, which the client fills in when it starts the server; ` +
      "the bridge would be given the text as written";
  }
  let url: URL;
  try {
    url = new URL(plan.url);
  } catch {
    return `${key} is not a URL the bridge can reach`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `${key} is not an http(s) URL`;
  if (url.username !== "" || url.password !== "") {
    return `its ${key} holds a user name or password, which would sit on the proxy's command ` +
      "line, readable by every local user";
  }
  if (url.search !== "") {
    return `its ${key} has a query (${url.search.length > 1 ? "?..." : "?"}), which may carry ` +
      "a token; on the proxy's command line every local user could read it";
  }
  return undefined;
}

/** The ids a wrapped entry carries. */
interface Marks {
  serverId: string;
  clientId: string;
  config: string;
}

/** The edits that wrap an entry of a stdio or remote plan with `launch`, in the view's text. */
function buildEdits(
  view: View,
  plan: Exclude<Plan, { kind: "skip" }>,
  launch: Launch,
  marks: Marks,
  rule: LayoutRule,
): TextEdit[] {
  const text = view.doc.text;
  if (plan.kind === "stdio") {
    const { command, argsMember, args } = plan;
    const emptyArgs = argsMember !== undefined && args.length === 0;
    const full = wrappedArgs(launch.args, marks.serverId, marks.clientId, marks.config, {
      kind: "stdio",
      argv: [plan.commandValue, ...args],
    }, emptyArgs);
    const edits: TextEdit[] = [{ span: command.value.span, text: JSON.stringify(launch.command) }];
    if (argsMember === undefined) {
      edits.push(appendArgs(view, command, full, rule));
    } else if (argsMember.value.kind === "array" && argsMember.value.items.length > 0) {
      // Ours go before the first original item, laid out as the array is: one per line if it
      // is, else on its line with the gap it uses after a comma.
      const items = argsMember.value.items;
      const first = items[0]!;
      const lead = whitespaceBefore(text, first.span.start);
      const second = items[1];
      const gap = lead.includes("\n") || lead.includes("\r")
        ? lead
        : second === undefined
        ? " "
        : whitespaceBefore(text, second.span.start);
      const ours = full.slice(0, full.length - args.length);
      edits.push({
        span: { start: first.span.start, end: first.span.start },
        text: ours.map((a) => JSON.stringify(a) + "," + gap).join(""),
      });
    } else {
      edits.push({
        span: argsMember.value.span,
        text: renderArray(full, rule(siteOf(view, argsMember))),
      });
    }
    return edits;
  }
  const full = wrappedArgs(launch.args, marks.serverId, marks.clientId, marks.config, {
    kind: "remote",
    url: plan.url,
  });
  const member = plan.urlMember;
  const colon = colonOf(text, member);
  const lead = whitespaceBefore(text, member.span.start);
  const sep = lead !== "" ? lead : /\s$/.test(colon) ? " " : "";
  const edits: TextEdit[] = [{
    span: member.span,
    text: `"command"${colon}${JSON.stringify(launch.command)},${sep}"args"${colon}${
      renderArray(full, rule(siteOf(view, member)))
    }`,
  }];
  if (plan.type !== undefined) {
    edits.push({ span: plan.type.value.span, text: JSON.stringify("stdio") });
  }
  return edits;
}

// ---------------------------------------------------------------------------------------------
// Unwrapping one entry.

type UnwrapEdits = { edits: TextEdit[]; exact: boolean };

/**
 * The edits that unwrap an entry wrap wrote (in the view's text): the first proposed original
 * that wraps back to the current text exactly, else the original values written in the entry's
 * layout (`exact: false`).
 */
function unwrapEdits(view: View, wrapped: WrappedArgv): UnwrapEdits {
  const text = view.doc.text;
  const entry = view.node;
  const command = memberOf(entry, "command");
  const argsMember = memberOf(entry, "args");
  const launchCommand = stringOf(command);
  if (command === undefined || argsMember?.value.kind !== "array" || launchCommand === undefined) {
    // argvOf read both before calling here.
    throw new Error("unwrapEdits: an entry without command and args");
  }
  const array = argsMember.value;
  const rule = layoutOf(text, array);
  const rewrapsTo = (candidate: TextEdit[]): boolean => {
    let candidateText: string;
    try {
      candidateText = applyEdits(text, candidate);
    } catch {
      return false;
    }
    const doc = parseOrUndefined(candidateText);
    if (doc === undefined || doc.root.kind !== "object") return false;
    const back: View = { doc, node: doc.root, delta: 0 };
    const plan = planOf(back);
    if (plan.kind === "skip") return false;
    const edits = buildEdits(back, plan, { command: launchCommand, args: wrapped.launcherArgs }, {
      serverId: wrapped.serverId,
      clientId: wrapped.clientId,
      config: wrapped.config,
    }, rule);
    return applyEdits(candidateText, edits) === text;
  };
  const colon = colonOf(text, command);
  const candidates: TextEdit[][] = [];
  let fallback: TextEdit[];
  const upstream = wrapped.upstream;
  if (upstream.kind === "stdio") {
    const original = upstream.argv.slice(1);
    const items = array.items;
    const cmd = { span: command.value.span, text: JSON.stringify(upstream.argv[0]) };
    const firstKept = items[items.length - original.length];
    if (original.length > 0 && !wrapped.emptyArgs && firstKept !== undefined) {
      candidates.push([cmd, {
        span: { start: items[0]!.span.start, end: firstKept.span.start },
        text: "",
      }]);
    }
    if (original.length === 0 && wrapped.emptyArgs) {
      candidates.push([cmd, { span: array.span, text: "[]" }]);
    }
    if (original.length === 0 && !wrapped.emptyArgs) {
      const removed = removeMember(view.doc, entry, argsMember);
      candidates.push(...appendedArgsRemovals(view, argsMember).map((r) => [cmd, ...r]));
      candidates.push([cmd, removed]);
      fallback = [cmd, removed];
    } else {
      fallback = [cmd, { span: array.span, text: renderArray(original, rule(siteOfNone())) }];
    }
  } else {
    const key = remoteUrlKey(wrapped.clientId);
    const urlText = `${JSON.stringify(key)}${colon}${JSON.stringify(upstream.url)}`;
    const type = memberOf(entry, "type");
    const typeEdit = type !== undefined && stringOf(type) === "stdio"
      ? [{ span: type.value.span, text: JSON.stringify("http") }]
      : [];
    const between = text.slice(command.span.end, argsMember.span.start);
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
        removeMember(view.doc, entry, argsMember),
        ...typeEdit,
      ];
    }
  }
  for (const candidate of candidates) {
    if (rewrapsTo(candidate)) return { edits: candidate, exact: true };
  }
  return { edits: fallback, exact: false };
}

/** A site for a layout rule that ignores it (see {@link layoutOf}). */
function siteOfNone(): Site {
  return { oneLine: true, comma: ", ", indent: "", nl: "\n" };
}

/** The ways `appendArgs` may have added the (last) member `args`, undone. */
function appendedArgsRemovals(view: View, args: JsoncMember): TextEdit[][] {
  const text = view.doc.text;
  const members = view.node.members;
  if (members.at(-1) !== args) return [];
  const previous = members.at(-2);
  if (previous === undefined) return [];
  const out: TextEdit[][] = [[{
    span: { start: previous.span.end, end: args.span.end },
    text: "",
  }]];
  const lineBreak = lineStart(text, args.span.start);
  const nl = text.slice(0, lineBreak).match(/(\r\n|\n|\r)$/)?.[0];
  if (nl !== undefined && /^[ \t]*$/.test(text.slice(lineBreak, args.span.start))) {
    const from = lineBreak - nl.length;
    if (text[args.span.end] === ",") {
      out.push([{ span: { start: from, end: args.span.end + 1 }, text: "" }]);
    }
    if (text[previous.span.end] === "," && from > previous.span.end) {
      out.push([
        { span: { start: previous.span.end, end: previous.span.end + 1 }, text: "" },
        { span: { start: from, end: args.span.end }, text: "" },
      ]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Documents.

/** One entry's place: its list, name and node. */
interface EntryAt {
  map: ServerMap;
  name: string;
  node: ObjectNode;
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

/** The identity of an entry across a document and its edited copy. */
function entryKey(at: EntryAt): string {
  return JSON.stringify([...at.map.path, at.name]);
}

const BUG = "(this is a bug: please report it)";

/** How an entry's command and args read: see {@link classifyArgv}. */
function argvOf(view: View, self: string | undefined): ReturnType<typeof classifyArgv> {
  const command = stringOf(memberOf(view.node, "command"));
  if (command === undefined) return { kind: "other" };
  const argsMember = memberOf(view.node, "args");
  const args = argsMember === undefined ? undefined : stringList(argsMember.value);
  if (argsMember !== undefined && args === undefined) return { kind: "other" };
  return classifyArgv(command, args, self);
}

/** Wraps one entry and checks that unwrap gives its text back; edits in the view's text. */
function wrapOne(
  view: View,
  name: string,
  options: WrapOptions,
  rule: LayoutRule,
):
  | { kind: "edits"; edits: TextEdit[]; command: string }
  | { kind: "outcome"; outcome: Omit<Outcome, "where"> } {
  const skip = (reason: string) => ({
    kind: "outcome" as const,
    outcome: { server: name, result: "skipped" as const, reason },
  });
  const argv = argvOf(view, options.self);
  switch (argv.kind) {
    case "wrapped":
      return { kind: "outcome", outcome: { server: name, result: "already wrapped" } };
    case "edited":
      return { kind: "outcome", outcome: { server: name, result: "edited", reason: argv.reason } };
    case "by hand":
      return skip("it runs mcp-audit already (set up by hand, not by wrap); left alone");
    case "other":
      break;
    default:
      return unreachable(argv);
  }
  const plan = planOf(view);
  const refused = policySkip(view, plan);
  if (refused !== undefined || plan.kind === "skip") return skip(refused ?? "");
  const launch = options.launcher(
    plan.kind === "stdio"
      ? { kind: "stdio", command: plan.commandValue, envNames: plan.envNames }
      : { kind: "remote", url: new URL(plan.url) },
  );
  if ("skip" in launch) return skip(launch.skip);
  const edits = buildEdits(view, plan, launch, {
    serverId: name,
    clientId: options.clientId,
    config: options.sharedConfig,
  }, rule);
  const problem = roundTripProblem(view, plan, edits, options, options.self ?? launch.command);
  return problem === undefined ? { kind: "edits", edits, command: launch.command } : skip(problem);
}

/** Why unwrapping the wrapped entry would not give back its bytes, if it would not. */
function roundTripProblem(
  view: View,
  plan: Exclude<Plan, { kind: "skip" }>,
  edits: TextEdit[],
  options: WrapOptions,
  self: string,
): string | undefined {
  const text = view.doc.text;
  const doc = parseOrUndefined(applyEdits(text, edits));
  if (doc === undefined || doc.root.kind !== "object") {
    return `its wrapped form would not parse ${BUG}`;
  }
  const back: View = { doc, node: doc.root, delta: 0 };
  const argv = argvOf(back, self);
  if (argv.kind === "wrapped") {
    const undo = unwrapEdits(back, argv.wrapped);
    if (undo.exact && applyEdits(doc.text, undo.edits) === text) return undefined;
  }
  if (plan.kind === "remote") {
    const key = remoteUrlKey(options.clientId);
    if (plan.urlMember.key !== key) {
      return `its URL is in "${plan.urlMember.key}", which unwrap would not give back ` +
        `(${options.clientId} entries use "${key}")`;
    }
  }
  const raw = (node: JsoncNode) => text.slice(node.span.start, node.span.end);
  const written = plan.kind === "stdio"
    ? [
      plan.command.value,
      ...(plan.argsMember?.value.kind === "array" ? plan.argsMember.value.items : []),
    ]
    : [plan.urlMember.value];
  if (written.some((n) => n.kind === "string" && raw(n) !== JSON.stringify(n.value))) {
    return "its strings are written with escapes that wrap would not write the same way, " +
      "so unwrap could not give the file back byte for byte; left as it is";
  }
  return "wrap cannot write it so that unwrap gives it back byte for byte (comments inside " +
    "its args?); left as it is";
}

/**
 * The edits that wrap every (selected) entry of `doc`, each checked to unwrap to its own bytes,
 * and the whole file checked once more the same way.
 * @throws {ShapeError} when the file is not shaped as a client configuration
 */
export function wrapDocument(doc: JsoncDocument, options: WrapOptions): Rewrite {
  const rule = fileRule(doc);
  const edits: TextEdit[] = [];
  const outcomes: Outcome[] = [];
  const wrapped = new Set<string>();
  let self = options.self;
  for (const at of entries(serverMaps(doc))) {
    if (!selected(options.only, at.name)) continue;
    const place = where(at.map);
    const view = viewOf(doc.text, at.node);
    if (view === undefined) {
      outcomes.push({
        server: at.name,
        where: place,
        result: "skipped",
        reason: `unreadable ${BUG}`,
      });
      continue;
    }
    const made = wrapOne(view, at.name, options, rule);
    if (made.kind === "outcome") {
      outcomes.push({ ...made.outcome, where: place });
      continue;
    }
    self ??= made.command;
    edits.push(...shifted(made.edits, view.delta));
    outcomes.push({ server: at.name, where: place, result: "wrapped" });
    wrapped.add(entryKey(at));
  }
  if (edits.length === 0 || wholeFileRoundTrips(doc, edits, wrapped, self)) {
    return { edits, outcomes };
  }
  return {
    edits: [],
    outcomes: outcomes.map((o) =>
      o.result === "wrapped"
        ? {
          ...o,
          result: "skipped",
          reason: `the file wrapped would not unwrap to the same bytes ${BUG}`,
        }
        : o
    ),
  };
}

/** The file with `edits` parses, and unwrapping the entries in `keys` gives `doc` back. */
function wholeFileRoundTrips(
  doc: JsoncDocument,
  edits: TextEdit[],
  keys: ReadonlySet<string>,
  self: string | undefined,
): boolean {
  const next = parseOrUndefined(applyEdits(doc.text, edits));
  if (next === undefined) return false;
  let back: Rewrite;
  try {
    back = unwrapEntries(next, (at) => keys.has(entryKey(at)), self);
  } catch {
    return false;
  }
  return back.outcomes.every((o) => o.result === "unwrapped" && o.reason === undefined) &&
    applyEdits(next.text, back.edits) === doc.text;
}

/**
 * The edits that unwrap every (selected) entry of `doc` that mcp-audit wrapped. Entries of ours
 * edited since so that they no longer read as wrap wrote them are left alone (`edited`).
 * @throws {ShapeError} when the file is not shaped as a client configuration
 */
export function unwrapDocument(
  doc: JsoncDocument,
  options: { only?: ReadonlySet<string> | undefined; self?: string | undefined } = {},
): Rewrite {
  return unwrapEntries(doc, (at) => selected(options.only, at.name), options.self);
}

function unwrapEntries(
  doc: JsoncDocument,
  select: (at: EntryAt) => boolean,
  self: string | undefined,
): Rewrite {
  const edits: TextEdit[] = [];
  const outcomes: Outcome[] = [];
  for (const at of entries(serverMaps(doc))) {
    if (!select(at)) continue;
    const base = { server: at.name, where: where(at.map) };
    const view = viewOf(doc.text, at.node);
    const argv = view === undefined ? undefined : argvOf(view, self);
    if (
      view === undefined || argv === undefined || argv.kind === "other" || argv.kind === "by hand"
    ) {
      outcomes.push({ ...base, result: "not wrapped" });
      continue;
    }
    if (argv.kind === "edited") {
      outcomes.push({ ...base, result: "edited", reason: argv.reason });
      continue;
    }
    const undo = unwrapEdits(view, argv.wrapped);
    edits.push(...shifted(undo.edits, view.delta));
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

function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
