import assert from "node:assert/strict";
import { BadRequestError, type SessionsPage } from "./api.ts";
import { sessionsPage } from "./sessions.ts";
import { writeScenario } from "./testdata/scenario.ts";
import { call, TestLog } from "./testdata/test_log.ts";

const qs = (s: string) => new URLSearchParams(s);
const names = (p: SessionsPage) => p.items.map((s) => s.session);

Deno.test("sessions are summed from the records read, most recently active first", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    const page = await sessionsPage(query, qs(""));
    assert.deepEqual(page, {
      items: [
        {
          session: "s1",
          transport: "stdio",
          client_id: "claude-desktop",
          server_id: "everything",
          client_name: "claude-ai",
          first_seq: 2,
          last_seq: 24,
          first_ts: log.records[2]!.ts,
          last_ts: log.records[24]!.ts,
          records: 21,
          calls: 9,
          // The tool error, the two refusals and the invalid message.
          errors: 4,
        },
        {
          session: "s2",
          transport: "stdio",
          client_id: "cursor",
          server_id: "everything",
          client_name: "cursor-ide",
          first_seq: 18,
          last_seq: 19,
          first_ts: log.records[18]!.ts,
          last_ts: log.records[19]!.ts,
          records: 2,
          calls: 1,
          errors: 1,
        },
      ],
      older: null,
    }, name);
    assert.deepEqual(names(await sessionsPage(query, qs("client=cursor"))), ["s2"], name);
    assert.deepEqual(names(await sessionsPage(query, qs("session=s2"))), ["s2"], name);
    const early = await sessionsPage(query, qs(`to=${log.records[10]!.ts}`));
    assert.deepEqual(early.items.map((s) => [s.session, s.first_seq, s.last_seq]), [["s1", 2, 9]]);
  }
});

Deno.test("sessions page back by seq: a session the page cut shows again with its older part", async () => {
  using log = new TestLog();
  writeScenario(log);
  for (const { name, query } of log.backends()) {
    const first = await sessionsPage(query, qs("limit=1"));
    assert.deepEqual(names(first), ["s1"], name);
    assert.equal(first.older, "20", name);
    const second = await sessionsPage(query, qs(`limit=1&before=${first.older}`));
    assert.deepEqual(names(second), ["s2"], name);
    assert.equal(second.older, "18", name);
    const third = await sessionsPage(query, qs(`limit=1&before=${second.older}`));
    assert.deepEqual(third.items.map((s) => [s.session, s.first_seq, s.last_seq]), [["s1", 2, 17]]);
    assert.equal(third.older, null, name);
    // Reading stops at the cap: the next page goes on from the last record read.
    const capped = await sessionsPage(query, qs(""), { read: 5 });
    assert.deepEqual(capped.items.map((s) => [s.session, s.records]), [["s1", 5]], name);
    assert.equal(capped.older, "20", name);
  }
});

Deno.test("many sessions: each listed once across the pages when none spans a page", async () => {
  using log = new TestLog();
  log.addAll(
    Array.from({ length: 3000 }, (_, i) => call(i, "echo", { session: `x${Math.floor(i / 10)}` })),
  );
  for (const { name, query } of log.backends()) {
    const seen: string[] = [];
    let before: string | null = null;
    for (let n = 0; n < 100; n++) {
      const page: SessionsPage = await sessionsPage(
        query,
        qs(before === null ? "limit=40" : `limit=40&before=${before}`),
      );
      seen.push(...names(page));
      for (const s of page.items) assert.equal(s.records, 10, `${name} ${s.session}`);
      if (page.older === null) break;
      before = page.older;
    }
    assert.equal(seen.length, 300, name);
    assert.deepEqual(seen, Array.from({ length: 300 }, (_, i) => `x${299 - i}`), name);
  }
});

Deno.test("sessions refuse after= and malformed parameters", async () => {
  using log = new TestLog();
  const { query } = log.backends()[0]!;
  for (const bad of ["after=3", "before=zero", "limit=0", "from=today"]) {
    await assert.rejects(sessionsPage(query, qs(bad)), BadRequestError, bad);
  }
});
