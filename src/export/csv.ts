/**
 * Records as CSV (RFC 4180): a header row, then one row per record, CRLF line ends; a cell holding
 * a comma or a quote is quoted, its quotes doubled. `params`, `result` and `jsonrpc_id` are their
 * JSON text, as in the stored line (canonical form) but for DEL, C1, U+2028 and U+2029, which are
 * written as `\uXXXX` escapes: the same JSON value.
 *
 * Each row is one line: a text cell never carries a control character raw. CR, LF, NUL, ESC, VT,
 * FF, the rest of C0 but TAB, DEL, C1 (NEL among them), U+2028 and U+2029 each become U+FFFD (see
 * controls.ts). RFC 4180 would allow CR and LF inside quotes, but line-based readers split the
 * row there, and a spreadsheet shows a cell's first line only, so that a tool named
 * `read_file\n\n\ndelete_all` would read as `read_file`. The exact text is in the JSONL export.
 *
 * Spreadsheet formula injection is neutralised: a text cell starting with `=`, `+`, `-`, `@` or a
 * tab gets a leading `'` (a leading CR is U+FFFD by then), so a spreadsheet shows it as text instead of evaluating it.
 * Numbers in numeric columns (`-32600` in `error_code`) are left as they are.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { canonicalize } from "../audit/canonical.ts";
import { isRawNumber, type JsonValue } from "../jsonrpc/json.ts";
import { escapeJsonControls, replaceControls } from "./controls.ts";

/** The columns, in order. */
export const CSV_COLUMNS = [
  "seq",
  "id",
  "ts",
  "kind",
  "direction",
  "transport",
  "session",
  "jsonrpc_id",
  "method",
  "tool_name",
  "decision_action",
  "decision_rule",
  "decision_reason",
  "error_code",
  "error_message",
  "duration_ms",
  "client_id",
  "server_id",
  "upstream",
  "wire_sha256",
  "prev",
  "sig",
  "params",
  "result",
] as const;

/** The line ending RFC 4180 prescribes. */
export const CSV_EOL = "\r\n";

/** The header row (no line end). */
export const CSV_HEADER: string = CSV_COLUMNS.join(",");

// A leading CR is a formula start too, but none is left by then.
const FORMULA_START = /^[=+\-@\t]/;
const NEEDS_QUOTES = /[",]/;

/**
 * A cell: its control characters and line breaks made U+FFFD, neutralised when text (not when
 * `numeric`), then quoted when it must be.
 */
export function csvCell(value: string, numeric = false): string {
  const safe = replaceControls(value, "replace");
  const text = !numeric && FORMULA_START.test(safe) ? "'" + safe : safe;
  return NEEDS_QUOTES.test(text) ? '"' + text.replaceAll('"', '""') + '"' : text;
}

type Cell = { text: string; numeric: boolean };

const EMPTY: Cell = { text: "", numeric: false };

function text(value: string | null | undefined): Cell {
  return typeof value === "string" ? { text: value, numeric: false } : EMPTY;
}

function num(value: unknown): Cell {
  if (typeof value === "number" && Number.isFinite(value)) {
    return { text: String(value), numeric: true };
  }
  if (isRawNumber(value)) return { text: value.rawJSON, numeric: true };
  // Not a number after all (a record written by something else): shown as text, neutralised.
  return value === null || value === undefined ? EMPTY : { text: String(value), numeric: false };
}

/** JSON text; a number stays a number, so `-1` is not taken for a formula. */
function json(value: JsonValue): Cell {
  if (typeof value === "number" || isRawNumber(value)) return num(value);
  return { text: escapeJsonControls(canonicalize(value)), numeric: false };
}

/** One record's row (no line end). */
export function csvRow(r: AuditRecord): string {
  const id = r.jsonrpc_id;
  const cells: Record<(typeof CSV_COLUMNS)[number], Cell> = {
    seq: num(r.seq),
    id: text(r.id),
    ts: text(r.ts),
    kind: text(r.kind),
    direction: text(r.direction),
    transport: text(r.transport),
    session: text(r.session),
    // The id's JSON text, so the string "7" and the number 7 stay apart.
    jsonrpc_id: id === null ? EMPTY : json(id),
    method: text(r.method),
    tool_name: text(r.tool_name),
    decision_action: text(r.decision?.action),
    decision_rule: r.decision === null ? EMPTY : num(r.decision.rule),
    decision_reason: text(r.decision?.reason),
    error_code: r.error === null ? EMPTY : num(r.error.code),
    error_message: text(r.error?.message),
    duration_ms: num(r.duration_ms),
    client_id: text(r.client_id),
    server_id: text(r.server_id),
    upstream: text(r.upstream),
    wire_sha256: text(r.wire_sha256),
    prev: text(r.prev),
    sig: text(r.sig),
    params: json(r.params),
    result: json(r.result),
  };
  return CSV_COLUMNS.map((c) => csvCell(cells[c].text, cells[c].numeric)).join(",");
}
