/**
 * Storage faults end to end, each a clear error (exit code and a message naming what is wrong)
 * with nothing already written lost: SQLite files that are corrupt, cut in half, not SQLite, or
 * of a newer schema; a full file system; a log path that is a directory or a dangling symlink; an
 * archive deleted while proxies write; `verify` and `export` reading a log while proxies write it.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNoStrays,
  deadline,
  seededRandom,
  tempDir,
  verifyLog,
} from "./helpers.ts";
import {
  assertCallsRecorded,
  assertOneChain,
  type Backend,
  Caller,
  listArchiveFiles,
  mountTmpfs,
  readStored,
  runMain,
  sessionOf,
  startWriter,
  type StorageSetup,
  storageTest,
  verifyProblems,
} from "./storage_helpers.ts";

/** Runs one short clean session on `setup` so that there is a real log. */
async function writeRealLog(dir: string, setup: StorageSetup, calls: number): Promise<void> {
  const signal = deadline(30_000);
  await using proxy = startWriter(dir, setup);
  const caller = new Caller(proxy, "maker");
  const o = await caller.run(1, calls, 100, signal);
  assert(!o.cut, proxy.stderr.text());
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text());
}

/** A real SQLite log, everything in the main file (WAL checkpointed and removed). */
async function realDatabase(dir: string): Promise<string> {
  const path = `${dir}/audit.db`;
  await writeRealLog(dir, { backend: "sqlite", path }, 300);
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
  for (const extra of [`${path}-wal`, `${path}-shm`]) {
    await Deno.remove(extra).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  return path;
}

/**
 * Starts a proxy on `setup` with its input already closed: a proxy that refuses its log exits
 * before reading any; one that wrongly accepts it ends its session at once and exits 0.
 */
async function refusal(
  dir: string,
  setup: StorageSetup,
): Promise<{ code: number; stderr: string }> {
  const signal = deadline(30_000);
  await using proxy = startWriter(dir, setup);
  await proxy.closeInput();
  const status = await proxy.finished(signal);
  return { code: status.code, stderr: proxy.stderr.text() };
}

/** A refused database: exit 1, one message naming the file, the file's bytes unchanged. */
async function assertRefusedDatabase(
  dir: string,
  path: string,
  why: RegExp,
): Promise<void> {
  const before = await Deno.readFile(path);
  const r = await refusal(dir, { backend: "sqlite", path });
  assertEquals(r.code, 1, `a runtime failure (exit 1):\n${r.stderr}`);
  assert(r.stderr.includes(path), `the message names ${path}:\n${r.stderr}`);
  assertMatch(r.stderr, why, "the message says what is wrong");
  assert(!/"msg":"upstream started"/.test(r.stderr), "no upstream was started");
  assertEquals(await Deno.readFile(path), before, "the file is unchanged");
  await assertNoStrays(dir);
}

storageTest(
  "a SQLite log with random bytes after its header is refused: exit 1 naming the file, bytes unchanged",
  async () => {
    await using dir = await tempDir("fault-corrupt-db");
    const path = await realDatabase(dir.path);
    const bytes = await Deno.readFile(path);
    const random = seededRandom(9);
    for (let i = 100; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    await Deno.writeFile(path, bytes);
    await assertRefusedDatabase(dir.path, path, /corrupt|malformed|not a database/i);
  },
);

storageTest(
  "a SQLite log cut to half its size is refused: exit 1 naming the file, bytes unchanged",
  async () => {
    await using dir = await tempDir("fault-half-db");
    const path = await realDatabase(dir.path);
    const bytes = await Deno.readFile(path);
    assert(bytes.length >= 8 * 4096, `the database spans many pages (${bytes.length} bytes)`);
    await Deno.writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assertRefusedDatabase(dir.path, path, /corrupt|malformed|truncated|not a database/i);
  },
);

// A file that is not a log of ours at all is the configuration's fault, as for JSONL (errors.ts:
// RefusedPathError, exit 2 naming the key); one of ours that is damaged is a runtime failure.
storageTest(
  "a .db that is a text file is refused as a configuration error naming audit.sqlite_path and the file (exit 2), bytes unchanged",
  async () => {
    await using dir = await tempDir("fault-text-db");
    const path = `${dir.path}/audit.db`;
    await Deno.writeTextFile(path, "these are my notes, not a database\n".repeat(200));
    await Deno.chmod(path, 0o600);
    const before = await Deno.readFile(path);
    const r = await refusal(dir.path, { backend: "sqlite", path });
    assertEquals(r.code, 2, `a configuration error (exit 2):\n${r.stderr}`);
    assertMatch(r.stderr, /config: audit\.sqlite_path\b/, "the message names audit.sqlite_path");
    assert(r.stderr.includes(path), `the message names ${path}:\n${r.stderr}`);
    assertMatch(r.stderr, /not (a|an) (SQLite )?database|not SQLite/i, "and says what is wrong");
    assertEquals(await Deno.readFile(path), before, "the file is unchanged");
    await assertNoStrays(dir.path);
  },
);

storageTest(
  "a SQLite log of a newer schema (user_version) is refused and never altered",
  async () => {
    await using dir = await tempDir("fault-newer-db");
    const path = await realDatabase(dir.path);
    const db = new DatabaseSync(path);
    let version: number;
    try {
      const row = db.prepare("PRAGMA user_version").get();
      assert(typeof row?.user_version === "number", "the store sets a schema user_version");
      version = row.user_version;
      assert(version >= 1, `the store's schema version is set (${version})`);
      db.exec(`PRAGMA user_version = ${version + 97}`);
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      db.close();
    }
    await Deno.remove(`${path}-wal`).catch(() => {});
    await Deno.remove(`${path}-shm`).catch(() => {});
    await assertRefusedDatabase(dir.path, path, new RegExp(`newer|version ${version + 97}`, "i"));
  },
);

for (const backend of ["jsonl", "sqlite"] as const satisfies Backend[]) {
  storageTest(
    `a full file system (${backend}): the proxy stops forwarding and exits non-zero; every answer has its records; verify finds nothing modified`,
    async (t) => {
      await using dir = await tempDir(`fault-enospc-${backend}`);
      // SQLite writes whole pages to its WAL, a dozen per commit with the indexes: the database
      // needs a few hundred KiB before its first call.
      const mounted = await mountTmpfs(dir.path, backend === "jsonl" ? "256k" : "1m");
      if (mounted.path === null) {
        console.log(`skipped: cannot mount a tmpfs here (${mounted.reason})`);
        await t.step({ name: "needs a tmpfs (root or CAP_SYS_ADMIN)", ignore: true, fn: () => {} });
        return;
      }
      await using _fs = mounted;
      const setup: StorageSetup = {
        backend,
        path: `${mounted.path}/${backend === "jsonl" ? "audit.jsonl" : "audit.db"}`,
      };
      const signal = deadline(60_000);
      let pid = 0;
      let answered: number[] = [];
      {
        await using proxy = startWriter(dir.path, setup);
        pid = proxy.pid;
        const caller = new Caller(proxy, "filler");
        // About 3 KB of records a call: the 256 KiB fill within a hundred calls.
        const o = await caller.run(1, 2_000, 10, signal, { pad: "f".repeat(1_000) });
        assert(
          o.cut,
          `the proxy stopped answering when the disk was full (answered ${o.answered.length})`,
        );
        assert(o.answered.length > 0, "calls were answered before the disk filled");
        answered = o.answered;
        const status = await proxy.finished(signal);
        const stderr = proxy.stderr.text();
        assert(status.code !== 0, `a full disk ends the run with a non-zero exit:\n${stderr}`);
        assertEquals(status.code, 1, `a runtime failure (exit 1):\n${stderr.slice(-3000)}`);
        assertMatch(stderr, /no space|ENOSPC|full/i, "the log says the disk is full");
      }
      await assertNoStrays(dir.path);
      const log = await readStored(setup);
      assertCallsRecorded(log.records, sessionOf(log.records, pid), answered, "the filler");
      const v = await verifyLog(setup.path);
      assert(v.code === 0 || v.code === 1, `verify read the log:\n${v.stdout}\n${v.stderr}`);
      assertEquals(
        verifyProblems(v).filter((p) => p.kind === "modified" || p.kind === "reordered"),
        [],
        `nothing stored was damaged:\n${v.stdout}`,
      );
      console.log(
        `full ${backend}: ${answered.length} calls answered; verify exit ${v.code}: ` +
          JSON.stringify(v.lines.slice(0, 6)),
      );
    },
  );
}

storageTest(
  "audit.path naming a directory is a configuration error naming audit.path (exit 2)",
  async () => {
    await using dir = await tempDir("fault-path-dir");
    const path = `${dir.path}/audit.jsonl`;
    await Deno.mkdir(path);
    const r = await refusal(dir.path, { backend: "jsonl", path });
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /config: audit\.path\b/, "the message names audit.path");
    assertEquals([...Deno.readDirSync(path)], [], "nothing was created in the directory");
    await assertNoStrays(dir.path);
  },
);

storageTest(
  "audit.path naming a dangling symlink is a configuration error naming audit.path (exit 2)",
  async () => {
    await using dir = await tempDir("fault-path-dangling");
    const path = `${dir.path}/audit.jsonl`;
    const target = `${dir.path}/elsewhere.jsonl`;
    await Deno.symlink(target, path);
    const r = await refusal(dir.path, { backend: "jsonl", path });
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /config: audit\.path\b/, "the message names audit.path");
    assertEquals(await Deno.readLink(path), target, "the symlink is left as it was");
    assert(
      await Deno.lstat(target).then(() => false, () => true),
      "the symlink's target was not created",
    );
    await assertNoStrays(dir.path);
  },
);

storageTest(
  "audit.sqlite_path naming a directory is a configuration error naming audit.sqlite_path (exit 2)",
  async () => {
    await using dir = await tempDir("fault-sqlite-dir");
    const path = `${dir.path}/audit.db`;
    await Deno.mkdir(path);
    const r = await refusal(dir.path, { backend: "sqlite", path });
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /config: audit\.sqlite_path\b/, "the message names audit.sqlite_path");
    assertEquals([...Deno.readDirSync(path)], [], "nothing was created in the directory");
    await assertNoStrays(dir.path);
  },
);

storageTest(
  "an archive deleted while two proxies write: the run goes on, verify then reports it missing",
  async () => {
    await using dir = await tempDir("fault-archive-deleted");
    const signal = deadline(60_000);
    // About 90 records an archive: several rotations within a few hundred calls.
    const setup: StorageSetup = {
      backend: "jsonl",
      path: `${dir.path}/audit.jsonl`,
      rotation: { maxSizeBytes: 64 << 10 },
    };
    let deleted: { name: string; firstSeq: number; lastSeq: number } | undefined;
    let archivesAfterDeletion = 0;
    const sessions: string[] = [];
    // The calls answered after the deletion, whose records no deleted file can hold.
    const answeredAfter: number[][] = [];
    {
      await using stack = new AsyncDisposableStack();
      const proxies = [
        stack.use(startWriter(dir.path, setup)),
        stack.use(startWriter(dir.path, setup)),
      ];
      const callers = proxies.map((p, k) => new Caller(p, `writer-${k}`));
      // Per client, the calls it had sent when it first saw the deletion: the later ones were
      // sent after it, so their records are in files that were not deleted.
      const sentBefore: (number | undefined)[] = callers.map(() => undefined);
      // Before each window of either client: once two archives exist, the oldest is deleted;
      // the clients go on until the log has rotated twice more after that.
      // Both clients run this; the first to see two archives deletes the oldest, and the other
      // waits for that same deletion (it must not delete a second file, or the same one twice).
      let deleting: Promise<void> | undefined;
      const deleteOldest = async (archives: ReturnType<typeof listArchiveFiles>) => {
        const oldest = archives[0]!;
        const records = (await readStored({ backend: "jsonl", path: oldest.path })).records;
        await Deno.remove(oldest.path);
        archivesAfterDeletion = archives.length - 1;
        deleted = { name: oldest.name, firstSeq: records[0]!.seq, lastSeq: records.at(-1)!.seq };
      };
      const beforeFor = (k: number) => async (): Promise<boolean> => {
        let archives = listArchiveFiles(setup.path);
        if (deleted === undefined) {
          if (deleting === undefined && archives.length < 2) return true;
          deleting ??= deleteOldest(archives);
          await deleting;
          archives = listArchiveFiles(setup.path);
        }
        sentBefore[k] ??= callers[k]!.sent.length;
        return archives.length < archivesAfterDeletion + 2 ||
          sentBefore[k] === callers[k]!.sent.length;
      };
      const outcomes = await Promise.all(
        callers.map((c, k) => c.run(1, 5_000, 20, signal, { before: beforeFor(k) })),
      );
      for (const [k, o] of outcomes.entries()) {
        assert(!o.cut, `writer ${k} kept answering`);
        assert(o.answered.length < 5_000, "the clients stopped once the log had rotated on");
        answeredAfter.push(o.answered.filter((id) => id > sentBefore[k]!));
      }
      for (const p of proxies) {
        await p.closeInput();
        const status = await p.finished(signal);
        assertEquals(status.code, 0, `the run went on and ended cleanly:\n${p.stderr.text()}`);
        // Its audit/start went with the deleted archive; the proxy's log names its session too.
        const session = p.logLines().find((l) => l.msg === "upstream started")?.session;
        assert(typeof session === "string", "the proxy logged its session");
        sessions.push(session);
      }
    }
    await assertNoStrays(dir.path);
    assert(deleted !== undefined, "an archive was deleted");
    const log = await readStored(setup);
    const names = log.files.map((f) => f.path.slice(f.path.lastIndexOf("/") + 1));
    const reused = log.files.find((f) => f.path.endsWith(`/${deleted!.name}`));
    assert(
      reused === undefined,
      `the name ${deleted.name}, freed by the deletion, was given to a newer archive (seq ` +
        `${reused?.lines[0]?.record?.seq}-${reused?.lines.at(-1)?.record?.seq}): archives are ` +
        `ordered by name, so it now reads before older ones (files: ${names})`,
    );
    assertEquals(
      log.records.filter((r) => r.seq <= deleted!.lastSeq).map((r) => r.seq),
      [],
      `the records of ${deleted.name} stay deleted (files now, in chain order: ${names})`,
    );
    assertEquals(
      log.records[0]!.seq,
      deleted.lastSeq + 1,
      `the first file in chain order starts after the deleted archive (${names})`,
    );
    for (const [k, session] of sessions.entries()) {
      assert(answeredAfter[k]!.length > 0, `writer ${k} answered calls after the deletion`);
      assertCallsRecorded(log.records, session, answeredAfter[k]!, `writer ${k}`);
    }
    const v = await verifyLog(setup.path);
    assertEquals(v.code, 1, `a deleted archive is a problem:\n${v.stdout}`);
    const problems = verifyProblems(v);
    assert(problems.some((p) => p.kind === "missing"), `reported missing:\n${v.stdout}`);
    assertEquals(
      problems.filter((p) => p.kind !== "missing").map((p) => p.line),
      [],
      `the only problem is the missing archive:\n${v.stdout}`,
    );
    assertMatch(v.stdout, new RegExp(`seq ${deleted.firstSeq}-${deleted.lastSeq}\\b`), "its seqs");
  },
);

// A signed audit/checkpoint every 200 records.
const CHECKPOINTS = { MCP_AUDIT_AUDIT_CHECKPOINT_EVERY_RECORDS: "200" };
// Calls each client makes at most while verify and export read.
const WHILE_READING = 4_000;

for (const backend of ["jsonl", "sqlite"] as const satisfies Backend[]) {
  storageTest(
    `verify and export (${backend}) while two proxies write: both complete, verify vouches up to the last checkpoint with no false claim, the export is the stored lines`,
    async () => {
      await using dir = await tempDir(`fault-live-read-${backend}`);
      const signal = deadline(60_000);
      const setup: StorageSetup = {
        backend,
        path: `${dir.path}/${backend === "jsonl" ? "audit.jsonl" : "audit.db"}`,
      };
      let reading = true;
      const pids: number[] = [];
      const answered: number[][] = [];
      let v: Awaited<ReturnType<typeof verifyLog>>;
      let exported: Awaited<ReturnType<typeof runMain>>;
      {
        await using stack = new AsyncDisposableStack();
        const proxies = [
          stack.use(startWriter(dir.path, setup, { env: CHECKPOINTS })),
          stack.use(startWriter(dir.path, setup, { env: CHECKPOINTS })),
        ];
        const callers = proxies.map((p, k) => new Caller(p, `writer-${k}`));
        // The clients write until both readers are done, but at most WHILE_READING calls each
        // once they have begun: verify reads a live file up to where it ends when it gets there,
        // so writers that never stopped could keep it reading.
        let started = false;
        const running = callers.map((c) => {
          let windows = 0;
          const before = () => !started || (reading && windows++ < WHILE_READING / 20);
          return c.run(1, 1_000_000, 20, signal, { before });
        });
        await Promise.all(
          callers.map((c) => c.out.waitFor((o) => o.lines.length >= 500, "500 answers", signal)),
        );
        started = true;
        [v, exported] = await Promise.all([
          verifyLog(setup.path),
          runMain(["export", "--format", "jsonl", setup.path]),
        ]);
        reading = false;
        const outcomes = await Promise.all(running);
        for (const [k, p] of proxies.entries()) {
          assert(!outcomes[k]!.cut, `writer ${k} kept answering`);
          await p.closeInput();
          assertEquals((await p.finished(signal)).code, 0, p.stderr.text());
          pids.push(p.pid);
          answered.push(outcomes[k]!.answered);
        }
      }
      await assertNoStrays(dir.path);

      // A live log may end in a line being written, and without audit/stop: said of its end, true.
      // Anything said of a record within it would be false.
      const problems = verifyProblems(v);
      assertEquals(
        problems.filter((p) =>
          !(p.kind === "torn" || (p.kind === "missing" && !/^(line|seq) /.test(p.line)))
        ).map((p) => p.line),
        [],
        `verify of a live log claims nothing false:\n${v.stdout}\n${v.stderr}`,
      );
      assert(
        problems.filter((p) => p.kind === "torn").length <= 1,
        `at most a last line being written:\n${v.stdout}`,
      );
      // Signed checkpoints let verify vouch for a live log up to the last one: INCOMPLETE (exit 4),
      // or 0 when the very end it read was a checkpoint.
      assert(v.code === 4 || v.code === 0, `verify completed (exit 4):\n${v.stdout}\n${v.stderr}`);

      assertEquals(exported.code, 0, `export completed:\n${exported.stderr}`);
      const log = await readStored(setup);
      assertEquals(assertOneChain(log), []);
      const lines = exported.stdout.split("\n");
      assertEquals(lines.pop(), "", "the export ends with a newline");
      assert(lines.length >= 1_000, `the export holds what was stored (${lines.length} lines)`);
      const stored = log.lines.map((l) => l.text);
      assertEquals(
        lines,
        stored.slice(0, lines.length),
        "the export is the stored lines, in order",
      );
      for (const [k, pid] of pids.entries()) {
        assertCallsRecorded(log.records, sessionOf(log.records, pid), answered[k]!, `writer ${k}`);
      }
      const after = await verifyLog(setup.path);
      assertEquals(after.code, 0, `the finished log verifies:\n${after.stdout}`);
      console.log(
        `live ${backend}: verify exit ${v.code}: ${JSON.stringify(v.lines.slice(0, 5))}; ` +
          `export ${lines.length} lines`,
      );
    },
  );
}
