import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { JsonlQuery, type JsonlQueryOptions } from "./jsonl_query.ts";
import { LogNotFoundError } from "./log_lines.ts";
import { StorageError } from "./errors.ts";
import { QueryError, type ReadRecord, type RecordFilter } from "./query.ts";
import { recordText } from "../record_text.ts";
import { type AuditRecord, EventMethod, GENESIS } from "../record.ts";

const T0 = Date.UTC(2026, 5, 10, 0, 0, 0);

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "jsonl_query_test_" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

/** Numbers and links records as the chain does: `seq` from 1, `prev` the hash of the line before. */
class Chain {
  seq = 0;
  prev = GENESIS;

  /** The canonical line of the next record, built from `fields` over a plain request. */
  next(fields: Partial<Omit<AuditRecord, "seq" | "prev" | "sig">> = {}): string {
    this.seq++;
    const r: Omit<AuditRecord, "sig"> = {
      v: 1,
      seq: this.seq,
      id: `01J${String(this.seq).padStart(10, "0")}`,
      ts: new Date(T0 + this.seq * 1000).toISOString(),
      kind: "request",
      direction: "client_to_server",
      transport: "stdio",
      upstream: null,
      session: "s1",
      jsonrpc_id: this.seq,
      method: "tools/call",
      tool_name: "echo",
      params: { name: "echo", arguments: { text: `message ${this.seq}` } },
      result: null,
      error: null,
      redacted: [],
      duration_ms: null,
      decision: null,
      client_id: "client-a",
      server_id: "server-a",
      client_info: null,
      wire_sha256: null,
      prev: this.prev,
      ...fields,
    };
    const line = recordText(r).signed(null);
    this.prev = createHash("sha256").update(line).digest("hex");
    return line;
  }

  /** The first record of a file that starts mid-chain. */
  rotate(archive: string): string {
    return this.next({
      kind: "event",
      direction: "proxy",
      method: EventMethod.Rotate,
      tool_name: null,
      jsonrpc_id: null,
      session: null,
      params: { archive, cause: "size", continues_after_seq: this.seq },
    });
  }
}

/** The varied record of number `i`, for filters to pick among. */
function varied(i: number): Partial<Omit<AuditRecord, "seq" | "prev" | "sig">> {
  switch (i % 6) {
    case 0:
      return { tool_name: i % 4 === 0 ? "search" : "echo", session: "s2" };
    case 1:
      return {
        kind: "response",
        direction: "server_to_client",
        method: "tools/call",
        result: { content: [{ type: "text", text: `Hello World ${i}` }], isError: i % 5 === 1 },
      };
    case 2:
      return {
        decision: i % 4 === 2
          ? { action: "deny", rule: 0, reason: "no" }
          : { action: "deny", rule: 0, reason: "no", enforced: false },
        client_id: "client-b",
      };
    case 3:
      return {
        kind: "error",
        direction: "server_to_client",
        error: { code: -32000, message: "boom" },
        server_id: "server-b",
      };
    case 4:
      return {
        kind: "notification",
        method: "notifications/progress",
        tool_name: null,
        decision: { action: "rate_limited", rule: null, reason: "too many" },
      };
    default:
      return { method: "tools/list", tool_name: null, params: { cursor: `"a":${i}` } };
  }
}

interface Built {
  log: string;
  chain: Chain;
  /** Every record's line, by seq (index 0 unused). */
  lines: string[];
}

/**
 * A log of 3 archives (the first compressed; clash numbers .2 and .10, which text order would
 * swap) and an active file: 40 records each, a foreign line in an archive and a torn last line.
 */
async function buildLog(dir: string, perFile = 40): Promise<Built> {
  const log = `${dir}/audit.jsonl`;
  const chain = new Chain();
  const lines = [""];
  const file = (first: string | null): string[] => {
    const out: string[] = [];
    if (first !== null) out.push(first);
    while (out.length < perFile) out.push(chain.next(varied(chain.seq + 1)));
    lines.push(...out);
    return out;
  };
  const names = ["20260610T000000Z.gz", "20260610T010000Z.2", "20260610T010000Z.10"];
  let first: string | null = null;
  for (const name of names) {
    const text = file(first).join("\n") + "\n";
    if (name.endsWith(".gz")) {
      const gz = ReadableStream.from([new TextEncoder().encode(text)])
        .pipeThrough(new CompressionStream("gzip"));
      Deno.writeFileSync(`${log}.${name}`, new Uint8Array(await new Response(gz).arrayBuffer()));
    } else {
      // A line no writer of ours wrote, in the middle of an archive.
      const [head, ...rest] = text.split("\n");
      Deno.writeTextFileSync(`${log}.${name}`, [head, "not json {", ...rest].join("\n"));
    }
    first = chain.rotate(`audit.jsonl.${name.replace(/\.gz$/, "")}`);
  }
  Deno.writeTextFileSync(log, file(first).join("\n") + "\n" + '{"client_id":"torn');
  return { log, chain, lines };
}

function seqs(records: ReadRecord[]): number[] {
  return records.map((r) => r.record.seq);
}

async function collect(q: JsonlQuery, filter: RecordFilter): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  for await (const r of q.stream(filter)) out.push(r);
  return out;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

Deno.test("stream gives every record of the archives and the active file once, in seq order", async () => {
  using tmp = tempDir();
  const { log, lines } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const all = await collect(q, {});
  assert.deepEqual(seqs(all), range(1, 160));
  // The stored line comes back exactly; the foreign and the torn lines are not records.
  assert.deepEqual(all.map((r) => r.line), lines.slice(1));
  q.close();
});

Deno.test("each filter selects what it names", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const all = (await collect(q, {})).map((r) => r.record);
  const cases: [RecordFilter, (r: AuditRecord) => boolean][] = [
    [{ kinds: ["response", "error"] }, (r) => r.kind === "response" || r.kind === "error"],
    [{ direction: "server_to_client" }, (r) => r.direction === "server_to_client"],
    [{ method: "tools/list" }, (r) => r.method === "tools/list"],
    [{ toolName: "search" }, (r) => r.tool_name === "search"],
    [{ session: "s2" }, (r) => r.session === "s2"],
    [{ clientId: "client-b" }, (r) => r.client_id === "client-b"],
    [{ serverId: "server-b" }, (r) => r.server_id === "server-b"],
    [{ action: "rate_limited" }, (r) => r.decision?.action === "rate_limited"],
    [{ action: "deny" }, (r) => r.decision?.action === "deny"],
    [
      { errorsOnly: true },
      (r) =>
        r.error !== null ||
        (typeof r.result === "object" && r.result !== null && "isError" in r.result &&
          r.result.isError === true),
    ],
    [{ from: T0 + 50_000, to: T0 + 70_000 }, (r) => r.seq >= 50 && r.seq < 70],
    [{ fromSeq: 45, toSeq: 130 }, (r) => r.seq >= 45 && r.seq <= 130],
    [
      { kinds: ["request"], clientId: "client-b", fromSeq: 100 },
      (r) => r.kind === "request" && r.client_id === "client-b" && r.seq >= 100,
    ],
  ];
  for (const [filter, pick] of cases) {
    const expected = all.filter(pick).map((r) => r.seq);
    assert.ok(expected.length > 0 && expected.length < all.length, JSON.stringify(filter));
    assert.deepEqual(seqs(await collect(q, filter)), expected, JSON.stringify(filter));
  }
  q.close();
});

Deno.test("q matches params, results and errors case-insensitively; under 3 characters is refused", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const hello = seqs(await collect(q, { q: "hELLO wORLD" }));
  // Every response but the rotation events that open the later files (seq 41, 81, 121).
  assert.deepEqual(hello, range(1, 160).filter((i) => i % 6 === 1 && ![41, 81, 121].includes(i)));
  // Punctuation inside the text: `"a":` as stored (escaped) in the cursor string.
  assert.deepEqual(
    seqs(await collect(q, { q: '\\"A\\":13' })),
    range(1, 160).filter((i) => i % 6 === 5 && String(i).startsWith("13")),
  );
  assert.deepEqual(
    seqs(await collect(q, { q: "BOOM" })),
    seqs(await collect(q, { kinds: ["error"] })),
  );
  // Not in params, results or errors: the session and client fields are not searched.
  assert.deepEqual(await collect(q, { q: "client-b" }), []);
  await assert.rejects(() => collect(q, { q: "ab" }), QueryError);
  await assert.rejects(() => q.page({ filter: { q: "é" }, order: "newest", limit: 5 }), QueryError);
  assert.equal((await collect(q, { q: "" })).length, 160);
  q.close();
});

Deno.test("pages newest-first visit every record once while records are appended and rotated", async () => {
  using tmp = tempDir();
  const { log, chain } = await buildLog(tmp.dir);
  // The torn line is closed as a writer's recovery would before appending.
  Deno.writeTextFileSync(log, "\n", { append: true });
  const q = new JsonlQuery(log);
  const filters: RecordFilter[] = [{}, { kinds: ["request"] }, { q: "hello world" }];
  for (const [run, filter] of filters.entries()) {
    const expected = seqs(await collect(q, filter)).reverse();
    const seen: number[] = [];
    let after: number | undefined;
    for (let page = 0; page < 100; page++) {
      const p = await q.page({
        filter,
        order: "newest",
        limit: 7,
        ...(after === undefined ? {} : { after }),
      });
      seen.push(...seqs(p.records));
      // New records arrive between pages; a rotation archives the active file once.
      Deno.writeTextFileSync(log, chain.next(varied(chain.seq + 1)) + "\n", { append: true });
      if (page === 3) {
        const name = `audit.jsonl.20260611T0${run}0000Z`;
        Deno.renameSync(log, `${tmp.dir}/${name}`);
        Deno.writeTextFileSync(log, chain.rotate(name) + "\n");
      }
      if (p.next === null) break;
      assert.equal(p.next, p.records[p.records.length - 1]!.record.seq);
      after = p.next;
    }
    assert.deepEqual(seen, expected, JSON.stringify(filter));
  }
  q.close();
});

Deno.test("pages oldest-first visit every record once, the ones appended meanwhile included", async () => {
  using tmp = tempDir();
  const { log, chain } = await buildLog(tmp.dir);
  Deno.writeTextFileSync(log, "\n", { append: true });
  const q = new JsonlQuery(log);
  const seen: number[] = [];
  let after: number | undefined;
  for (let page = 0; page < 100; page++) {
    const p = await q.page({
      filter: {},
      order: "oldest",
      limit: 9,
      ...(after === undefined ? {} : { after }),
    });
    seen.push(...seqs(p.records));
    if (page < 5) Deno.writeTextFileSync(log, chain.next() + "\n", { append: true });
    if (page === 8) {
      Deno.renameSync(log, `${log}.20260612T000000Z`);
      Deno.writeTextFileSync(log, chain.rotate("audit.jsonl.20260612T000000Z") + "\n");
    }
    if (p.next === null) break;
    after = p.next;
  }
  assert.deepEqual(seen, range(1, chain.seq));
  q.close();
});

Deno.test("a page holds at most limit records and next is null only at the end", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const last = await q.page({ filter: {}, order: "newest", limit: 3 });
  assert.deepEqual(seqs(last.records), [160, 159, 158]);
  assert.equal(last.next, 158);
  const tail = await q.page({ filter: {}, order: "newest", limit: 1000, after: 4 });
  assert.deepEqual(seqs(tail.records), [3, 2, 1]);
  assert.equal(tail.next, null);
  const exact = await q.page({ filter: {}, order: "oldest", limit: 160 });
  assert.equal(exact.records.length, 160);
  assert.equal(exact.next, null);
  const one = await q.page({ filter: {}, order: "oldest", limit: 1, after: 159 });
  assert.deepEqual([seqs(one.records), one.next], [[160], null]);
  const none = await q.page({ filter: {}, order: "newest", limit: 5, after: 1 });
  assert.deepEqual(none, { records: [], next: null });
  const bounded = await q.page({ filter: { fromSeq: 50, toSeq: 60 }, order: "newest", limit: 5 });
  assert.deepEqual(seqs(bounded.records), [60, 59, 58, 57, 56]);
  q.close();
});

Deno.test("a bad limit, cursor or filter number is a QueryError", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  for (const limit of [0, 1001, 1.5, NaN]) {
    await assert.rejects(() => q.page({ filter: {}, order: "newest", limit }), QueryError);
  }
  for (const after of [-1, 2.5, Infinity]) {
    await assert.rejects(
      () => q.page({ filter: {}, order: "oldest", limit: 5, after }),
      QueryError,
    );
  }
  await assert.rejects(() => q.stats({ fromSeq: NaN }), QueryError);
  q.close();
});

Deno.test("stats count the filtered records in one pass", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const all = (await collect(q, {})).map((r) => r.record);
  const s = await q.stats({});
  const count = (pick: (r: AuditRecord) => boolean) => all.filter(pick).length;
  assert.equal(s.records, 160);
  assert.deepEqual([s.firstSeq, s.lastSeq], [1, 160]);
  assert.deepEqual([s.firstTs, s.lastTs], [all[0]!.ts, all[159]!.ts]);
  assert.deepEqual(s.byKind, {
    request: count((r) => r.kind === "request"),
    response: count((r) => r.kind === "response"),
    error: count((r) => r.kind === "error"),
    notification: count((r) => r.kind === "notification"),
    event: count((r) => r.kind === "event"),
  });
  assert.equal(s.errors, (await collect(q, { errorsOnly: true })).length);
  assert.equal(s.denied, count((r) => r.seq % 6 === 2 && r.seq % 4 === 2));
  assert.ok(s.denied > 0 && s.denied < count((r) => r.decision?.action === "deny"));
  assert.equal(s.rateLimited, count((r) => r.decision?.action === "rate_limited"));
  const calls = (name: string) =>
    count((r) => r.kind === "request" && r.method === "tools/call" && r.tool_name === name);
  assert.deepEqual(s.topTools, [
    { name: "echo", count: calls("echo") },
    { name: "search", count: calls("search") },
  ]);
  const some = await q.stats({ fromSeq: 150 });
  assert.deepEqual([some.records, some.firstSeq, some.lastSeq], [11, 150, 160]);
  const none = await q.stats({ method: "nothing/here" });
  assert.deepEqual([none.records, none.firstSeq, none.firstTs, none.topTools], [0, null, null, []]);
  q.close();
});

Deno.test("files wholly outside fromSeq/toSeq are not read", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir, 2000);
  let bytes = 0;
  const q = new JsonlQuery(log, { onRead: (n) => bytes += n });
  const total = [...Deno.readDirSync(tmp.dir)]
    .reduce((sum, e) => sum + Deno.statSync(`${tmp.dir}/${e.name}`).size, 0);
  const active = Deno.statSync(log).size;
  assert.deepEqual(seqs(await collect(q, { fromSeq: 7500 })), range(7500, 8000));
  assert.ok(bytes < active / 2, `read ${bytes} of ${active} bytes of the active file`);
  bytes = 0;
  assert.deepEqual(seqs(await collect(q, { toSeq: 10 })), range(1, 10));
  // The compressed archive whole, and the first lines of the others.
  assert.ok(bytes < total / 2, `read ${bytes} of ${total} bytes`);
  q.close();
});

Deno.test("the newest page of a 200,000-record file reads only its tail; a page deep in it, little more", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const chain = new Chain();
  {
    using file = Deno.openSync(log, { write: true, create: true });
    const encoder = new TextEncoder();
    let batch: string[] = [];
    for (let i = 1; i <= 200_000; i++) {
      batch.push(chain.next(varied(i)));
      if (batch.length === 5000) {
        file.writeSync(encoder.encode(batch.join("\n") + "\n"));
        batch = [];
      }
    }
  }
  const size = Deno.statSync(log).size;
  let bytes = 0;
  const q = new JsonlQuery(log, { onRead: (n) => bytes += n });
  const newest = await q.page({ filter: {}, order: "newest", limit: 50 });
  assert.deepEqual(seqs(newest.records), range(199_951, 200_000).reverse());
  assert.ok(bytes <= 128 * 1024, `read ${bytes} bytes of ${size}`);

  bytes = 0;
  const deep = await q.page({ filter: {}, order: "newest", limit: 50, after: 100_001 });
  assert.deepEqual(seqs(deep.records), range(99_951, 100_000).reverse());
  assert.ok(bytes <= 1024 * 1024, `read ${bytes} bytes of ${size}`);

  bytes = 0;
  const later = await q.page({ filter: {}, order: "oldest", limit: 50, after: 150_000 });
  assert.deepEqual(seqs(later.records), range(150_001, 150_050));
  assert.ok(bytes <= 1024 * 1024, `read ${bytes} bytes of ${size}`);

  bytes = 0;
  const filtered = await q.page({ filter: { kinds: ["error"] }, order: "newest", limit: 10 });
  assert.deepEqual(
    seqs(filtered.records),
    range(199_941, 200_000).filter((i) => i % 6 === 3).reverse(),
  );
  assert.ok(bytes <= 128 * 1024, `read ${bytes} bytes of ${size}`);

  // A filter that matches nothing inside seq bounds reads the bounds, not the rest of the file:
  // backwards it stops at fromSeq, forwards at toSeq.
  const none = { method: "no/such", fromSeq: 190_001, toSeq: 190_500 };
  bytes = 0;
  const back = await q.page({ filter: none, order: "newest", limit: 10 });
  assert.deepEqual(back.records, []);
  assert.ok(bytes <= 1024 * 1024, `read ${bytes} bytes of ${size}`);
  bytes = 0;
  const forward = await q.page({ filter: none, order: "oldest", limit: 10 });
  assert.deepEqual(forward.records, []);
  assert.ok(bytes <= 1024 * 1024, `read ${bytes} bytes of ${size}`);
  q.close();
});

Deno.test("a query changes nothing: no file created, written or locked", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const state = () =>
    [...Deno.readDirSync(tmp.dir)].map((e) => {
      const s = Deno.statSync(`${tmp.dir}/${e.name}`);
      return [e.name, s.size, s.mtime?.getTime()];
    }).sort();
  const before = state();
  const q = new JsonlQuery(log);
  await collect(q, {});
  await q.page({ filter: {}, order: "newest", limit: 10, after: 100 });
  await q.page({ filter: {}, order: "oldest", limit: 10, after: 100 });
  await q.stats({});
  q.close();
  assert.deepEqual(state(), before);
});

Deno.test("a missing log is LogNotFoundError; a closed query refuses reads", async () => {
  using tmp = tempDir();
  const missing = new JsonlQuery(`${tmp.dir}/none.jsonl`);
  await assert.rejects(
    () => missing.page({ filter: {}, order: "newest", limit: 5 }),
    LogNotFoundError,
  );
  missing.close();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const it = q.stream({})[Symbol.asyncIterator]();
  assert.equal((await it.next()).done, false);
  q.close();
  q.close();
  await assert.rejects(() => q.stats({}), StorageError);
  // The stream under way fails once it reaches the active file closed under it.
  await assert.rejects(async () => {
    for (let r = await it.next(); r.done !== true; r = await it.next()) { /* drain */ }
  }, StorageError);
});

Deno.test("the byte counter sees the reads", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  let bytes = 0;
  const options: JsonlQueryOptions = { onRead: (n) => bytes += n };
  const q = new JsonlQuery(log, options);
  await collect(q, {});
  assert.ok(bytes >= Deno.statSync(log).size);
  q.close();
});

Deno.test("a last record that lacks only its newline is read; a torn one is not", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  const chain = new Chain();
  const lines = [chain.next(), chain.next(), chain.next()];
  Deno.writeTextFileSync(log, lines.join("\n"));
  const q = new JsonlQuery(log);
  assert.deepEqual(seqs(await collect(q, {})), [1, 2, 3]);
  assert.deepEqual(seqs((await q.page({ filter: {}, order: "newest", limit: 2 })).records), [3, 2]);
  Deno.writeTextFileSync(log, lines.join("\n") + "\n" + chain.next().slice(0, 100));
  assert.deepEqual(seqs(await collect(q, {})), [1, 2, 3]);
  assert.deepEqual(seqs((await q.page({ filter: {}, order: "newest", limit: 2 })).records), [3, 2]);
  q.close();
});

Deno.test("stream stops with its signal's reason", async () => {
  using tmp = tempDir();
  const { log } = await buildLog(tmp.dir);
  const q = new JsonlQuery(log);
  const controller = new AbortController();
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const r of q.stream({}, controller.signal)) {
      seen.push(r.record.seq);
      if (r.record.seq === 100) controller.abort(new Error("stop here"));
    }
  }, /stop here/);
  assert.deepEqual(seen, range(1, 100));
  q.close();
});
