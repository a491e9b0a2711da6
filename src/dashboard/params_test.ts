import assert from "node:assert/strict";
import { JsonlQuery } from "../audit/storage/jsonl_query.ts";
import { BadRequestError, type ExchangesPage, type RecordsPage } from "./api.ts";
import { exchangeDetail, exchangesPage } from "./exchanges.ts";
import { goEntries } from "./go_compat.ts";
import { recordsPage } from "./records_view.ts";
import { sessionsPage } from "./sessions.ts";
import { CountingQuery } from "./testdata/counting_query.ts";
import { answer, call, T0, TestLog } from "./testdata/test_log.ts";
import { windowStats } from "./window_stats.ts";
import {
  daysFromCivil,
  PAIR_SEQS,
  parseCursor,
  parseFilter,
  parseInstant,
  parseLimit,
  parseRfc3339,
  seqCursor,
} from "./params.ts";

const qs = (s: string) => new URLSearchParams(s);

function refused(s: string, fn: (p: URLSearchParams) => unknown, names: RegExp): void {
  assert.throws(() => fn(qs(s)), (e: unknown) => {
    assert.ok(e instanceof BadRequestError, `${s}: ${String(e)}`);
    assert.match(e.message, names, s);
    return true;
  });
}

Deno.test("parseFilter reads every parameter into the query API's filter", () => {
  const f = parseFilter(qs(
    "method=tools/call&tool=read_file&client=claude-desktop&session=s-1&server=fs" +
      "&kind=request,%20error,request&direction=client_to_server&decision=rate_limited&errors=true" +
      "&from=2026-06-10T12:00:00Z&to=1781092860000&q=hello&from_seq=10&to_seq=20",
  ));
  assert.deepEqual(f, {
    method: "tools/call",
    toolName: "read_file",
    clientId: "claude-desktop",
    session: "s-1",
    serverId: "fs",
    kinds: ["request", "error"],
    direction: "client_to_server",
    action: "rate_limited",
    errorsOnly: true,
    from: Date.UTC(2026, 5, 10, 12),
    to: Date.UTC(2026, 5, 10, 12, 1),
    q: "hello",
    fromSeq: 10,
    toSeq: 20,
  });
  assert.equal(Date.UTC(2026, 5, 10, 12), 1781092800000, "the doc example's number");
});

Deno.test("parseFilter ignores unknown and empty parameters, and the first of a repeated one wins", () => {
  assert.deepEqual(parseFilter(qs("limit=5&zzz=1&method=&q=&errors=0&tool=a&tool=b")), {
    toolName: "a",
  });
  assert.deepEqual(parseFilter(qs("errors=false&errors=1")), {});
});

Deno.test("parseFilter refuses every malformed parameter with a 400 naming it", () => {
  refused("kind=request,answer", parseFilter, /^kind must be/);
  refused("kind=request,", parseFilter, /^kind must be/);
  refused("direction=up", parseFilter, /^direction must be/);
  refused("decision=block", parseFilter, /^decision must be/);
  refused("errors=yes", parseFilter, /^errors must be/);
  for (
    const bad of [
      "2026-06-10T12:00:00", // no offset
      "2026-06-10 12:00:00Z",
      "2026-06-10T12:00:60Z", // no leap second
      "2026-02-29T12:00:00Z", // not a leap year
      "2026-06-31T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-06-10T24:00:00Z",
      "2026-06-10T12:00:00+24:00",
      "2026-06-10T5:00:00Z",
      "2026-06-10T12:00:00,5Z",
      "-1",
      "1.5",
      "99999999999999999",
      "yesterday",
    ]
  ) {
    refused(`from=${encodeURIComponent(bad)}`, parseFilter, /^from must be an RFC 3339 time/);
    refused(`to=${encodeURIComponent(bad)}`, parseFilter, /^to must be an RFC 3339 time/);
  }
  refused("q=ab", parseFilter, /^q must be 3 to 1024 characters/);
  refused(`q=${"x".repeat(1025)}`, parseFilter, /^q must be 3 to 1024 characters/);
  for (const bad of ["0", "-1", "1.5", "abc", "1e3", "99999999999999999"]) {
    refused(`from_seq=${bad}`, parseFilter, /^from_seq must be a positive integer/);
    refused(`to_seq=${bad}`, parseFilter, /^to_seq must be a positive integer/);
  }
});

Deno.test("q counts characters, not UTF-16 units: three emoji are enough", () => {
  assert.equal(parseFilter(qs(`q=${encodeURIComponent("😀😀😀")}`)).q, "😀😀😀");
  refused(`q=${encodeURIComponent("😀😀")}`, parseFilter, /^q must be/);
});

Deno.test("from and to: RFC 3339 with any offset, fractions, or milliseconds; a time between two milliseconds starts at the next", () => {
  const at = Date.UTC(2026, 5, 10, 12);
  assert.equal(parseFilter(qs("from=2026-06-10T14:00:00%2B02:00")).from, at);
  assert.equal(parseFilter(qs("from=2026-06-10T07:30:00-04:30")).from, at);
  assert.equal(parseFilter(qs("from=2026-06-10t12:00:00.25z")).from, at + 250);
  assert.equal(parseFilter(qs("from=2026-06-10T12:00:00.250000Z")).from, at + 250);
  assert.equal(parseFilter(qs("from=2026-06-10T12:00:00.2501Z")).from, at + 251);
  assert.equal(parseFilter(qs("to=2026-06-10T12:00:00.2501Z")).to, at + 251);
  assert.equal(parseFilter(qs("from=0")).from, 0);
  assert.equal(parseFilter(qs("to=1781092800000")).to, at);
  assert.equal(parseFilter(qs("from=2024-02-29T00:00:00Z")).from, Date.UTC(2024, 1, 29));
});

Deno.test("parseRfc3339 in Go mode takes what Go's time.Parse(RFC3339) takes, and no more", () => {
  const at = Date.UTC(2026, 5, 10, 5, 4, 5);
  assert.deepEqual(parseRfc3339("2026-06-10T05:04:05Z", "go"), { ms: at, fraction: false });
  assert.deepEqual(parseRfc3339("2026-06-10T5:04:05Z", "go"), { ms: at, fraction: false });
  assert.deepEqual(parseRfc3339("2026-06-10T05:04:05,5Z", "go"), { ms: at + 500, fraction: false });
  assert.deepEqual(parseRfc3339("2026-06-10T05:04:05.123456789Z", "go"), {
    ms: at + 123,
    fraction: true,
  });
  assert.deepEqual(parseRfc3339("2026-06-11T05:04:05+24:00", "go"), { ms: at, fraction: false });
  for (
    const bad of [
      "2026-06-10t05:04:05Z",
      "2026-06-10T05:04:05z",
      "2026-06-10T05:04:05",
      "2026-06-10T05:04:05.Z",
      "2026-06-10T05:04Z",
      "2026-06-10T05:04:05+0200",
      "2026-06-10T05:04:05+25:00",
      "2026-06-10T05:04:05Z ",
      "26-06-10T05:04:05Z",
    ]
  ) {
    assert.equal(parseRfc3339(bad, "go"), null, bad);
  }
  assert.equal(parseRfc3339("2026-06-10T5:04:05Z", "strict"), null);
  assert.equal(parseRfc3339("2026-06-10T05:04:05,5Z", "strict"), null);
  // Go's zero time, which Date.UTC cannot name (it reads year 1 as 1901).
  assert.deepEqual(parseRfc3339("0001-01-01T00:00:00Z", "go"), {
    ms: -62135596800000,
    fraction: false,
  });
  assert.equal(parseInstant("8640000000000001"), null);
});

Deno.test("daysFromCivil agrees with Date.UTC over four centuries", () => {
  for (let y = 1900; y <= 2300; y += 7) {
    for (const [m, d] of [[1, 1], [2, 28], [3, 1], [12, 31]] as const) {
      assert.equal(daysFromCivil(y, m, d) * 86_400_000, Date.UTC(y, m - 1, d), `${y}-${m}-${d}`);
    }
  }
});

Deno.test("parseLimit takes 1 to 1000, 50 or the fallback when absent", () => {
  assert.equal(parseLimit(qs("")), 50);
  assert.equal(parseLimit(qs("limit="), 20), 20);
  assert.equal(parseLimit(qs("limit=1")), 1);
  assert.equal(parseLimit(qs("limit=1000")), 1000);
  for (const bad of ["0", "1001", "-5", "ten", "2.5", "+5"]) {
    refused(
      `limit=${encodeURIComponent(bad)}`,
      parseLimit,
      /^limit must be an integer from 1 to 1000/,
    );
  }
});

Deno.test("parseCursor: before or after, never both; seqCursor reads a seq", () => {
  assert.equal(parseCursor(qs("")), null);
  assert.deepEqual(parseCursor(qs("before=12")), { dir: "before", value: "12" });
  assert.deepEqual(parseCursor(qs("after=0")), { dir: "after", value: "0" });
  refused("before=1&after=2", parseCursor, /^before and after cannot be given together/);
  assert.equal(seqCursor({ dir: "after", value: "0" }), 0);
  assert.equal(seqCursor({ dir: "before", value: "42" }), 42);
  for (const value of ["0", "x", "-1", "1.0"]) {
    assert.throws(() => seqCursor({ dir: "before", value }), BadRequestError);
  }
});

Deno.test("every read model scans a bounded number of seqs, and its cursors visit every match once", async () => {
  using log = new TestLog();
  const needles = new Set<number>();
  for (let chunk = 0; chunk < 6; chunk++) {
    const drafts = [];
    for (let i = 0; i < 2500; i++) {
      drafts.push(call(`${chunk}-${i}`, i === 1234 ? "needle" : "echo"));
    }
    const calls = log.addAll(drafts);
    log.addAll(calls.map((c) => answer(c, { content: [] })));
    for (const c of calls) if (c.tool_name === "needle") needles.add(c.seq);
  }
  assert.equal(log.seq, 30_000);
  // Answers carry their request's tool name: records of the needle are its calls and answers.
  const marked = log.records.slice(1).filter((r) => r.tool_name === "needle").map((r) => r.seq);
  assert.equal(marked.length, 12);
  const seqs = 7_000;
  // A request's probes (the log's first and last seq, a window's time) cost a few seqs more.
  const bound = seqs + 10;
  const size = Deno.statSync(log.jsonl).size;
  for (const { name, query: real } of log.backends()) {
    let bytes = 0;
    const inner = name === "jsonl"
      ? new JsonlQuery(log.jsonl, { onRead: (n) => bytes += n })
      : real;
    const query = new CountingQuery(inner);
    // Pairing requests with answers has its own budget: an exchanges listing scans up to both.
    const bounded = async <T>(
      what: string,
      read: () => Promise<T>,
      pairing = false,
    ): Promise<T> => {
      query.scanned = 0;
      bytes = 0;
      const out = await read();
      const most = bound + (pairing ? PAIR_SEQS : 0);
      assert.ok(query.scanned <= most, `${name} ${what}: scanned ${query.scanned}`);
      if (name === "jsonl") {
        // Within a window, bisecting reads a few blocks more than the records.
        const share = Math.min(1, most / log.seq);
        assert.ok(bytes < size * share * 1.2 + 512 * 1024, `${name} ${what}: ${bytes} of ${size}`);
      }
      return out;
    };

    const nothing = await bounded(
      "records",
      () => recordsPage(query, qs("method=no/such"), { seqs }),
    );
    assert.deepEqual(nothing.items, [], name);
    assert.notEqual(nothing.older, null, name);
    const found: number[] = [];
    let older: string | null = null;
    for (let i = 0; i < 20; i++) {
      const p: RecordsPage = await bounded(
        "records before",
        () =>
          recordsPage(query, qs(`tool=needle&limit=2${older === null ? "" : `&before=${older}`}`), {
            seqs,
          }),
      );
      found.push(...p.items.map((r) => r.seq));
      older = p.older;
      if (older === null) break;
    }
    assert.equal(older, null, name);
    assert.deepEqual(found, [...marked].reverse(), name);
    const since: number[] = [];
    let newer = "0";
    for (let i = 0; i < 20; i++) {
      const p = await bounded(
        "records after",
        () => recordsPage(query, qs(`tool=needle&limit=2&after=${newer}`), { seqs }),
      );
      since.push(...p.items.map((r) => r.seq).reverse());
      if (p.items.length === 0 && p.newer === newer) break;
      newer = p.newer!;
    }
    assert.deepEqual(since, marked, name);

    const none = await bounded("exchanges q", () => exchangesPage(query, qs("q=zzzzzz"), { seqs }));
    assert.deepEqual(none.items, [], name);
    assert.notEqual(none.older, null, name);
    const keys: number[] = [];
    let before: string | null = null;
    for (let i = 0; i < 20; i++) {
      const p: ExchangesPage = await bounded(
        "exchanges",
        () =>
          exchangesPage(query, qs(`tool=needle${before === null ? "" : `&before=${before}`}`), {
            seqs,
          }),
        true,
      );
      for (const x of p.items) {
        keys.push(Number(x.key));
        assert.equal(x.state, "ok", name);
      }
      before = p.older;
      if (before === null) break;
    }
    assert.deepEqual(keys, [...needles].sort((a, b) => b - a), name);
    const detail = await bounded(
      "exchange",
      () => exchangeDetail(query, String([...needles][0])),
      true,
    );
    assert.equal(detail?.state, "ok", name);

    assert.deepEqual(
      await bounded(
        "go entries",
        () => goEntries(query, qs("limit=10000&tool_name=nothing"), { seqs }),
      ),
      [],
      name,
    );
    const sessions = await bounded(
      "sessions",
      () => sessionsPage(query, qs("session=nothing"), { read: seqs }),
    );
    assert.deepEqual(sessions.items, [], name);
    assert.notEqual(sessions.older, null, name);
    const stats = await bounded(
      "stats",
      () =>
        windowStats(query, qs(`method=nothing&from=${T0}&to=${T0 + 40_000_000}`), new Date(), {
          cap: seqs,
        }),
    );
    assert.equal(stats.partial, true, name);
    assert.equal(stats.calls, 0, name);
  }
});
