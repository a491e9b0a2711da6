/**
 * Reading an SQLite log: every filter is SQL, pages are keyset pages on `seq` (an index range
 * scan, newest or oldest first), `q` is the trigram full-text index. Opens the database
 * read-only and never writes; WAL lets it read while writers write, each call seeing one
 * consistent snapshot.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type SQLOutputValue } from "node:sqlite";
import { parseJson } from "../../jsonrpc/json.ts";
import type { AuditRecord, RecordKind } from "../record.ts";
import { StorageError } from "./errors.ts";
import {
  emptyStats,
  type Page,
  type PageRequest,
  QueryError,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
  type Stats,
} from "./query.ts";
import { inspectSchema, refuseUnusable } from "./sqlite_schema.ts";

/** How to read. */
export interface SqliteQueryOptions {
  /** How long a read waits on a writer recovering the database (`audit.sqlite_busy_timeout_ms`). */
  busyTimeoutMs?: number;
}

const MAX_LIMIT = 1000;
const STREAM_PAGE = 1000;
const TOP_TOOLS = 20;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A WHERE clause and its parameters. */
interface Where {
  sql: string;
  params: SQLInputValue[];
}

function finiteOrRefuse(name: string, v: number | undefined): void {
  if (v !== undefined && !Number.isFinite(v)) throw new QueryError(`${name} must be a number`);
}

function seqOrRefuse(name: string, v: number | undefined): void {
  if (v !== undefined && !Number.isSafeInteger(v)) {
    throw new QueryError(`${name} must be an integer`);
  }
}

/** `q` as the full-text index takes it, and as the pending texts are searched. */
interface TextQuery {
  /** One FTS5 string: a phrase of the needle's trigrams, that is, the needle as a substring. */
  match: string;
  /** The needle in lower case, for `instr` over the texts not yet indexed. */
  needle: string;
}

/**
 * `q`, or null when it can match nothing.
 * @throws {QueryError} for fewer than three characters
 */
function textQuery(q: string): TextQuery | null {
  if ([...q].length < 3) {
    throw new QueryError("q must be at least three characters long");
  }
  // The searched text is JSON: a control character appears there only escaped.
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f]/.test(q)) return null;
  const needle = q.toLowerCase();
  return { match: '"' + needle.replaceAll('"', '""') + '"', needle };
}

/** The filter's `q`: undefined when it has none, null when it can match nothing. */
function qOf(f: RecordFilter): TextQuery | null | undefined {
  return f.q !== undefined && f.q !== "" ? textQuery(f.q) : undefined;
}

/** Refuses a filter the SQL cannot take as it is. */
function checkFilter(f: RecordFilter): void {
  finiteOrRefuse("from", f.from);
  finiteOrRefuse("to", f.to);
  seqOrRefuse("fromSeq", f.fromSeq);
  seqOrRefuse("toSeq", f.toSeq);
}

/** Where the selected records can be: `seq` from `lo` to `hi`, both included (null: open). */
interface SeqRange {
  lo: number | null;
  hi: number | null;
}

function firstWithTsMaxFrom(db: DatabaseSync, t: number): number | null {
  const row = db.prepare(
    "SELECT seq FROM records WHERE ts_max >= ? ORDER BY ts_max, seq LIMIT 1",
  ).get(t);
  return typeof row?.seq === "number" ? row.seq : null;
}

/**
 * The seq range that holds every record the filter selects: `fromSeq`/`toSeq`, narrowed by the
 * time window (see `ts_max` in `sqlite_schema.ts`), in three index look-ups. Null when the
 * window holds no record.
 */
function seqRange(db: DatabaseSync, f: RecordFilter): SeqRange | null {
  let lo = f.fromSeq ?? null;
  let hi = f.toSeq ?? null;
  if (f.from !== undefined) {
    // Every row before the first whose ts_max reaches `from` has ts_ms below it.
    const first = firstWithTsMaxFrom(db, f.from);
    if (first === null) return null;
    lo = lo === null ? first : Math.max(lo, first);
  }
  if (f.to !== undefined) {
    // Rows from the first whose ts_max reaches `to` on are at or after it, but for late ones.
    const end = firstWithTsMaxFrom(db, f.to);
    if (end !== null) {
      const late = db.prepare(
        "SELECT max(seq) AS seq FROM records WHERE ts_ms < ts_max AND ts_ms < ?" +
          (f.from === undefined ? "" : " AND ts_ms >= ?"),
      ).get(...(f.from === undefined ? [f.to] : [f.to, f.from]));
      const last = Math.max(end - 1, typeof late?.seq === "number" ? late.seq : 0);
      hi = hi === null ? last : Math.min(hi, last);
    }
  }
  if (lo !== null && hi !== null && lo > hi) return null;
  return { lo, hi };
}

/** The conditions of a seq range on `key` (`r.seq`, or the full-text index's `f.rowid`). */
function rangeSql(range: SeqRange, key: string): Where {
  const parts: string[] = [];
  const params: SQLInputValue[] = [];
  if (range.lo !== null) {
    parts.push(`${key} >= ?`);
    params.push(range.lo);
  }
  if (range.hi !== null) {
    parts.push(`${key} <= ?`);
    params.push(range.hi);
  }
  return { sql: parts.map((p) => ` AND ${p}`).join(""), params };
}

/** One condition of a filter on an indexed column: `column = value`, or `column IN values`. */
interface Condition {
  column: string;
  /** The index on the column (each ends in seq: see `sqlite_schema.ts`). */
  index: string;
  values: SQLInputValue[];
}

/** The filter's conditions on indexed columns, but for its seq range, time window and `q`. */
function conditions(f: RecordFilter): Condition[] {
  const out: Condition[] = [];
  const eq = (column: string, index: string, value: SQLInputValue | undefined) => {
    if (value !== undefined) out.push({ column, index, values: [value] });
  };
  if (f.kinds !== undefined) {
    out.push({ column: "kind", index: "records_kind", values: [...f.kinds] });
  }
  eq("direction", "records_direction", f.direction);
  eq("method", "records_method", f.method);
  eq("tool_name", "records_tool", f.toolName);
  eq("session", "records_session", f.session);
  eq("client_id", "records_client", f.clientId);
  eq("server_id", "records_server", f.serverId);
  eq("action", "records_action", f.action);
  // A literal, not a parameter: the partial index on is_error = 1 is used only when the
  // planner can see that the condition implies it.
  if (f.errorsOnly === true) out.push({ column: "is_error", index: "records_error", values: [] });
  return out;
}

function test(c: Condition, alias: string): string {
  if (c.column === "is_error") return `${alias}.is_error = 1`;
  return c.values.length === 1
    ? `${alias}.${c.column} = ?`
    : `${alias}.${c.column} IN (${c.values.map(() => "?").join(", ")})`;
}

/** The time window's conditions on `ts_ms` of table alias `alias`. */
function window(f: RecordFilter, alias: string): Where {
  const parts: string[] = [];
  const params: SQLInputValue[] = [];
  if (f.from !== undefined) {
    parts.push(`${alias}.ts_ms >= ?`);
    params.push(f.from);
  }
  if (f.to !== undefined) {
    parts.push(`${alias}.ts_ms < ?`);
    params.push(f.to);
  }
  return { sql: parts.join(" AND "), params };
}

/**
 * The conditions on table alias `r` for a filter, but for its seq range and `q` (which change
 * how the query is driven).
 */
function where(f: RecordFilter): Where {
  const parts: string[] = [];
  const params: SQLInputValue[] = [];
  const time = window(f, "r");
  if (time.sql !== "") {
    parts.push(time.sql);
    params.push(...time.params);
  }
  for (const c of conditions(f)) {
    parts.push(test(c, "r"));
    params.push(...c.values);
  }
  return { sql: parts.length === 0 ? "1" : parts.join(" AND "), params };
}

/**
 * The conditions for a row of the full-text index (`f.rowid`), each a look-up in the index of
 * its column: index pages are few and stay cached, where the records a common word matches are
 * spread over the whole table. The record itself is read only for the rows that pass.
 */
function indexedWhere(f: RecordFilter): Where {
  const parts: string[] = [];
  const params: SQLInputValue[] = [];
  for (const c of conditions(f)) {
    if (c.column === "kind" && c.values.length === 0) {
      // `kinds: []` selects nothing (and no index takes an empty list).
      parts.push("0");
      continue;
    }
    parts.push(
      `EXISTS (SELECT 1 FROM records t INDEXED BY ${c.index} WHERE ${test(c, "t")} ` +
        `AND t.seq = f.rowid)`,
    );
    params.push(...c.values);
  }
  const time = window(f, "t");
  if (time.sql !== "") {
    parts.push(`EXISTS (SELECT 1 FROM records t WHERE t.seq = f.rowid AND ${time.sql})`);
    params.push(...time.params);
  }
  // An entry of the index whose record is not there (put in by hand) is no match: else it takes
  // a place of the page's LIMIT, and enough of them make a page of matches look empty and last.
  if (parts.length === 0) parts.push("EXISTS (SELECT 1 FROM records t WHERE t.seq = f.rowid)");
  return { sql: parts.map((p) => ` AND ${p}`).join(""), params };
}

/** Refuses a bad page request. */
function checkPage(request: PageRequest): void {
  const { limit, after, order } = request;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new QueryError(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  seqOrRefuse("after", after);
  if (order !== "newest" && order !== "oldest") {
    throw new QueryError("order must be newest or oldest");
  }
  checkFilter(request.filter);
  qOf(request.filter);
}

/**
 * The statements of a page, each giving up to one more row than asked (which tells whether there
 * is a next page without another query), in the page's order; their rows are merged by seq. Null
 * when nothing can match.
 */
function pageSql(db: DatabaseSync, request: PageRequest): Where[] | null {
  const { filter, order, limit, after } = request;
  const q = qOf(filter);
  if (q === null) return null;
  const range = seqRange(db, filter);
  if (range === null) return null;
  if (after !== undefined) {
    if (order === "newest") {
      range.hi = range.hi === null ? after - 1 : Math.min(range.hi, after - 1);
    } else range.lo = range.lo === null ? after + 1 : Math.max(range.lo, after + 1);
  }
  const w = where(filter);
  const dir = order === "newest" ? "DESC" : "ASC";
  if (q === undefined) {
    const seq = rangeSql(range, "r.seq");
    return [{
      sql: `SELECT r.seq, r.line FROM records r WHERE ${w.sql}${seq.sql} ` +
        `ORDER BY r.seq ${dir} LIMIT ?`,
      params: [...w.params, ...seq.params, limit + 1],
    }];
  }
  // With q, the full-text index drives, in seq order (FTS5 walks its rowids either way, within
  // the range), and each of its rows is looked up and checked against the other filters: no
  // sort, no set held. The texts not yet indexed (fewer than FTS_BATCH) are searched by instr.
  const rowid = rangeSql(range, "f.rowid");
  const indexed = indexedWhere(filter);
  const pending = rangeSql(range, "p.seq");
  return [{
    sql: `SELECT r.seq, r.line FROM (SELECT f.rowid AS seq FROM records_fts f ` +
      `WHERE records_fts MATCH ?${rowid.sql}${indexed.sql} ORDER BY f.rowid ${dir} LIMIT ?) m ` +
      `CROSS JOIN records r ON r.seq = m.seq ORDER BY m.seq ${dir}`,
    params: [q.match, ...rowid.params, ...indexed.params, limit + 1],
  }, {
    sql: `SELECT r.seq, r.line FROM records_fts_pending p CROSS JOIN records r ON r.seq = p.seq ` +
      `WHERE instr(p.text, ?) > 0${pending.sql} AND ${w.sql} ORDER BY p.seq ${dir} LIMIT ?`,
    params: [q.needle, ...pending.params, ...w.params, limit + 1],
  }];
}

/** The seq of a row, which every statement here selects. */
function seqOf(row: Record<string, SQLOutputValue>): number {
  return typeof row.seq === "number" ? row.seq : 0;
}

/** Reads records from an SQLite log. */
export class SqliteQuery implements RecordQuery {
  readonly path: string;
  #db: DatabaseSync | undefined;

  /**
   * Opens the database read-only.
   * @throws {StorageError} when it is missing, not a database of ours, damaged, or of a newer
   *   schema
   */
  constructor(path: string, options: SqliteQueryOptions = {}) {
    this.path = path;
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { readOnly: true });
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      refuseUnusable(inspectSchema(db), path, false);
    } catch (e) {
      db?.close();
      if (e instanceof StorageError) throw e;
      throw new StorageError(`cannot read the audit database ${path}: ${message(e)}`, {
        cause: e,
      });
    }
    this.#db = db;
  }

  #open(): DatabaseSync {
    if (this.#db === undefined) throw new StorageError("the audit database query is closed");
    return this.#db;
  }

  /** Runs `read` in one read transaction: one snapshot, whatever writers commit meanwhile. */
  #snapshot<T>(read: (db: DatabaseSync) => T): T {
    const db = this.#open();
    try {
      db.exec("BEGIN");
      try {
        return read(db);
      } finally {
        db.exec("COMMIT");
      }
    } catch (e) {
      if (e instanceof QueryError || e instanceof StorageError) throw e;
      throw new StorageError(`cannot read the audit database ${this.path}: ${message(e)}`, {
        cause: e,
      });
    }
  }

  page(request: PageRequest): Promise<Page> {
    try {
      return Promise.resolve(this.#page(request));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The query plan of a page (`EXPLAIN QUERY PLAN`, one line a step), to check that pages are
   * index range scans.
   * @throws {QueryError} as {@link page}
   */
  explain(request: PageRequest): string[] {
    checkPage(request);
    return this.#snapshot((db) =>
      (pageSql(db, request) ?? []).flatMap((part) =>
        db.prepare(`EXPLAIN QUERY PLAN ${part.sql}`).all(...part.params).map((r) =>
          String(r.detail)
        )
      )
    );
  }

  #page(request: PageRequest): Page {
    checkPage(request);
    const limit = request.limit;
    const rows = this.#snapshot((db) => {
      const parts = (pageSql(db, request) ?? []).map((part) =>
        db.prepare(part.sql).all(...part.params)
      );
      if (parts.length < 2) return parts[0] ?? [];
      // Each part is in the page's order and disjoint from the others (but in a database edited
      // by hand, where a row may be both indexed and pending): merged, then cut.
      const sign = request.order === "newest" ? -1 : 1;
      return parts.flat().sort((a, b) => sign * (seqOf(a) - seqOf(b)))
        .filter((row, i, all) => i === 0 || seqOf(all[i - 1]!) !== seqOf(row))
        .slice(0, limit + 1);
    });
    const records: ReadRecord[] = [];
    for (const row of rows.slice(0, limit)) records.push(readRecord(row));
    const next = rows.length > limit ? records[records.length - 1]?.record.seq ?? null : null;
    return { records, next };
  }

  stats(filter: RecordFilter): Promise<Stats> {
    try {
      return Promise.resolve(this.#stats(filter));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #stats(filter: RecordFilter): Stats {
    checkFilter(filter);
    const q = qOf(filter);
    if (q === null) return emptyStats();
    const w = where(filter);
    return this.#snapshot((db) => {
      const range = seqRange(db, filter);
      if (range === null) return emptyStats();
      const from = "records r";
      let cond = w.sql;
      let params: SQLInputValue[];
      if (q === undefined) {
        const seq = rangeSql(range, "r.seq");
        cond += seq.sql;
        params = [...w.params, ...seq.params];
      } else {
        // Counting needs no order: the matching seqs, indexed or pending, as one set.
        const rowid = rangeSql(range, "rowid");
        const pending = rangeSql(range, "seq");
        cond = `r.seq IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?${rowid.sql} ` +
          `UNION ALL SELECT seq FROM records_fts_pending WHERE instr(text, ?) > 0${pending.sql})` +
          ` AND ${cond}`;
        params = [q.match, ...rowid.params, q.needle, ...pending.params, ...w.params];
      }
      // One statement a figure: each can then be an index count (a covering or partial index
      // for the usual filters) instead of one pass over every row.
      const count = (extra: string) => {
        const row = db.prepare(`SELECT count(*) AS n FROM ${from} WHERE ${cond}${extra}`).get(
          ...params,
        );
        return numberOrNull(row?.n) ?? 0;
      };
      const end = (dir: "ASC" | "DESC") => {
        const row = db.prepare(
          `SELECT r.seq AS seq, r.ts AS ts FROM ${from} WHERE ${cond} ORDER BY r.seq ${dir} LIMIT 1`,
        ).get(...params);
        return {
          seq: numberOrNull(row?.seq),
          ts: typeof row?.ts === "string" ? row.ts : null,
        };
      };
      const byKind: Partial<Record<RecordKind, number>> = {};
      for (
        const row of db.prepare(
          `SELECT r.kind AS kind, count(*) AS n FROM ${from} WHERE ${cond} GROUP BY r.kind`,
        ).all(...params)
      ) {
        if (isKind(row.kind) && typeof row.n === "number") byKind[row.kind] = row.n;
      }
      // Over the whole log (or one tool), the index of tools/call requests alone is counted;
      // the planner, with no statistics, would read every tools/call row instead. With other
      // filters it chooses well.
      const bare = Object.entries(filter).every(([k, v]) => v === undefined || k === "toolName");
      const topFrom = bare ? "records r INDEXED BY records_tool_calls" : from;
      const topTools: { name: string; count: number }[] = [];
      for (
        const row of db.prepare(
          `SELECT r.tool_name AS name, count(*) AS n FROM ${topFrom} WHERE ${cond} ` +
            `AND r.kind = 'request' AND r.method = 'tools/call' AND r.tool_name IS NOT NULL ` +
            `GROUP BY r.tool_name ORDER BY n DESC, name LIMIT ${TOP_TOOLS}`,
        ).all(...params)
      ) {
        if (typeof row.name === "string" && typeof row.n === "number") {
          topTools.push({ name: row.name, count: row.n });
        }
      }
      const first = end("ASC");
      const last = end("DESC");
      return {
        records: count(""),
        firstSeq: first.seq,
        lastSeq: last.seq,
        firstTs: first.ts,
        lastTs: last.ts,
        byKind,
        errors: count(" AND r.is_error = 1"),
        // Enforced denials: monitor mode records `enforced: false` beside the action.
        denied: count(
          " AND r.action = 'deny' AND json_valid(r.line) AND " +
            "coalesce(r.line ->> '$.decision.enforced', 1) != 0",
        ),
        rateLimited: count(" AND r.action = 'rate_limited'"),
        topTools,
      };
    });
  }

  async *stream(filter: RecordFilter, signal?: AbortSignal): AsyncIterable<ReadRecord> {
    let after: number | undefined;
    for (;;) {
      signal?.throwIfAborted();
      const page = this.#page({
        filter,
        order: "oldest",
        limit: STREAM_PAGE,
        ...(after === undefined ? {} : { after }),
      });
      for (const r of page.records) yield r;
      if (page.next === null) return;
      after = page.next;
    }
  }

  close(): void {
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }
}

const KINDS: readonly string[] = [
  "request",
  "notification",
  "response",
  "error",
  "invalid",
  "event",
] satisfies readonly RecordKind[];

function isKind(v: unknown): v is RecordKind {
  return typeof v === "string" && KINDS.includes(v);
}

function numberOrNull(v: unknown): number | null {
  return typeof v === "number" ? v : null;
}

function readRecord(row: Record<string, SQLOutputValue>): ReadRecord {
  const line = row.line;
  if (typeof line !== "string") throw new StorageError("a record row without its line");
  // The line the store wrote for the row, as the record type says (as it was taken before).
  return { record: parseJson(line) as AuditRecord, line };
}
