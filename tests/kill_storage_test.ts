/**
 * `kill -9` of a proxy under load, for each backend × sync/async × durability: the answers the
 * client received are counted against the records. A process kill is not a power loss, so in sync
 * mode (any durability) every answered call has both its records; in async mode the calls whose
 * records were still queued are lost, and that window is measured and bounded by the queue. A new
 * proxy on the same log then continues the one chain, and `verify` says only what a killed writer
 * may leave: for JSONL a torn last line (kept, closed, named by `audit/recover`); for SQLite
 * nothing (a transaction is stored whole or not at all).
 *
 * Then one of three writers sharing a log is killed while its batches are large: the other two go
 * on and finish with every record, and any line the killed one tore is named by `audit/recover`.
 *
 * @module
 */
import {
  assert,
  assertBytesEqual,
  assertEquals,
  assertNoStrays,
  deadline,
  descendants,
  type Proc,
  processTable,
  type ProxyProcess,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import {
  assertCallsRecorded,
  assertOneChain,
  assertTornCovered,
  type AsyncSetup,
  type Backend,
  Caller,
  type CallOutcome,
  type Durability,
  readStored,
  recoveredTorn,
  sessionOf,
  starts,
  startWriter,
  type StorageSetup,
  storageTest,
  type StoredLog,
  type TornLine,
  unrecorded,
  verifyProblems,
} from "./storage_helpers.ts";

// Small batches and a queue a few batches deep, with a flush interval that never comes within a
// test: what async mode holds at the kill is what its batching holds, not what a timer left.
const ASYNC: AsyncSetup = { batchSize: 32, queueSize: 128, flushIntervalMs: 600_000 };
const CALLS = 2_000;
const WINDOW = 1_000;
// The kill comes after this many answers, in the middle of a window: calls are in flight.
const KILL_AFTER = 400;

function pathFor(dir: string, backend: Backend): string {
  return backend === "jsonl" ? `${dir}/audit.jsonl` : `${dir}/audit.db`;
}

/** The stored lines before a restart, to check that nothing of them changes. */
async function snapshot(setup: StorageSetup, log: StoredLog): Promise<Uint8Array | string[]> {
  return setup.backend === "jsonl" ? await Deno.readFile(setup.path) : log.lines.map((l) => l.text);
}

/** Kills `proxy` once its client has `after` answers; returns what the client got. */
async function killUnderLoad(
  proxy: ProxyProcess,
  caller: Caller,
  after: number,
  signal: AbortSignal,
  options: { pad?: string } = {},
): Promise<{ outcome: CallOutcome; family: Proc[] }> {
  await proxy.upstreamPid(signal);
  const family = descendants(await processTable(), proxy.pid);
  const running = caller.run(1, CALLS, WINDOW, signal, options);
  await caller.out.waitFor((c) => c.lines.length >= after, `${after} answers`, signal);
  proxy.child.kill("SIGKILL");
  const outcome = await running;
  const status = await proxy.status;
  assertEquals(status.signal, "SIGKILL", "the proxy was killed");
  assert(outcome.cut, "the proxy died with calls in flight");
  assert(
    outcome.sent.length > outcome.answered.length,
    "calls were still in flight when the proxy died",
  );
  // The orphaned upstream reads EOF and exits; its end of the shared stderr closes with it.
  await proxy.finished(signal);
  return { outcome, family };
}

/** A short clean session on the same log; returns its writer's pid. */
async function restart(dir: string, setup: StorageSetup, signal: AbortSignal): Promise<number> {
  await using proxy = startWriter(dir, setup);
  const caller = new Caller(proxy, "after-restart");
  const o = await caller.run(1, 20, 20, signal);
  assert(!o.cut, `the restarted proxy answers:\n${proxy.stderr.text().slice(-3000)}`);
  await proxy.closeInput();
  const status = await proxy.finished(signal);
  assertEquals(status.code, 0, `the restarted proxy exits 0:\n${proxy.stderr.text().slice(-3000)}`);
  return proxy.pid;
}

/**
 * The log after a restart: what was stored before is unchanged (a torn last line closed with a
 * newline), the chain runs on through the new writer, and every torn line is named by
 * `audit/recover`.
 */
async function assertContinued(
  setup: StorageSetup,
  before: Uint8Array | string[],
  tornBefore: readonly TornLine[],
  lastSeqBefore: number,
  restartPid: number,
): Promise<{ log: StoredLog; torn: TornLine[] }> {
  const log = await readStored(setup);
  const torn = assertOneChain(log);
  if (before instanceof Uint8Array) {
    const now = await Deno.readFile(setup.path);
    const endsTorn = tornBefore.some((t) => t.offset + t.length === before.length);
    const kept = endsTorn ? before.length + 1 : before.length;
    assert(now.length > kept, "the restarted proxy appended to the log");
    assertBytesEqual(now.subarray(0, before.length), before, "the log before the restart");
    if (endsTorn) assertEquals(now[before.length], 0x0a, "the torn last line is closed");
  } else {
    assertEquals(
      log.lines.slice(0, before.length).map((l) => l.text),
      before,
      "the rows before the restart are intact",
    );
  }
  const started = starts(log.records).find((s) => s.pid === restartPid);
  assert(started !== undefined, "the restarted proxy wrote audit/start");
  assert(started.record.seq > lastSeqBefore, "the restarted proxy continues the chain");
  assertTornCovered(log, torn);
  return { log, torn };
}

/** `verify` after the restart: exit 0, or only `torn` problems, each named by audit/recover. */
async function assertVerifiesAfterKill(setup: StorageSetup, torn: readonly TornLine[]) {
  const v = await verifyLog(setup.path);
  const problems = verifyProblems(v);
  if (torn.length === 0) {
    assertEquals(v.code, 0, `verify exits 0:\n${v.stdout}\n${v.stderr}`);
    return v;
  }
  assert(v.code === 0 || v.code === 1, `verify could check the log:\n${v.stdout}\n${v.stderr}`);
  assertEquals(
    problems.filter((p) => p.kind !== "torn").map((p) => p.line),
    [],
    `a killed writer leaves at most torn lines:\n${v.stdout}`,
  );
  assert(problems.length <= torn.length, `one problem per torn line at most:\n${v.stdout}`);
  return v;
}

for (const backend of ["jsonl", "sqlite"] as const) {
  for (const mode of ["sync", "async"] as const) {
    for (const durability of ["none", "batch", "entry"] as const satisfies Durability[]) {
      const rule = mode === "sync"
        ? "every answered call has both records"
        : `answered calls lacking records are at most the queue (${ASYNC.queueSize})`;
      storageTest(
        `kill -9 under load, ${backend} ${mode} durability ${durability}: ${rule}; a restart continues the chain`,
        async () => {
          await using dir = await tempDir(`kill-${backend}-${mode}-${durability}`);
          const signal = deadline(60_000);
          const setup: StorageSetup = {
            backend,
            path: pathFor(dir.path, backend),
            durability,
            ...(mode === "async" ? { async: ASYNC } : {}),
          };
          let victim: { pid: number; outcome: CallOutcome; family: Proc[] };
          {
            await using proxy = startWriter(dir.path, setup);
            const caller = new Caller(proxy, "victim");
            const { outcome, family } = await killUnderLoad(proxy, caller, KILL_AFTER, signal);
            victim = { pid: proxy.pid, outcome, family };
          }
          await assertNoStrays(dir.path, victim.family);

          const crashed = await readStored(setup);
          const torn = assertOneChain(crashed);
          if (backend === "sqlite") assertEquals(torn, [], "SQLite keeps no partial row");
          assert(torn.length <= 1, `at most the last line is torn: ${JSON.stringify(torn)}`);
          const lastLine = crashed.lines.at(-1)!;
          if (torn.length === 1) {
            assertEquals(torn[0]!.offset, lastLine.offset, "only the very last line is torn");
          }
          const session = sessionOf(crashed.records, victim.pid);
          const lacking = unrecorded(crashed.records, session, victim.outcome.answered);
          console.log(
            `${backend} ${mode} ${durability}: ${victim.outcome.answered.length} answered of ` +
              `${victim.outcome.sent.length} sent; ${lacking.calls.length} answered calls lack ` +
              `records (${lacking.records} records)${torn.length > 0 ? "; last line torn" : ""}`,
          );
          if (mode === "sync") {
            assertEquals(lacking.calls, [], "answered calls without their records");
          } else {
            assert(
              lacking.records <= ASYNC.queueSize,
              `the async window (${lacking.records} records) is at most the queue (${ASYNC.queueSize})`,
            );
            // Whatever was stored of the answered calls is a prefix: the queue is lost whole.
            const firstLacking = lacking.calls[0] ?? Infinity;
            const storedAfterGap = victim.outcome.answered.filter((id) =>
              id > firstLacking && !lacking.calls.includes(id)
            );
            assertEquals(storedAfterGap, [], "no answered call is stored after one that is lost");
          }

          const before = await snapshot(setup, crashed);
          const lastSeqBefore = crashed.records.at(-1)!.seq;
          const restartPid = await restart(dir.path, setup, signal);
          await assertNoStrays(dir.path);
          const after = await assertContinued(setup, before, torn, lastSeqBefore, restartPid);
          assertEquals(after.torn.length, torn.length, "no new torn line");
          await assertVerifiesAfterKill(setup, after.torn);
        },
      );
    }
  }
}

const PAD = "p".repeat(2_000);
// Large batches of large records: each of the victim's writes is hundreds of kilobytes, so the
// kill may well land inside one.
const BIG_BATCHES: AsyncSetup = { batchSize: 256, queueSize: 1024, flushIntervalMs: 600_000 };

for (const backend of ["jsonl", "sqlite"] as const) {
  storageTest(
    `kill -9 of one of three ${backend} writers mid-batch: the other two finish with all their records; any torn line is named by audit/recover; after a restart verify passes`,
    async () => {
      await using dir = await tempDir(`kill-one-of-three-${backend}`);
      const signal = deadline(90_000);
      const setup: StorageSetup = {
        backend,
        path: pathFor(dir.path, backend),
        durability: "batch",
        async: BIG_BATCHES,
      };
      let killed!: () => void;
      const isKilled = new Promise<void>((resolve) => killed = resolve);
      const survivors: { pid: number; outcome: CallOutcome }[] = [];
      let victim: { pid: number; outcome: CallOutcome; family: Proc[] };
      {
        await using stack = new AsyncDisposableStack();
        const a = stack.use(startWriter(dir.path, setup));
        const b = stack.use(startWriter(dir.path, setup));
        const v = stack.use(startWriter(dir.path, setup));
        // The survivors write before the kill, wait for it, and write as much again after it.
        const survive = async (proxy: ProxyProcess, name: string) => {
          const caller = new Caller(proxy, name);
          await caller.run(1, 600, 50, signal, { pad: PAD });
          await isKilled;
          const outcome = await caller.run(601, 600, 50, signal, { pad: PAD });
          assert(!outcome.cut, `${name} kept answering after the kill`);
          assertEquals(outcome.answered.length, 1_200, `${name}: every call answered`);
          await proxy.closeInput();
          const status = await proxy.finished(signal);
          assertEquals(status.code, 0, `${name} exits 0:\n${proxy.stderr.text().slice(-3000)}`);
          survivors.push({ pid: proxy.pid, outcome });
        };
        // Settled at once, so that a survivor's failure waits for the victim's end to be reported.
        const running = [survive(a, "survivor-a"), survive(b, "survivor-b")].map((p) =>
          p.then(() => undefined, (e: unknown) => e)
        );
        try {
          const victimCaller = new Caller(v, "victim");
          const { outcome, family } = await killUnderLoad(v, victimCaller, KILL_AFTER, signal, {
            pad: PAD,
          });
          victim = { pid: v.pid, outcome, family };
        } finally {
          killed();
        }
        const failure = (await Promise.all(running)).find((e) => e !== undefined);
        if (failure !== undefined) throw failure;
      }
      await assertNoStrays(dir.path, victim.family);

      const log = await readStored(setup);
      const torn = assertOneChain(log);
      if (backend === "sqlite") assertEquals(torn, [], "SQLite keeps no partial row");
      // The survivors wrote after the kill: they found what the victim left and named it.
      assertTornCovered(log, torn);
      for (const s of survivors) {
        assertCallsRecorded(
          log.records,
          sessionOf(log.records, s.pid),
          s.outcome.answered,
          `survivor ${s.pid}`,
        );
      }
      const lacking = unrecorded(
        log.records,
        sessionOf(log.records, victim.pid),
        victim.outcome.answered,
      );
      console.log(
        `${backend} one of three killed: ${victim.outcome.answered.length} answered; ` +
          `${lacking.calls.length} answered calls lack records (${lacking.records} records); ` +
          `${torn.length} torn line(s)`,
      );
      assert(lacking.records <= BIG_BATCHES.queueSize, "the victim lost at most its queue");

      const before = await snapshot(setup, log);
      const restartPid = await restart(dir.path, setup, signal);
      await assertNoStrays(dir.path);
      const after = await assertContinued(setup, before, torn, log.records.at(-1)!.seq, restartPid);
      const v = await assertVerifiesAfterKill(setup, after.torn);
      console.log(`${backend} one of three killed: verify exit ${v.code}: ${v.lines[0]}`);
    },
  );
}

storageTest(
  "a line left half-written by a writer that died holding the lock is closed and named once by audit/recover by the writers that go on",
  async () => {
    // What kill -9 inside write(2) leaves, made deterministic: with both writers idle, the test
    // takes their lock (`<log>.lock`, flock), appends half of a record line, and lets go, as a
    // holder that dies does; then both write on.
    await using dir = await tempDir("kill-torn-under-lock");
    const signal = deadline(60_000);
    const setup: StorageSetup = { backend: "jsonl", path: `${dir.path}/audit.jsonl` };
    let tear!: () => void;
    const torn = new Promise<void>((resolve) => tear = resolve);
    const writers: { pid: number; outcome: CallOutcome }[] = [];
    let tornAt = -1;
    {
      await using stack = new AsyncDisposableStack();
      const proxies = [
        stack.use(startWriter(dir.path, setup)),
        stack.use(startWriter(dir.path, setup)),
      ];
      const idle: Promise<void>[] = [];
      const running = proxies.map((proxy, k) => {
        let paused!: () => void;
        let failed!: (e: unknown) => void;
        idle.push(new Promise<void>((resolve, reject) => [paused, failed] = [resolve, reject]));
        return (async () => {
          const caller = new Caller(proxy, `writer-${k}`);
          try {
            const first = await caller.run(1, 300, 50, signal);
            assert(!first.cut, `writer ${k} answers:\n${proxy.stderr.text().slice(-3000)}`);
          } catch (e) {
            failed(e);
            throw e;
          }
          paused();
          await torn;
          const outcome = await caller.run(301, 300, 50, signal);
          assert(!outcome.cut, `writer ${k} kept answering after the torn write`);
          await proxy.closeInput();
          assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text().slice(-3000));
          writers.push({ pid: proxy.pid, outcome: { ...outcome, answered: caller.answered } });
        })().then(() => undefined, (e: unknown) => e);
      });
      try {
        // Sync mode: every answered call is stored; both clients now wait.
        await Promise.all(idle);
        using lock = await Deno.open(`${setup.path}.lock`, { read: true, write: true });
        await lock.lock(true);
        const bytes = await Deno.readFile(setup.path);
        const lastStart = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
        const half = bytes.subarray(
          lastStart,
          lastStart + Math.floor((bytes.length - lastStart) / 2),
        );
        tornAt = bytes.length;
        using log = await Deno.open(setup.path, { append: true });
        let at = 0;
        while (at < half.length) at += await log.write(half.subarray(at));
        // Closing the lock file (at the end of this block) releases the lock, as a death does.
      } finally {
        tear();
      }
      const failure = (await Promise.all(running)).find((e) => e !== undefined);
      if (failure !== undefined) throw failure;
    }
    await assertNoStrays(dir.path);

    const log = await readStored(setup);
    const tornLines = assertOneChain(log);
    assertEquals(tornLines.map((t) => t.offset), [tornAt], "the half line is kept where it was");
    assertEquals(
      recoveredTorn(log.records).filter((t) => t.offset === tornAt).length,
      1,
      "one audit/recover names it, once",
    );
    assertEquals(writers.length, 2);
    for (const w of writers) {
      assertCallsRecorded(
        log.records,
        sessionOf(log.records, w.pid),
        w.outcome.answered,
        `${w.pid}`,
      );
    }
    const v = await assertVerifiesAfterKill(setup, tornLines);
    console.log(`torn under the lock: verify exit ${v.code}: ${JSON.stringify(v.lines)}`);
  },
);
