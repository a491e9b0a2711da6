/**
 * End to end: a member name V8's `JSON.parse` misreads after a similar object (nodejs/node#63785)
 * reaches the log, the dashboard's API and `mcp-audit export` as the client sent it. A real proxy
 * records notifications whose params are `{"":1,"\\":2}` and `{"":1,"\u0001":2}`, twice in turn,
 * so whatever order a reader takes the records in, it reads the first kind before the second;
 * then a standalone dashboard and the export command, each a fresh process, read the log.
 */
import assert from "node:assert/strict";
import { parseJson } from "../src/jsonrpc/json.ts";
import { StandaloneDashboard } from "./dashboard_helpers.ts";
import { deadline, fixture, ProxyProcess, readLog, runMain, STORAGE, tempDir } from "./helpers.ts";

/**
 * The params as sent, in order: the second's name is U+0001, spelled `\u0001` on the wire. The
 * first name is empty so that it stays first in the record's canonical (sorted) form, which keeps
 * `\u0001` escaped: the stored lines hold the pair that makes V8 misread.
 */
const SENT = ['{"":1,"\\\\":2}', '{"":1,"\\u0001":2}', '{"":1,"\\\\":2}', '{"":1,"\\u0001":2}'];
const NAMES = ["\\", "\u0001", "\\", "\u0001"];

/** The second member name of each notification's params found in `records`, in seq order. */
function sentNames(records: unknown[]): string[] {
  const out: { seq: number; name: string }[] = [];
  for (const r of records) {
    if (typeof r !== "object" || r === null || !("method" in r) || r.method !== "notifications/x") {
      continue;
    }
    assert.ok("seq" in r && typeof r.seq === "number" && "params" in r, JSON.stringify(r));
    const params = r.params;
    assert.ok(typeof params === "object" && params !== null, JSON.stringify(r));
    out.push({ seq: r.seq, name: Object.keys(params)[1] ?? "(none)" });
  }
  return out.sort((x, y) => x.seq - y.seq).map((x) => x.name);
}

async function exportRun(args: string[], cwd: string): Promise<string> {
  const out = await runMain(["export", ...args], { cwd });
  assert.equal(out.code, 0, out.stderr);
  return out.stdout;
}

Deno.test(`escaped member names reach the log, the dashboard API and export as sent (${STORAGE})`, async () => {
  await using dir = await tempDir("names");
  const path = `${dir.path}/audit.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture("echo_upstream.ts"),
      logPath: path,
    });
    const lines = SENT.map((p) => `{"jsonrpc":"2.0","method":"notifications/x","params":${p}}\n`);
    await proxy.write(new TextEncoder().encode(lines.join("")));
    await proxy.closeInput();
    assert.equal((await proxy.finished(deadline(20_000))).code, 0);
  }
  const stored = await readLog(path);
  assert.deepEqual(sentNames(stored.records), NAMES, "the log");

  {
    await using dashboard = await StandaloneDashboard.start({ cwd: dir.path, logPath: path });
    const res = await dashboard.fetch("/api/v1/records?limit=100");
    assert.equal(res.status, 200);
    // Read here as the page reads it: the test process's own JSON.parse has the defect too.
    const page = parseJson(await res.text());
    assert.ok(typeof page === "object" && page !== null && "items" in page);
    assert.ok(Array.isArray(page.items));
    assert.deepEqual(sentNames(page.items), NAMES, "GET /api/v1/records");
    // The Go tool's route: one entry per notification, params as an object, newest first.
    const entries = parseJson(await (await dashboard.fetch("/api/entries?limit=100")).text());
    assert.ok(Array.isArray(entries), "GET /api/entries answers an array");
    const names = entries.flatMap((e) =>
      typeof e === "object" && e !== null && "params" in e && typeof e.params === "object" &&
        e.params !== null && Object.hasOwn(e.params, "")
        ? [Object.keys(e.params)[1] ?? "(none)"]
        : []
    );
    assert.deepEqual(names.toSorted(), NAMES.toSorted(), "GET /api/entries");
  }

  const jsonl = await exportRun(["--format", "jsonl", path], dir.path);
  assert.deepEqual(
    sentNames(jsonl.trimEnd().split("\n").map((l) => parseJson(l))),
    NAMES,
    "export --format jsonl",
  );
  // CSV writes the params cell from the record as read (canonical JSON, quotes doubled).
  const csv = await exportRun(["--format", "csv", path], dir.path);
  const cells = csv.split("\r\n").flatMap((row) => row.match(/"\{""""[^"]*""[^"]*"":2\}"/g) ?? []);
  assert.deepEqual(
    cells,
    [
      '"{"""":1,""\\\\"":2}"',
      '"{"""":1,""\\u0001"":2}"',
      '"{"""":1,""\\\\"":2}"',
      '"{"""":1,""\\u0001"":2}"',
    ],
    "export --format csv",
  );
});
