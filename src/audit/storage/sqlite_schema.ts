/**
 * The SQLite log's schema: one table of records, each row the record's exact canonical line beside
 * the columns the query API filters on, and a trigram full-text index over the JSON text of each
 * record's params, result and error.
 *
 * The schema is versioned with `PRAGMA user_version` and the file marked as ours with
 * `PRAGMA application_id`. Migrations only go forward and run inside one transaction. A database
 * of a newer version, of the Go mcp-audit, or of anything else is refused before anything in it
 * is changed. So is a database of ours whose schema is not exactly what its version's migrations
 * made: a view, trigger or table put in place of or beside ours runs inside every statement
 * that touches it (a view over an endless recursive query never returns).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { isErrorRecord } from "./query.ts";
import type { AuditRecord } from "../record.ts";
import { type CanonicalInput, canonicalize } from "../canonical.ts";
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
 * The text `q` searches in a record: its params, result and error as canonical JSON (as the
 * record's line holds them), one a line, in lower case: what `matches` in `query.ts` searches
 * for the JSONL backend, but for the order of members named by integers, which a parsed object
 * puts first.
 *
 * Canonical, so that it depends on the values alone: the writer makes it from the record it has,
 * `verify` from the record its line holds (`parseLossless` keeps every number's text, and
 * canonicalizes back to the same bytes), and the two must be equal.
 * @throws {CanonicalizationError} for a value JSON cannot hold
 */
export function searchText(
  r: { params: CanonicalInput; result: CanonicalInput; error: CanonicalInput },
): string {
  return (canonicalize(r.params) + "\n" + canonicalize(r.result) + "\n" +
    canonicalize(r.error)).toLowerCase();
}

/** What a database holds, read without changing it. */
export interface SchemaFacts {
  /**
   * - `empty`: no tables: a new database, ours to set up;
   * - `ours`: an mcp-audit database of version {@link SchemaFacts.version}, its schema exactly
   *   what the migrations up to that version make (but for {@link SchemaFacts.missingTriggers});
   * - `altered`: marked as ours, but its schema is not that: something added, replaced or
   *   removed ({@link SchemaFacts.problem} says what first);
   * - `go`: written by the Go mcp-audit (its table `audit_entries`);
   * - `foreign`: anything else.
   */
  kind: "empty" | "ours" | "altered" | "go" | "foreign";
  version: number;
  applicationId: number;
  /** For `altered`, the first difference found; else null. */
  problem: string | null;
  /**
   * Our triggers that are not there. Whoever drops them to edit rows by hand may leave them
   * dropped: nothing runs for want of them, so a reader goes on (and `verify` finds what was
   * edited), but a writer refuses.
   */
  missingTriggers: string[];
}

/** One object of a database, as `sqlite_schema` lists it. */
interface SchemaObject {
  type: string;
  name: string;
  tblName: string;
  sql: string | null;
}

function schemaObject(row: Record<string, unknown>): SchemaObject {
  return {
    type: String(row.type),
    name: String(row.name),
    tblName: String(row.tbl_name),
    sql: typeof row.sql === "string" ? row.sql : null,
  };
}

const expected = new Map<number, ReadonlyMap<string, SchemaObject>>();

/**
 * The objects the migrations up to `version` make, by name: our tables, indexes and triggers,
 * the FTS5 table and the shadow tables FTS5 makes for it, as this process's SQLite lists them
 * after running the migrations in a database in memory (once per version).
 */
function expectedSchema(version: number): ReadonlyMap<string, SchemaObject> {
  let objects = expected.get(version);
  if (objects === undefined) {
    const db = new DatabaseSync(":memory:");
    try {
      for (let v = 0; v < version; v++) db.exec(MIGRATIONS[v]!);
      const made = new Map<string, SchemaObject>();
      for (const row of db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema").all()) {
        const o = schemaObject(row);
        made.set(o.name, o);
      }
      objects = made;
    } finally {
      db.close();
    }
    expected.set(version, objects);
  }
  return objects;
}

// SQLite's own objects: sqlite_stat1 and sqlite_stat4 (ANALYZE), sqlite_sequence (AUTOINCREMENT)
// and the automatic indexes of UNIQUE constraints, which have no SQL.
const SQLITE_TABLE = /^CREATE TABLE (sqlite_[a-z0-9_]+)\s*\(/;

/** Why SQLite's own object `o` is not one, or null when it is. */
function notSqlitesOwn(o: SchemaObject): string | null {
  if (o.type === "table" && o.sql !== null && SQLITE_TABLE.exec(o.sql)?.[1] === o.name) {
    return null;
  }
  if (o.type === "index" && o.sql === null && o.name.startsWith("sqlite_autoindex_")) return null;
  return `the ${o.type} ${o.name} is not one SQLite makes`;
}

/**
 * What is wrong with the objects of a database of ours of `version`, and which of our triggers
 * are missing. Every object but SQLite's own must be one of ours, with exactly the SQL the
 * migrations gave it (so a table is the table with our columns, `records_fts` the FTS5 table with
 * our options, and no view, trigger or index of anyone else is there); every one of ours must be
 * there, but that a trigger may be missing.
 */
function compareSchema(
  objects: readonly SchemaObject[],
  version: number,
  complete: boolean,
): { problem: string | null; missingTriggers: string[] } {
  const want = expectedSchema(version);
  if (!complete) {
    return {
      problem: `it holds more objects than the ${want.size} of schema ${version}`,
      missingTriggers: [],
    };
  }
  const seen = new Set<string>();
  for (const o of objects) {
    if (o.name.startsWith("sqlite_")) {
      const problem = notSqlitesOwn(o);
      if (problem !== null) return { problem, missingTriggers: [] };
      continue;
    }
    const w = want.get(o.name);
    if (w === undefined) {
      return { problem: `the ${o.type} ${o.name} is not one of mcp-audit`, missingTriggers: [] };
    }
    if (o.type !== w.type) {
      return {
        problem: `${o.name} is a ${o.type} where mcp-audit made a ${w.type}`,
        missingTriggers: [],
      };
    }
    if (o.sql !== w.sql || o.tblName !== w.tblName || seen.has(o.name)) {
      return {
        problem: `the ${o.type} ${o.name} is not defined as mcp-audit defined it`,
        missingTriggers: [],
      };
    }
    seen.add(o.name);
  }
  const missingTriggers: string[] = [];
  for (const w of want.values()) {
    if (seen.has(w.name)) continue;
    if (w.type !== "trigger") {
      return { problem: `the ${w.type} ${w.name} is missing`, missingTriggers: [] };
    }
    missingTriggers.push(w.name);
  }
  return { problem: null, missingTriggers };
}

function integer(db: DatabaseSync, pragma: string): number {
  const row = db.prepare(`PRAGMA ${pragma}`).get();
  const value = row === undefined ? undefined : Object.values(row)[0];
  return typeof value === "number" ? value : 0;
}

// A database of ours has a few objects more than its schema at most: SQLite's own.
const SPARE_OBJECTS = 8;

/**
 * Reads what the database holds. Changes nothing (beyond what SQLite itself does to open a file:
 * recover a hot journal).
 * @throws {Error} from SQLite, for a file that is not a database or is damaged
 */
export function inspectSchema(db: DatabaseSync): SchemaFacts {
  if (db.isTransaction) return inspect(db);
  // One read transaction, so every fact comes from one snapshot: read one by one, a database
  // another process is creating could show its tables without its application_id yet.
  db.exec("BEGIN");
  try {
    return inspect(db);
  } finally {
    if (db.isTransaction) db.exec("COMMIT");
  }
}

function inspect(db: DatabaseSync): SchemaFacts {
  const version = integer(db, "user_version");
  const applicationId = integer(db, "application_id");
  const facts = (kind: SchemaFacts["kind"]): SchemaFacts => ({
    kind,
    version,
    applicationId,
    problem: null,
    missingTriggers: [],
  });
  const go = db.prepare(
    "SELECT 1 AS go FROM sqlite_schema WHERE type = 'table' AND name = 'audit_entries'",
  ).get();
  if (go !== undefined) return facts("go");
  // Read up to one more than a database of ours can hold: the work is bounded, and one more
  // tells that there are too many.
  const limit = expectedSchema(Math.min(Math.max(version, 0), SCHEMA_VERSION)).size +
    SPARE_OBJECTS + 1;
  const objects = db.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_schema LIMIT ${limit}`)
    .all().map(schemaObject);
  const mine = objects.filter((o) => !o.name.startsWith("sqlite_"));
  if (mine.length === 0 && (applicationId === 0 || applicationId === APPLICATION_ID)) {
    // user_version alone, on an empty file, is still a database of ours to be: or of a newer
    // version that has not made its tables yet.
    return facts(applicationId === APPLICATION_ID ? "ours" : "empty");
  }
  if (applicationId !== APPLICATION_ID) return facts("foreign");
  // A newer schema is refused as newer: this version cannot tell what it should hold.
  if (version > SCHEMA_VERSION) return facts("ours");
  const { problem, missingTriggers } = compareSchema(
    objects,
    Math.max(version, 0),
    objects.length < limit,
  );
  if (problem !== null) return { ...facts("altered"), problem };
  return { ...facts("ours"), missingTriggers };
}

/**
 * Refuses a database this version must not touch: the Go tool's, a stranger's, a newer one, one
 * of ours whose schema was changed, and (to write) one whose triggers were dropped.
 * @param writing true for the store (a newer database cannot be written), false for readers
 * @throws {RefusedPathError} for the Go tool's database or a stranger's (a configuration fault)
 * @throws {StorageError} for a database of a newer schema, or of ours changed by hand
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
    case "altered":
      throw new StorageError(
        `${path} is marked as an mcp-audit database, but its schema is not the one mcp-audit ` +
          `made: ${facts.problem ?? "it differs"}. Someone changed it by hand, and what was ` +
          `put there would run as the database is read; refusing to ${
            writing ? "write to" : "read"
          } it. It was not changed: keep it as evidence${
            writing ? ", and set audit.sqlite_path to a new file" : ""
          }`,
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
      if (writing && facts.missingTriggers.length > 0) {
        throw new StorageError(
          `${path} lacks the triggers that keep its records append-only ` +
            `(${facts.missingTriggers.join(", ")}): someone dropped them, as is done to edit or ` +
            "delete records by hand; refusing to write to it. It was not changed: check it " +
            "with mcp-audit verify, keep it as evidence, and set audit.sqlite_path to a new file",
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
