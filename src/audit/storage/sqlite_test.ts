import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { AnchorFile } from "./anchor_file.ts";
import { AnchorMismatchError, RefusedPathError, SqliteStore, StorageError } from "./sqlite.ts";
import type { SqliteOptions } from "./sqlite.ts";
import { readSqliteLines } from "./sqlite_lines.ts";
import { APPLICATION_ID, FTS_BATCH, SCHEMA_VERSION } from "./sqlite_schema.ts";
import type { ChainedRecord, StoredHead } from "./store.ts";
import { FileCalls, ManualTimers } from "./testdata/sync_probes.ts";
import { type AuditRecord, GENESIS } from "../record.ts";
import { recordText } from "../record_text.ts";
import { hmacSigner } from "../signing.ts";
import { parseAnchor } from "../anchor.ts";
import { isJsonObject } from "../../jsonrpc/json.ts";

const posix = Deno.build.os !== "windows";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const sha = (text: string) => hash("sha256", text, "hex");

function record(seq: number, prev: string, over: Partial<AuditRecord> = {}): ChainedRecord {
  const r: AuditRecord = {
    v: 1,
    seq,
    id: `01JD${String(seq).padStart(22, "0")}`,
    ts: new Date(Date.UTC(2026, 5, 10, 22) + seq).toISOString(),
    kind: "request",
    direction: "client_to_server",
    transport: "stdio",
    upstream: null,
    session: "s1",
    jsonrpc_id: seq,
    method: "tools/call",
    tool_name: "read_file",
    params: { name: "read_file", arguments: { path: `/tmp/file-${seq}.txt` } },
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: { action: "allow", rule: null, reason: "" },
    client_id: "claude-desktop",
    server_id: "filesystem",
    client_info: null,
    wire_sha256: null,
    prev,
    sig: null,
    ...over,
  };
  const line = recordText(r).signed(r.sig);
  return { line, record: r, hash: sha(line) };
}

/** A writer as the chain is one: numbers each batch from the head `begin` reports. */
class Writer {
  seq = 0;
  prev = GENESIS;
  constructor(readonly store: SqliteStore) {}

  /** One batch of `n` records; returns what `begin` said. */
  batch(n: number, over: Partial<AuditRecord> = {}) {
    const start = this.store.begin();
    this.follow(start.head);
    try {
      for (let i = 0; i < n; i++) this.one(over);
    } catch (e) {
      this.store.abort();
      throw e;
    }
    this.store.commit();
    return start;
  }

  follow(head: StoredHead | null | undefined): void {
    if (head === undefined) return;
    this.seq = head === null ? 0 : head.seq;
    this.prev = head === null ? GENESIS : head.hash;
  }

  one(over: Partial<AuditRecord> = {}): ChainedRecord {
    const r = record(this.seq + 1, this.prev, over);
    this.store.write(r);
    this.seq += 1;
    this.prev = r.hash;
    return r;
  }
}

function open(path: string, options: Partial<SqliteOptions> = {}): SqliteStore {
  return new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000, ...options });
}

function rows(path: string): { seq: number; line: string }[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("SELECT seq, line FROM records ORDER BY seq").all().map((r) => ({
      seq: Number(r.seq),
      line: String(r.line),
    }));
  } finally {
    db.close();
  }
}

/** Checks one contiguous chain from seq 1: every prev is the hash of the line before. */
function assertChain(path: string, count: number): void {
  const all = rows(path);
  assert.equal(all.length, count);
  let prev = GENESIS;
  all.forEach((row, i) => {
    const r = JSON.parse(row.line);
    assert.equal(row.seq, i + 1, `row ${i} has seq ${row.seq}`);
    assert.equal(r.seq, i + 1, `line ${i} says seq ${r.seq}`);
    assert.equal(r.prev, prev, `seq ${i + 1} does not link to the line before it`);
    prev = sha(row.line);
  });
}

function bytes(path: string): string {
  return sha(Deno.readFileSync(path).toString());
}

/** A database of ours holding `n` records, closed. */
function filled(path: string, n: number): void {
  const store = open(path);
  new Writer(store).batch(n);
  store.close();
}

Deno.test({
  name: "SqliteStore creates the database, its -wal and -shm with mode 0600",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.db`;
    const store = open(path);
    new Writer(store).batch(3);
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      assert.equal(Deno.statSync(f).mode! & 0o777, 0o600, f);
    }
    store.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  },
});

Deno.test({
  name: "SqliteStore tightens an existing database readable by others to 0600",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.db`;
    filled(path, 2);
    Deno.chmodSync(path, 0o644);
    open(path).close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  },
});

Deno.test("SqliteStore stores each record's exact line and the columns it is found by", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  const start = store.begin();
  assert.deepEqual(start, { head: null, changes: [] });
  const a = w.one();
  const b = w.one({
    kind: "response",
    direction: "server_to_client",
    result: { content: [], isError: true },
    decision: null,
  });
  store.commit();
  store.close();
  const db = new DatabaseSync(path, { readOnly: true });
  const got = db.prepare(
    "SELECT seq, line, kind, direction, tool_name, action, is_error, ts_ms FROM records",
  ).all();
  db.close();
  assert.deepEqual(got.map((r) => ({ ...r })), [
    {
      seq: 1,
      line: a.line,
      kind: "request",
      direction: "client_to_server",
      tool_name: "read_file",
      action: "allow",
      is_error: 0,
      ts_ms: Date.parse(a.record.ts),
    },
    {
      seq: 2,
      line: b.line,
      kind: "response",
      direction: "server_to_client",
      tool_name: "read_file",
      action: null,
      is_error: 1,
      ts_ms: Date.parse(b.record.ts),
    },
  ]);
});

Deno.test("SqliteStore keeps each record's search text pending, and indexes them FTS_BATCH at a time", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  const counts = () => {
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const pending = db.prepare("SELECT count(*) AS n FROM records_fts_pending").get()?.n;
      const indexed = db.prepare("SELECT count(*) AS n FROM records_fts_docsize").get()?.n;
      return [pending, indexed];
    } finally {
      db.close();
    }
  };
  assert.equal(FTS_BATCH, 1024);
  for (let i = 0; i < 9; i++) w.batch(100);
  assert.deepEqual(counts(), [900, 0]);
  w.batch(100);
  assert.deepEqual(counts(), [1000, 0]);
  // The batch that brings the pending texts to FTS_BATCH moves them all, its own too.
  w.batch(100);
  assert.deepEqual(counts(), [0, 1100]);
  w.batch(3);
  assert.deepEqual(counts(), [3, 1100]);
  store.close();
});

Deno.test("SqliteStore reports the head at the first batch, then only when another writer moved it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 3);
  const a = open(path);
  const b = open(path);
  const wa = new Writer(a);
  const wb = new Writer(b);
  const first = wa.batch(2);
  assert.equal(first.head?.seq, 3);
  assert.equal(first.head?.hash, sha(rows(path)[2]!.line));
  assert.equal(wa.batch(1).head, undefined, "nothing changed since its own commit");
  assert.equal(wb.batch(2).head?.seq, 6);
  const again = wa.batch(1);
  assert.equal(again.head?.seq, 8);
  assert.deepEqual(again.changes, []);
  a.close();
  b.close();
  assertChain(path, 9);
});

Deno.test("SqliteStore: the head after another writer's append is that writer's line and its SHA-256", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const a = open(path);
  const b = open(path);
  const wa = new Writer(a);
  const wb = new Writer(b);
  wa.batch(2);
  b.begin();
  wb.seq = 2;
  wb.prev = sha(rows(path)[1]!.line);
  const theirs = wb.one();
  b.commit();
  const start = wa.batch(1);
  assert.deepEqual(start.head, { seq: 3, hash: sha(theirs.line) });
  assert.equal(rows(path)[2]!.line, theirs.line);
  assert.equal(wa.prev, sha(rows(path)[3]!.line), "the chain links on from the row stored");
  a.close();
  b.close();
  assertChain(path, 4);
});

Deno.test("SqliteStore sees its own last row rewritten in place, with no other writer", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  new Writer(store).batch(2);
  const db = new DatabaseSync(path);
  db.exec(
    "DROP TRIGGER records_no_update; UPDATE records SET line = replace(line, 'file-2', 'file-9') WHERE seq = 2",
  );
  db.close();
  const start = store.begin();
  store.abort();
  store.close();
  assert.deepEqual(start.head, { seq: 2, hash: sha(rows(path)[1]!.line) });
  assert.notEqual(start.head?.hash, sha(rows(path)[1]!.line.replace("file-9", "file-2")));
  assert.deepEqual(start.changes.map((c) => c.kind), ["truncated"]);
  assert.match(start.changes[0]!.reason, /seq 2 .* was rewritten/);
});

Deno.test("SqliteStore reopened reports its last record as the head", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 5);
  const store = open(path);
  const start = store.begin();
  store.abort();
  store.close();
  assert.deepEqual(start.head, { seq: 5, hash: sha(rows(path)[4]!.line) });
});

Deno.test("SqliteStore abort stores nothing of the batch and never throws", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  store.abort();
  const w = new Writer(store);
  w.batch(2);
  store.begin();
  w.one();
  store.abort();
  store.abort();
  // A record whose seq is taken fails on write; the batch is abandoned; the next one works.
  store.begin();
  assert.throws(() => store.write(record(2, GENESIS)), StorageError);
  store.abort();
  w.seq = 2;
  w.batch(1);
  store.close();
  store.abort();
  assert.deepEqual(rows(path).map((r) => r.seq), [1, 2, 3]);
});

Deno.test("SqliteStore refuses calls out of order", () => {
  using tmp = tempDir();
  const store = open(`${tmp.dir}/audit.db`);
  assert.throws(() => store.write(record(1, GENESIS)), /outside a batch/);
  assert.throws(() => store.commit(), /without begin/);
  store.begin();
  assert.throws(() => store.begin(), /inside an open batch/);
  store.abort();
  assert.throws(() => store.startNewFile(), StorageError);
  store.close();
  store.close();
  assert.throws(() => store.begin(), /closed/);
});

Deno.test("SqliteStore refuses a directory, a symlink, a dangling symlink and a FIFO, changing nothing", () => {
  using tmp = tempDir();
  const dir = `${tmp.dir}/dir`;
  Deno.mkdirSync(dir);
  const target = `${tmp.dir}/real.db`;
  filled(target, 1);
  const link = `${tmp.dir}/link.db`;
  Deno.symlinkSync(target, link);
  const dangling = `${tmp.dir}/dangling.db`;
  Deno.symlinkSync(`${tmp.dir}/nowhere.db`, dangling);
  const cases = [dir, link, dangling];
  if (posix) {
    const fifo = `${tmp.dir}/fifo.db`;
    new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
    cases.push(fifo);
  }
  for (const path of cases) {
    assert.throws(
      () => open(path),
      (e) => e instanceof RefusedPathError && e.key === "audit.sqlite_path",
      path,
    );
  }
  assert.equal(Deno.lstatSync(dangling).isSymlink, true);
  assert.throws(() => Deno.lstatSync(`${tmp.dir}/nowhere.db`), Deno.errors.NotFound);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("SqliteStore refuses a -wal that is a symlink", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 1);
  Deno.symlinkSync(`${tmp.dir}/elsewhere`, `${path}-wal`);
  assert.throws(() => open(path), /-wal is a symbolic link/);
});

Deno.test("SqliteStore refuses a file that is not SQLite and leaves it as it was", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const text = '{"client_id":"c","seq":1}\nthis is an audit.jsonl, not a database\n';
  Deno.writeTextFileSync(path, text);
  Deno.chmodSync(path, 0o644);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof RefusedPathError && e.key === "audit.sqlite_path" &&
      /not an SQLite database/.test(e.message),
  );
  assert.equal(Deno.readTextFileSync(path), text);
  if (posix) assert.equal(Deno.statSync(path).mode! & 0o777, 0o644);
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["audit.db"]);
});

Deno.test("SqliteStore refuses a database truncated to half with a clear StorageError", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 2000);
  Deno.truncateSync(path, Math.floor(Deno.statSync(path).size / 2));
  const before = bytes(path);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof StorageError && !(e instanceof RefusedPathError) &&
      /damaged or truncated/.test(e.message),
  );
  assert.equal(bytes(path), before);
});

Deno.test("SqliteStore refuses a database with damaged pages", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 500);
  // Overwrite everything after the first page (the schema's root survives; the tables do not).
  const data = Deno.readFileSync(path);
  data.fill(0x55, 4096 * 2);
  Deno.writeFileSync(path, data);
  assert.throws(
    () => open(path),
    (e) => e instanceof StorageError && /malformed|damaged/.test(e.message),
  );
});

Deno.test("SqliteStore refuses a database of a newer schema and does not change it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 3);
  const db = new DatabaseSync(path);
  db.exec("PRAGMA user_version = 99");
  db.close();
  const before = bytes(path);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof StorageError && !(e instanceof RefusedPathError) &&
      /newer mcp-audit \(database schema 99; this version knows schemas up to 1\)/.test(e.message),
  );
  assert.equal(bytes(path), before);
  const check = new DatabaseSync(path, { readOnly: true });
  assert.equal(check.prepare("PRAGMA user_version").get()?.user_version, 99);
  check.close();
});

Deno.test("SqliteStore refuses the Go tool's database, saying what to do, and never alters it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // As the Go tool makes it: rollback journal, no version, no application id.
  const go = new DatabaseSync(path);
  go.exec(`CREATE TABLE audit_entries (
    id TEXT PRIMARY KEY, timestamp TEXT NOT NULL, direction TEXT NOT NULL, transport TEXT NOT NULL,
    method TEXT NOT NULL, request_id TEXT, tool_name TEXT, params TEXT, result TEXT, error TEXT,
    duration_ms INTEGER NOT NULL, client_id TEXT NOT NULL, server_id TEXT NOT NULL, signature TEXT);
    INSERT INTO audit_entries VALUES ('a', '2026-01-01T00:00:00Z', 'client→server', 'stdio',
    'tools/call', '1', 'read_file', '{}', '', '', 3, 'c', 's', '');`);
  go.close();
  Deno.chmodSync(path, 0o644);
  const before = bytes(path);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof RefusedPathError && /Go mcp-audit/.test(e.message) &&
      /set audit\.sqlite_path to a new file/.test(e.message),
  );
  assert.equal(bytes(path), before);
  if (posix) assert.equal(Deno.statSync(path).mode! & 0o777, 0o644);
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["audit.db"]);
  const check = new DatabaseSync(path, { readOnly: true });
  assert.equal(check.prepare("PRAGMA journal_mode").get()?.journal_mode, "delete");
  check.close();
});

Deno.test("SqliteStore refuses an SQLite database it did not create", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/other.db`;
  const other = new DatabaseSync(path);
  other.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')");
  other.close();
  const before = bytes(path);
  assert.throws(() => open(path), /did not create/);
  assert.equal(bytes(path), before);
});

Deno.test("SqliteStore refuses a database of ours whose schema was changed, and does not change it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 3);
  const db = new DatabaseSync(path);
  // An endless view where the pending texts were: whoever reads it never returns.
  db.exec(
    "DROP TABLE records_fts_pending; CREATE VIEW records_fts_pending AS " +
      "WITH RECURSIVE c(seq, text) AS (SELECT 1, 'x' UNION ALL SELECT seq + 1, 'x' FROM c) " +
      "SELECT seq, text FROM c",
  );
  db.close();
  const before = bytes(path);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof StorageError && !(e instanceof RefusedPathError) &&
      e.message.includes("records_fts_pending is a view where mcp-audit made a table") &&
      e.message.includes("refusing to write to it") &&
      e.message.includes("set audit.sqlite_path to a new file"),
  );
  assert.equal(bytes(path), before);
});

Deno.test("SqliteStore refuses a database whose append-only triggers were dropped", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 3);
  const db = new DatabaseSync(path);
  db.exec("DROP TRIGGER records_no_delete");
  db.close();
  const before = bytes(path);
  assert.throws(
    () => open(path),
    (e) =>
      e instanceof StorageError &&
      /lacks the triggers that keep its records append-only \(records_no_delete\)/.test(e.message),
  );
  assert.equal(bytes(path), before);
});

Deno.test("SqliteStore marks its database with its application id and schema version", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 1);
  const db = new DatabaseSync(path, { readOnly: true });
  assert.equal(db.prepare("PRAGMA application_id").get()?.application_id, APPLICATION_ID);
  assert.equal(db.prepare("PRAGMA user_version").get()?.user_version, SCHEMA_VERSION);
  assert.equal(db.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
  db.close();
});

Deno.test("SqliteStore refuses to create a database beside the -wal of a deleted one", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  Deno.writeFileSync(`${path}-wal`, new Uint8Array(64).fill(1));
  assert.throws(() => open(path), /left by a database that was deleted/);
  assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
});

Deno.test("SqliteStore keeps records out of the log when the append-only trigger is hit", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 2);
  const db = new DatabaseSync(path);
  assert.throws(() => db.exec("UPDATE records SET tool_name = 'x'"), /append-only/);
  assert.throws(() => db.exec("DELETE FROM records"), /append-only/);
  db.close();
  assert.equal(rows(path).length, 2);
});

Deno.test("SqliteStore reports records removed behind its back as truncated", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  w.batch(5);
  const db = new DatabaseSync(path);
  db.exec("DROP TRIGGER records_no_delete; DELETE FROM records WHERE seq > 3");
  db.close();
  const start = store.begin();
  store.abort();
  assert.equal(start.head?.seq, 3);
  assert.equal(start.changes.length, 1);
  const change = start.changes[0]!;
  assert.equal(change.kind, "truncated");
  assert.match(change.reason, /records after seq 3 .* were removed/);
  store.close();
});

Deno.test("SqliteStore reports its last record rewritten behind its back", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const other = open(path);
  new Writer(store).batch(2);
  new Writer(other).batch(1);
  const db = new DatabaseSync(path);
  db.exec(
    "DROP TRIGGER records_no_update; UPDATE records SET line = replace(line, 'file-2', 'file-9') WHERE seq = 2",
  );
  db.close();
  const start = store.begin();
  store.abort();
  assert.equal(start.head?.seq, 3);
  assert.deepEqual(start.changes.map((c) => c.kind), ["truncated"]);
  assert.match(start.changes[0]!.reason, /seq 2 .* was rewritten/);
  store.close();
  other.close();
});

Deno.test("SqliteStore reports a last row that is not a record as extended", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  filled(path, 2);
  const db = new DatabaseSync(path);
  db.exec(
    "INSERT INTO records (seq, id, ts, kind, direction, client_id, server_id, is_error, line) " +
      "VALUES (3, 'x', 'x', 'event', 'proxy', 'c', 's', 0, 'not a record')",
  );
  db.close();
  const store = open(path);
  const start = store.begin();
  store.abort();
  store.close();
  assert.deepEqual(start.head, { seq: 3, hash: sha("not a record") });
  assert.deepEqual(start.changes.map((c) => c.kind), ["extended"]);
});

Deno.test("SqliteStore: a database deleted mid-run goes on in a new database at the path", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  w.batch(3);
  for (const f of [path, `${path}-wal`, `${path}-shm`]) Deno.removeSync(f);
  const start = store.begin();
  w.follow(start.head);
  assert.equal(start.head, undefined);
  assert.deepEqual(start.changes.map((c) => c.kind), ["deleted"]);
  assert.equal(start.changes[0]!.kind === "deleted" && start.changes[0]!.oldFileLinked, false);
  const details = store.startNewFile();
  assert.equal(details.path, path);
  // The chain's audit/recover, continuing after seq 3, then the batch.
  w.one({ kind: "event", method: "audit/recover", tool_name: null });
  w.one();
  store.commit();
  w.batch(1);
  store.close();
  // The old database's -wal and -shm are gone; the new one's went with its last connection.
  assert.deepEqual([...Deno.readDirSync(tmp.dir)].map((e) => e.name), ["audit.db"]);
  assert.deepEqual(rows(path).map((r) => r.seq), [4, 5, 6]);
  if (posix) assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
});

Deno.test("SqliteStore: a batch abandoned after a new database was started reports no cut there", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  w.batch(3);
  Deno.removeSync(path);
  store.begin();
  store.startNewFile();
  w.one({ kind: "event", method: "audit/recover", tool_name: null });
  store.abort();
  const start = store.begin();
  store.abort();
  store.close();
  // The new database is empty: nothing of it was removed, and its head says so.
  assert.deepEqual(start, { head: null, changes: [] });
});

Deno.test("SqliteStore: a database moved away mid-run keeps its closing record and is whole on its own", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const moved = `${tmp.dir}/kept.db`;
  const store = open(path, { durability: "batch" });
  const w = new Writer(store);
  w.batch(3);
  Deno.renameSync(path, moved);
  const start = store.begin();
  const change = start.changes[0]!;
  assert.equal(change.kind, "moved");
  assert.equal(change.kind === "moved" && change.oldFileLinked, true);
  w.one({ kind: "event", method: "audit/checkpoint", tool_name: null });
  const details = store.startNewFile();
  const previous = details.previous_file;
  assert.ok(isJsonObject(previous));
  assert.equal(previous.last_seq, 4);
  w.one({ kind: "event", method: "audit/recover", tool_name: null });
  store.commit();
  store.close();
  await store.settled();
  const names = [...Deno.readDirSync(tmp.dir)].map((e) => e.name).sort();
  assert.deepEqual(names, ["audit.db", "kept.db"]);
  // Opened by its new name alone (its -wal stayed under the old name): every record is there.
  assertChain(moved, 4);
  assert.deepEqual(rows(path).map((r) => r.seq), [5]);
});

Deno.test("SqliteStore moves a stranger that replaced the database aside, whole", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const store = open(path);
  const w = new Writer(store);
  w.batch(2);
  const stranger = `${tmp.dir}/stranger`;
  Deno.writeTextFileSync(stranger, "someone else's file");
  Deno.renameSync(stranger, path);
  const start = store.begin();
  assert.deepEqual(start.changes.map((c) => c.kind), ["replaced"]);
  const details = store.startNewFile();
  w.one({ kind: "event", method: "audit/recover", tool_name: null });
  store.commit();
  store.close();
  await store.settled();
  const foreign = details.foreign;
  assert.ok(isJsonObject(foreign));
  const aside = String(foreign.moved_to);
  assert.match(aside, /audit\.db\.foreign-[0-9a-f]{8}$/);
  assert.equal(Deno.readTextFileSync(aside), "someone else's file");
  assert.deepEqual(rows(path).map((r) => r.seq), [3]);
});

Deno.test("SqliteStore: a writer that finds another writer's new database moves to it", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const a = open(path);
  const b = open(path);
  const wa = new Writer(a);
  const wb = new Writer(b);
  wa.batch(2);
  wb.batch(2);
  Deno.removeSync(path);
  const start = a.begin();
  wa.follow(start.head);
  assert.deepEqual(start.changes.map((c) => c.kind), ["deleted"]);
  a.startNewFile();
  wa.one({ kind: "event", method: "audit/recover", tool_name: null });
  a.commit();
  // b held the deleted database too: it moves to a's, continuing from a's records.
  const next = wb.batch(1);
  assert.deepEqual(next.changes, []);
  assert.equal(next.head?.seq, 5);
  wa.batch(1);
  a.close();
  b.close();
  assert.deepEqual(rows(path).map((r) => r.seq), [5, 6, 7]);
  const all = rows(path);
  assert.equal(JSON.parse(all[1]!.line).prev, sha(all[0]!.line));
  assert.equal(JSON.parse(all[2]!.line).prev, sha(all[1]!.line));
});

for (const durability of ["entry", "batch", "none"] as const) {
  Deno.test(`SqliteStore with durability ${durability} moves the anchor once records are durable`, async () => {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.db`;
    const anchorPath = `${tmp.dir}/audit.anchor`;
    const signer = hmacSigner("0123456789abcdef0123456789abcdef");
    const store = open(path, { durability, anchor: new AnchorFile(anchorPath, path, signer) });
    const w = new Writer(store);
    w.batch(2);
    await store.settled();
    const placed = () => {
      try {
        return parseAnchor(Deno.readTextFileSync(anchorPath)).seq;
      } catch {
        return null;
      }
    };
    // none syncs only when asked (sync, close); the others after each commit.
    assert.equal(placed(), durability === "none" ? null : 2);
    w.batch(3);
    await store.settled();
    assert.equal(placed(), durability === "none" ? null : 5);
    store.sync();
    await store.settled();
    assert.equal(placed(), 5);
    w.batch(1);
    store.close();
    await store.settled();
    assert.equal(placed(), 6);
    const anchor = parseAnchor(Deno.readTextFileSync(anchorPath));
    assert.equal(anchor.hash, sha(rows(path)[5]!.line), "the anchor names the last line's hash");
  });
}

Deno.test("SqliteStore refuses a database cut below its anchor", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const anchorPath = `${tmp.dir}/audit.anchor`;
  const signer = hmacSigner("0123456789abcdef0123456789abcdef");
  const store = open(path, { anchor: new AnchorFile(anchorPath, path, signer) });
  new Writer(store).batch(5);
  store.close();
  const db = new DatabaseSync(path);
  // The trigger put back as it was: only the anchor tells.
  const trigger = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'records_no_delete'")
    .get()?.sql;
  assert.equal(typeof trigger, "string");
  db.exec(`DROP TRIGGER records_no_delete; DELETE FROM records WHERE seq > 4; ${trigger}`);
  db.close();
  assert.throws(
    () => open(path, { anchor: new AnchorFile(anchorPath, path, signer) }),
    AnchorMismatchError,
  );
  // The same database with its records whole opens.
  const again = open(path, { anchor: new AnchorFile(`${tmp.dir}/other.anchor`, path, signer) });
  again.close();
});

const WRITER = new URL("../../../tests/fixtures/sqlite_writer.ts", import.meta.url).pathname;

function writer(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", WRITER, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("SqliteStore: 4 processes x 2,000 records make one contiguous chain", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // Different batch sizes interleave differently; batch 1 is the sync mode's one record a batch.
  const batches = ["1", "7", "64", "128"];
  const children = batches.map((b, i) => writer([path, "2000", b, "batch", `w${i}`]));
  const outputs = await Promise.all(children.map((c) => c.output()));
  outputs.forEach((o, i) => {
    assert.equal(o.code, 0, `writer ${i}: ${new TextDecoder().decode(o.stderr)}`);
  });
  assertChain(path, 8000);
  const db = new DatabaseSync(path, { readOnly: true });
  const per = db.prepare("SELECT session, count(*) AS n FROM records GROUP BY session").all();
  db.close();
  assert.deepEqual(
    per.map((r) => ({ ...r })),
    ["w0", "w1", "w2", "w3"].map((session) => ({ session, n: 2000 })),
  );
  for await (const row of readSqliteLines(path)) assert.equal(row.disagree, null);
});

Deno.test({
  name: "SqliteStore: a writer killed mid-run leaves the others one intact chain",
  ignore: !posix,
  async fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.db`;
    const victim = writer([path, "1000000", "128", "batch", "victim", "progress"]);
    const lines = victim.stdout.pipeThrough(new TextDecoderStream()).getReader();
    // Wait until it has committed some batches: it is writing, and most likely mid-batch.
    let seen = "";
    while ((seen.match(/committed/g) ?? []).length < 5) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the writer stopped: ${seen}`);
      seen += value;
    }
    const others = [
      writer([path, "1500", "32", "batch", "a"]),
      writer([path, "1500", "1", "entry", "b"]),
    ];
    victim.kill("SIGKILL");
    const status = await victim.status;
    await lines.cancel();
    await victim.stderr.cancel();
    assert.equal(status.signal, "SIGKILL");
    for (const o of await Promise.all(others.map((c) => c.output()))) {
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    }
    const all = rows(path);
    assertChain(path, all.length);
    const sessions = all.map((r) => JSON.parse(r.line).session);
    assert.equal(sessions.filter((s) => s === "a").length, 1500);
    assert.equal(sessions.filter((s) => s === "b").length, 1500);
    // The victim's records are whole batches: what it committed, nothing of the batch it was in.
    assert.equal(sessions.filter((s) => s === "victim").length % 128, 0);
    // And a new writer starts from the last record, finding nothing to recover.
    const store = open(path);
    const start = store.begin();
    store.abort();
    store.close();
    assert.deepEqual(start.head, { seq: all.length, hash: sha(all[all.length - 1]!.line) });
    assert.deepEqual(start.changes, []);
  },
});

/** A small tmpfs mounted at a fresh directory, when this process may mount one (root). */
function tmpfs(
  size: string,
): { dir: string; remount(option: "ro" | "rw"): void; [Symbol.dispose](): void } | null {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-fs-" });
  const mount = (args: string[]) =>
    new Deno.Command("mount", { args, stderr: "null" }).outputSync();
  if (!mount(["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]).success) {
    Deno.removeSync(dir);
    return null;
  }
  return {
    dir,
    remount: (option) => {
      if (!mount(["-o", `remount,${option}`, dir]).success) throw new Error(`remount ${option}`);
    },
    [Symbol.dispose]: () => {
      new Deno.Command("umount", { args: [dir] }).outputSync();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

const canMount = (() => {
  if (!posix || Deno.uid() !== 0) return false;
  const fs = tmpfs("64k");
  fs?.[Symbol.dispose]();
  return fs !== null;
})();

Deno.test({
  name:
    "SqliteStore on a full file system: a clear error, nothing committed lost, writing resumes when space returns",
  ignore: !canMount,
  fn() {
    using fs = tmpfs("3m")!;
    const path = `${fs.dir}/audit.db`;
    const filler = `${fs.dir}/filler`;
    Deno.writeFileSync(filler, new Uint8Array(1024 * 1024));
    const store = open(path, { durability: "entry" });
    const w = new Writer(store);
    let failure: unknown;
    let committed = 0;
    const big = "x".repeat(4000);
    for (let i = 0; i < 10_000 && failure === undefined; i++) {
      try {
        w.batch(8, { params: { big } });
        committed = w.seq;
      } catch (e) {
        failure = e;
      }
    }
    assert.ok(failure instanceof StorageError, String(failure));
    assert.match(failure.message, /full/);
    assert.ok(committed > 0);
    // The failed batch's numbers are free again: a chain renumbers it from the head.
    Deno.removeSync(filler);
    const start = store.begin();
    assert.equal(start.head?.seq, committed);
    store.abort();
    w.seq = committed;
    w.prev = sha(rows(path)[committed - 1]!.line);
    w.batch(3);
    store.close();
    assertChain(path, committed + 3);
  },
});

Deno.test({
  name: "SqliteStore on a read-only file system: a clear error, the records untouched",
  ignore: !canMount,
  fn() {
    using fs = tmpfs("8m")!;
    const path = `${fs.dir}/audit.db`;
    filled(path, 5);
    // Linux refuses to remount read-only while a file is open for writing, so the file system
    // turns read-only between runs.
    fs.remount("ro");
    try {
      assert.throws(
        () => open(path),
        (e) => e instanceof StorageError && /cannot be written|read-only|readonly/i.test(e.message),
      );
    } finally {
      fs.remount("rw");
    }
    assertChain(path, 5);
    const store = open(path);
    new Writer(store).batch(1);
    store.close();
  },
});

Deno.test("SqliteStore durability batch: commits within one sync interval share one background WAL sync; close syncs what is due", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const timers = new ManualTimers();
  const store = open(path, { durability: "batch", syncIntervalMs: 10, syncTimers: timers });
  const w = new Writer(store);
  using calls = new FileCalls();
  for (let i = 0; i < 50; i++) w.batch(2);
  await store.settled();
  assert.equal(calls.take().syncData, 2, "fifty commits in one interval: two WAL syncs");
  for (let i = 0; i < 10; i++) w.batch(2);
  assert.equal(calls.counts.syncData, 0, "the interval since the last sync's start has not passed");
  assert.equal(timers.pending, 1);
  timers.advance(10);
  await store.settled();
  assert.equal(calls.take().syncData, 1, "one sync for the ten commits, once the interval passed");
  w.batch(3);
  assert.equal(timers.pending, 1, "a sync is due");
  store.close();
  assert.ok(calls.take().syncDataSync >= 1, "close syncs what the due sync would have");
  assert.equal(timers.pending, 0, "and no timer is left behind");
  await store.settled();
  assertChain(path, 123);
});
