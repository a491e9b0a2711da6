import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  APPLICATION_ID,
  inspectSchema,
  migrate,
  refuseUnusable,
  SCHEMA_VERSION,
  searchText,
} from "./sqlite_schema.ts";
import { RefusedPathError, StorageError } from "./errors.ts";
import { canonicalize } from "../canonical.ts";
import { isJsonObject, parseLossless } from "../../jsonrpc/json.ts";

/**
 * A database in memory with this version's schema, as the store makes it; open as someone
 * tampering with it would open it (SQLite's defensive mode off, as in its shell).
 */
function ours(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  migrate(db, ":memory:");
  // Not in the type definitions yet; there at run time as in Node.
  if (!("enableDefensive" in db) || typeof db.enableDefensive !== "function") {
    throw new Error("node:sqlite has no enableDefensive");
  }
  db.enableDefensive(false);
  return db;
}

/** What inspectSchema says of `db` after `sql` ran on it, with SQLite's safeguards off. */
function after(sql: string): ReturnType<typeof inspectSchema> {
  const db = ours();
  try {
    db.exec(sql);
    return inspectSchema(db);
  } finally {
    db.close();
  }
}

// An endless view: reading it never returns.
const ENDLESS = "WITH RECURSIVE c(seq, text) AS (SELECT 1, 'x' UNION ALL " +
  "SELECT seq + 1, printf('%.1000c', 'x') FROM c) SELECT seq, text FROM c";

Deno.test("inspectSchema finds a database the store made ours, and a new one empty", () => {
  const db = ours();
  try {
    assert.deepEqual(inspectSchema(db), {
      kind: "ours",
      version: SCHEMA_VERSION,
      applicationId: APPLICATION_ID,
      problem: null,
      missingTriggers: [],
    });
    // SQLite's own tables (ANALYZE's statistics) are no change to the schema.
    db.exec("ANALYZE");
    assert.equal(
      db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'sqlite_stat1'").get()?.n,
      1,
    );
    assert.equal(inspectSchema(db).kind, "ours");
  } finally {
    db.close();
  }
  const empty = new DatabaseSync(":memory:");
  try {
    assert.equal(inspectSchema(empty).kind, "empty");
  } finally {
    empty.close();
  }
});

Deno.test("inspectSchema finds a table of ours replaced by a view, and refuses it to readers and writers", () => {
  const facts = after(
    `DROP TABLE records_fts_pending; CREATE VIEW records_fts_pending AS ${ENDLESS}`,
  );
  assert.equal(facts.kind, "altered");
  assert.equal(facts.problem, "records_fts_pending is a view where mcp-audit made a table");
  for (const writing of [false, true]) {
    assert.throws(
      () => refuseUnusable(facts, "audit.db", writing),
      (e) =>
        e instanceof StorageError && !(e instanceof RefusedPathError) &&
        e.message.startsWith(
          "audit.db is marked as an mcp-audit database, but its schema is not the one " +
            "mcp-audit made: records_fts_pending is a view where mcp-audit made a table. ",
        ) && e.message.includes(`refusing to ${writing ? "write to" : "read"} it`),
    );
  }
});

Deno.test("inspectSchema refuses any view, trigger, table or index that is not ours", () => {
  const added: [string, string][] = [
    [`CREATE VIEW v AS ${ENDLESS}`, "the view v is not one of mcp-audit"],
    [
      "CREATE TRIGGER t AFTER INSERT ON records_fts_pending BEGIN SELECT 1; END",
      "the trigger t is not one of mcp-audit",
    ],
    ["CREATE TABLE extra (x)", "the table extra is not one of mcp-audit"],
    [
      "CREATE INDEX records_extra ON records(line)",
      "the index records_extra is not one of mcp-audit",
    ],
    [
      "CREATE VIRTUAL TABLE other_fts USING fts5(x)",
      // FTS5 lists its table first, then the shadow tables it made.
      "the table other_fts is not one of mcp-audit",
    ],
  ];
  for (const [sql, problem] of added) {
    const facts = after(sql);
    assert.deepEqual([facts.kind, facts.problem], ["altered", problem], sql);
  }
});

Deno.test("inspectSchema refuses an object of ours defined otherwise, or missing", () => {
  const changed: [string, string][] = [
    // The same columns and one more (a generated column could run anything as it is read).
    [
      "DROP TABLE records_fts_pending; CREATE TABLE records_fts_pending " +
      "(seq INTEGER PRIMARY KEY, text TEXT NOT NULL, x INTEGER AS (length(text))) STRICT",
      "the table records_fts_pending is not defined as mcp-audit defined it",
    ],
    // An index of ours on another column.
    [
      "DROP INDEX records_tool; CREATE INDEX records_tool ON records(line)",
      "the index records_tool is not defined as mcp-audit defined it",
    ],
    // A trigger of ours that does something else.
    [
      "DROP TRIGGER records_no_update; CREATE TRIGGER records_no_update BEFORE UPDATE ON " +
      "records BEGIN SELECT 1; END",
      "the trigger records_no_update is not defined as mcp-audit defined it",
    ],
    // The search index with its text kept.
    [
      "DROP TABLE records_fts; CREATE VIRTUAL TABLE records_fts USING fts5(text, " +
      "tokenize='trigram case_sensitive 1')",
      "the table records_fts is not defined as mcp-audit defined it",
    ],
    // A shadow table of the search index replaced by a view.
    [
      `DROP TABLE records_fts_docsize; CREATE VIEW records_fts_docsize AS ${ENDLESS}`,
      "records_fts_docsize is a view where mcp-audit made a table",
    ],
    ["DROP INDEX records_session", "the index records_session is missing"],
    ["DROP TABLE records_fts_pending", "the table records_fts_pending is missing"],
  ];
  for (const [sql, problem] of changed) {
    const facts = after(sql);
    assert.deepEqual([facts.kind, facts.problem], ["altered", problem], sql);
  }
});

Deno.test("inspectSchema refuses an object disguised as SQLite's own", () => {
  const db = ours();
  try {
    db.exec("PRAGMA writable_schema = ON");
    db.exec(
      "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES " +
        `('view', 'sqlite_x', 'sqlite_x', 0, 'CREATE VIEW sqlite_x AS SELECT 1')`,
    );
    db.exec("PRAGMA writable_schema = OFF");
    const facts = inspectSchema(db);
    assert.deepEqual([facts.kind, facts.problem], [
      "altered",
      "the view sqlite_x is not one SQLite makes",
    ]);
  } finally {
    db.close();
  }
});

Deno.test("inspectSchema reads a bounded number of objects", () => {
  const db = ours();
  try {
    // As many as SQLite's own could be, and one more.
    db.exec("ANALYZE");
    db.exec("PRAGMA writable_schema = ON");
    for (let i = 0; i < 9; i++) {
      db.exec(
        "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES " +
          `('index', 'sqlite_autoindex_records_${i}', 'records', 0, NULL)`,
      );
    }
    db.exec("PRAGMA writable_schema = OFF");
    const facts = inspectSchema(db);
    assert.equal(facts.kind, "altered");
    assert.match(facts.problem ?? "", /^it holds more objects than the \d+ of schema 1$/);
  } finally {
    db.close();
  }
});

Deno.test("inspectSchema lets readers go on without the append-only triggers, but not writers", () => {
  const facts = after("DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete");
  assert.deepEqual(facts, {
    kind: "ours",
    version: SCHEMA_VERSION,
    applicationId: APPLICATION_ID,
    problem: null,
    missingTriggers: ["records_no_update", "records_no_delete"],
  });
  refuseUnusable(facts, "audit.db", false);
  assert.throws(
    () => refuseUnusable(facts, "audit.db", true),
    (e) =>
      e instanceof StorageError &&
      e.message.startsWith(
        "audit.db lacks the triggers that keep its records append-only " +
          "(records_no_update, records_no_delete)",
      ),
  );
});

Deno.test("inspectSchema still tells the Go tool's database and a stranger's", () => {
  const go = new DatabaseSync(":memory:");
  const stranger = new DatabaseSync(":memory:");
  const marked = new DatabaseSync(":memory:");
  try {
    go.exec("CREATE TABLE audit_entries (id TEXT PRIMARY KEY)");
    assert.equal(inspectSchema(go).kind, "go");
    stranger.exec("CREATE TABLE records (x)");
    assert.equal(inspectSchema(stranger).kind, "foreign");
    // Our mark on a database of nothing of ours.
    marked.exec(`PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = 1`);
    marked.exec("CREATE TABLE t (x)");
    assert.deepEqual([inspectSchema(marked).kind, inspectSchema(marked).problem], [
      "altered",
      "the table t is not one of mcp-audit",
    ]);
  } finally {
    go.close();
    stranger.close();
    marked.close();
  }
});

Deno.test("searchText is the same text from the record the writer had and from its stored line", () => {
  // Members out of canonical order, as a message brings them, and numbers a double would change.
  const params = parseLossless(
    '{"z":1,"a":{"y":[1.50,"CAT /etc/Shadow"],"b":12345678901234567890},"10":-0,"9":null}',
  );
  const record = { params, result: null, error: { code: -1, message: "Ä" } };
  const line = canonicalize({ ...record, seq: 1 });
  const stored = parseLossless(line);
  assert.ok(isJsonObject(stored));
  const fromLine = searchText({
    params: stored.params ?? null,
    result: stored.result ?? null,
    error: stored.error ?? null,
  });
  assert.equal(searchText(record), fromLine);
  assert.equal(
    fromLine,
    '{"10":-0,"9":null,"a":{"b":12345678901234567890,"y":[1.5,"cat /etc/shadow"]},"z":1}\n' +
      'null\n{"code":-1,"message":"ä"}',
  );
});
