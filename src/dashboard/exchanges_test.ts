import assert from "node:assert/strict";
import type { AuditRecord } from "../audit/record.ts";
import type { RecordQuery } from "../audit/storage/query.ts";
import { BadRequestError, type ExchangesPage, type ExchangeSummary } from "./api.ts";
import { answersOf, Budget, exchangeDetail, exchangesPage, requestsOf } from "./exchanges.ts";
import { writeScenario } from "./testdata/scenario.ts";
import { answer, call, failure, TestLog } from "./testdata/test_log.ts";

const qs = (s: string) => new URLSearchParams(s);

function keys(page: ExchangesPage): number[] {
  return page.items.map((i) => Number(i.key));
}

/** Every page of a listing, following `older` (each at most `limit`). */
async function allOlder(query: RecordQuery, params: string): Promise<ExchangeSummary[]> {
  const out: ExchangeSummary[] = [];
  let before: string | null = null;
  for (let n = 0; n < 10_000; n++) {
    const p = qs(params);
    if (before !== null) p.set("before", before);
    const page = await exchangesPage(query, p);
    out.push(...page.items);
    if (page.older === null) return out;
    before = page.older;
  }
  throw new Error("the pages never ended");
}

/**
 * The exchanges of a log as the proxy pairs them, written independently of the code under test:
 * one pass in seq order, a map of waiting requests by session, id (with its type) and direction.
 */
function reference(records: readonly AuditRecord[]): Map<number, number | null> {
  const answerOf = new Map<number, number | null>();
  const waiting = new Map<string, number>();
  const key = (r: AuditRecord, dir: string) =>
    `${r.session}|${typeof r.jsonrpc_id}|${String(r.jsonrpc_id)}|${dir}`;
  for (const r of records.slice(1)) {
    if (r.kind === "request") {
      answerOf.set(r.seq, null);
      waiting.set(key(r, r.direction), r.seq);
    } else if (r.kind === "response" || r.kind === "error") {
      const dir = r.direction === "client_to_server" ? "server_to_client" : "client_to_server";
      const k = key(r, dir);
      const req = waiting.get(k);
      if (req !== undefined) {
        answerOf.set(req, r.seq);
        waiting.delete(k);
      }
    }
  }
  return answerOf;
}

Deno.test("exchanges pair each request with its answer: refusals, tool errors, server requests, ids by type and session", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    const page = await exchangesPage(query, qs(""));
    const summary = (r: AuditRecord) => page.items.find((i) => i.key === String(r.seq));
    assert.deepEqual(keys(page), [23, 21, 20, 18, 16, 15, 13, 11, 9, 7, 5, 4, 2, 1], name);
    assert.equal(page.older, null, name);
    assert.equal(page.newer, "23", name);
    const states = Object.fromEntries(page.items.map((i) => [i.key, i.state]));
    assert.deepEqual(states, {
      23: "ok", // a denial in monitor mode is not carried out
      21: "pending",
      20: "none",
      18: "error",
      16: "pending", // "7" is not 7
      15: "ok",
      13: "ok",
      11: "rate_limited",
      9: "denied",
      7: "error", // isError: true
      5: "ok",
      4: "none",
      2: "ok",
      1: "none",
    }, name);
    assert.deepEqual(summary(s.ok), {
      key: "5",
      kind: "request",
      state: "ok",
      ts: s.ok.ts,
      direction: "client_to_server",
      method: "tools/call",
      tool_name: "echo",
      session: "s1",
      client_id: "claude-desktop",
      server_id: "everything",
      client_name: "claude-ai",
      jsonrpc_id: 2,
      duration_ms: 3.4,
      decision: null,
      error_message: null,
      request_seq: 5,
      answer_seq: 6,
    }, name);
    // The same id in another session has its own answer.
    assert.equal(summary(s.otherSession)?.answer_seq, s.otherSessionAnswer.seq, name);
    assert.equal(summary(s.otherSession)?.error_message, "boom: " + "x".repeat(194), name);
    assert.equal(summary(s.toolError)?.error_message, "EACCES: permission denied", name);
    assert.equal(summary(s.denied)?.answer_seq, s.deniedAnswer.seq, name);
    assert.equal(summary(s.denied)?.error_message, "policy denied", name);
    assert.deepEqual(summary(s.denied)?.decision, s.denied.decision, name);
    assert.equal(summary(s.sampling)?.direction, "server_to_client", name);
    assert.equal(summary(s.sampling)?.answer_seq, s.samplingAnswer.seq, name);
    assert.equal(summary(s.stringId)?.jsonrpc_id, "7", name);
    assert.equal(summary(s.stringId)?.answer_seq, null, name);
    assert.equal(summary(s.numberId)?.answer_seq, s.numberIdAnswer.seq, name);
    assert.equal(summary(s.invalid)?.error_message, "not JSON-RPC", name);
    assert.equal(summary(s.start)?.method, "audit/start", name);
  }
});

Deno.test("exchange filters apply to the first record; kind=response lists only answers whose request is gone", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    assert.deepEqual(keys(await exchangesPage(query, qs("tool=delete_file"))), [23, 9], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("decision=deny"))), [23, 9], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("session=s2"))), [18], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("client=cursor"))), [18], name);
    assert.deepEqual(
      keys(await exchangesPage(query, qs("direction=server_to_client"))),
      [13],
      name,
    );
    assert.deepEqual(
      keys(await exchangesPage(query, qs("kind=notification,event"))),
      [4, 1],
      name,
    );
    const from = encodeURIComponent(s.pending.ts);
    assert.deepEqual(keys(await exchangesPage(query, qs(`from=${from}`))), [23, 21], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("from_seq=5&to_seq=9"))), [9, 7, 5], name);
    const orphans = await exchangesPage(query, qs("kind=response,error"));
    assert.deepEqual(keys(orphans), [s.orphan.seq], name);
    assert.equal(orphans.items[0]?.state, "ok", name);
    assert.equal(orphans.items[0]?.request_seq, null, name);
    assert.equal(orphans.items[0]?.answer_seq, s.orphan.seq, name);
  }
});

Deno.test("errors=1 and q list an exchange once, where its newest matching record is", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    const errors = await exchangesPage(query, qs("errors=1"));
    // The invalid message is an error record that starts its own exchange.
    assert.deepEqual(keys(errors), [20, 18, 11, 9, 7], name);
    assert.deepEqual(errors.items.map((i) => i.state), [
      "none",
      "error",
      "rate_limited",
      "denied",
      "error",
    ], name);
    assert.equal(errors.newer, String(s.invalid.seq), name);
    // "héllo" is in the request and in its answer: listed once, at the answer.
    const both = await exchangesPage(query, qs("q=HÉLLO"));
    assert.deepEqual(keys(both), [s.ok.seq], name);
    assert.equal(both.newer, String(s.okAnswer.seq), name);
    assert.deepEqual((await allOlder(query, "q=héllo&limit=1")).map((i) => i.key), ["5"], name);
    // "summary" is in the client's answer to a server request only.
    assert.deepEqual(keys(await exchangesPage(query, qs("q=a%20summary"))), [13], name);
    // A request matching alone.
    assert.deepEqual(keys(await exchangesPage(query, qs("q=shadow"))), [7], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("q=shadow&errors=1"))), [], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("errors=1&session=s1"))), [20, 11, 9, 7]);
    assert.deepEqual(keys(await exchangesPage(query, qs("errors=1&kind=invalid"))), [20], name);
    assert.deepEqual(keys(await exchangesPage(query, qs("errors=1&decision=deny"))), [9], name);
    // Paged: each exchange once across the pages.
    assert.deepEqual(
      (await allOlder(query, "errors=1&limit=2")).map((i) => Number(i.key)),
      [20, 18, 11, 9, 7],
      name,
    );
  }
});

Deno.test("exchange cursors page both ways while records are appended between calls", async () => {
  using log = new TestLog();
  writeScenario(log);
  const [jsonl, sqlite] = log.backends();
  const first = await Promise.all(
    [jsonl!, sqlite!].map((b) => exchangesPage(b.query, qs("limit=3"))),
  );
  for (const p of first) {
    assert.deepEqual(keys(p), [23, 21, 20]);
    assert.equal(p.older, "20");
    assert.equal(p.newer, "23");
  }
  // The pending call is answered; a new call arrives and is answered.
  const waiting = log.records[21]!;
  log.add(answer(waiting, { content: [] }, { duration_ms: 30_000 })); // 25
  const next = log.add(call(10, "echo")); // 26
  log.add(answer(next, { content: [] })); // 27
  for (const [i, { name, query }] of [jsonl!, sqlite!].entries()) {
    const older = await exchangesPage(query, qs(`limit=3&before=${first[i]!.older}`));
    assert.deepEqual(keys(older), [18, 16, 15], name);
    assert.equal(older.older, "15", name);
    const since = await exchangesPage(query, qs(`limit=3&after=${first[i]!.newer}`));
    assert.deepEqual(keys(since), [26], name);
    assert.equal(since.items[0]?.state, "ok", name);
    // Every record up to the log's last was looked at: the answer after it too.
    assert.equal(since.newer, "27", name);
    assert.equal(since.older, "26", name);
    const nothing = await exchangesPage(query, qs(`after=${since.newer}`));
    assert.deepEqual(nothing, { items: [], older: null, newer: "27" }, name);
    // The call that was pending is now answered.
    const again = await exchangesPage(query, qs("limit=3"));
    assert.deepEqual(keys(again), [26, 23, 21], name);
    assert.equal(again.items[2]?.state, "ok", name);
    assert.equal(again.items[2]?.duration_ms, 30_000, name);
    // after= returns the oldest first-newer, newest first.
    const fromStart = await exchangesPage(query, qs("after=0&limit=2"));
    assert.deepEqual(keys(fromStart), [2, 1], name);
    assert.equal(fromStart.newer, "2", name);
    assert.equal(fromStart.older, null, name);
  }
});

Deno.test("a request waiting under a key is replaced by a later one with that key, as the proxy does", async () => {
  using log = new TestLog();
  const a = log.add(call(1, "echo"));
  const b = log.add(call(1, "echo"));
  const reply = log.add(answer(b, { content: [] }));
  log.add(answer(b, { content: [{ type: "text", text: "again" }] }));
  // A request replaced by one another filter leaves out is still replaced.
  const c = log.add(call(2, "read_file"));
  const d = log.add(call(2, "write_file"));
  log.add(answer(d, { content: [] }));
  for (const { name, query } of log.backends()) {
    const replaced = await exchangesPage(query, qs("tool=read_file"));
    assert.deepEqual(replaced.items.map((i) => [i.key, i.state]), [[String(c.seq), "pending"]]);
    const answered = await exchangesPage(query, qs("tool=write_file"));
    assert.deepEqual(answered.items.map((i) => [i.key, i.state]), [[String(d.seq), "ok"]]);
    const page = await exchangesPage(query, qs("tool=echo"));
    assert.deepEqual(keys(page), [b.seq, a.seq], name);
    assert.deepEqual(page.items.map((i) => [i.state, i.answer_seq]), [
      ["ok", reply.seq],
      ["pending", null],
    ], name);
    // The second answer has no request left: an answer of its own.
    assert.deepEqual(keys(await exchangesPage(query, qs("kind=response"))), [4], name);
  }
});

Deno.test("exchangeDetail returns both records; an answer's seq gives its request's exchange", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    const denied = await exchangeDetail(query, String(s.denied.seq));
    assert.equal(denied?.state, "denied", name);
    assert.deepEqual(denied?.request, s.denied, name);
    assert.deepEqual(denied?.answer, s.deniedAnswer, name);
    const viaAnswer = await exchangeDetail(query, String(s.deniedAnswer.seq));
    assert.equal(viaAnswer?.key, String(s.denied.seq), name);
    const orphan = await exchangeDetail(query, String(s.orphan.seq));
    assert.equal(orphan?.request, null, name);
    assert.deepEqual(orphan?.answer, s.orphan, name);
    assert.equal(orphan?.kind, "response", name);
    const note = await exchangeDetail(query, String(s.initialized.seq));
    assert.equal(note?.state, "none", name);
    assert.deepEqual(note?.request, s.initialized, name);
    assert.equal(note?.answer, null, name);
    const pending = await exchangeDetail(query, String(s.pending.seq));
    assert.equal(pending?.state, "pending", name);
    assert.equal(await exchangeDetail(query, "999"), null, name);
    for (const bad of ["", "abc", "0", "-1", "1.5"]) {
      await assert.rejects(exchangeDetail(query, bad), BadRequestError, `${name} ${bad}`);
    }
  }
});

Deno.test("exchangesPage refuses malformed parameters and cursors with a 400", async () => {
  using log = new TestLog();
  writeScenario(log);
  const { query } = log.backends()[0]!;
  for (
    const bad of [
      "before=abc",
      "before=0",
      "after=-1",
      "before=1&after=2",
      "limit=0",
      "kind=bogus",
      "q=ab",
      "errors=maybe",
      "from=noon",
    ]
  ) {
    await assert.rejects(exchangesPage(query, qs(bad)), BadRequestError, bad);
  }
});

Deno.test("several thousand records: every exchange paired as the proxy pairs it, across pages and sessions", async () => {
  using log = new TestLog();
  // A long call answered after 2,500 other records, ids reused in three sessions, some calls
  // never answered, every tenth an error.
  const long = log.add(call(1, "slow", { session: "a" }));
  const drafts = [];
  for (let i = 0; i < 1250; i++) {
    drafts.push(call(Math.floor(i / 3) + 2, "echo", { session: ["a", "b", "c"][i % 3]! }));
  }
  const requests = log.addAll(drafts);
  log.addAll(
    requests.flatMap((r, i) =>
      i % 17 === 0
        ? []
        : [i % 10 === 0 ? failure(r, { code: -32000, message: "failed" }) : answer(r, { ok: i })]
    ),
  );
  log.add(answer(long, { content: [] }, { duration_ms: 60_000 }));
  const want = reference(log.records);
  for (const { name, query } of log.backends()) {
    const all = await allOlder(query, "limit=250");
    assert.equal(all.length, 1251, name);
    for (const x of all) {
      const answerSeq = want.get(Number(x.key));
      assert.equal(x.answer_seq, answerSeq ?? null, `${name}: exchange ${x.key}`);
    }
    assert.equal(all.find((x) => x.key === String(long.seq))?.duration_ms, 60_000, name);
    const errors = await allOlder(query, "errors=1&limit=100");
    assert.deepEqual(
      errors.map((x) => Number(x.key)).sort((a, b) => a - b),
      [...want].filter(([, a]) => a !== null && log.records[a]!.kind === "error").map(([r]) => r)
        .sort((a, b) => a - b),
      name,
    );
  }
});

Deno.test("pairing reads within its budget: what it could not reach is undecided, not an answer of its own", async () => {
  using log = new TestLog();
  const first = log.add(call(1, "slow"));
  log.addAll(Array.from({ length: 300 }, (_, i) => call(i + 2, "echo")));
  const late = log.add(answer(first, { content: [] }));
  const stray = log.add(answer(first, { content: [] }));
  const nullId = log.add(failure(first, { code: -32700, message: "parse error" }, {
    jsonrpc_id: null,
  }));
  for (const { name, query } of log.backends()) {
    const small = await requestsOf(query, [late, stray, nullId], new Budget(100));
    assert.equal(small.has(late.seq), false, `${name}: undecided`);
    assert.equal(small.get(stray.seq), null, `${name}: after another answer`);
    assert.equal(small.get(nullId.seq), null, `${name}: no id`);
    const enough = await requestsOf(query, [late], new Budget(1000));
    assert.deepEqual(enough.get(late.seq)?.record, first, name);
    // Nothing before it: the log's start is reached, and its request is not in the log.
    const atStart = await requestsOf(query, [{ ...late, seq: 1 }], new Budget(1000));
    assert.equal(atStart.get(1), null, name);
    assert.equal((await answersOf(query, [first], new Budget(100))).has(first.seq), false, name);
    assert.equal(
      (await answersOf(query, [first], new Budget(1000))).get(first.seq)?.record.seq,
      late.seq,
      name,
    );
  }
});
