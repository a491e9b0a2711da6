import assert from "node:assert/strict";
import { BadRequestError } from "./api.ts";
import { byCodePoint, latencyOf, windowStats } from "./window_stats.ts";
import { writeScenario } from "./testdata/scenario.ts";
import { answer, call, failure, T0, TestLog } from "./testdata/test_log.ts";

const qs = (s: string) => new URLSearchParams(s);
const iso = (ms: number) => new Date(ms).toISOString();
const NOW = new Date(T0 + 3_600_000);

Deno.test("window stats count calls, errors, refusals, pending calls, latency and top names, per bucket", async () => {
  using log = new TestLog();
  writeScenario(log);
  const window = `from=${iso(T0)}&to=${iso(T0 + 30_000)}&buckets=3`;
  for (const { name, query } of log.backends()) {
    const s = await windowStats(query, qs(window), NOW);
    assert.deepEqual(s, {
      from: iso(T0),
      to: iso(T0 + 30_000),
      bucket_ms: 10_000,
      // Client requests: initialize and the tools/call requests, not the server's request.
      calls: 10,
      // The tool error and the JSON-RPC error; the proxy's refusals are not errors here.
      errors: 2,
      denied: 1, // the monitored denial was not carried out
      rate_limited: 1,
      pending: 2, // the call with id "7" and the slow call
      latency: { count: 6, p50: 7, p95: 99.5, p99: 99.5, max: 99.5 },
      top_tools: [
        { name: "echo", count: 5, errors: 1 },
        { name: "delete_file", count: 2, errors: 0 },
        { name: "read_file", count: 1, errors: 1 },
        { name: "slow", count: 1, errors: 0 },
      ],
      top_clients: [
        { name: "claude-ai", count: 8 },
        { name: "claude-desktop", count: 1 }, // no client_info: its client_id
        { name: "cursor-ide", count: 1 },
      ],
      buckets: [
        {
          start: iso(T0),
          calls: 4,
          errors: 1,
          latency: { count: 3, p50: 12.5, p95: 41.6, p99: 41.6, max: 41.6 },
        },
        {
          start: iso(T0 + 10_000),
          calls: 4,
          errors: 1,
          latency: { count: 2, p50: 7, p95: 99.5, p99: 99.5, max: 99.5 },
        },
        {
          start: iso(T0 + 20_000),
          calls: 2,
          errors: 0,
          latency: { count: 1, p50: 5, p95: 5, p99: 5, max: 5 },
        },
      ],
      records_read: 21,
      partial: false,
    }, name);
  }
});

Deno.test("window stats: the default window is the hour before now; filters narrow it; answers to calls before it stand alone", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    const hour = await windowStats(query, qs(""), new Date(T0 + 30_000));
    assert.equal(hour.from, iso(T0 + 30_000 - 3_600_000), name);
    assert.equal(hour.to, iso(T0 + 30_000), name);
    assert.equal(hour.bucket_ms, 60_000, name);
    assert.equal(hour.buckets.length, 60, name);
    assert.equal(hour.calls, 10, name);
    assert.equal(hour.buckets[59]!.calls, 10, name);
    assert.equal(hour.buckets[59]!.start, iso(T0 - 30_000), name);

    const s2 = await windowStats(query, qs("session=s2"), NOW);
    assert.deepEqual([s2.calls, s2.errors, s2.pending], [1, 1, 0], name);
    const echo = await windowStats(query, qs("tool=echo"), NOW);
    assert.deepEqual(
      [echo.calls, echo.errors, echo.rate_limited, echo.denied, echo.pending],
      [5, 1, 1, 0, 1],
      name,
    );
    assert.deepEqual(echo.top_tools, [{ name: "echo", count: 5, errors: 1 }], name);
    assert.equal((await windowStats(query, qs("client=nobody"), NOW)).calls, 0, name);

    // From seq 10 on: the refusal answering the call before is still no error; the calls in it.
    const late = await windowStats(
      query,
      qs(`from=${iso(T0 + 10_000)}&to=${iso(T0 + 25_000)}`),
      NOW,
    );
    assert.deepEqual([late.calls, late.errors, late.denied, late.pending], [6, 1, 0, 2], name);
    assert.equal(late.latency.count, 3, name);
  }
});

Deno.test("window stats scan at most the cap of seqs, the newest first, and say the counts are partial", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    const s = await windowStats(query, qs(""), NOW, { cap: 6 });
    assert.equal(s.partial, true, name);
    assert.equal(s.records_read, 5, name);
    // Seqs 24 to 19 hold five of the window's: 24 (answer), 23 (call), 22 (answer alone), 21
    // (call), 19 (error).
    assert.deepEqual([s.calls, s.errors, s.pending], [2, 1, 1], name);
    const all = await windowStats(query, qs(""), NOW, { cap: log.seq });
    assert.equal(all.partial, false, name);
    assert.equal(all.records_read, 21, name);
  }
});

Deno.test("window stats over thousands of records agree with a count made record by record", async () => {
  using log = new TestLog();
  const requests = log.addAll(
    Array.from({ length: 1500 }, (_, i) => call(i, i % 3 === 0 ? "search" : "echo")),
  );
  log.addAll(requests.flatMap((r, i) =>
    i % 7 === 0 ? [] : [
      i % 5 === 0
        ? failure(r, { code: -32000, message: "no" }, { duration_ms: i })
        : answer(r, { ok: true }, { duration_ms: i }),
    ]
  ));
  const answered = requests.filter((_, i) => i % 7 !== 0);
  const durations = answered.map((r) => r.seq - 1);
  const want = latencyOf(durations);
  for (const { name, query } of log.backends()) {
    const s = await windowStats(query, qs(`from=${iso(T0)}&to=${iso(T0 + 4_000_000)}`), NOW);
    assert.equal(s.calls, 1500, name);
    assert.equal(s.pending, requests.length - answered.length, name);
    assert.equal(s.errors, requests.filter((_, i) => i % 7 !== 0 && i % 5 === 0).length, name);
    assert.deepEqual(s.latency, want, name);
    assert.deepEqual(s.top_tools.map((t) => [t.name, t.count]), [["echo", 1000], ["search", 500]]);
    assert.equal(s.buckets.reduce((n, b) => n + b.calls, 0), 1500, name);
    assert.equal(s.records_read, 1500 + answered.length, name);
  }
});

Deno.test("window stats refuse a bad bucket count and a window that ends before it starts", async () => {
  using log = new TestLog();
  const { query } = log.backends()[0]!;
  for (
    const bad of [
      "buckets=0",
      "buckets=501",
      "buckets=ten",
      `from=${iso(T0)}&to=${iso(T0)}`,
      `from=${iso(T0 + 1)}&to=${iso(T0)}`,
      "to=yesterday",
    ]
  ) {
    await assert.rejects(windowStats(query, qs(bad), NOW), BadRequestError, bad);
  }
});

Deno.test("nearest-rank percentiles, and names compared by code point", () => {
  assert.deepEqual(latencyOf([]), { count: 0, p50: null, p95: null, p99: null, max: null });
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.deepEqual(latencyOf(hundred), { count: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  assert.deepEqual(latencyOf([3, 1, 2]), { count: 3, p50: 2, p95: 3, p99: 3, max: 3 });
  // U+FF5E sorts before U+1F600 by code point, after it by UTF-16 unit.
  assert.ok(byCodePoint("\uff5e", "😀") < 0);
  assert.ok(byCodePoint("a", "ab") < 0);
  assert.equal(byCodePoint("é", "é"), 0);
});

Deno.test("a second answer to one call is counted on its own: its error and its latency", async () => {
  using log = new TestLog();
  const r = log.add(call(1));
  log.add(answer(r, { content: [] }, { duration_ms: 1 }));
  log.add(failure(r, { code: -32603, message: "again" }, { duration_ms: 2 }));
  for (const { name, query } of log.backends()) {
    const s = await windowStats(query, qs(""), NOW);
    assert.deepEqual([s.calls, s.errors, s.pending, s.latency.count], [1, 1, 0, 2], name);
  }
});
