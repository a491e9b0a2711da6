/**
 * The SQLite log's schema: one table of records, each row the record's exact canonical line beside
 * the columns the query API filters on, and a trigram full-text index over the JSON text of each
 * record's params, result and error.
 *
 * The schema is versioned with `PRAGMA user_version` and the file marked as ours with
 * `PRAGMA application_id`. Migrations only go forward and run inside one transaction. A database
 * of a newer version, of the Go mcp-audit, or of anything else is refused before anything in it
 * is changed.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { isErrorRecord } from "./query.ts";
import type { AuditRecord } from "../record.ts";
import { RefusedPathError, StorageError } from "./errors.ts";

/** The schema this version writes and reads. */
export const SCHEMA_VERSION = 1;

/** `PRAGMA application_id` of an mcp-audit database: "mcau". */
export const APPLICATION_ID = 0x6d636175;

/**
 * Migration `i` takes a database from version `i` to `i + 1`. Append only: a released migration
 * is never edited, since databases out there were made by it.
 */
const MIGRATIONS: readonly string[] = [
  // 0 → 1. The line is the evidence; every other column is an index over it that verify checks
  // against the line. `line` is the last column so that reading the others never touches the
  // overflow pages of a long line.
  `
  CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER,
    ts_max INTEGER,
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    method TEXT,
    tool_name TEXT,
    session TEXT,
    client_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    action TEXT,
    is_error INTEGER NOT NULL,
    line TEXT NOT NULL
  ) STRICT;
  -- Every index ends in the rowid (seq), so each is a (column, seq) index: a keyset page on one
  -- filter is a range scan in seq order, newest or oldest first, with no sort.
  -- Time: writers' clocks make ts only nearly follow seq. ts_max is the greatest ts_ms up to
  -- and including the row, so it never decreases with seq: the rows before the first with
  -- ts_max >= T all lie before T. The few rows whose ts_ms is below ts_max (written late, a
  -- clock stepped back) have an index of their own. Together they turn a time window into an
  -- exact seq range (sqlite_query.ts), whatever the clocks did.
  CREATE INDEX records_ts_max ON records(ts_max);
  CREATE INDEX records_late ON records(ts_ms) WHERE ts_ms < ts_max;
  CREATE INDEX records_kind ON records(kind);
  CREATE INDEX records_direction ON records(direction);
  CREATE INDEX records_method ON records(method);
  CREATE INDEX records_tool ON records(tool_name) WHERE tool_name IS NOT NULL;
  -- The stats' busiest tools, counted from this index alone.
  CREATE INDEX records_tool_calls ON records(tool_name)
    WHERE kind = 'request' AND method = 'tools/call' AND tool_name IS NOT NULL;
  CREATE INDEX records_session ON records(session);
  CREATE INDEX records_client ON records(client_id);
  CREATE INDEX records_server ON records(server_id);
  CREATE INDEX records_action ON records(action) WHERE action IS NOT NULL;
  CREATE INDEX records_error ON records(is_error) WHERE is_error = 1;
  CREATE INDEX records_id ON records(id);
  -- Free text: trigrams of the text searchText() makes, lowercase already (JavaScript's
  -- toLowerCase, as the JSONL backend matches), so the tokenizer need not fold case.
  -- Contentless: the text is not stored twice. FTS5 writes a segment at every commit, and that
  -- write and the merges after it cost more than the tokenizing: so each row's text goes to
  -- records_fts_pending in the row's transaction, and the batch that brings it to FTS_BATCH rows
  -- moves them all into the index in one statement (a trigger would make FTS5 write a segment
  -- for every row). A query searches both: the index, and the few pending rows by instr().
  CREATE VIRTUAL TABLE records_fts USING fts5(
    text, content='', tokenize='trigram case_sensitive 1'
  );
  CREATE TABLE records_fts_pending (seq INTEGER PRIMARY KEY, text TEXT NOT NULL) STRICT;
  -- The log is append-only. Whoever drops these to edit rows is still caught by verify.
  CREATE TRIGGER records_no_update BEFORE UPDATE ON records BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
  END;
  CREATE TRIGGER records_no_delete BEFORE DELETE ON records BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
  END;
  `,
];

/** The indexed columns of a row, as the record stored in its line says they must be. */
export interface IndexedColumns {
  seq: number;
  id: string;
  ts: string;
  /** Milliseconds since the epoch; null when `ts` is not a date. */
  ts_ms: number | null;
  kind: string;
  direction: string;
  method: string | null;
  tool_name: string | null;
  session: string | null;
  client_id: string;
  server_id: string;
  action: string | null;
  /** 1 when the record is an error (`isErrorRecord`), else 0. */
  is_error: number;
}

/** The indexed columns, in the order verify compares them with the line. */
export const INDEXED_COLUMNS: readonly (keyof IndexedColumns)[] = [
  "seq",
  "id",
  "ts",
  "ts_ms",
  "kind",
  "direction",
  "method",
  "tool_name",
  "session",
  "client_id",
  "server_id",
  "action",
  "is_error",
];

/** The columns of a record's row. */
export function indexedColumns(r: AuditRecord): IndexedColumns {
  const ms = Date.parse(r.ts);
  return {
    seq: r.seq,
    id: r.id,
    ts: r.ts,
    ts_ms: Number.isFinite(ms) ? ms : null,
    kind: r.kind,
    direction: r.direction,
    method: r.method,
    tool_name: r.tool_name,
    session: r.session,
    client_id: r.client_id,
    server_id: r.server_id,
    action: r.decision?.action ?? null,
    is_error: isErrorRecord(r) ? 1 : 0,
  };
}

/** The statement that stores a row; its parameters are {@link insertParams}. */
export const INSERT_SQL = "INSERT INTO records (seq, id, ts, ts_ms, ts_max, kind, direction, " +
  "method, tool_name, session, client_id, server_id, action, is_error, line) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/** The running maximum of `ts_ms`: the row before's `ts_max` and this row's `ts_ms`. */
export function nextTsMax(before: number | null, tsMs: number | null): number | null {
  if (before === null) return tsMs;
  if (tsMs === null) return before;
  return Math.max(before, tsMs);
}

/**
 * The parameters of {@link INSERT_SQL} for a record's columns ({@link indexedColumns}) and its
 * stored line; `tsMax` is the {@link nextTsMax} of the row before's and this record's.
 */
export function insertParams(
  c: IndexedColumns,
  line: string,
  tsMax: number | null,
): (string | number | null)[] {
  return [
    c.seq,
    c.id,
    c.ts,
    c.ts_ms,
    tsMax,
    c.kind,
    c.direction,
    c.method,
    c.tool_name,
    c.session,
    c.client_id,
    c.server_id,
    c.action,
    c.is_error,
    line,
  ];
}

/**
 * The statement that keeps a row's text until it is indexed; its parameters are the seq and
 * {@link searchText}.
 */
export const INSERT_TEXT_SQL = "INSERT INTO records_fts_pending (seq, text) VALUES (?, ?)";

/** Pending texts moved into the full-text index at once. */
export const FTS_BATCH = 1024;

/** Moves every pending text into the full-text index (inside the caller's transaction). */
export const FLUSH_TEXT_SQL = "INSERT INTO records_fts (rowid, text) " +
  "SELECT seq, text FROM records_fts_pending ORDER BY seq; DELETE FROM records_fts_pending;";

/**
 * The text `q` searches in a record: its params, result and error as JSON, one a line, in lower
 * case: what `matches` in `query.ts` searches for the JSONL backend.
 */
export function searchText(r: { params: unknown; result: unknown; error: unknown }): string {
  return (JSON.stringify(r.params) + "\n" + JSON.stringify(r.result) + "\n" +
    JSON.stringify(r.error)).toLowerCase();
}

/** What a database holds, read without changing it. */
export interface SchemaFacts {
  /**
   * - `empty`: no tables: a new database, ours to set up;
   * - `ours`: an mcp-audit database of version {@link SchemaFacts.version};
   * - `go`: written by the Go mcp-audit (its table `audit_entries`);
   * - `foreign`: anything else.
   */
  kind: "empty" | "ours" | "go" | "foreign";
  version: number;
  applicationId: number;
}

function integer(db: DatabaseSync, pragma: string): number {
  const row = db.prepare(`PRAGMA ${pragma}`).get();
  const value = row === undefined ? undefined : Object.values(row)[0];
  return typeof value === "number" ? value : 0;
}

/**
 * Reads what the database holds. Changes nothing (beyond what SQLite itself does to open a file:
 * recover a hot journal).
 * @throws {Error} from SQLite, for a file that is not a database or is damaged
 */
export function inspectSchema(db: DatabaseSync): SchemaFacts {
  const version = integer(db, "user_version");
  const applicationId = integer(db, "application_id");
  const names = new Set<string>();
  for (const row of db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all()) {
    if (typeof row.name === "string") names.add(row.name);
  }
  if (names.has("audit_entries")) return { kind: "go", version, applicationId };
  if (applicationId === APPLICATION_ID && names.has("records")) {
    return { kind: "ours", version, applicationId };
  }
  if (names.size === 0 && (applicationId === 0 || applicationId === APPLICATION_ID)) {
    // user_version alone, on an empty file, is still a database of ours to be: or of a newer
    // version that has not made its tables yet.
    return { kind: applicationId === APPLICATION_ID ? "ours" : "empty", version, applicationId };
  }
  return { kind: "foreign", version, applicationId };
}

/**
 * Refuses a database this version must not touch: the Go tool's, a stranger's, a newer one.
 * @param writing true for the store (a newer database cannot be written), false for readers
 * @throws {RefusedPathError} for the Go tool's database or a stranger's (a configuration fault)
 * @throws {StorageError} for a database of a newer schema
 */
export function refuseUnusable(facts: SchemaFacts, path: string, writing: boolean): void {
  switch (facts.kind) {
    case "go":
      throw new RefusedPathError(
        "audit.sqlite_path",
        `${path} is a database of the Go mcp-audit (table audit_entries). Its records have no ` +
          "hash chain, and this version neither reads nor converts them; the file was not " +
          "changed. Keep it as the old log and set audit.sqlite_path to a new file",
      );
    case "foreign":
      throw new RefusedPathError(
        "audit.sqlite_path",
        `${path} is an SQLite database that mcp-audit did not create (application_id ` +
          `${facts.applicationId}, no records table); refusing to ${
            writing ? "write to" : "read"
          } it. It was not changed`,
      );
    case "empty":
    case "ours":
      if (!writing && facts.kind === "empty") {
        throw new StorageError(`${path} is an empty database: it holds no audit records`);
      }
      if (facts.version > SCHEMA_VERSION) {
        throw new StorageError(
          `${path} was written by a newer mcp-audit (database schema ${facts.version}; this ` +
            `version knows schemas up to ${SCHEMA_VERSION}). It was not changed: use the newer ` +
            "version, or point audit.sqlite_path at another file",
        );
      }
      return;
    default: {
      const never: never = facts.kind;
      throw new StorageError(`unknown database kind ${String(never)}`);
    }
  }
}

/**
 * Brings the database to {@link SCHEMA_VERSION}, in one `BEGIN IMMEDIATE` transaction (it waits
 * for other writers, and another process migrating at the same time finds the work done). Looks
 * again inside the transaction, and changes nothing in a database it refuses.
 * @throws {RefusedPathError} for the Go tool's database or a stranger's
 * @throws {StorageError} for a newer database, or a migration that failed (rolled back)
 */
export function migrate(db: DatabaseSync, path: string): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    const facts = inspectSchema(db);
    refuseUnusable(facts, path, true);
    if (facts.version < SCHEMA_VERSION || facts.kind === "empty") {
      for (let v = facts.kind === "empty" ? 0 : facts.version; v < SCHEMA_VERSION; v++) {
        const step = MIGRATIONS[v];
        if (step === undefined) throw new StorageError(`no migration from schema ${v}`);
        db.exec(step);
      }
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.exec("COMMIT");
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    if (e instanceof StorageError) throw e;
    throw new StorageError(
      `cannot set up the audit database ${path}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}
