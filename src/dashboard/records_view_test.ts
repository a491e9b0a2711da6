import assert from "node:assert/strict";
import { BadRequestError, type RecordsPage } from "./api.ts";
import { recordAt, recordsPage } from "./records_view.ts";
import { writeScenario } from "./testdata/scenario.ts";
import { TestLog } from "./testdata/test_log.ts";

const qs = (s: string) => new URLSearchParams(s);
const seqs = (p: RecordsPage) => p.items.map((r) => r.seq);

Deno.test("records pages are newest first; before= goes back, after= returns what arrived since, newest first", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    const first = await recordsPage(query, qs("limit=5"));
    assert.deepEqual(seqs(first), [24, 23, 22, 21, 20], name);
    assert.deepEqual(first.items[0], log.records[24], name);
    assert.equal(first.older, "20", name);
    assert.equal(first.newer, "24", name);
    const older = await recordsPage(query, qs("limit=5&before=20"));
    assert.deepEqual(seqs(older), [19, 18, 17, 16, 15], name);
    const last = await recordsPage(query, qs("limit=5&before=5"));
    assert.deepEqual(seqs(last), [4, 3, 2, 1], name);
    assert.equal(last.older, null, name);
    const filtered = await recordsPage(query, qs("kind=error&limit=2"));
    assert.deepEqual(seqs(filtered), [19, 12], name);
    assert.equal(filtered.older, "12", name);
    assert.deepEqual(seqs(await recordsPage(query, qs("kind=error&before=12"))), [10], name);
  }
  // Appended between calls: after= sees them, oldest first in pages, each page newest first.
  const [a, b] = log.backends();
  const before = await Promise.all([a!, b!].map((x) => recordsPage(x.query, qs("limit=2"))));
  log.addAll([{}, {}, {}]);
  for (const [i, { name, query }] of [a!, b!].entries()) {
    assert.equal(before[i]!.newer, "24", name);
    const since = await recordsPage(query, qs("limit=2&after=24"));
    assert.deepEqual(seqs(since), [26, 25], name);
    assert.equal(since.newer, "26", name);
    assert.equal(since.older, "25", name);
    const rest = await recordsPage(query, qs(`limit=2&after=${since.newer}`));
    assert.deepEqual(seqs(rest), [27], name);
    const none = await recordsPage(query, qs("limit=2&after=27"));
    assert.deepEqual(none, { items: [], older: null, newer: "27" }, name);
    const all = await recordsPage(query, qs("after=0&limit=1"));
    assert.deepEqual(seqs(all), [1], name);
    assert.equal(all.older, null, name);
    // The old before= cursor still gives the same older page.
    assert.deepEqual(seqs(await recordsPage(query, qs("limit=2&before=23"))), [22, 21], name);
  }
});

Deno.test("an empty log gives an empty page with no cursors", async () => {
  using log = new TestLog();
  for (const { name, query } of log.backends()) {
    assert.deepEqual(
      await recordsPage(query, qs("")),
      { items: [], older: null, newer: null },
      name,
    );
    assert.equal(await recordAt(query, 1), null, name);
  }
});

Deno.test("recordAt reads one record by seq; a bad seq or parameter is a 400", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    assert.deepEqual(await recordAt(query, 7), log.records[7], name);
    assert.equal(await recordAt(query, 25), null, name);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(recordAt(query, bad), BadRequestError, `${name} ${bad}`);
    }
    for (const bad of ["before=x", "after=-1", "before=0", "before=1&after=1", "limit=1001"]) {
      await assert.rejects(recordsPage(query, qs(bad)), BadRequestError, `${name} ${bad}`);
    }
  }
});
