/**
 * Unit tests of the dashboard page's pure modules (no browser): the event-stream parser, the
 * shell commands, the URL state, JSON paths as the redactor writes them, the answer guards.
 * The browser test covers the page as a whole.
 */
import assert from "node:assert/strict";
import { SseParser } from "../dashboard/js/stream.js";
import { exportCommand, shellQuote, verifyCommand } from "../dashboard/js/commands.js";
import { filterParams, readState, stateQuery, statsParams } from "../dashboard/js/url_state.js";
import { memberPath } from "../dashboard/js/json_tree.js";
import { exchangesPage, ShapeError, streamItem } from "../dashboard/js/guards.js";
import { correlation } from "../dashboard/js/table.js";
import { describeToolsChanged } from "../dashboard/js/guardrails.js";
import { badgeText } from "../dashboard/js/chain.js";
import { childPath } from "../src/audit/redact.ts";

type Ev = { id: string | null; event: string; data: string };

function parse(chunks: string[]): { events: Ev[]; parser: SseParser } {
  const events: Ev[] = [];
  const parser = new SseParser((e: Ev) => events.push(e));
  for (const c of chunks) parser.push(c);
  return { events, parser };
}

Deno.test("SSE parser reads events split anywhere, with CRLF, CR or LF line ends", () => {
  const text = 'retry: 2000\r\n\r\n: ping\n\nid: 7\revent: record\r\ndata: {"a":1}\n\n' +
    "id: 8\nevent: record\ndata: x\ndata: y\n\n";
  const whole = parse([text]).events;
  assert.deepEqual(whole, [
    { id: "7", event: "record", data: '{"a":1}' },
    { id: "8", event: "record", data: "x\ny" },
  ]);
  // Every split point, including between a CR and its LF, gives the same events.
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(parse([text.slice(0, i), text.slice(i)]).events, whole, `split at ${i}`);
  }
  assert.equal(parse([text]).parser.retry, 2000);
});

Deno.test("SSE parser keeps the last event id across events and ignores comments", () => {
  const { events, parser } = parse(["id: 3\ndata: a\n\n: ping\n\ndata: b\n\n"]);
  assert.deepEqual(events.map((e) => [e.id, e.data]), [["3", "a"], ["3", "b"]]);
  assert.equal(parser.lastEventId, "3");
  assert.equal(events[1]?.event, "message");
});

Deno.test("SSE parser refuses a line over 1 MiB", () => {
  const parser = new SseParser(() => {});
  assert.throws(() => parser.push(`data: ${"x".repeat((1 << 20) + 1)}`), RangeError);
});

Deno.test("shell words from traffic are quoted so a pasted command runs only what it shows", () => {
  assert.equal(shellQuote("audit.jsonl"), "audit.jsonl");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("$(rm -rf ~)"), "'$(rm -rf ~)'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(verifyCommand("-rf"), "mcp-audit verify ./-rf");
  const command = exportCommand("audit log.jsonl", {
    firstTs: "2026-06-10T22:00:00.000Z",
    lastTs: "2026-06-10T22:00:00.250Z",
    method: "tools/call",
    session: "--output=/etc/passwd '$(x)'",
  });
  assert.equal(
    command,
    "mcp-audit export --from=2026-06-10T22:00:00.000Z --to=2026-06-10T22:00:00.251Z " +
      "--method=tools/call '--session=--output=/etc/passwd '\\''$(x)'\\''' 'audit log.jsonl'",
  );
});

Deno.test("exported command's words come back as given through a POSIX shell", async () => {
  const session = `a'b "c" $(d) \`e\` \\f`;
  const command = exportCommand("x.jsonl", {
    firstTs: "2026-06-10T22:00:00.000Z",
    lastTs: "2026-06-10T22:00:00.000Z",
    method: null,
    session,
  });
  const script = command.replace(/^mcp-audit export /, 'printf "%s\\n" ');
  const out = await new Deno.Command("sh", { args: ["-c", script] }).output();
  const words = new TextDecoder().decode(out.stdout).trimEnd().split("\n");
  assert.deepEqual(words, [
    "--from=2026-06-10T22:00:00.000Z",
    "--to=2026-06-10T22:00:00.001Z",
    `--session=${session}`,
    "x.jsonl",
  ]);
});

Deno.test("the view in the URL round-trips and ignores what it does not know", () => {
  const state = readState("?tool=echo&errors=1&view=sessions&ex=42&bogus=1&q=" + "x".repeat(2000));
  assert.deepEqual(state, { filters: { tool: "echo", errors: "1" }, view: "sessions", ex: "42" });
  assert.equal(stateQuery(state), "tool=echo&errors=1&view=sessions&ex=42");
  assert.deepEqual(readState(stateQuery(state)), state);
  assert.equal(readState("?view=admin").view, "live");
  assert.equal(
    filterParams({ from_seq: "5", method: "tools/call" }).toString(),
    "method=tools%2Fcall&from_seq=5",
  );
  assert.equal(
    statsParams({ tool: "a", from: "2026-01-01T00:00:00Z", q: "abc" }).toString(),
    "tool=a",
  );
});

Deno.test("JSON tree paths are written as the redactor writes them", () => {
  for (const key of ["token", "x-y", "my key", "a.b", "$ok", "_1", "1a", 'q"uote', ""]) {
    assert.equal(memberPath("params", key), childPath("params", key), key);
  }
  assert.equal(memberPath("params.items", 0), "params.items[0]");
  assert.equal(memberPath("", "params"), "params");
});

Deno.test("guards accept the API's shapes and refuse others", () => {
  const summary = {
    key: "12",
    kind: "request",
    state: "pending",
    ts: "2026-06-10T22:00:00.000Z",
    direction: "client_to_server",
    method: "tools/call",
    tool_name: "echo",
    session: null,
    client_id: "c",
    server_id: "s",
    client_name: null,
    jsonrpc_id: 1,
    duration_ms: null,
    decision: { action: "deny", rule: 2, reason: "r", enforced: false },
    error_message: null,
    request_seq: 12,
    answer_seq: null,
  };
  const page = exchangesPage({ items: [summary], older: "11", newer: "12" }, "page");
  assert.equal(page.items[0]?.decision?.enforced, false);
  assert.throws(
    () => exchangesPage({ items: [{ ...summary, state: "weird" }], older: null, newer: null }, "p"),
    ShapeError,
  );
  assert.throws(
    () => exchangesPage({ items: [{ ...summary, key: 12 }], older: null, newer: null }, "p"),
    ShapeError,
  );
  assert.throws(() => streamItem({ seq: "1" }, "s"), ShapeError);
});

Deno.test("a request and an answer pair only with the same session and the same typed id", () => {
  assert.notEqual(correlation("s", 1), correlation("s", "1"));
  assert.notEqual(correlation("a", 1), correlation("b", 1));
  assert.equal(correlation(null, 7), correlation(null, 7));
});

Deno.test("tool changes and the chain badge read as text", () => {
  assert.deepEqual(
    describeToolsChanged({
      server_id: "fs",
      mode: "block",
      changes: [{ name: "<b>", change: "added" }, 5],
    }),
    { server: "fs", mode: "block", changes: ["<b> (added)", "?"] },
  );
  assert.deepEqual(describeToolsChanged("nonsense"), { server: "", mode: "", changes: [] });
  const base = {
    records: 10,
    last_seq: 10,
    problems: 0,
    first_problem: null,
    signatures_checked: true,
    checked_at: "2026-06-10T22:00:00.000Z",
    note: null,
    command: "mcp-audit verify a.jsonl",
  };
  assert.equal(badgeText({ ...base, state: "intact" }), "Chain intact · 10 records");
  assert.equal(
    badgeText({
      ...base,
      state: "problems",
      problems: 2,
      first_problem: { seq: 4, kind: "modified", detail: "d" },
      signatures_checked: false,
    }),
    "Chain problems — first at seq 4 (modified) · signatures not checked",
  );
});
