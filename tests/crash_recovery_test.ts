/**
 * `kill -9` of the proxy, then a restart on the same log: nothing written before the crash is
 * lost or changed, the chain continues, and `verify` tells what happened.
 *
 * @module
 */
import {
  assert,
  assertBytesEqual,
  assertChain,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditLogFile,
  concatBytes,
  deadline,
  descendants,
  type Proc,
  processTable,
  ProxyProcess,
  readLog,
  recordingUpstream,
  sha256Hex,
  STORAGE,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";

function ping(id: number): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"ping"}\n`;
}

/** Ids of the answers the client received. */
function answeredIds(lines: readonly string[]): number[] {
  return lines.map((l) => {
    const v: unknown = JSON.parse(l);
    assert(typeof v === "object" && v !== null && "id" in v && typeof v.id === "number", l);
    return v.id;
  });
}

/**
 * Every answer the client got was in the log before it got it: its request and its response are
 * complete records of the crashed session.
 */
function assertEvidence(file: AuditLogFile, answered: readonly number[]): void {
  const requests = new Set<number | string | null>();
  const responses = new Set<number | string | null>();
  for (const r of file.records) {
    if (r.kind === "request" && r.direction === "client_to_server") requests.add(r.jsonrpc_id);
    if (r.kind === "response" && r.direction === "server_to_client") responses.add(r.jsonrpc_id);
  }
  const unlogged = answered.filter((id) => !requests.has(id) || !responses.has(id));
  assertEquals(unlogged, [], "answers delivered to the client but missing from the log");
}

/** Restarts the proxy on the log, runs a short clean session, and checks the joined chain. */
async function restartAndCheck(
  dir: string,
  logPath: string,
  before: Uint8Array,
): Promise<{ torn: boolean; verify: Awaited<ReturnType<typeof verifyLog>> }> {
  const signal = deadline(30_000);
  const crashed = await readLog(logPath);
  const tornLine = crashed.lines.at(-1)?.terminated === false ? crashed.lines.at(-1) : undefined;
  const lastBefore = crashed.records.at(-1)!;
  {
    await using proxy = new ProxyProcess({
      cwd: dir,
      upstream: recordingUpstream(dir, "-restart"),
    });
    const out = proxy.stdout();
    for (let id = 1_000_001; id <= 1_000_003; id++) await proxy.write(utf8(ping(id)));
    await out.waitFor((c) => c.lines.length >= 3, "answers after the restart", signal);
    await proxy.closeInput();
    assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text());
  }
  await assertNoStrays(dir);

  const after = await readLog(logPath);
  // Everything written before the crash is still there, byte for byte, at the start of the file.
  const kept = tornLine ? concatBytes([before, utf8("\n")]) : before;
  assertBytesEqual(after.bytes.subarray(0, kept.length), kept, "the log before the crash");

  const tornIndex = tornLine ? after.lines.findIndex((l) => l.offset === tornLine.offset) : -1;
  await assertChain(after, { tornLines: tornLine ? [tornIndex] : [] });
  const resumed = after.records.filter((r) => r.seq > lastBefore.seq);
  assert(resumed.length > 0, "the restarted proxy wrote records");
  assertEquals(resumed[0]!.seq, lastBefore.seq + 1, "seq continues after the last whole record");
  const lastBeforeLine = after.lines.find((l) => l.record?.seq === lastBefore.seq)!;
  assertEquals(resumed[0]!.prev, await sha256Hex(lastBeforeLine.text), "prev links across it");
  const recover = resumed.filter((r) => r.kind === "event" && r.method === "audit/recover");
  if (tornLine) {
    assertEquals(recover.length, 1, "one audit/recover event");
    const params = recover[0]!.params;
    assert(typeof params === "object" && params !== null && !Array.isArray(params));
    const torn = params.torn;
    assert(Array.isArray(torn) && torn.length === 1, `audit/recover names the torn line`);
    const entry = torn[0];
    assert(typeof entry === "object" && entry !== null && !Array.isArray(entry));
    assertEquals(entry.offset, tornLine.offset, "audit/recover names the torn line's byte offset");
    assertEquals(params.continues_after_seq, lastBefore.seq);
  } else {
    assertEquals(recover, [], "no torn line, nothing to recover");
  }
  const starts = after.records.filter((r) => r.kind === "event" && r.method === "audit/start");
  assertEquals(starts.length, 2, "one audit/start per run");
  assert(starts[0]!.session !== starts[1]!.session, "each upstream process has its own session");
  return { torn: tornLine !== undefined, verify: await verifyLog(logPath) };
}

Deno.test("kill -9 under load, then a restart: earlier records intact, chain continues, verify tells", async () => {
  await using dir = await tempDir("crash");
  const signal = deadline(60_000);
  let family: Proc[] = [];
  let answered: number[] = [];
  let logPath = "";
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    logPath = proxy.logPath;
    const out = proxy.stdout();
    await proxy.upstreamPid(signal);
    family = descendants(await processTable(), proxy.pid);
    let stop = false;
    let next = 1;
    const load = (async () => {
      try {
        while (!stop) {
          // Keep a few hundred requests in flight: load, without an unbounded backlog.
          await out.waitFor((c) => stop || next - c.lines.length < 500, "room to send", signal);
          let batch = "";
          for (let i = 0; i < 25; i++) batch += ping(next++);
          await proxy.write(utf8(batch));
        }
      } catch {
        // The proxy was killed under us: that is the point.
      }
    })();
    await out.waitFor((c) => c.lines.length >= 400, "400 answers under load", signal);
    proxy.child.kill("SIGKILL");
    const status = await proxy.status;
    stop = true;
    await load;
    assertEquals(status.signal, "SIGKILL");
    assert(next - 1 > out.lines.length, "requests were still in flight when the proxy died");
    // The orphaned upstream sees EOF and exits; its end of the shared stderr closes with it.
    await proxy.finished(signal);
    await out.done;
    answered = answeredIds(out.lines);
  }
  await assertNoStrays(dir.path, family);

  const crashed = await readLog(logPath);
  const before = crashed.bytes;
  const torn = crashed.lines.at(-1)?.terminated === false;
  await assertChain(crashed, {
    unfinished: true,
    tornLines: torn ? [crashed.lines.length - 1] : [],
  });
  assertEvidence(crashed, answered);

  const result = await restartAndCheck(dir.path, logPath, before);
  assertEquals(result.torn, torn);
  const v = result.verify;
  if (torn) {
    assertEquals(v.code, 1, `a torn line is a problem:\n${v.stdout}`);
    assertMatch(v.stdout, / torn: /);
    assertMatch(v.stdout, /note: .*recover/);
  } else {
    // kill -9 landed between two whole lines: nothing torn, but the restart is not hidden.
    assertEquals(v.code, 0, `nothing is damaged:\n${v.stdout}`);
    assert(!/ torn: /.test(v.stdout), v.stdout);
    assertMatch(
      v.stdout,
      /note: seq \d+: audit\/start while an earlier run had written no audit\/stop/,
    );
  }
});

Deno.test({
  name:
    "a record torn by a crash mid-write is kept, closed, named by audit/recover and reported as torn",
  // JSONL by nature: the torn line is made by cutting the file's bytes.
  ignore: STORAGE === "sqlite",
}, async () => {
  await using dir = await tempDir("torn");
  const signal = deadline(60_000);
  let logPath = "";
  let answered: number[] = [];
  {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    logPath = proxy.logPath;
    const out = proxy.stdout();
    for (let id = 1; id <= 5; id++) await proxy.write(utf8(ping(id)));
    await out.waitFor((c) => c.lines.length >= 5, "5 answers", signal);
    proxy.child.kill("SIGKILL");
    await proxy.finished(signal);
    answered = answeredIds(out.lines);
  }
  await assertNoStrays(dir.path);
  // What a crash in the middle of write(2) leaves: the last record cut short.
  const whole = await readLog(logPath);
  assertEvidence(whole, answered);
  const last = whole.lines.at(-1)!;
  const cut = last.offset + Math.floor(utf8(last.text).length / 2);
  const before = whole.bytes.slice(0, cut);
  await Deno.writeFile(logPath, before);

  const { torn, verify: v } = await restartAndCheck(dir.path, logPath, before);
  assert(torn, "the cut line is seen as torn");
  assertEquals(v.code, 1, v.stdout);
  assertMatch(v.stdout, new RegExp(` torn: .*byte ${last.offset}\\b`), "torn, at its offset");
  assertMatch(v.stdout, /note: .*recover/, "the recovery is noted");
  const problems = v.lines.slice(1).filter((l) => !l.startsWith("note:"));
  assertEquals(problems.length, 1, `the torn line is the only problem:\n${v.stdout}`);
});
