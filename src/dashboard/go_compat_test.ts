import assert from "node:assert/strict";
import type { RecordQuery } from "../audit/storage/query.ts";
import { rawNumber } from "../jsonrpc/json.ts";
import { BadRequestError, type GoEntry } from "./api.ts";
import { goEntries, goJson, goStats, goTime, startOfDay } from "./go_compat.ts";
import { writeScenario } from "./testdata/scenario.ts";
import { answer, call, failure, T0, TestLog } from "./testdata/test_log.ts";

const qs = (s: string) => new URLSearchParams(s);
const TESTDATA = new URL("./testdata/", import.meta.url);
// `UPDATE_GOLDEN=1 deno test -A src/dashboard/go_compat_test.ts` rewrites the files after a
// deliberate change of the Go API (a CHANGELOG entry).
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

/**
 * The text equals the golden file's, character for character. The file holds it as a JSON string
 * (`{"body": "..."}`), so that `deno fmt` leaves it as it is and a diff shows each change.
 */
function golden(file: string, text: string, who: string): void {
  const url = new URL(file, TESTDATA);
  if (UPDATE) Deno.writeTextFileSync(url, JSON.stringify({ body: text }, null, 2) + "\n");
  const stored: unknown = JSON.parse(Deno.readTextFileSync(url));
  assert.ok(typeof stored === "object" && stored !== null && "body" in stored, file);
  assert.equal(text, stored.body, `${who}: ${file}`);
}

async function entries(query: RecordQuery, params = ""): Promise<GoEntry[]> {
  return await goEntries(query, qs(params));
}

Deno.test("golden: /api/entries of the scenario log, the same text from JSONL and SQLite", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    golden("go_entries.json", goJson(await entries(query)), name);
    golden(
      "go_entries_filtered.json",
      goJson(await entries(query, "tool_name=echo&limit=3")),
      name,
    );
  }
});

Deno.test("golden: /api/stats of the scenario log", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    golden("go_stats.json", goJson(await goStats(query, new Date(T0 + 60_000), "UTC")), name);
    // Before any record: nothing today, `[]` and not null.
    golden("go_stats_empty.json", goJson(await goStats(query, new Date(T0), "UTC")), name);
  }
});

Deno.test("Go entries: one per answer and notification, with the Go direction, the request's id, params and signature", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    const all = await entries(query);
    // Events, invalid messages and unanswered requests are not entries.
    assert.deepEqual(
      all.map((e) => [e.id, e.direction]),
      [
        [s.monitored.id, "server→client"],
        [s.orphan.id, "server→client"],
        [s.otherSession.id, "server→client"],
        [s.numberId.id, "server→client"],
        [s.sampling.id, "client→server"], // a server's request, answered by the client
        [s.limited.id, "client→server"], // refused
        [s.denied.id, "client→server"],
        [s.toolError.id, "server→client"],
        [s.ok.id, "server→client"],
        [s.initialized.id, "client→server"], // a notification, the way it went
        [s.initialize.id, "server→client"],
      ],
      name,
    );
    const denied = all.find((e) => e.id === s.denied.id)!;
    assert.deepEqual(denied, {
      id: s.denied.id,
      timestamp: "2026-06-10T12:00:10Z", // the answer's time, as Go writes it
      direction: "client→server",
      transport: "stdio",
      method: "tools/call",
      request_id: "4",
      tool_name: "delete_file",
      params: s.denied.params,
      error: {
        code: -32030,
        message: "policy denied",
        data: { action: "deny", reason: "destructive tools are blocked", rule_index: 0 },
      },
      duration_ms: 0,
      client_id: "claude-desktop",
      server_id: "everything",
      signature: s.denied.sig!,
    }, name);
    assert.deepEqual(Object.keys(denied), [
      "id",
      "timestamp",
      "direction",
      "transport",
      "method",
      "request_id",
      "tool_name",
      "params",
      "error",
      "duration_ms",
      "client_id",
      "server_id",
      "signature",
    ], name);
    const sampling = all.find((e) => e.id === s.sampling.id)!;
    assert.equal(sampling.request_id, "srv-1", name);
    assert.equal(sampling.duration_ms, 250, name);
    assert.match(goJson(sampling.params), /"maxTokens":12345678901234567890[,}]/, name);
    const orphan = all.find((e) => e.id === s.orphan.id)!;
    assert.equal(orphan.method, "", name);
    assert.equal(orphan.signature, "", name);
    assert.equal("params" in orphan, false, name);
    const note = all.find((e) => e.id === s.initialized.id)!;
    assert.equal("request_id" in note, false, name);
    assert.equal("params" in note, false, name);
    assert.equal(note.signature, s.initialized.sig, name);
    assert.equal(all.find((e) => e.id === s.ok.id)?.duration_ms, 3, name);
    assert.equal(all.find((e) => e.id === s.toolError.id)?.duration_ms, 42, name);
  }
});

Deno.test("Go entries: limit, method, tool_name, client_id and inclusive from/to as Go reads them", async () => {
  using log = new TestLog();
  const s = writeScenario(log);
  for (const { name, query } of log.backends()) {
    const ids = async (p: string) => (await entries(query, p)).map((e) => e.id);
    assert.equal((await ids("")).length, 11, name);
    assert.equal((await ids("limit=2")).length, 2, name);
    assert.equal((await ids("limit=%2B3")).length, 3, name);
    // A "+" in a query string is a space, to Go too: not a number.
    await assert.rejects(entries(query, "limit=+3"), BadRequestError);
    assert.equal((await ids("limit=0003")).length, 3, name);
    assert.equal((await ids("limit=0")).length, 11, name);
    assert.equal((await ids("limit=-7")).length, 11, name);
    assert.equal((await ids("limit=")).length, 11, name);
    assert.equal((await ids("limit=1&limit=oops")).length, 1, name);
    assert.equal((await ids("limit=9223372036854775807")).length, 11, name);
    assert.deepEqual(await ids("client_id=cursor"), [s.otherSession.id], name);
    assert.deepEqual(await ids("method=sampling/createMessage"), [s.sampling.id], name);
    assert.deepEqual(await ids("tool_name=delete_file"), [s.monitored.id, s.denied.id], name);
    assert.deepEqual(await ids("method=nope"), [], name);
    assert.equal(goJson(await entries(query, "method=nope")), "[]\n", name);
    // Unknown parameters do nothing, as in Go.
    assert.equal((await ids("session=s2&kind=event&q=zz&direction=x")).length, 11, name);
    // Inclusive both ends, on the entry's (the answer's) time.
    const at = s.numberIdAnswer.ts; // 12:00:17
    assert.deepEqual(await ids(`from=${at}&to=${at}`), [s.numberId.id], name);
    assert.deepEqual(
      await ids("from=2026-06-10T12:00:17Z&to=2026-06-10T12:00:19.000000001Z"),
      [s.otherSession.id, s.numberId.id],
      name,
    );
    assert.deepEqual(await ids("from=2026-06-10T14:00:17.0000001%2B02:00"), [
      s.monitored.id,
      s.orphan.id,
      s.otherSession.id,
    ], name);
    assert.deepEqual(await ids("to=2026-06-10T7:00:03-05:00"), [s.initialize.id], name);
  }
});

Deno.test("Go entries refuse what Go refuses, with Go's 400 texts", async () => {
  using log = new TestLog();
  const { query } = log.backends()[0]!;
  for (const bad of ["abc", "1.5", "5 ", " 5", "1e3", "99999999999999999999", "--1", "0x10"]) {
    await assert.rejects(
      goEntries(query, qs(`limit=${encodeURIComponent(bad)}`)),
      (e: unknown) => e instanceof BadRequestError && e.message === "dashboard: invalid limit",
      bad,
    );
  }
  for (const name of ["from", "to"] as const) {
    for (
      const bad of [
        "2026-06-10",
        "2026-06-10T12:00:00",
        "2026-06-10t12:00:00Z",
        "2026-06-10T12:00:00z",
        "1781092800000",
        "2026-06-10T12:00:60Z",
      ]
    ) {
      await assert.rejects(
        goEntries(query, qs(`${name}=${encodeURIComponent(bad)}`)),
        (e: unknown) =>
          e instanceof BadRequestError && e.message === `dashboard: invalid ${name} timestamp`,
        `${name}=${bad}`,
      );
    }
  }
  assert.deepEqual(await goEntries(query, qs("")), []);
});

Deno.test("Go stats: today's client calls, refusals among the errors, top five tools by count then name", async () => {
  using log = new TestLog();
  // Yesterday (UTC): not counted. Today: calls of six tools, two errors, one refusal.
  log.add(call(1, "old", { ts: new Date(T0 - 13 * 3_600_000).toISOString() }));
  const today = (i: number) => new Date(T0 + i * 1000).toISOString();
  const tools = ["b", "a", "c", "d", "e", "f", "a", "b", "z", "z", "z"];
  const requests = log.addAll(tools.map((t, i) => call(i + 10, t, { ts: today(i) })));
  log.addAll([
    answer(requests[0]!, { ok: true }, { ts: today(20) }),
    failure(requests[1]!, { code: -32000, message: "no" }, { ts: today(21) }),
    answer(requests[2]!, { isError: true, content: [] }, { ts: today(22) }),
    failure(requests[3]!, { code: -32030, message: "policy denied" }, { ts: today(23) }),
    // A server's request and its answer are not the client's calls.
    { direction: "server_to_client", jsonrpc_id: "s", method: "roots/list", ts: today(24) },
  ]);
  for (const { name, query } of log.backends()) {
    const stats = await goStats(query, new Date(T0 + 60_000), "UTC");
    assert.deepEqual(stats, {
      total_today: 11,
      error_rate: 3 / 11,
      top_tools: [
        { name: "z", count: 3 },
        { name: "a", count: 2 },
        { name: "b", count: 2 },
        { name: "c", count: 1 },
        { name: "d", count: 1 },
      ],
    }, name);
    // In Tokyo the day began at 15:00 UTC on the 9th: the old call is of today there.
    const tokyo = await goStats(query, new Date(T0 + 60_000), "Asia/Tokyo");
    assert.equal(tokyo.total_today, 12, name);
    assert.equal(goJson(tokyo.error_rate), `${3 / 12}\n`, name);
  }
});

Deno.test("today starts at midnight in the zone, or when a day that skips midnight starts", () => {
  const start = (iso: string, zone: string) =>
    new Date(startOfDay(new Date(iso), zone)).toISOString();
  assert.equal(start("2026-06-10T12:00:00Z", "UTC"), "2026-06-10T00:00:00.000Z");
  assert.equal(start("2026-06-10T03:00:00Z", "America/New_York"), "2026-06-09T04:00:00.000Z");
  assert.equal(start("2026-06-10T12:00:00Z", "Asia/Kolkata"), "2026-06-09T18:30:00.000Z");
  assert.equal(start("2026-06-10T12:00:00Z", "Pacific/Kiritimati"), "2026-06-10T10:00:00.000Z");
  // Summer time begins at 02:00 in Paris: the day began at 00:00 +01:00.
  assert.equal(start("2026-03-29T20:00:00Z", "Europe/Paris"), "2026-03-28T23:00:00.000Z");
  // It ends at 03:00 in Paris: a day of 25 hours, begun at 00:00 +02:00.
  assert.equal(start("2026-10-25T22:30:00Z", "Europe/Paris"), "2026-10-24T22:00:00.000Z");
  // São Paulo's summer time of 2018 began at midnight: that day began at 01:00 -02:00.
  assert.equal(start("2018-11-04T15:00:00Z", "America/Sao_Paulo"), "2018-11-04T03:00:00.000Z");
  assert.throws(() => startOfDay(new Date(), "Mars/Olympus_Mons"), RangeError);
});

Deno.test("goJson writes what Go's json.Encoder writes", () => {
  assert.equal(goJson([]), "[]\n");
  assert.equal(goJson({ b: 1, a: [true, null] }), '{"b":1,"a":[true,null]}\n');
  assert.equal(
    goJson({ s: "<script>&amp;</script>\u2028\u2029é\n\t\u0001\u007f" }),
    '{"s":"\\u003cscript\\u003e\\u0026amp;\\u003c/script\\u003e\\u2028\\u2029é\\n\\t\\u0001\u007f"}\n',
  );
  // A lone surrogate is invalid UTF-8 to Go: U+FFFD. A backslash before "ud800" is no escape.
  assert.equal(goJson("a\ud800b\\ud800😀"), '"a\\ufffdb\\\\ud800😀"\n');
  assert.equal(
    goJson({ n: rawNumber("12345678901234567890"), f: 0.25, e: 1e-7 }),
    '{"n":12345678901234567890,"f":0.25,"e":1e-7}\n',
  );
});

Deno.test("goTime writes RFC3339Nano: no trailing zeros, no dot without a fraction", () => {
  assert.equal(goTime("2026-06-10T12:00:01.000Z"), "2026-06-10T12:00:01Z");
  assert.equal(goTime("2026-06-10T12:00:01.120Z"), "2026-06-10T12:00:01.12Z");
  assert.equal(goTime("2026-06-10T12:00:01.123456789Z"), "2026-06-10T12:00:01.123456789Z");
  assert.equal(goTime("2026-06-10T12:00:01Z"), "2026-06-10T12:00:01Z");
  assert.equal(goTime("2026-06-10T14:00:01.500+02:00"), "2026-06-10T12:00:01.5Z");
});

Deno.test("Go entries over thousands of records: each answer with its own request, up to 10,000", async () => {
  using log = new TestLog();
  const requests = log.addAll(Array.from({ length: 1500 }, (_, i) => call(i, "echo")));
  // Answered in reverse order, after all of them: requests up to 3,000 records back.
  log.addAll([...requests].reverse().map((r) => answer(r, { n: r.jsonrpc_id })));
  for (const { name, query } of log.backends()) {
    const all = await entries(query, "limit=99999");
    assert.equal(all.length, 1500, name);
    for (const e of all) {
      const request = requests[Number(e.request_id)]!;
      assert.equal(e.id, request.id, `${name} ${e.request_id}`);
      assert.equal(e.signature, request.sig, `${name} ${e.request_id}`);
      assert.deepEqual(e.result, { n: request.jsonrpc_id }, `${name} ${e.request_id}`);
    }
    assert.equal((await entries(query, "limit=1200")).length, 1200, name);
  }
});

Deno.test("Go entries stop at 10,000, where Go had no cap", async () => {
  using log = new TestLog();
  log.addAll(Array.from({ length: 10_001 }, () => ({
    kind: "notification",
    jsonrpc_id: null,
    method: "notifications/progress",
    tool_name: null,
  })));
  for (const { name, query } of log.backends()) {
    const all = await entries(query, "limit=20000");
    assert.equal(all.length, 10_000, name);
    assert.equal(all[0]?.id, log.records[10_001]!.id, name);
    assert.equal(all[9_999]?.id, log.records[2]!.id, name);
  }
});
