/**
 * Several proxies, one log: four stdio proxies with the same configuration write one JSONL file,
 * or one SQLite database, at once, 5,000 `tools/call` each, and the result is one chain — one seq
 * space 1..N with no gap or repeat, every `prev` the SHA-256 of the line before, four
 * `audit/start` events each naming its own writer, every answered call recorded, `verify` exit 0.
 * Once more with async batching and rotation by size with gzip, so that the chain runs through
 * several archives, compressed and not.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertNoStrays,
  deadline,
  type ProxyProcess,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import {
  assertCallsRecorded,
  assertOneChain,
  Caller,
  listArchiveFiles,
  objectOf,
  readStored,
  sessionOf,
  starts,
  startWriter,
  type StorageSetup,
  storageTest,
  type StoredLog,
} from "./storage_helpers.ts";

const WRITERS = 4;
const CALLS = 5_000;
// Calls in flight per proxy: enough to keep every writer's batches coming while the others hold
// the lock, few enough that a lost answer shows up at once.
const WINDOW = 250;

/**
 * Runs WRITERS proxies on `setup` at once, CALLS calls each, all answered and checked; then checks
 * the one chain, the writers, the evidence of every call and `verify`. Returns what was stored.
 */
async function writeTogether(dir: string, setup: StorageSetup): Promise<StoredLog> {
  const signal = deadline(80_000);
  const pids: number[] = [];
  const answered = new Map<number, number[]>();
  {
    await using stack = new AsyncDisposableStack();
    const proxies: ProxyProcess[] = [];
    for (let k = 0; k < WRITERS; k++) {
      const proxy = stack.use(startWriter(dir, setup));
      proxies.push(proxy);
      pids.push(proxy.pid);
    }
    const callers = proxies.map((p, k) => new Caller(p, `writer-${k}`));
    const outcomes = await Promise.all(callers.map((c) => c.run(1, CALLS, WINDOW, signal)));
    for (const [k, o] of outcomes.entries()) {
      assert(!o.cut, `writer ${k} stopped answering after ${o.answered.length} calls`);
      assertEquals(o.answered.length, CALLS, `writer ${k}: every call answered`);
      answered.set(pids[k]!, o.answered);
    }
    await Promise.all(proxies.map((p) => p.closeInput()));
    for (const [k, p] of proxies.entries()) {
      const status = await p.finished(signal);
      assertEquals(status.code, 0, `writer ${k} exits 0:\n${p.stderr.text().slice(-3000)}`);
    }
  }
  await assertNoStrays(dir);

  const log = await readStored(setup);
  assertEquals(assertOneChain(log), [], "no torn or foreign line");
  const writers = starts(log.records);
  assertEquals(
    writers.map((w) => w.pid).sort((a, b) => a - b),
    [...pids].sort((a, b) => a - b),
    `${WRITERS} audit/start events, each naming a different writer`,
  );
  const stops = log.records.filter((r) => r.kind === "event" && r.method === "audit/stop");
  assertEquals(stops.length, WRITERS, "every writer closed the log with audit/stop");
  for (const stop of stops) {
    assertEquals(objectOf(stop.params)?.exit_code, 0, `audit/stop seq ${stop.seq}: exit 0`);
  }
  for (const [pid, ids] of answered) {
    assertCallsRecorded(log.records, sessionOf(log.records, pid), ids, `writer pid ${pid}`);
  }
  const calls = log.records.filter((r) => r.method === "tools/call");
  assertEquals(calls.length, WRITERS * CALLS * 2, "a request and a response record per call");
  const v = await verifyLog(setup.path);
  assertEquals(v.code, 0, `verify exits 0:\n${v.stdout}\n${v.stderr}`);
  return log;
}

storageTest("4 proxies × 5,000 calls on one JSONL file make one chain that verifies", async () => {
  await using dir = await tempDir("multi-jsonl");
  const log = await writeTogether(dir.path, { backend: "jsonl", path: `${dir.path}/audit.jsonl` });
  assertEquals(log.files.length, 1, "no rotation configured, no archive");
});

storageTest(
  "4 proxies × 5,000 calls on one SQLite database make one chain that verifies",
  async () => {
    await using dir = await tempDir("multi-sqlite");
    await writeTogether(dir.path, { backend: "sqlite", path: `${dir.path}/audit.db` });
  },
);

storageTest(
  "4 async proxies on one JSONL file rotating by size with gzip: one chain through the archives",
  async () => {
    await using dir = await tempDir("multi-rotate");
    const setup: StorageSetup = {
      backend: "jsonl",
      path: `${dir.path}/audit.jsonl`,
      async: { batchSize: 128, queueSize: 1024, flushIntervalMs: 100 },
      // 40,000 records of about 700 bytes: about seven rotations.
      rotation: { maxSizeBytes: 4 << 20, compress: "gzip" },
    };
    const log = await writeTogether(dir.path, setup);
    const archives = listArchiveFiles(setup.path);
    assert(archives.length >= 3, `rotated several times: ${archives.map((a) => a.name)}`);
    assert(
      archives.some((a) => a.gzip),
      `closed archives are compressed: ${archives.map((a) => a.name)}`,
    );
    console.log(
      `rotation: ${log.records.length} records in ${archives.length} archives ` +
        `(${archives.filter((a) => a.gzip).length} gzip) and the active file`,
    );
    const rotates = log.records.filter((r) => r.kind === "event" && r.method === "audit/rotate");
    assertEquals(rotates.length, archives.length, "one audit/rotate per archive");
    for (const [i, file] of log.files.entries()) {
      if (i === 0) continue;
      const first = file.lines[0]?.record;
      assertEquals(first?.method, "audit/rotate", `${file.path} starts with audit/rotate`);
      const archive = objectOf(first?.params)?.archive;
      const before = log.files[i - 1]!.path;
      assert(
        typeof archive === "string" && before.replace(/\.gz$/, "").endsWith(archive),
        `audit/rotate in ${file.path} names the archive before it (${archive}, ${before})`,
      );
    }
    const leftovers = [...Deno.readDirSync(dir.path)].map((e) => e.name).filter((n) =>
      n.endsWith(".tmp")
    );
    assertEquals(leftovers, [], "no half-done compression left behind");
  },
);
