import assert from "node:assert/strict";
import { hash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "./sqlite.ts";
import { SqliteQuery } from "./sqlite_query.ts";
import {
  isErrorRecord,
  matches,
  type PageRequest,
  QueryError,
  type RecordFilter,
  type Stats,
} from "./query.ts";
import { StorageError } from "./errors.ts";
import { type AuditRecord, type Decision, GENESIS, type RecordKind } from "../record.ts";
import { recordText } from "../record_text.ts";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-sqlite-query-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

const KINDS: RecordKind[] = ["request", "response", "notification", "error", "invalid", "event"];
const TOOLS = ["read_file", "write_file", "Search_Files", null];
const WORDS = ["Grüße", "ÄPFEL", 'say "hi"', "café au lait", "naïve", "パス", "secret.txt"];
const T0 = Date.UTC(2026, 5, 10, 22);

function decision(i: number): Decision | null {
  switch (i % 6) {
    case 0:
      return { action: "allow", rule: null, reason: "" };
    case 1:
      return { action: "deny", rule: 2, reason: "policy" };
    case 2:
      return { action: "deny", rule: 2, reason: "policy", enforced: false };
    case 3:
      return { action: "rate_limited", rule: null, reason: "too fast" };
    case 4:
      return { action: "filter", rule: null, reason: "hidden" };
    default:
      return null;
  }
}

/** Record `i` of a varied log: every filter selects some and leaves out others. */
function varied(i: number, seq: number, prev: string): AuditRecord {
  const kind = KINDS[i % KINDS.length]!;
  const word = WORDS[i % WORDS.length]!;
  return {
    v: 1,
    seq,
    id: `01JD${String(i).padStart(22, "0")}`,
    // Clocks of several writers: time mostly goes on with seq, not always.
    ts: new Date(T0 + i * 1000 - (i % 5 === 0 ? 7000 : 0)).toISOString(),
    kind,
    direction: kind === "event" ? "proxy" : i % 2 === 0 ? "client_to_server" : "server_to_client",
    transport: "stdio",
    upstream: null,
    session: i % 7 === 0 ? null : `s${i % 3}`,
    jsonrpc_id: i,
    method: kind === "event" ? "audit/start" : i % 4 === 0 ? "tools/list" : "tools/call",
    tool_name: TOOLS[i % TOOLS.length]!,
    params: { name: "x", arguments: { path: `/srv/${word}/file-${i}.txt`, n: i } },
    result: i % 9 === 0
      ? { content: [{ type: "text", text: `answer ${word}` }], isError: true }
      : null,
    error: i % 11 === 0 ? { code: -32000, message: `failed on ${word}` } : null,
    redacted: [],
    duration_ms: null,
    decision: decision(i),
    client_id: i % 2 === 0 ? "claude-desktop" : "cursor",
    server_id: i % 3 === 0 ? "filesystem" : "github",
    client_info: null,
    wire_sha256: null,
    prev,
    sig: null,
  };
}

/** Writes `n` varied records in batches of 50; returns their lines in seq order. */
function fill(path: string, n: number, ts?: (i: number) => string): string[] {
  const store = new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
  const lines: string[] = [];
  let prev = GENESIS;
  for (let i = 0; i < n;) {
    store.begin();
    for (const end = Math.min(n, i + 50); i < end; i++) {
      const r = varied(i, i + 1, prev);
      if (ts !== undefined) r.ts = ts(i);
      const line = recordText(r).signed(null);
      prev = hash("sha256", line, "hex");
      store.write({ line, record: r, hash: prev });
      lines.push(line);
    }
    store.commit();
  }
  store.close();
  return lines;
}

async function allPages(
  query: SqliteQuery,
  filter: RecordFilter,
  order: "newest" | "oldest",
  limit: number,
): Promise<number[]> {
  const seqs: number[] = [];
  let after: number | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const request: PageRequest = {
      filter,
      order,
      limit,
      ...(after === undefined ? {} : { after }),
    };
    const page = await query.page(request);
    assert.ok(page.records.length <= limit);
    for (const r of page.records) {
      assert.equal(hash("sha256", r.line, "hex").length, 64);
      assert.deepEqual(r.record, JSON.parse(r.line));
      seqs.push(r.record.seq);
    }
    if (page.next === null) return seqs;
    assert.equal(page.next, seqs[seqs.length - 1]);
    after = page.next;
  }
  throw new Error("pages never ended");
}

const FILTERS: RecordFilter[] = [
  {},
  { kinds: ["request"] },
  { kinds: ["response", "error"] },
  { kinds: [] },
  { direction: "proxy" },
  { method: "tools/call" },
  { toolName: "read_file" },
  { toolName: "Search_Files", direction: "client_to_server" },
  { session: "s1" },
  { clientId: "cursor" },
  { serverId: "filesystem", kinds: ["request"] },
  { action: "deny" },
  { action: "rate_limited" },
  { errorsOnly: true },
  { errorsOnly: true, clientId: "claude-desktop" },
  { from: T0 + 100_000, to: T0 + 200_000 },
  { from: T0 + 250_000 },
  { to: T0 + 30_000 },
  { fromSeq: 50, toSeq: 120 },
  { fromSeq: 50, toSeq: 120, toolName: "write_file" },
  { q: "grüsse" },
  { q: "GRÜSSE" },
  { q: "GRÜßE" },
  { q: "grüße" },
  { q: "äpfel" },
  { q: 'say \\"hi' },
  { q: "café au" },
  { q: "パス/f" },
  { q: "file-1" },
  { q: "file-12", kinds: ["request"] },
  { q: "answer naïve", errorsOnly: true },
  { q: "-32000" },
  { q: "secret.txt", toolName: "read_file", session: "s0" },
  { q: "no such text anywhere" },
];

Deno.test("SqliteQuery pages agree with matches() for every filter, newest and oldest first", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // Batches of 50: the first 1,050 records are in the full-text index, the rest still pending.
  const lines = fill(path, 1500);
  const records: AuditRecord[] = lines.map((l) => JSON.parse(l));
  const query = new SqliteQuery(path);
  try {
    for (const filter of FILTERS) {
      const want = records.filter((r) => matches(r, filter)).map((r) => r.seq);
      const name = JSON.stringify(filter);
      assert.deepEqual(await allPages(query, filter, "oldest", 37), want, `oldest ${name}`);
      assert.deepEqual(
        await allPages(query, filter, "newest", 50),
        want.toReversed(),
        `newest ${name}`,
      );
      // Each filter selects some records and leaves some out (but those meant to select none).
      // ß does not lower to ss (toLowerCase, as the JSONL backend matches).
      const none = name.includes("[]") || name.includes("no such text") ||
        name.toLowerCase().includes("grüsse");
      const all = name === "{}";
      assert.ok(
        none ? want.length === 0 : all || (want.length > 0 && want.length < records.length),
        `${name} selects ${want.length}`,
      );
    }
  } finally {
    query.close();
  }
});

Deno.test("SqliteQuery continues a page after a cursor, and the last page says there is no next", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 30);
  const query = new SqliteQuery(path);
  const first = await query.page({ filter: {}, order: "newest", limit: 10 });
  assert.deepEqual(first.records.map((r) => r.record.seq), [
    30,
    29,
    28,
    27,
    26,
    25,
    24,
    23,
    22,
    21,
  ]);
  assert.equal(first.next, 21);
  const last = await query.page({ filter: {}, order: "newest", limit: 10, after: 11 });
  assert.deepEqual(last.records.map((r) => r.record.seq), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(last.next, null);
  const oldest = await query.page({ filter: {}, order: "oldest", limit: 5, after: 28 });
  assert.deepEqual(oldest.records.map((r) => r.record.seq), [29, 30]);
  assert.equal(oldest.next, null);
  query.close();
});

Deno.test("SqliteQuery refuses a bad page, a bad filter and a q shorter than three characters", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 3);
  const query = new SqliteQuery(path);
  for (
    const request of [
      { filter: {}, order: "newest", limit: 0 },
      { filter: {}, order: "newest", limit: 1001 },
      { filter: {}, order: "newest", limit: 1.5 },
      { filter: {}, order: "newest", limit: 5, after: Number.NaN },
      { filter: { q: "ab" }, order: "newest", limit: 5 },
      { filter: { q: "🙂x" }, order: "newest", limit: 5 },
      { filter: { from: Number.POSITIVE_INFINITY }, order: "newest", limit: 5 },
    ] satisfies PageRequest[]
  ) {
    await assert.rejects(query.page(request), QueryError, JSON.stringify(request));
  }
  await assert.rejects(query.stats({ q: "xy" }), QueryError);
  // Three characters, counted as characters.
  assert.deepEqual(
    (await query.page({ filter: { q: "🙂🙂🙂" }, order: "newest", limit: 5 })).records,
    [],
  );
  // A control character appears in JSON text only escaped: nothing matches it.
  assert.deepEqual(
    (await query.page({ filter: { q: "a\nb" }, order: "newest", limit: 5 })).records,
    [],
  );
  query.close();
});

function oracleStats(records: AuditRecord[], filter: RecordFilter): Stats {
  const picked = records.filter((r) => matches(r, filter));
  const byKind: Partial<Record<RecordKind, number>> = {};
  const tools = new Map<string, number>();
  for (const r of picked) {
    byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
    if (r.kind === "request" && r.method === "tools/call" && r.tool_name !== null) {
      tools.set(r.tool_name, (tools.get(r.tool_name) ?? 0) + 1);
    }
  }
  return {
    records: picked.length,
    firstSeq: picked[0]?.seq ?? null,
    lastSeq: picked[picked.length - 1]?.seq ?? null,
    firstTs: picked[0]?.ts ?? null,
    lastTs: picked[picked.length - 1]?.ts ?? null,
    byKind,
    errors: picked.filter(isErrorRecord).length,
    denied: picked.filter((r) => r.decision?.action === "deny" && r.decision.enforced !== false)
      .length,
    rateLimited: picked.filter((r) => r.decision?.action === "rate_limited").length,
    topTools: [...tools].map(([name, count]) => ({ name, count })).sort((a, b) =>
      b.count - a.count || (a.name < b.name ? -1 : 1)
    ).slice(0, 20),
  };
}

Deno.test("SqliteQuery stats agree with the records the filter selects", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const records: AuditRecord[] = fill(path, 1300).map((l) => JSON.parse(l));
  const query = new SqliteQuery(path);
  for (const filter of FILTERS) {
    assert.deepEqual(
      await query.stats(filter),
      oracleStats(records, filter),
      JSON.stringify(filter),
    );
  }
  query.close();
});

Deno.test("SqliteQuery streams every selected record in seq order, and stops when aborted", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  const records: AuditRecord[] = fill(path, 2600).map((l) => JSON.parse(l));
  const query = new SqliteQuery(path);
  const all: number[] = [];
  for await (const r of query.stream({})) all.push(r.record.seq);
  assert.deepEqual(all, records.map((r) => r.seq));
  const filter: RecordFilter = { toolName: "read_file", q: "file-1" };
  const some: number[] = [];
  for await (const r of query.stream(filter)) some.push(r.record.seq);
  assert.deepEqual(some, records.filter((r) => matches(r, filter)).map((r) => r.seq));
  const controller = new AbortController();
  let read = 0;
  await assert.rejects(async () => {
    for await (const _ of query.stream({}, controller.signal)) {
      if (++read === 1500) controller.abort(new Error("enough"));
    }
  }, /enough/);
  assert.equal(read, 2000, "the page being read is finished, the next one is not read");
  query.close();
});

Deno.test("SqliteQuery never changes the database", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 50);
  const before = hash("sha256", Deno.readFileSync(path), "hex");
  const query = new SqliteQuery(path);
  await query.page({ filter: { q: "file" }, order: "newest", limit: 10 });
  await query.stats({});
  for await (const _ of query.stream({ kinds: ["request"] })) { /* read all */ }
  query.close();
  query.close();
  assert.equal(hash("sha256", Deno.readFileSync(path), "hex"), before);
  await assert.rejects(query.page({ filter: {}, order: "newest", limit: 1 }), /closed/);
});

Deno.test("SqliteQuery refuses what is not a log of ours", () => {
  using tmp = tempDir();
  const missing = `${tmp.dir}/missing.db`;
  assert.throws(() => new SqliteQuery(missing), StorageError);
  assert.throws(() => Deno.statSync(missing), Deno.errors.NotFound);
  const go = `${tmp.dir}/go.db`;
  const db = new DatabaseSync(go);
  db.exec("CREATE TABLE audit_entries (id TEXT PRIMARY KEY)");
  db.close();
  assert.throws(() => new SqliteQuery(go), /Go mcp-audit/);
  const text = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(text, "x".repeat(200));
  assert.throws(() => new SqliteQuery(text), StorageError);
  const empty = `${tmp.dir}/empty.db`;
  new DatabaseSync(empty).close();
  Deno.writeFileSync(empty, new Uint8Array(0));
  assert.throws(() => new SqliteQuery(empty), /holds no audit records/);
  const newer = `${tmp.dir}/newer.db`;
  fill(newer, 1);
  const n = new DatabaseSync(newer);
  n.exec("PRAGMA user_version = 7");
  n.close();
  assert.throws(() => new SqliteQuery(newer), /newer mcp-audit/);
});

Deno.test("SqliteQuery refuses a database of ours whose schema was changed", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 3);
  const db = new DatabaseSync(path);
  db.exec(
    "DROP TABLE records_fts_pending; CREATE VIEW records_fts_pending AS " +
      "WITH RECURSIVE c(seq, text) AS (SELECT 1, 'x' UNION ALL SELECT seq + 1, 'x' FROM c) " +
      "SELECT seq, text FROM c",
  );
  db.close();
  assert.throws(
    () => new SqliteQuery(path),
    (e) =>
      e instanceof StorageError &&
      e.message.includes("records_fts_pending is a view where mcp-audit made a table"),
  );
});

Deno.test("SqliteQuery q: index entries of no record, or a row both indexed and pending, change no page", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // The first 1,050 records in the full-text index, the rest pending.
  const lines = fill(path, 1100);
  const records: AuditRecord[] = lines.map((l) => JSON.parse(l));
  const db = new DatabaseSync(path);
  // Entries of the search index for records that are not there, after the last: the first
  // rows a newest-first q page meets.
  const orphan = db.prepare("INSERT INTO records_fts (rowid, text) VALUES (?, ?)");
  db.exec("BEGIN");
  for (let seq = 2000; seq < 3100; seq++) orphan.run(seq, "secret.txt");
  db.exec("COMMIT");
  // A record indexed, and its text pending as well.
  const twice = records.find((r) => r.seq < 1000 && matches(r, { q: "secret.txt" }))!;
  db.prepare("INSERT INTO records_fts_pending (seq, text) VALUES (?, ?)").run(
    twice.seq,
    "secret.txt",
  );
  db.close();
  const query = new SqliteQuery(path);
  try {
    const filter = { q: "secret.txt" };
    const want = records.filter((r) => matches(r, filter)).map((r) => r.seq);
    assert.ok(want.length > 100);
    assert.deepEqual(await allPages(query, filter, "newest", 10), want.toReversed());
    assert.deepEqual(await allPages(query, filter, "oldest", 10), want);
    assert.equal((await query.stats(filter)).records, want.length);
  } finally {
    query.close();
  }
});

Deno.test("SqliteQuery reads consistent pages while another process writes", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 10);
  const writer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      new URL("../../../tests/fixtures/sqlite_writer.ts", import.meta.url).pathname,
      path,
      "4000",
      "16",
      "batch",
      "w",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const query = new SqliteQuery(path);
  let done = false;
  const finished = writer.output().then((o) => {
    done = true;
    return o;
  });
  let reads = 0;
  let last = 0;
  while (!done || reads === 0) {
    const page = await query.page({ filter: {}, order: "newest", limit: 100 });
    const seqs = page.records.map((r) => r.record.seq);
    // A page is a snapshot: contiguous, newest first, never behind an earlier one.
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0]! - i));
    assert.ok(seqs[0]! >= last);
    last = seqs[0]!;
    const stats = await query.stats({});
    assert.ok(stats.records >= last);
    reads++;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const out = await finished;
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal((await query.stats({})).records, 4010);
  query.close();
});

Deno.test("SqliteQuery plans: a filtered page is an index range scan in seq order, q is driven by the index", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  fill(path, 100);
  const query = new SqliteQuery(path);
  const plan = (filter: RecordFilter, order: "newest" | "oldest" = "newest") =>
    query.explain({ filter, order, limit: 50, after: 90 }).join("\n");
  for (
    const [filter, index] of [
      [{ toolName: "read_file" }, "records_tool"],
      [{ session: "s1" }, "records_session"],
      [{ clientId: "cursor" }, "records_client"],
      [{ method: "tools/call" }, "records_method"],
      [{ action: "deny" }, "records_action"],
      [{ errorsOnly: true }, "records_error"],
    ] as const
  ) {
    for (const order of ["newest", "oldest"] as const) {
      const text = plan(filter, order);
      assert.match(text, new RegExp(`USING (COVERING )?INDEX ${index}`), text);
      assert.doesNotMatch(text, /TEMP B-TREE/, text);
    }
  }
  // A time window is a seq range: the rows are read in seq order from its end.
  const window = plan({ from: T0 + 10_000, to: T0 + 60_000 });
  assert.match(window, /SEARCH r USING INTEGER PRIMARY KEY \(rowid>\? AND rowid<\?\)/, window);
  const toolWindow = plan({ toolName: "write_file", from: T0 + 10_000, to: T0 + 60_000 });
  assert.match(
    toolWindow,
    /INDEX records_tool \(tool_name=\? AND rowid>\? AND rowid<\?\)/,
    toolWindow,
  );
  const unfiltered = plan({});
  assert.match(unfiltered, /SEARCH r USING INTEGER PRIMARY KEY \(rowid<\?\)/, unfiltered);
  // q: the full-text index drives, then the texts not indexed yet, each in seq order.
  // The other filters are checked in their indexes; a record is read only when it passes.
  const q = plan({ q: "read_file", toolName: "read_file", errorsOnly: true });
  assert.equal(
    q,
    [
      "CO-ROUTINE m",
      "SCAN f VIRTUAL TABLE INDEX 192:M1<",
      "SEARCH t EXISTS USING COVERING INDEX records_tool (tool_name=? AND rowid=?)",
      "SEARCH t EXISTS USING COVERING INDEX records_error (is_error=? AND rowid=?)",
      "SCAN m",
      "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)",
      "SEARCH p USING INTEGER PRIMARY KEY (rowid<?)",
      "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)",
    ].join("\n"),
  );
  assert.doesNotMatch(q, /TEMP B-TREE/, q);
  query.close();
});

Deno.test("SqliteQuery time windows agree with matches() whatever the writers' clocks did", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.db`;
  // Time mostly goes on, with jitter; at 300 a clock steps back an hour for 40 records; at 500
  // one record claims a time far in the future; some records have no valid time at all.
  const at = (i: number) => {
    if (i % 97 === 13) return "not a time";
    let t = T0 + i * 1000 + ((i * 7919) % 5) * 700;
    if (i >= 300 && i < 340) t -= 3_600_000;
    if (i === 500 || i === 1200) t += 86_400_000;
    if (i >= 1100 && i < 1130) t -= 3_600_000;
    return new Date(t).toISOString();
  };
  const records: AuditRecord[] = fill(path, 1400, at).map((l) => JSON.parse(l));
  const query = new SqliteQuery(path);
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const span = 1_500_000;
  for (let round = 0; round < 150; round++) {
    const a = T0 - 4_000_000 + Math.floor(random() * (span + 4_000_000));
    const b = a + Math.floor(random() * 300_000);
    const filter: RecordFilter = round % 3 === 0
      ? { from: a }
      : round % 3 === 1
      ? { to: b }
      : { from: a, to: b };
    if (round % 5 === 0) filter.toolName = "read_file";
    if (round % 7 === 0) filter.q = "file-3";
    if (round % 11 === 0) filter.fromSeq = 250;
    const want = records.filter((r) => matches(r, filter)).map((r) => r.seq);
    const name = JSON.stringify(filter);
    assert.deepEqual(await allPages(query, filter, "newest", 23), want.toReversed(), name);
    assert.deepEqual(await allPages(query, filter, "oldest", 50), want, name);
    assert.deepEqual(await query.stats(filter), oracleStats(records, filter), name);
  }
  query.close();
});
