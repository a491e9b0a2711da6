import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AuditLog } from "../audit/chain.ts";
import { hmacEntry, KeyRing } from "../audit/key_file.ts";
import { openQuery } from "../audit/storage/open.ts";
import type { Page, PageRequest, ReadRecord, RecordQuery } from "../audit/storage/query.ts";
import type { Rotation } from "../audit/storage/rotation.ts";
import { verifyCommand } from "../cli/verify_command.ts";
import { type ChainStatusOptions, ChainStatusTracker, shellQuote } from "./chain_status.ts";
import { RecordFeed } from "./feed.ts";
import { type BackendName, ChainLogs, NO_ROTATION, writeCalls } from "./testdata/test_log.ts";

const BACKENDS: readonly BackendName[] = ["jsonl", "sqlite"];
const SECRET = "0123456789abcdef0123456789abcdef";
const KEYS = new KeyRing([hmacEntry(SECRET, undefined, "AUDIT_SECRET")]);
const silent = { warn: () => {} };

/** Stores `n` records with `log`, in batches of 50; returns the last seq stored. */
function write(log: AuditLog, n: number): number {
  return writeCalls(log, n, 50);
}

/** A log of `n` records ending in `audit/stop`, its writer closed. */
function cleanLog(logs: ChainLogs, n: number, rotation: Rotation = NO_ROTATION): number {
  const log = logs.writer(rotation);
  write(log, n);
  log.stop({ reason: "test" });
  logs.closeWriters();
  return log.seq;
}

/** A query that counts the pages asked of it. */
class CountingQuery implements RecordQuery {
  pages = 0;
  #inner: RecordQuery | null = null;
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
  }

  page(request: PageRequest): Promise<Page> {
    this.pages++;
    this.#inner ??= openQuery(this.#path);
    return this.#inner.page(request);
  }

  stats(): never {
    throw new Error("not used");
  }

  stream(): never {
    throw new Error("not used");
  }

  close(): void {
    this.#inner?.close();
  }
}

/** A tracker of `path`, its reads counted. */
function tracker(
  path: string,
  more: Partial<ChainStatusOptions> = {},
): { tracker: ChainStatusTracker; lines: () => number } {
  let lines = 0;
  const t = new ChainStatusTracker({
    path,
    keys: KEYS,
    logger: silent,
    onRead: (n) => lines += n,
    ...more,
  });
  return { tracker: t, lines: () => lines };
}

/** What `mcp-audit verify` says of the log: its exit code and first line. */
async function verify(path: string): Promise<{ code: number; summary: string }> {
  const out: string[] = [];
  const code = await verifyCommand([path], {
    env: { AUDIT_SECRET: SECRET },
    out: (line) => out.push(line),
    progress: undefined,
  });
  return { code, summary: out[0] ?? "" };
}

/** The stored lines of a JSONL file. */
function linesOf(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
}

/** A copy of the log at `logs.path` beside it, changed by `change` (lines of JSONL, rows of SQLite). */
function tamperedCopy(
  logs: ChainLogs,
  jsonl: (lines: string[]) => string[],
  sql: string,
): string {
  const copy = `${logs.dir}/copy-${crypto.randomUUID()}${
    logs.backend === "jsonl" ? ".jsonl" : ".db"
  }`;
  if (logs.backend === "jsonl") {
    Deno.writeTextFileSync(copy, jsonl(linesOf(logs.path)).join("\n") + "\n");
  } else {
    Deno.copyFileSync(logs.path, copy);
    const db = new DatabaseSync(copy);
    try {
      // Whoever edits rows drops the append-only triggers first.
      db.exec("DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete");
      db.exec(sql);
    } finally {
      db.close();
    }
  }
  return copy;
}

for (const backend of BACKENDS) {
  Deno.test(`chain status (${backend}): a clean log is intact, checked with the key, as mcp-audit verify finds it`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    const last = cleanLog(logs, 300);
    await using t = tracker(logs.path).tracker;
    assert.equal(t.status().state, "checking", "not checked yet");
    t.start();
    await t.idle();
    const s = t.status();
    assert.equal(s.state, "intact");
    assert.equal(s.records, last);
    assert.equal(s.last_seq, last);
    assert.equal(s.problems, 0);
    assert.equal(s.first_problem, null);
    assert.equal(s.signatures_checked, true);
    assert.equal(s.note, null, "it ends with audit/stop: nothing to note");
    assert.equal(s.command, `mcp-audit verify ${logs.path}`);
    assert.ok(!Number.isNaN(Date.parse(s.checked_at)));
    const cli = await verify(logs.path);
    assert.equal(cli.code, 0, cli.summary);
  });

  Deno.test(`chain status (${backend}): a byte changed in a record in the middle is a problem at its seq`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    cleanLog(logs, 120);
    const copy = tamperedCopy(
      logs,
      (lines) => lines.map((l, i) => i === 56 ? l.replace("message 57", "massage 57") : l),
      "UPDATE records SET line = replace(line, 'message 57', 'massage 57') WHERE seq = 57",
    );
    await using t = tracker(copy).tracker;
    t.start();
    await t.idle();
    const s = t.status();
    assert.equal(s.state, "problems");
    assert.equal(s.first_problem?.seq, 57);
    assert.equal(s.first_problem?.kind, "modified");
    assert.ok(s.problems >= 1);
    assert.equal(s.records, 121, "every record was checked");
    const cli = await verify(copy);
    assert.equal(cli.code, 1, cli.summary);
  });

  Deno.test(`chain status (${backend}): a deleted record is missing at its seq`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    cleanLog(logs, 120);
    const copy = tamperedCopy(
      logs,
      (lines) => lines.filter((_, i) => i !== 56),
      "DELETE FROM records WHERE seq = 57",
    );
    await using t = tracker(copy).tracker;
    t.start();
    await t.idle();
    const s = t.status();
    assert.equal(s.state, "problems");
    assert.deepEqual(s.first_problem?.seq, 57);
    assert.equal(s.first_problem?.kind, "missing");
  });

  Deno.test(`chain status (${backend}): records the feed reads are checked as they come, without reading the log again`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    const log = logs.writer();
    write(log, 200);
    const catchUp = new CountingQuery(logs.path);
    const feedQuery = openQuery(logs.path);
    try {
      const { tracker: t, lines } = tracker(logs.path, { query: catchUp });
      await using _t = t;
      await using feed = new RecordFeed(feedQuery, { logger: silent, pollMs: 3_600_000 });
      feed.onRecords((records) => t.follow(records));
      log.observe(() => feed.wake());
      t.start();
      await t.idle();
      assert.equal(lines(), 200, "the first pass read every line once");
      const live = t.status();
      assert.equal(live.state, "intact", live.first_problem?.detail);
      assert.match(live.note ?? "", /no audit\/stop after seq 200 yet/);
      for (let round = 0; round < 3; round++) {
        const done = handedOut(feed, log.seq + 40);
        write(log, 40);
        await done;
        const s = t.status();
        assert.equal(s.state, "intact");
        assert.equal(s.records, 240 + round * 40);
        assert.equal(s.last_seq, 240 + round * 40);
      }
      const stopped = handedOut(feed, log.seq + 1);
      log.stop({ reason: "test" });
      await stopped;
      assert.equal(t.status().note, null, "the log now ends with audit/stop");
      assert.equal(lines(), 200, "nothing was read again");
      assert.equal(catchUp.pages, 0, "nothing was read to catch up");
    } finally {
      feedQuery.close();
      catchUp.close();
    }
  });
}

/** Resolves once the feed handed out the record with seq `seq` (after the listeners before). */
function handedOut(feed: RecordFeed, seq: number): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const stop = feed.onRecords((records: readonly ReadRecord[]) => {
    if (records[records.length - 1]!.record.seq >= seq) {
      stop();
      resolve();
    }
  });
  return promise;
}

Deno.test("chain status: records that do not continue where the check stands are preceded by the ones in between, read once", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer();
  write(log, 100);
  const catchUp = new CountingQuery(logs.path);
  const reader = openQuery(logs.path);
  try {
    const { tracker: t, lines } = tracker(logs.path, { query: catchUp });
    await using _t = t;
    t.start();
    await t.idle();
    write(log, 10);
    const tail = await reader.page({ filter: {}, order: "oldest", after: 107, limit: 10 });
    t.follow(tail.records);
    await t.idle();
    const s = t.status();
    assert.equal(s.state, "intact", s.first_problem?.detail);
    assert.equal(s.records, 110);
    assert.equal(s.last_seq, 110);
    assert.equal(lines(), 110, "101-110 read once, nothing before them again");
    t.follow(tail.records);
    assert.equal(t.status().records, 110, "records already checked are passed over");
  } finally {
    reader.close();
    catchUp.close();
  }
});

Deno.test("chain status: a rotated JSONL log is checked across its archives, compressed or not", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer({ ...NO_ROTATION, max_size_bytes: 8000, compress: "gzip" });
  write(log, 400);
  log.stop({ reason: "test" });
  await logs.settled();
  logs.closeWriters();
  const last = log.seq;
  const archives = [...Deno.readDirSync(logs.dir)].filter((e) =>
    e.name !== "audit.jsonl" &&
    e.name.startsWith("audit.jsonl.")
  );
  assert.ok(archives.some((a) => a.name.endsWith(".gz")), "some archives are compressed");
  assert.ok(archives.length >= 3);
  await using t = tracker(logs.path).tracker;
  t.start();
  await t.idle();
  const s = t.status();
  assert.equal(s.state, "intact", s.first_problem?.detail);
  assert.equal(s.records, last);
  assert.equal((await verify(logs.path)).code, 0);
});

Deno.test("chain status: a record changed in an archive of a rotated log is found at its seq", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  cleanLog(logs, 400, { ...NO_ROTATION, max_size_bytes: 8000 });
  const archive = [...Deno.readDirSync(logs.dir)].map((e) => `${logs.dir}/${e.name}`)
    .filter((p) => /audit\.jsonl\.\d{8}T/.test(p)).sort()[0]!;
  const lines = linesOf(archive);
  const middle = lines[Math.floor(lines.length / 2)]!;
  const seq = Number(/"seq":(\d+)/.exec(middle)?.[1]);
  Deno.writeTextFileSync(
    archive,
    lines.map((l) => l === middle ? l.replace(`message ${seq}`, `massage ${seq}`) : l).join("\n") +
      "\n",
  );
  await using t = tracker(logs.path).tracker;
  t.start();
  await t.idle();
  const s = t.status();
  assert.equal(s.state, "problems");
  assert.equal(s.first_problem?.seq, seq);
});

Deno.test("chain status: checked with another key, every record is a problem of the key", async () => {
  using logs = new ChainLogs("sqlite", SECRET);
  cleanLog(logs, 20);
  const other = new KeyRing([hmacEntry("another secret of 32 characters!", undefined, "test")]);
  await using t = tracker(logs.path, { keys: other }).tracker;
  t.start();
  await t.idle();
  const s = t.status();
  assert.equal(s.state, "problems");
  assert.equal(s.first_problem?.kind, "wrong key");
  assert.equal(s.first_problem?.seq, 1);
});

Deno.test("chain status: without keys the structure is checked, and the status says signatures were not", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  cleanLog(logs, 20);
  await using t = tracker(logs.path, { keys: null }).tracker;
  t.start();
  await t.idle();
  const s = t.status();
  assert.equal(s.state, "intact");
  assert.equal(s.signatures_checked, false);
  assert.match(s.note ?? "", /no key given/);
});

Deno.test("chain status: a log that is not there is unavailable, and checked once records are stored", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  let now = Date.UTC(2026, 5, 10, 22);
  await using t = tracker(logs.path, { now: () => new Date(now) }).tracker;
  t.start();
  await t.idle();
  const gone = t.status();
  assert.equal(gone.state, "unavailable");
  assert.match(gone.note ?? "", /no log at/);
  assert.equal(gone.records, 0);
  const log = logs.writer();
  write(log, 5);
  const reader = openQuery(logs.path);
  try {
    const records = (await reader.page({ filter: {}, order: "oldest", limit: 10 })).records;
    t.follow(records);
    await t.idle();
    assert.equal(t.status().state, "unavailable", "looked for again at most every 10 s");
    now += 10_000;
    t.follow(records);
    await t.idle();
    const s = t.status();
    assert.equal(s.state, "intact", s.note ?? "");
    assert.equal(s.records, 5);
  } finally {
    reader.close();
  }
});

Deno.test("chain status: the first pass lets other work run, counts up while checking, and close() stops it", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const last = cleanLog(logs, 1500);
  const { tracker: t, lines } = tracker(logs.path, { sliceMs: 0 });
  t.start();
  const during = await new Promise<ReturnType<typeof t.status>>((resolve) =>
    setTimeout(() => resolve(t.status()), 0)
  );
  assert.equal(during.state, "checking");
  assert.ok(during.records < last, "other work ran before the pass ended");
  await t[Symbol.asyncDispose]();
  assert.ok(lines() < last, `stopped early (${lines()} of ${last} lines read)`);
});

Deno.test("chain status: a last line with no newline is not checked yet; the crash recovery that follows makes it a problem", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer();
  write(log, 30);
  logs.closeWriters();
  // A writer killed in the middle of a line.
  Deno.writeTextFileSync(logs.path, '{"client_id":"claude-desktop","cli', { append: true });
  const feedQuery = openQuery(logs.path);
  try {
    await using t = tracker(logs.path).tracker;
    await using feed = new RecordFeed(feedQuery, { logger: silent, pollMs: 3_600_000 });
    feed.onRecords((records) => t.follow(records));
    t.start();
    await t.idle();
    const before = t.status();
    assert.equal(before.state, "intact");
    assert.equal(before.records, 30);
    assert.match(before.note ?? "", /has no newline yet/);
    // The next proxy finds the line cut short, keeps it, and says so in an audit/recover.
    const next = logs.writer();
    next.observe(() => feed.wake());
    const done = handedOut(feed, 33);
    write(next, 2);
    await done;
    const after = t.status();
    assert.equal(after.state, "problems", JSON.stringify(after));
    assert.equal(after.first_problem?.kind, "torn");
    assert.equal((await verify(logs.path)).code, 1, "mcp-audit verify says so too");
  } finally {
    feedQuery.close();
  }
});

Deno.test("shellQuote leaves plain paths alone and quotes the rest for a POSIX shell", () => {
  assert.equal(shellQuote("/var/log/mcp-audit/audit.jsonl"), "/var/log/mcp-audit/audit.jsonl");
  assert.equal(shellQuote("my logs/audit.jsonl"), "'my logs/audit.jsonl'");
  assert.equal(shellQuote("it's; rm -rf $HOME"), "'it'\\''s; rm -rf $HOME'");
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("-rf.jsonl"), "./-rf.jsonl", "a leading - is no flag");
  assert.equal(shellQuote("--x y"), "'./--x y'");
});
