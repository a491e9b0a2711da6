import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "./sqlite.ts";
import {
  isSqliteFile,
  openReadOnly,
  PAGE_CHARS,
  readSqliteLines,
  type SqliteLine,
} from "./sqlite_lines.ts";
import { FTS_BATCH, searchText } from "./sqlite_schema.ts";
import { StorageError } from "./errors.ts";
import { type AuditRecord, GENESIS } from "../record.ts";
import { recordText } from "../record_text.ts";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-lines-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

function record(seq: number, prev: string): AuditRecord {
  return {
    v: 1,
    seq,
    id: `01JD${String(seq).padStart(22, "0")}`,
    ts: new Date(Date.UTC(2026, 5, 10, 22) + seq).toISOString(),
    kind: seq % 2 === 1 ? "request" : "response",
    direction: seq % 2 === 1 ? "client_to_server" : "server_to_client",
    transport: "stdio",
    upstream: null,
    session: "s1",
    jsonrpc_id: seq,
    method: "tools/call",
    tool_name: "read_file",
    params: seq % 2 === 1 ? { name: "read_file", arguments: { path: `/tmp/Ä-${seq}` } } : null,
    result: seq % 2 === 1 ? null : { content: [{ type: "text", text: "ok" }], isError: false },
    error: null,
    redacted: [],
    duration_ms: null,
    decision: seq % 2 === 1 ? { action: "allow", rule: null, reason: "" } : null,
    client_id: "claude-desktop",
    server_id: "filesystem",
    client_info: null,
    wire_sha256: null,
    prev,
    sig: null,
  };
}

/** A database of `n` records; returns their lines. */
function fill(path: string, n: number): string[] {
  const store = new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
  const lines: string[] = [];
  let prev = GENESIS;
  store.begin();
  for (let seq = 1; seq <= n; seq++) {
    const r = record(seq, prev);
    const line = recordText(r).signed(null);
    prev = hash("sha256", line, "hex");
    store.write({ line, record: r, hash: prev });
    lines.push(line);
  }
  store.commit();
  store.close();
  return lines;
}

async function read(path: string): Promise<SqliteLine[]> {
  const out: SqliteLine[] = [];
  for await (const line of readSqliteLines(path)) out.push(line);
  return out;
}

/** Runs SQL on the database as someone editing it by hand would (the triggers dropped). */
function tamper(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  db.exec("DROP TRIGGER IF EXISTS records_no_update; DROP TRIGGER IF EXISTS records_no_delete");
  db.exec(sql);
  db.close();
}

Deno.test("readSqliteLines yields every row in seq order, as verify reads the lines of a file", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, 2345);
  const got = await read(path);
  assert.equal(got.length, 2345);
  assert.deepEqual(got[0], {
    file: path,
    lineNo: 1,
    offset: 0,
    text: lines[0],
    terminated: true,
    disagree: null,
  });
  assert.deepEqual(got.map((l) => l.text), lines);
  assert.deepEqual(got.map((l) => l.lineNo), lines.map((_, i) => i + 1));
  assert.ok(got.every((l) => l.disagree === null));
});

Deno.test("readSqliteLines names the column that was changed without the line", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 6);
  tamper(path, "UPDATE records SET tool_name = 'x' WHERE seq = 3");
  tamper(path, "UPDATE records SET is_error = 1 WHERE seq = 4");
  tamper(path, "UPDATE records SET ts_ms = ts_ms + 1 WHERE seq = 5");
  tamper(path, "UPDATE records SET action = NULL WHERE seq = 1");
  tamper(path, "UPDATE records SET ts_max = ts_max + 5000 WHERE seq = 6");
  const got = await read(path);
  assert.deepEqual(got.map((l) => l.disagree), [
    "action is null but the record says 'allow'",
    null,
    "tool_name is 'x' but the record says 'read_file'",
    "is_error is 1 but the record says 0",
    `ts_ms is ${Date.parse(record(5, GENESIS).ts) + 1} but the record says ${
      Date.parse(record(5, GENESIS).ts)
    }`,
    `ts_max is ${Date.parse(record(6, GENESIS).ts) + 5000} but the records up to this one say ${
      Date.parse(record(6, GENESIS).ts)
    }`,
  ]);
});

Deno.test("readSqliteLines reports a row whose line was changed without its columns", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 3);
  tamper(
    path,
    `UPDATE records SET line = replace(line, '"session":"s1"', '"session":"s9"') WHERE seq = 2`,
  );
  const got = await read(path);
  assert.equal(got[1]!.disagree, "session is 's1' but the record says 's9'");
  assert.match(got[1]!.text, /"session":"s9"/);
});

Deno.test("readSqliteLines reports a row missing from the search index, or indexed with other text", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // One batch of more than FTS_BATCH records: all of them go into the index at its commit.
  const lines = fill(path, FTS_BATCH + 4).slice(0, 4);
  const text = (i: number) => searchText(JSON.parse(lines[i]!));
  const db = new DatabaseSync(path);
  // Hidden from q: its index entry removed (FTS5 takes the text it indexed to remove it).
  db.prepare("INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', ?, ?)").run(
    2,
    text(1),
  );
  // Indexed again with other text.
  db.prepare("INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', ?, ?)").run(
    3,
    text(2),
  );
  db.prepare("INSERT INTO records_fts (rowid, text) VALUES (?, ?)").run(3, "something else");
  db.close();
  const got = (await read(path)).slice(0, 4);
  assert.deepEqual(got.map((l) => l.disagree), [
    null,
    "the row is missing from the search index: q does not find it",
    `the search index holds 12 trigrams for the row, but its params, result and error make ${
      [...text(2)].length - 2
    }`,
    null,
  ]);
});

Deno.test("readSqliteLines reports a row whose text waiting to be indexed is missing or changed", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, 4);
  const db = new DatabaseSync(path);
  assert.equal(db.prepare("SELECT count(*) AS n FROM records_fts_pending").get()?.n, 4);
  db.exec("UPDATE records_fts_pending SET text = 'x' WHERE seq = 2");
  db.exec("DELETE FROM records_fts_pending WHERE seq = 3");
  db.close();
  const got = await read(path);
  assert.deepEqual(got.map((l) => l.disagree), [
    null,
    "the text waiting to be indexed for the row is not what its params, result and error make " +
    `(1 characters where they make ${
      [...searchText(JSON.parse(lines[1]!))].length
    }): q does not find the row by what it holds`,
    "the row is missing from the search index: q does not find it",
    null,
  ]);
});

Deno.test("readSqliteLines reports text waiting to be indexed that was rewritten to the same length", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, 4);
  const text = searchText(JSON.parse(lines[0]!));
  const at = [...text.slice(0, text.indexOf("/tmp/ä-1"))].length;
  const db = new DatabaseSync(path);
  // A plain table, no trigger: hides the row from q=/tmp/ä-1, the length unchanged.
  db.exec("UPDATE records_fts_pending SET text = replace(text, '/tmp/ä-1', '/zzz/z-1')");
  db.close();
  const got = await read(path);
  assert.deepEqual(got.map((l) => l.disagree), [
    "the text waiting to be indexed for the row is not what its params, result and error make " +
    `(from character ${at + 2} on): q does not find the row by what it holds`,
    null,
    null,
    null,
  ]);
});

Deno.test("readSqliteLines reports a row both in the search index and waiting to be indexed", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, FTS_BATCH + 2);
  const db = new DatabaseSync(path);
  db.prepare("INSERT INTO records_fts_pending (seq, text) VALUES (?, ?)").run(
    1,
    searchText(JSON.parse(lines[0]!)),
  );
  db.close();
  const got = await read(path);
  assert.equal(got[0]!.disagree, "the row is in the search index and also waiting to be indexed");
  assert.ok(got.slice(1).every((l) => l.disagree === null));
});

Deno.test("readSqliteLines refuses a database whose schema is not ours, reading none of it", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 3);
  // Over the records, so that it ends: an endless one must be refused just the same.
  tamper(
    path,
    "DROP TABLE records_fts_pending; " +
      "CREATE VIEW records_fts_pending AS SELECT seq, 'x' AS text FROM records",
  );
  await assert.rejects(
    read(path),
    (e) =>
      e instanceof StorageError &&
      e.message.includes("records_fts_pending is a view where mcp-audit made a table") &&
      e.message.includes("refusing to read it"),
  );
});

Deno.test("readSqliteLines reads a database whose append-only triggers were dropped", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, 3);
  tamper(path, "SELECT 1");
  assert.deepEqual(
    (await read(path)).map((l) => [l.text, l.disagree]),
    lines.map((l) => [l, null]),
  );
});

Deno.test("readSqliteLines ends a page at PAGE_CHARS characters of text", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // Records of about 4 MiB, their text pending: about 8 MiB a row, with the line.
  const big = "x".repeat(4 << 20);
  const store = new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
  const sizes: number[] = [];
  let prev = GENESIS;
  store.begin();
  for (let seq = 1; seq <= 12; seq++) {
    const r = { ...record(seq, prev), params: { big } };
    const line = recordText(r).signed(null);
    prev = hash("sha256", line, "hex");
    store.write({ line, record: r, hash: prev });
    sizes.push(line.length + searchText(r).length);
  }
  store.commit();
  store.close();
  let first = 0;
  for (let chars = 0; chars < PAGE_CHARS; first++) chars += sizes[first]!;
  assert.ok(first < 12);
  // The rows of the first page are yielded before the signal is looked at again.
  const controller = new AbortController();
  let n = 0;
  await assert.rejects(async () => {
    for await (const _ of readSqliteLines(path, { signal: controller.signal })) {
      if (++n === 1) controller.abort(new Error("stop"));
    }
  }, /stop/);
  assert.equal(n, first);
});

Deno.test("readSqliteLines leaves a line that is no record to verify", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 2);
  tamper(path, "UPDATE records SET line = 'garbage' WHERE seq = 2");
  const got = await read(path);
  assert.deepEqual(got.map((l) => [l.lineNo, l.text, l.disagree]), [
    [1, got[0]!.text, null],
    [2, "garbage", null],
  ]);
});

Deno.test("readSqliteLines never changes the database, and refuses what is not a log of ours", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 10);
  const before = hash("sha256", Deno.readFileSync(path), "hex");
  await read(path);
  assert.equal(hash("sha256", Deno.readFileSync(path), "hex"), before);
  const go = `${tmp.dir}/go.db`;
  const db = new DatabaseSync(go);
  db.exec("CREATE TABLE audit_entries (id TEXT PRIMARY KEY)");
  db.close();
  await assert.rejects(
    read(go),
    (e) => e instanceof StorageError && /Go mcp-audit/.test(e.message),
  );
  await assert.rejects(read(`${tmp.dir}/missing.db`), StorageError);
  const newer = new DatabaseSync(path);
  newer.exec("PRAGMA user_version = 2");
  newer.close();
  await assert.rejects(read(path), /newer mcp-audit/);
});

/** The names in `dir`, sorted. */
function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("readSqliteLines and openReadOnly leave no -wal or -shm beside a database closed cleanly", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 1500);
  assert.deepEqual(listing(tmp.dir), ["audit.db"]);
  assert.equal((await read(path)).length, 1500);
  const ro = openReadOnly(path);
  assert.equal(ro.immutable, true);
  assert.equal(ro.db.prepare("SELECT count(*) AS n FROM records").get()?.n, 1500);
  assert.equal(ro.written(), false);
  ro.db.close();
  assert.deepEqual(listing(tmp.dir), ["audit.db"]);
  // The normal read-only open is what made them.
  const plain = new DatabaseSync(path, { readOnly: true });
  plain.prepare("SELECT count(*) FROM records").get();
  plain.close();
  assert.deepEqual(listing(tmp.dir), ["audit.db", "audit.db-shm", "audit.db-wal"]);
});

Deno.test("readSqliteLines reads rows a writer appends after it began, reading on as a live reader", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const lines = fill(path, 1500);
  const got: string[] = [];
  let store: SqliteStore | undefined;
  try {
    for await (const row of readSqliteLines(path)) {
      got.push(row.text);
      if (got.length === 1) {
        // The first page (1,000 rows) was read as of the unchanging file; now a writer starts
        // and appends five rows, kept in its -wal while it stays open.
        assert.deepEqual(listing(tmp.dir), ["audit.db"]);
        store = new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
        let prev = hash("sha256", lines.at(-1)!, "hex");
        store.begin();
        for (let seq = 1501; seq <= 1505; seq++) {
          const r = record(seq, prev);
          const line = recordText(r).signed(null);
          prev = hash("sha256", line, "hex");
          store.write({ line, record: r, hash: prev });
          lines.push(line);
        }
        store.commit();
      }
    }
  } finally {
    store?.close();
  }
  assert.deepEqual(got, lines);
  assert.equal(got.length, 1505);
});

Deno.test("openReadOnly opens normally when a -wal is there (a writer at work), and when told to", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 3);
  assert.equal(openReadOnly(path, false).immutable, false);
  const writer = new DatabaseSync(path);
  try {
    writer.exec("PRAGMA journal_mode = WAL");
    writer.prepare("SELECT count(*) FROM records").get();
    assert.ok(listing(tmp.dir).includes("audit.db-wal"));
    const ro = openReadOnly(path);
    assert.equal(ro.immutable, false);
    assert.equal(ro.written(), false);
    ro.db.close();
  } finally {
    writer.close();
  }
});

Deno.test("readSqliteLines stops when aborted", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 1500);
  const controller = new AbortController();
  let n = 0;
  await assert.rejects(async () => {
    for await (const _ of readSqliteLines(path, { signal: controller.signal })) {
      if (++n === 10) controller.abort(new Error("stop"));
    }
  }, /stop/);
  assert.equal(n, 1000);
});

Deno.test("isSqliteFile tells a database by its first 16 bytes", () => {
  using tmp = tempDir();
  const db = `${tmp.dir}/audit.db`;
  fill(db, 1);
  const jsonl = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(jsonl, '{"client_id":"c"}\n');
  const short = `${tmp.dir}/short`;
  Deno.writeTextFileSync(short, "SQLite format");
  const empty = `${tmp.dir}/empty`;
  Deno.writeTextFileSync(empty, "");
  assert.equal(isSqliteFile(db), true);
  for (const p of [jsonl, short, empty, tmp.dir, `${tmp.dir}/missing`]) {
    assert.equal(isSqliteFile(p), false, p);
  }
});
