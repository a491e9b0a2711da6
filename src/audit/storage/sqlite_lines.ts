/**
 * The stored lines of an SQLite log, for `verify`: every row in seq order, read-only, with what
 * its indexed columns and its search-index entry say compared against its line.
 *
 * The line is the evidence and the chain checks it; the columns are what queries filter on. A
 * column changed without the line (`UPDATE records SET tool_name = 'x'`) hides a record from the
 * queries that look for it, so it is reported too (`disagree`), as is a row whose search text
 * (what `q` finds it by) is not what its line makes: its text waiting to be indexed is compared
 * whole; of a row already in the full-text index, only the number of trigrams the index holds
 * for it can be (the index is contentless: it keeps no text to compare, and reading its trigrams
 * back costs more than building it).
 *
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import { pathToFileURL } from "node:url";
import {
  isJsonObject,
  type JsonObject,
  type JsonValue,
  parseLossless,
} from "../../jsonrpc/json.ts";
import { StorageError } from "./errors.ts";
import {
  INDEXED_COLUMNS,
  type IndexedColumns,
  inspectSchema,
  nextTsMax,
  refuseUnusable,
  searchText,
} from "./sqlite_schema.ts";

/** One row of an SQLite log, in the shape verify reads the lines of a file. */
export interface SqliteLine {
  /** The database's path. */
  file: string;
  /** The row's seq (its rowid). */
  lineNo: number;
  /** Always 0: a row has no byte offset. */
  offset: number;
  /** The stored line. */
  text: string;
  /** Always true: a row is stored whole or not at all. */
  terminated: true;
  /**
   * The first indexed column whose value differs from what the line says
   * (`tool_name is 'x' but the record says 'read_file'`), or a row the search index disagrees
   * with; null when the row agrees with its line (or the line is no record: verify says so).
   */
  disagree: string | null;
}

/** How to read. */
export interface ReadSqliteOptions {
  /** Stops the read: the iteration throws the signal's reason. */
  signal?: AbortSignal;
  /** How long to wait on a writer recovering the database. */
  busyTimeoutMs?: number;
}

const SQLITE_HEADER = "SQLite format 3\0";
const PAGE = 1000;
/** A page ends at the row that brings its lines and pending texts to this many characters. */
export const PAGE_CHARS = 32 << 20;
const encoder = new TextEncoder();

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True when `path` is a file whose first 16 bytes are SQLite's header. Never throws. */
export function isSqliteFile(path: string): boolean {
  try {
    const stat = Deno.statSync(path);
    if (!stat.isFile || stat.size < SQLITE_HEADER.length) return false;
    using file = Deno.openSync(path, { read: true });
    const buf = new Uint8Array(SQLITE_HEADER.length);
    let at = 0;
    while (at < buf.length) {
      const n = file.readSync(buf.subarray(at));
      if (n === null) return false;
      at += n;
    }
    const want = encoder.encode(SQLITE_HEADER);
    return buf.every((b, i) => b === want[i]);
  } catch {
    return false;
  }
}

/** A read-only connection, and whether what it read can still be trusted. */
export interface ReadOnlyDatabase {
  db: DatabaseSync;
  /**
   * Opened `immutable`: SQLite takes no lock and keeps no `-shm`, trusting that nothing writes
   * the file while it is open. {@link ReadOnlyDatabase.written} tells whether something did.
   */
  immutable: boolean;
  /**
   * True when the database may have been written since it was opened immutable (a `-wal` or
   * `-journal` appeared, or the file's size, times or inode changed): what was read since may mix
   * two states, and must be read again with {@link openReadOnly}`(path, false)`. Always false for
   * a connection opened normally.
   */
  written(): boolean;
}

/** What changes when a database file is written or replaced, to the nanosecond. */
function stamp(path: string): string {
  const s = statSync(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${existsSync(`${path}-wal`)}:${
    existsSync(`${path}-journal`)
  }`;
}

/**
 * Opens the database at `path` read-only, leaving nothing beside it. A read-only connection to
 * a WAL database whose `-wal` is gone (its last writer closed it cleanly) makes a `-wal` and a
 * `-shm`, and cannot remove them when it closes: `verify` and `doctor` would leave two files in
 * the log's directory. So, when no `-wal` or `-journal` is there (no writer has the database
 * open, nor left a transaction behind), it is opened `immutable` (nothing made, no lock taken);
 * the caller checks {@link ReadOnlyDatabase.written} after each read, and reads again normally
 * when a writer started meanwhile. With a `-wal` there (a writer is at work, or one crashed), the
 * normal read-only open makes nothing new. `immutable: false` forces the normal open.
 * @throws what `DatabaseSync` throws when the database cannot be opened
 */
export function openReadOnly(path: string, immutable = true): ReadOnlyDatabase {
  if (immutable) {
    let before: string | undefined;
    try {
      before = stamp(path);
    } catch {
      // Missing or unreadable: the normal open below says why.
    }
    if (before !== undefined && !before.endsWith(":false:false")) before = undefined;
    if (before !== undefined) {
      const url = pathToFileURL(path);
      url.search = "?immutable=1";
      const db = new DatabaseSync(url, { readOnly: true });
      const opened = before;
      return {
        db,
        immutable: true,
        written: () => {
          try {
            return stamp(path) !== opened;
          } catch {
            return true;
          }
        },
      };
    }
  }
  return { db: new DatabaseSync(path, { readOnly: true }), immutable: false, written: () => false };
}

/**
 * Every row of the database at `path`, oldest first, in pages of up to 1,000 rows and
 * {@link PAGE_CHARS} characters of text (and one row more: memory is bounded by a page). Rows
 * appended while reading are read too. Nothing is created beside the database
 * ({@link openReadOnly}).
 * @throws {StorageError} when the database cannot be read, is not a log of ours, or is of a
 *   newer schema
 */
export async function* readSqliteLines(
  path: string,
  options: ReadSqliteOptions = {},
): AsyncIterable<SqliteLine> {
  const cannot = (e: unknown, after = "") => {
    if (e instanceof StorageError) return e;
    return new StorageError(`cannot read the audit database ${path}${after}: ${message(e)}`, {
      cause: e,
    });
  };
  /** A connection and its page query; `immutable: false` once a writer was seen. */
  const open = (immutable: boolean): { ro: ReadOnlyDatabase; page: StatementSync } => {
    let ro: ReadOnlyDatabase;
    try {
      ro = openReadOnly(path, immutable);
    } catch (e) {
      throw cannot(e);
    }
    try {
      ro.db.exec(
        `PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`,
      );
      refuseUnusable(inspectSchema(ro.db), path, false);
      const page = ro.db.prepare(
        `SELECT r.seq, ${
          INDEXED_COLUMNS.filter((c) => c !== "seq").map((c) => `r.${c}`).join(", ")
        }, ` +
          `r.ts_max, r.line, d.sz, p.text AS pending FROM records r ` +
          `LEFT JOIN records_fts_docsize d ON d.id = r.seq ` +
          `LEFT JOIN records_fts_pending p ON p.seq = r.seq ` +
          `WHERE r.seq > ? ORDER BY r.seq LIMIT ${PAGE}`,
      );
      return { ro, page };
    } catch (e) {
      ro.db.close();
      throw cannot(e);
    }
  };
  let { ro, page } = open(true);
  try {
    let after = Number.MIN_SAFE_INTEGER;
    // ts_max as the lines read so far say it must be.
    const running: { tsMax: number | null } = { tsMax: null };
    for (;;) {
      options.signal?.throwIfAborted();
      let rows: Record<string, SQLOutputValue>[];
      let full: boolean;
      try {
        ({ rows, full } = readPage(page, after));
        if (ro.written()) {
          // A writer started while the page was read as of an unchanging file: read it again
          // (and the rest) as readers of a live database do.
          ro.db.close();
          ({ ro, page } = open(false));
          ({ rows, full } = readPage(page, after));
        }
      } catch (e) {
        throw cannot(e, ` after seq ${after}`);
      }
      for (const row of rows) {
        const seq = row.seq;
        const text = row.line;
        if (typeof seq !== "number" || typeof text !== "string") {
          throw new StorageError(`a row of ${path} has no seq or no line`);
        }
        after = seq;
        yield {
          file: path,
          lineNo: seq,
          offset: 0,
          text,
          terminated: true,
          disagree: disagree(row, text, running),
        };
      }
      if (!full) return;
      // Let other work run between pages.
      await Promise.resolve();
    }
  } finally {
    if (ro.db.isOpen) ro.db.close();
  }
}

/**
 * The rows of one page: up to {@link PAGE} of them, ended early by the row that brings their text
 * to {@link PAGE_CHARS}. `full` is false when the rows ran out before either.
 */
function readPage(
  page: StatementSync,
  after: number,
): { rows: Record<string, SQLOutputValue>[]; full: boolean } {
  const rows: Record<string, SQLOutputValue>[] = [];
  let chars = 0;
  // Stopping early resets the statement: it is not left open between pages.
  for (const row of page.iterate(after)) {
    rows.push(row);
    if (typeof row.line === "string") chars += row.line.length;
    if (typeof row.pending === "string") chars += row.pending.length;
    if (rows.length === PAGE || chars >= PAGE_CHARS) return { rows, full: true };
  }
  return { rows, full: false };
}

function show(v: SQLOutputValue | undefined): string {
  if (typeof v === "string") return `'${v}'`;
  if (v === null || v === undefined) return "null";
  if (v instanceof Uint8Array) return `a blob of ${v.length} bytes`;
  return String(v);
}

/**
 * What is wrong with a row whose line is `text`, or null. `running` carries the greatest ts of
 * the lines before, from row to row.
 */
function disagree(
  row: Record<string, SQLOutputValue>,
  text: string,
  running: { tsMax: number | null },
): string | null {
  let parsed: JsonValue;
  try {
    parsed = parseLossless(text);
  } catch {
    return null;
  }
  if (!isJsonObject(parsed)) return null;
  const expected = columnsFromLine(parsed);
  if (expected === null) return null;
  const tsMax = nextTsMax(running.tsMax, expected.ts_ms);
  running.tsMax = tsMax;
  for (const column of INDEXED_COLUMNS) {
    const want = expected[column];
    const have = row[column];
    if (have !== want) {
      return `${column} is ${show(have)} but the record says ${show(want)}`;
    }
  }
  if (row.ts_max !== tsMax) {
    return `ts_max is ${show(row.ts_max)} but the records up to this one say ${show(tsMax)}`;
  }
  return searchIndexDisagrees(row.sz, row.pending, parsed);
}

/**
 * Whether the row is found by what its record holds. A row not indexed yet has its text waiting
 * in `records_fts_pending`, which must be exactly the {@link searchText} of its params, result and
 * error; a row indexed has an entry in the full-text index, which holds one trigram per character
 * of that text after the first two. Its trigrams themselves are not compared: an entry replaced
 * with another text of the same length is not found here. A row in neither is hidden from `q`;
 * a row in both was never written so.
 */
function searchIndexDisagrees(
  sz: SQLOutputValue | undefined,
  pending: SQLOutputValue | undefined,
  r: JsonObject,
): string | null {
  const text = searchText({
    params: r.params ?? null,
    result: r.result ?? null,
    error: r.error ?? null,
  });
  if (typeof pending === "string") {
    if (sz !== null && sz !== undefined) {
      return "the row is in the search index and also waiting to be indexed";
    }
    if (pending === text) return null;
    return `the text waiting to be indexed for the row is not what its params, result and ` +
      `error make (${differs(pending, text)}): q does not find the row by what it holds`;
  }
  if (pending !== null && pending !== undefined) {
    return `the text waiting to be indexed for the row is ${show(pending)}, not text`;
  }
  const want = Math.max(0, characters(text) - 2);
  if (!(sz instanceof Uint8Array)) {
    return "the row is missing from the search index: q does not find it";
  }
  const have = varint(sz);
  if (have !== want) {
    return `the search index holds ${have} trigrams for the row, but its params, result and ` +
      `error make ${want}`;
  }
  return null;
}

/** Where `have` first differs from `want`, for a message. */
function differs(have: string, want: string): string {
  const haveChars = characters(have);
  const wantChars = characters(want);
  if (haveChars !== wantChars) return `${haveChars} characters where they make ${wantChars}`;
  let i = 0;
  while (have.charCodeAt(i) === want.charCodeAt(i)) i++;
  return `from character ${characters(have, i) + 1} on`;
}

/** The characters (code points) of `s` before UTF-16 index `end`, counted without copying. */
function characters(s: string, end = s.length): number {
  let n = 0;
  for (let i = 0; i < end; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < end) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

/** SQLite's variable-length integer at the start of `bytes` (FTS5's size records use it). */
function varint(bytes: Uint8Array): number {
  let v = 0;
  for (let i = 0; i < Math.min(bytes.length, 9); i++) {
    const b = bytes[i]!;
    if (i === 8) return v * 256 + b;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) return v;
  }
  return v;
}

function str(o: JsonObject, key: string): string | undefined {
  const v = o[key];
  return typeof v === "string" ? v : undefined;
}

function strOrNull(o: JsonObject, key: string): string | null | undefined {
  const v = o[key];
  return v === null ? null : typeof v === "string" ? v : undefined;
}

/**
 * The indexed columns as the line says they must be (as `indexedColumns` computes them from the
 * record when storing it), or null when the line lacks a field the columns come from.
 */
function columnsFromLine(o: JsonObject): IndexedColumns | null {
  const seq = o.seq;
  const id = str(o, "id");
  const ts = str(o, "ts");
  const kind = str(o, "kind");
  const direction = str(o, "direction");
  const method = strOrNull(o, "method");
  const tool = strOrNull(o, "tool_name");
  const session = strOrNull(o, "session");
  const client = str(o, "client_id");
  const server = str(o, "server_id");
  const decision = o.decision;
  if (
    typeof seq !== "number" || id === undefined || ts === undefined || kind === undefined ||
    direction === undefined || method === undefined || tool === undefined ||
    session === undefined || client === undefined || server === undefined
  ) {
    return null;
  }
  let action: string | null = null;
  if (decision !== null && decision !== undefined) {
    if (!isJsonObject(decision)) return null;
    const a = decision.action;
    if (typeof a !== "string") return null;
    action = a;
  }
  const error = o.error ?? null;
  const result = o.result ?? null;
  // As isErrorRecord in query.ts: an error, or a result that says isError.
  const isError = error !== null ||
    (isJsonObject(result) && result.isError === true);
  const ms = Date.parse(ts);
  return {
    seq,
    id,
    ts,
    ts_ms: Number.isFinite(ms) ? ms : null,
    kind,
    direction,
    method,
    tool_name: tool,
    session,
    client_id: client,
    server_id: server,
    action,
    is_error: isError ? 1 : 0,
  };
}
