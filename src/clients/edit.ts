/**
 * Edits to a parsed JSON(C) file as replacements of spans of its text, so that every byte outside
 * them (comments, key order, spacing, line endings) stays as it was. New values are written in the
 * file's own style: its indent unit, its line ending, its way with short arrays.
 *
 * @module
 */
import type { JsoncDocument, JsoncMember, JsoncNode, Span } from "./jsonc.ts";

/** Replace the text of `span` with `text` (an empty span inserts). */
export interface TextEdit {
  span: Span;
  text: string;
}

/** Nesting a rendered value may have: deeper is refused (it is most likely a cycle). */
const MAX_RENDER_DEPTH = 64;

/**
 * Applies edits to `text`. The edits may come in any order but must not overlap; two insertions at
 * the same offset overlap too (their order would be a guess).
 *
 * @example
 * ```ts
 * applyEdits('{"a": 1}', [{ span: { start: 6, end: 7 }, text: "2" }]); // '{"a": 2}'
 * ```
 * @throws {RangeError} when a span is outside the text or two edits overlap
 */
export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  for (const { span } of edits) {
    if (
      !Number.isSafeInteger(span.start) || !Number.isSafeInteger(span.end) || span.start < 0 ||
      span.end < span.start || span.end > text.length
    ) {
      throw new RangeError(
        `edit span ${span.start}..${span.end} is not within the text (0..${text.length})`,
      );
    }
  }
  const sorted = [...edits].sort((a, b) => a.span.start - b.span.start || a.span.end - b.span.end);
  const parts: string[] = [];
  let at = 0;
  let previous: Span | undefined;
  for (const edit of sorted) {
    if (
      previous !== undefined &&
      (edit.span.start < previous.end ||
        (edit.span.start === previous.start && edit.span.start === edit.span.end))
    ) {
      throw new RangeError(
        `edits overlap: ${previous.start}..${previous.end} and ${edit.span.start}..${edit.span.end}`,
      );
    }
    parts.push(text.slice(at, edit.span.start), edit.text);
    at = edit.span.end;
    previous = edit.span;
  }
  parts.push(text.slice(at));
  return parts.join("");
}

/** The text to write for a document whose (edited) text is `text`: its byte order mark restored. */
export function withBom(doc: JsoncDocument, text: string): string {
  return doc.bom ? "\uFEFF" + text : text;
}

/**
 * JSON text for `value` placed at nesting `depth` (0 = the root; a value at depth d starts on a line
 * indented d units, its members d + 1): non-empty objects and arrays over several lines in the
 * file's indent and line ending, arrays of scalars on one line when the file writes them so,
 * strings escaped as `JSON.stringify` does. Object members whose value is `undefined` are left out,
 * as `JSON.stringify` does.
 *
 * @example
 * ```ts
 * renderJson({ command: "npx", args: ["-y", "pkg"] }, parseJsonc("{}"), 1);
 * ```
 * @throws {TypeError} for what JSON cannot hold: `undefined` (outside an object), functions,
 * symbols, bigints, non-finite numbers, lone surrogates, class instances, nesting past 64 levels
 */
export function renderJson(value: unknown, doc: JsoncDocument, depth: number): string {
  return render(value, doc.indent.repeat(Math.max(0, depth)), styleOf(doc), 0);
}

/**
 * Replaces a member's value with `value`, rendered at the indentation of the member's line (or, when
 * the member shares its line with something before it, at nesting `depth`: see {@link renderJson}).
 */
export function replaceMemberValue(
  doc: JsoncDocument,
  member: JsoncMember,
  value: unknown,
  depth: number,
): TextEdit {
  const style = styleOf(doc, colonOf(doc.text, member));
  const indent = ownLineIndent(doc.text, member.span.start) ??
    doc.indent.repeat(Math.max(0, depth));
  return { span: member.value.span, text: render(value, indent, style, 0) };
}

/**
 * Adds `key: value` to `object` (which sits at nesting `depth`, 0 = the root) after its last member,
 * with the comma it needs: on a line of its own indented as the members before it (or at depth + 1
 * when there are none), keeping a trailing comma when the file had one there; on the same line when
 * the object (or the whole file) is on one line. Comments stay where they are.
 *
 * @throws {TypeError} when `object` is not an object, already has `key`, or `value` is not JSON
 */
export function insertMember(
  doc: JsoncDocument,
  object: JsoncNode,
  key: string,
  value: unknown,
  depth: number,
): TextEdit {
  if (object.kind !== "object") throw new TypeError(`cannot add a member to a ${object.kind}`);
  if (object.members.some((member) => member.key === key)) {
    throw new TypeError(`the object already has a member ${JSON.stringify(key)}`);
  }
  checkString(key);
  const text = doc.text;
  const last = object.members.at(-1);
  const colon = colonOf(text, last ?? firstMember(doc.root));
  const inline = isMinified(doc) || (last !== undefined && isOneLine(text, object.span));
  const style = styleOf(doc, colon, inline);
  const nl = doc.newline;
  const baseDepth = Math.max(0, depth);
  const memberIndent = (last === undefined ? undefined : ownLineIndent(text, last.span.start)) ??
    doc.indent.repeat(baseDepth + 1);
  const member = JSON.stringify(key) + colon + render(value, memberIndent, style, 0);

  const open = object.span.start;
  const close = object.span.end - 1;
  if (last === undefined) {
    const interior = text.slice(open + 1, close);
    const blank = isBlank(interior);
    if (inline) {
      return blank
        ? { span: { start: open + 1, end: close }, text: member }
        : { span: { start: close, end: close }, text: " " + member };
    }
    const closeIndent = doc.indent.repeat(baseDepth);
    if (blank) {
      return {
        span: { start: open + 1, end: close },
        text: nl + memberIndent + member + nl + closeIndent,
      };
    }
    // Comments inside: the member goes after them, before the closing brace.
    const closeLineStart = lineStart(text, close);
    if (closeLineStart > open && isBlank(text.slice(closeLineStart, close))) {
      return {
        span: { start: closeLineStart, end: close },
        text: memberIndent + member + nl + closeIndent,
      };
    }
    return {
      span: { start: close, end: close },
      text: nl + memberIndent + member + nl + closeIndent,
    };
  }

  if (inline) {
    const separator = itemSeparator(text, object.members) ?? (/\s$/.test(colon) ? " " : "");
    return { span: { start: last.span.end, end: last.span.end }, text: "," + separator + member };
  }
  const trailer = scanTrailer(text, last.span.end);
  if (trailer.comma) {
    return {
      span: { start: trailer.end, end: trailer.end },
      text: nl + memberIndent + member + ",",
    };
  }
  return {
    span: { start: last.span.end, end: trailer.end },
    text: "," + text.slice(last.span.end, trailer.end) + nl + memberIndent + member,
  };
}

/**
 * Removes `member` from `object` with exactly one adjoining comma (the one after it, else the one
 * before it) and, when the member had its line to itself, that line. Comments outside the member
 * stay. An object left with only whitespace inside becomes `{}`.
 *
 * @throws {TypeError} when `member` is not one of `object`'s members
 */
export function removeMember(
  doc: JsoncDocument,
  object: JsoncNode,
  member: JsoncMember,
): TextEdit {
  if (object.kind !== "object") throw new TypeError(`cannot remove a member from a ${object.kind}`);
  const index = object.members.indexOf(member);
  if (index < 0) {
    throw new TypeError(`${JSON.stringify(member.key)} is not a member of this object`);
  }
  const text = doc.text;
  const start = member.span.start;
  const end = member.span.end;
  const open = object.span.start;
  const close = object.span.end - 1;

  const afterEnd = skipTrivia(text, end);
  const hasNextComma = text.charCodeAt(afterEnd) === COMMA;

  if (
    object.members.length === 1 && isBlank(text.slice(open + 1, start)) &&
    /^[ \t\r\n]*,?[ \t\r\n]*$/.test(text.slice(end, close))
  ) {
    return { span: { start: open + 1, end: close }, text: "" };
  }

  const ownLine = ownLineIndent(text, start) !== undefined;
  if (hasNextComma) {
    const between = text.slice(end, afterEnd);
    const commaEnd = afterEnd + 1;
    const restOfLine = spacesFrom(text, commaEnd);
    if (isBlank(between) && ownLine && atLineEnd(text, restOfLine)) {
      const from = lineBreakBefore(text, start);
      return { span: { start: from, end: restOfLine }, text: "" };
    }
    return { span: { start, end: restOfLine }, text: between.trimStart() };
  }
  const previous = object.members[index - 1];
  if (previous === undefined) {
    // The only member, with comments beside it that stay.
    const restOfLine = spacesFrom(text, end);
    if (ownLine && atLineEnd(text, restOfLine)) {
      return { span: { start: lineBreakBefore(text, start), end: restOfLine }, text: "" };
    }
    return { span: { start, end }, text: "" };
  }
  const comma = skipTrivia(text, previous.span.end);
  const restOfLine = spacesFrom(text, end);
  if (ownLine && atLineEnd(text, restOfLine)) {
    return {
      span: { start: comma, end: restOfLine },
      text: text.slice(comma + 1, lineBreakBefore(text, start)),
    };
  }
  // Something follows on the member's line (a comment): it keeps its place and indentation.
  if (ownLine) {
    return { span: { start: comma, end: restOfLine }, text: text.slice(comma + 1, start) };
  }
  return { span: { start: comma, end }, text: trimSpacesEnd(text.slice(comma + 1, start)) };
}

interface Style {
  unit: string;
  newline: string;
  colon: string;
  /** Every object and array on one line. */
  inline: boolean;
  /** Between items on one line: ", ", or "," in a file written without spaces. */
  inlineComma: string;
  inlineScalarArrays: boolean;
}

function styleOf(
  doc: JsoncDocument,
  colon = colonOf(doc.text, firstMember(doc.root)),
  inline?: boolean,
): Style {
  return {
    unit: doc.indent,
    newline: doc.newline,
    colon,
    inline: inline ?? isMinified(doc),
    inlineComma: /\s$/.test(colon) ? ", " : ",",
    inlineScalarArrays: doc.inlineScalarArrays,
  };
}

/** `value` as JSON, its first line at the cursor and the rest indented from `indent`. */
function render(value: unknown, indent: string, style: Style, level: number): string {
  if (level > MAX_RENDER_DEPTH) {
    throw new TypeError(
      `cannot write a value nested deeper than ${MAX_RENDER_DEPTH} levels (a cycle?)`,
    );
  }
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      checkString(value);
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} as JSON`);
      return JSON.stringify(value);
    case "object":
      break;
    default:
      throw new TypeError(`cannot write ${typeof value} as JSON`);
  }
  const inner = indent + style.unit;
  const nl = style.newline;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const items: string[] = [];
    let scalars = true;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) {
        throw new TypeError(`cannot write undefined (array item ${i}) as JSON`);
      }
      if (item !== null && typeof item === "object") scalars = false;
      items.push(render(item, inner, style, level + 1));
    }
    if (style.inline || (scalars && style.inlineScalarArrays)) {
      return "[" + items.join(style.inlineComma) + "]";
    }
    return "[" + nl + inner + items.join("," + nl + inner) + nl + indent + "]";
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = value.constructor?.name ?? "an object with a prototype";
    throw new TypeError(`cannot write a ${name} as JSON (plain objects and arrays only)`);
  }
  const members: string[] = [];
  for (const [key, member] of Object.entries(value)) {
    if (member === undefined) continue;
    checkString(key);
    members.push(JSON.stringify(key) + style.colon + render(member, inner, style, level + 1));
  }
  if (members.length === 0) return "{}";
  if (style.inline) return "{" + members.join(style.inlineComma) + "}";
  return "{" + nl + inner + members.join("," + nl + inner) + nl + indent + "}";
}

function checkString(value: string): void {
  if (!value.isWellFormed()) {
    throw new TypeError("cannot write a string holding a lone surrogate (half a character)");
  }
}

const COMMA = 0x2c;
const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SLASH = 0x2f;
const STAR = 0x2a;

/** The first member of the root object, where the file's way with colons shows. */
function firstMember(root: JsoncNode): JsoncMember | undefined {
  return root.kind === "object" ? root.members[0] : undefined;
}

/** The text between a member's key and value, when it is a plain `:` with spaces; else ": ". */
function colonOf(text: string, member: JsoncMember | undefined): string {
  if (member === undefined) return ": ";
  const between = text.slice(member.keySpan.end, member.value.span.start);
  return /^[ \t]*:[ \t]*$/.test(between) ? between : ": ";
}

/** The spaces after the comma between the last two members, when that is all there is between. */
function itemSeparator(text: string, members: readonly JsoncMember[]): string | undefined {
  const a = members.at(-2);
  const b = members.at(-1);
  if (a === undefined || b === undefined) return undefined;
  const between = text.slice(a.span.end, b.span.start);
  return /^[ \t]*,([ \t]*)$/.exec(between)?.[1];
}

function isBlank(text: string): boolean {
  return /^[ \t\r\n]*$/.test(text);
}

/** The file is one line holding a non-empty object or array: new values go on that line too. */
function isMinified(doc: JsoncDocument): boolean {
  const root = doc.root;
  const empty = root.kind === "object"
    ? root.members.length === 0
    : root.kind === "array"
    ? root.items.length === 0
    : true;
  return !empty && isOneLine(doc.text, root.span);
}

function isOneLine(text: string, span: Span): boolean {
  for (let i = span.start; i < span.end; i++) {
    const c = text.charCodeAt(i);
    if (c === LF || c === CR) return false;
  }
  return true;
}

/** Where the line holding `offset` starts. */
function lineStart(text: string, offset: number): number {
  let i = offset;
  while (i > 0) {
    const c = text.charCodeAt(i - 1);
    if (c === LF || c === CR) break;
    i--;
  }
  return i;
}

/** The whitespace before `offset` on its line, when there is nothing else before it there. */
function ownLineIndent(text: string, offset: number): string | undefined {
  const start = lineStart(text, offset);
  if (start === 0) return undefined;
  const indent = text.slice(start, offset);
  return /^[ \t]*$/.test(indent) ? indent : undefined;
}

/** Where the line break ending the line before the one holding `offset` starts. */
function lineBreakBefore(text: string, offset: number): number {
  const start = lineStart(text, offset);
  if (start >= 2 && text.charCodeAt(start - 1) === LF && text.charCodeAt(start - 2) === CR) {
    return start - 2;
  }
  return Math.max(0, start - 1);
}

function spacesFrom(text: string, offset: number): number {
  let i = offset;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== TAB) break;
    i++;
  }
  return i;
}

function atLineEnd(text: string, offset: number): boolean {
  const c = text.charCodeAt(offset);
  return offset >= text.length || c === LF || c === CR;
}

function trimSpacesEnd(text: string): string {
  return text.replace(/[ \t]+$/, "");
}

/** Past whitespace and comments from `offset` (the text is known to be valid JSONC). */
function skipTrivia(text: string, offset: number): number {
  let i = offset;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === SPACE || c === TAB || c === LF || c === CR) {
      i++;
    } else if (c === SLASH && text.charCodeAt(i + 1) === SLASH) {
      while (i < text.length && text.charCodeAt(i) !== LF && text.charCodeAt(i) !== CR) i++;
    } else if (c === SLASH && text.charCodeAt(i + 1) === STAR) {
      const close = text.indexOf("*/", i + 2);
      i = close < 0 ? text.length : close + 2;
    } else {
      break;
    }
  }
  return i;
}

/**
 * What follows a member on its own line: spaces, comments that end on that line and at most one
 * comma. Stops at the line break or anything else.
 */
function scanTrailer(text: string, offset: number): { end: number; comma: boolean } {
  let i = offset;
  let comma = false;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === SPACE || c === TAB) {
      i++;
    } else if (c === COMMA && !comma) {
      comma = true;
      i++;
    } else if (c === SLASH && text.charCodeAt(i + 1) === SLASH) {
      while (i < text.length && text.charCodeAt(i) !== LF && text.charCodeAt(i) !== CR) i++;
      break;
    } else if (c === SLASH && text.charCodeAt(i + 1) === STAR) {
      const close = text.indexOf("*/", i + 2);
      if (close < 0 || !isOneLine(text, { start: i, end: close })) break;
      i = close + 2;
    } else {
      break;
    }
  }
  return { end: i, comma };
}
