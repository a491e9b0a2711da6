import assert from "node:assert/strict";
import { openQuery } from "../audit/storage/open.ts";
import type { Page, PageRequest, ReadRecord, RecordQuery } from "../audit/storage/query.ts";
import { type FeedOptions, RecordFeed, TooManyStreamsError } from "./feed.ts";
import { PING, RETRY } from "./sse.ts";
import { type BackendName, ChainLogs, writeCalls } from "./testdata/test_log.ts";

const BACKENDS: readonly BackendName[] = ["jsonl", "sqlite"];
const SECRET = "0123456789abcdef0123456789abcdef";
const silent = { warn: () => {} };
// No poll unless a test asks for one: records arrive through the log's observer.
const NO_POLL = 3_600_000;

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

interface Block {
  id: string | null;
  event: string | null;
  data: string[];
  comment: string | null;
  retry: string | null;
}

/** Reads an event stream block by block, as a client does. */
class Events {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #text = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** The next block (event or comment); null when the stream ended. */
  async next(): Promise<Block | null> {
    for (;;) {
      const end = this.#text.indexOf("\n\n");
      if (end !== -1) {
        const text = this.#text.slice(0, end);
        this.#text = this.#text.slice(end + 2);
        const block: Block = { id: null, event: null, data: [], comment: null, retry: null };
        for (const line of text.split("\n")) {
          if (line.startsWith(":")) block.comment = line.slice(1).trim();
          else if (line.startsWith("id: ")) block.id = line.slice(4);
          else if (line.startsWith("event: ")) block.event = line.slice(7);
          else if (line.startsWith("data: ")) block.data.push(line.slice(6));
          else if (line.startsWith("retry: ")) block.retry = line.slice(7);
          else throw new Error(`unexpected line in the stream: ${line}`);
        }
        return block;
      }
      const { value, done } = await this.#reader.read();
      if (done) {
        assert.equal(this.#text, "", "the stream ends between events");
        return null;
      }
      this.#text += this.#decoder.decode(value, { stream: true });
    }
  }

  /** The next record event (heartbeats passed over): its seq and data. */
  async record(): Promise<{ seq: number; data: string }> {
    for (;;) {
      const b = await this.next();
      assert.ok(b !== null, "the stream ended before the record expected");
      if (b.comment === "ping") continue;
      assert.equal(b.event, "record");
      assert.equal(b.data.length, 1);
      return { seq: Number(b.id), data: b.data[0]! };
    }
  }

  /** The `retry` block every stream starts with. */
  async start(): Promise<void> {
    const b = await this.next();
    assert.equal(b?.retry, "2000");
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** Resolves when the feed has handed out the record with seq `seq` (to listeners, then streams). */
function handedOut(feed: RecordFeed, seq: number): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const stop = feed.onRecords((records) => {
    if (records[records.length - 1]!.record.seq >= seq) {
      stop();
      resolve();
    }
  });
  return promise;
}

/** A query that counts its pages, and can fail them while `failing` is set. */
class CountingQuery implements RecordQuery {
  pages = 0;
  failing: Error | null = null;
  #inner: RecordQuery | null = null;
  readonly #open: () => RecordQuery;
  #waiting: { count: number; resolve: () => void }[] = [];

  constructor(open: () => RecordQuery) {
    this.#open = open;
  }

  page(request: PageRequest): Promise<Page> {
    this.pages++;
    for (const w of this.#waiting.filter((w) => this.pages >= w.count)) w.resolve();
    this.#waiting = this.#waiting.filter((w) => this.pages < w.count);
    if (this.failing !== null) return Promise.reject(this.failing);
    this.#inner ??= this.#open();
    return this.#inner.page(request);
  }

  /** Resolves once `count` pages were asked for in all. */
  pagesAsked(count: number): Promise<void> {
    if (this.pages >= count) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push({ count, resolve });
    return promise;
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

/** A feed of `query`'s log, once it knows where the log ends (a stream from now on starts there). */
async function started(
  query: CountingQuery,
  options: Partial<FeedOptions> = {},
): Promise<RecordFeed> {
  const feed = new RecordFeed(query, { logger: silent, pollMs: NO_POLL, ...options });
  // The log's end, then a look after it.
  await query.pagesAsked(2);
  return feed;
}

for (const backend of BACKENDS) {
  Deno.test(`feed (${backend}): a stream catches up from a seq in pages, then goes on live, with no gap or duplicate while two writers store records`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    const a = logs.writer();
    const b = logs.writer();
    writeCalls(a, 1200);
    const query = openQuery(logs.path);
    try {
      // Writer a is this process's log (its observer wakes the feed); b is another process's,
      // found by the poll.
      await using feed = new RecordFeed(query, { logger: silent, pollMs: 5 });
      a.observe(() => feed.wake());
      const events = new Events(feed.stream(100, true, new AbortController().signal));
      await events.start();
      const seen: number[] = [];
      const data: string[] = [];
      let last = 1200;
      let turn = 0;
      while (seen[seen.length - 1] !== last) {
        const e = await events.record();
        seen.push(e.seq);
        data.push(e.data);
        // Stored while the stream reads its pages and after it joined the live feed.
        if (seen.length % 150 === 0 && turn < 8) last = writeCalls(turn++ % 2 === 0 ? a : b, 60, 7);
      }
      assert.equal(turn, 8, "records were stored while the stream was read");
      assert.deepEqual(seen, range(101, last));
      const stored: string[] = [];
      for await (const r of query.stream({ fromSeq: 101 })) stored.push(r.line);
      assert.deepEqual(data, stored, "each event's data is the exact stored line");
      await events.cancel();
    } finally {
      query.close();
    }
  });

  Deno.test(`feed (${backend}): a client reconnecting with Last-Event-ID gets exactly the records after it`, async () => {
    using logs = new ChainLogs(backend, SECRET);
    const log = logs.writer();
    writeCalls(log, 10);
    const query = new CountingQuery(() => openQuery(logs.path));
    try {
      await using feed = await started(query);
      log.observe(() => feed.wake());
      const first = new Events(feed.stream(null, false, new AbortController().signal));
      await first.start();
      writeCalls(log, 5);
      const got: number[] = [];
      for (let i = 0; i < 3; i++) got.push((await first.record()).seq);
      await first.cancel();
      assert.equal(feed.subscribers, 0, "a cancelled stream is let go");
      const lastEventId = got[got.length - 1]!;
      writeCalls(log, 7);
      const again = new Events(feed.stream(lastEventId, false, new AbortController().signal));
      await again.start();
      for (let seq = lastEventId + 1; seq <= 22; seq++) got.push((await again.record()).seq);
      assert.deepEqual(got, range(11, 22));
      await again.cancel();
    } finally {
      query.close();
    }
  });
}

Deno.test("feed: a stream from now on, or from past the log's end, starts with the next record stored", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer();
  writeCalls(log, 10);
  const query = new CountingQuery(() => openQuery(logs.path));
  try {
    await using feed = await started(query);
    log.observe(() => feed.wake());
    const now = new Events(feed.stream(null, false, new AbortController().signal));
    const ahead = new Events(feed.stream(10_000, false, new AbortController().signal));
    await now.start();
    await ahead.start();
    writeCalls(log, 3);
    for (const events of [now, ahead]) {
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await events.record()).seq);
      assert.deepEqual(got, [11, 12, 13]);
      await events.cancel();
    }
  } finally {
    query.close();
  }
});

Deno.test("feed: a client that stops reading is cut off at the queue's cap, and loses nothing on reconnecting", async () => {
  using logs = new ChainLogs("sqlite", SECRET);
  const log = logs.writer();
  writeCalls(log, 1);
  const query = new CountingQuery(() => openQuery(logs.path));
  try {
    await using feed = await started(query, { maxQueuedEvents: 20 });
    log.observe(() => feed.wake());
    const slow = new Events(feed.stream(null, true, new AbortController().signal));
    await slow.start();
    writeCalls(log, 1);
    assert.equal((await slow.record()).seq, 2, "live");
    // 100 records in one batch while the client reads nothing.
    const stored = handedOut(feed, 102);
    writeCalls(log, 100, 100);
    await stored;
    assert.equal(feed.subscribers, 0, "the stream was ended");
    assert.equal(await slow.next(), null, "its client sees it end");
    const again = new Events(feed.stream(2, true, new AbortController().signal));
    await again.start();
    const got = [];
    for (let i = 0; i < 100; i++) got.push((await again.record()).seq);
    assert.deepEqual(got, range(3, 102));
    await again.cancel();
  } finally {
    query.close();
  }
});

Deno.test("feed: the byte cap cuts off a client that stops reading too", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer();
  writeCalls(log, 1);
  const query = new CountingQuery(() => openQuery(logs.path));
  try {
    await using feed = await started(query, { maxQueuedBytes: 4096 });
    log.observe(() => feed.wake());
    const slow = new Events(feed.stream(null, true, new AbortController().signal));
    await slow.start();
    writeCalls(log, 1);
    assert.equal((await slow.record()).seq, 2);
    const stored = handedOut(feed, 22);
    writeCalls(log, 20, 20); // each record's line is several hundred bytes
    await stored;
    assert.equal(feed.subscribers, 0);
    assert.equal(await slow.next(), null);
  } finally {
    query.close();
  }
});

Deno.test("feed: at most maxSubscribers streams; a stream ended frees its place", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  writeCalls(logs.writer(), 3);
  const query = openQuery(logs.path);
  try {
    await using feed = new RecordFeed(query, {
      logger: silent,
      pollMs: NO_POLL,
      maxSubscribers: 2,
    });
    const first = new AbortController();
    feed.stream(null, false, first.signal);
    feed.stream(0, true, new AbortController().signal);
    assert.throws(
      () => feed.stream(null, false, new AbortController().signal),
      TooManyStreamsError,
    );
    first.abort();
    assert.equal(feed.subscribers, 1);
    const third = new Events(feed.stream(0, false, new AbortController().signal));
    await third.start();
    assert.equal((await third.record()).seq, 1);
    await third.cancel();
  } finally {
    query.close();
  }
});

Deno.test("feed: an idle stream sends the retry field, then only `: ping` comments", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  writeCalls(logs.writer(), 3);
  const query = openQuery(logs.path);
  try {
    await using feed = new RecordFeed(query, { logger: silent, pollMs: NO_POLL, heartbeatMs: 5 });
    const reader = feed.stream(null, false, new AbortController().signal).getReader();
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const { value } = await reader.read();
      assert.ok(value !== undefined);
      chunks.push(value);
    }
    assert.deepEqual(chunks, [RETRY, PING, PING]);
    await reader.cancel();
  } finally {
    query.close();
  }
});

Deno.test("feed: close() ends every stream, reading or not, and stops every timer", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const log = logs.writer();
  writeCalls(log, 700);
  const query = openQuery(logs.path);
  try {
    const feed = new RecordFeed(query, { logger: silent, pollMs: 5, heartbeatMs: 5 });
    const live = new Events(feed.stream(null, false, new AbortController().signal));
    await live.start();
    const catchingUp = new Events(feed.stream(0, true, new AbortController().signal));
    await catchingUp.start();
    assert.equal((await catchingUp.record()).seq, 1);
    const unread = feed.stream(0, false, new AbortController().signal);
    // Waits for a record; heartbeats come meanwhile.
    const pending = (async () => {
      for (let b = await live.next();; b = await live.next()) {
        if (b?.comment !== "ping") return b;
      }
    })();
    await feed[Symbol.asyncDispose]();
    assert.equal(feed.subscribers, 0);
    assert.equal(await pending, null, "a read waiting for a record gets the end");
    let rest = 0;
    while (await catchingUp.next() !== null) rest++;
    assert.ok(rest < 699, "a stream catching up stops");
    assert.equal((await unread.getReader().read()).done, true);
    const after = feed.stream(0, false, new AbortController().signal).getReader();
    assert.equal((await after.read()).done, true, "a stream asked for after close is over");
  } finally {
    query.close();
  }
});

Deno.test("feed: a failing read is logged once and retried at each poll; records flow once it works", async () => {
  using logs = new ChainLogs("jsonl", SECRET);
  const warnings: string[] = [];
  const query = new CountingQuery(() => openQuery(logs.path));
  // No log yet: every read fails.
  query.failing = new Error("no log yet");
  try {
    await using feed = new RecordFeed(query, {
      logger: { warn: (msg: string) => void warnings.push(msg) },
      pollMs: 2,
    });
    await query.pagesAsked(5);
    assert.equal(warnings.length, 1, "logged once, not at every poll");
    const log = logs.writer();
    writeCalls(log, 4);
    query.failing = null;
    const known = query.pages;
    await query.pagesAsked(known + 2);
    const got: number[] = [];
    const stop = feed.onRecords((records) => got.push(...records.map((r) => r.record.seq)));
    const stored = handedOut(feed, 7);
    writeCalls(log, 3);
    await stored;
    stop();
    assert.deepEqual(got, [5, 6, 7], "records stored after the feed found the log's end");
    assert.equal(warnings.length, 1);
  } finally {
    query.close();
  }
});

Deno.test("feed: listeners get every new record once, in seq order, in reads of at most 500", async () => {
  using logs = new ChainLogs("sqlite", SECRET);
  const log = logs.writer();
  writeCalls(log, 2);
  const query = new CountingQuery(() => openQuery(logs.path));
  try {
    await using feed = new RecordFeed(query, { logger: silent, pollMs: NO_POLL });
    await query.pagesAsked(2); // the log's end, then a look after it
    const batches: ReadRecord[][] = [];
    feed.onRecords((records) => batches.push([...records]));
    const stored = handedOut(feed, 1236);
    writeCalls(log, 1234, 1234);
    // Many wakes for one batch: coalesced.
    for (let i = 0; i < 10; i++) feed.wake();
    await stored;
    assert.deepEqual(batches.map((b) => b.length), [500, 500, 234]);
    assert.deepEqual(batches.flat().map((r) => r.record.seq), range(3, 1236));
  } finally {
    query.close();
  }
});
