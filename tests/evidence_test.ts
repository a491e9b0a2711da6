/**
 * Evidence that vanishes, over real proxy processes: the live log deleted, moved away, replaced by
 * another file or a symlink, cut short, or its directory removed while the proxy runs; and at
 * start, a log path that is a symlink, a directory, a FIFO or a file that is not a log.
 *
 * Each test waits for answers, files and exits, never for time.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditRecord,
  Collector,
  deadline,
  type Json,
  type ProxyOptions,
  ProxyProcess,
  readLog,
  recordingUpstream,
  sha256Hex,
  STORAGE,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";

const posix = Deno.build.os !== "windows";
/** The backend under test is SQLite: tests of what only a JSONL log has are skipped. */
const sqlite = STORAGE === "sqlite";
/** How the backend under test names the log, its path's key, and what it says a path is not. */
const words = sqlite
  ? {
    log: "audit database",
    key: "audit\\.sqlite_path",
    notALog: "not a database file",
    symlink: /audit\.sqlite_path: .*symbolic link/,
  }
  : {
    log: "audit log",
    key: "audit\\.path",
    notALog: "not a log file",
    symlink: /audit\.path: .*symbolic link.*audit\.follow_symlinks/,
  };

function ping(id: number): Uint8Array {
  return utf8(`{"jsonrpc":"2.0","id":${id},"method":"ping"}\n`);
}

/** A proxy with a client that sends pings and waits for their answers. */
class Session implements AsyncDisposable {
  readonly proxy: ProxyProcess;
  readonly out: Collector;
  #next = 1;

  constructor(opts: ProxyOptions) {
    this.proxy = new ProxyProcess(opts);
    this.out = this.proxy.stdout();
  }

  /** Sends `n` pings and waits until each has its answer. */
  async pings(n: number, signal: AbortSignal): Promise<void> {
    const want = this.out.lines.length + n;
    for (let i = 0; i < n; i++) await this.proxy.write(ping(this.#next++));
    await this.out.waitFor((c) => c.lines.length >= want, `${want} answers`, signal);
  }

  /** Ends the client's input and waits for the proxy to exit. */
  async end(signal: AbortSignal): Promise<Deno.CommandStatus> {
    await this.proxy.closeInput();
    return await this.proxy.finished(signal);
  }

  /** The proxy's warnings. */
  warnings(): string[] {
    return this.proxy.logLines().filter((l) => l.level === "warn").map((l) => String(l.msg));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.proxy[Symbol.asyncDispose]();
  }
}

function params(r: AuditRecord | undefined): { [key: string]: Json } {
  assert(r !== undefined, "the record exists");
  const p = r.params;
  assert(typeof p === "object" && p !== null && !Array.isArray(p), `seq ${r.seq} has params`);
  return p;
}

function event(r: AuditRecord | undefined, method: string): AuditRecord {
  assert(r !== undefined, `an ${method} event`);
  assertEquals([r.kind, r.method], ["event", method], `seq ${r.seq} is ${method}`);
  return r;
}

/** The last line of the log as it stands, and its hash: what the next record's prev must be. */
async function head(path: string): Promise<{ seq: number; hash: string }> {
  const file = await readLog(path);
  const last = file.lines.at(-1)!;
  assert(last.record !== undefined, "the log ends in a record");
  return { seq: last.record.seq, hash: await sha256Hex(last.text) };
}

/** The stdout lines of a verify run that are problems (not the summary, not notes). */
function problems(lines: readonly string[]): string[] {
  return lines.slice(1).filter((l) => !l.startsWith("note:"));
}

/**
 * Verify on a file the proxy started after the log was taken from it: the records before are
 * missing, with the cause, and nothing else is wrong (exit 1).
 */
function assertOnlyLost(
  v: { code: number; stdout: string; lines: string[] },
  before: number,
  cause: RegExp,
): void {
  assertEquals(v.code, 1, v.stdout);
  assertMatch(v.lines[0] ?? "", new RegExp(`continues after seq ${before}`));
  const found = problems(v.lines);
  assertEquals(found.length, 1, v.stdout);
  assertMatch(found[0]!, new RegExp(`^seq 1-${before}: missing: .*`));
  assertMatch(found[0]!, cause);
}

/** What a stranger's file looks like, to show it was left alone. */
async function looks(path: string): Promise<{ text: string; mode: number; mtime: number }> {
  const stat = await Deno.lstat(path);
  return {
    text: stat.isSymlink ? await Deno.readLink(path) : await Deno.readTextFile(path),
    mode: (stat.mode ?? 0) & 0o7777,
    mtime: stat.mtime?.getTime() ?? 0,
  };
}

/** Files in `dir` whose names start with `prefix`. */
function named(dir: string, prefix: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(prefix));
}

Deno.test("a log deleted while the proxy runs: a warning, and the chain goes on in a new file; verify names the records lost", async () => {
  await using dir = await tempDir("ev-deleted");
  const signal = deadline(60_000);
  const log = `${dir.path}/audit.jsonl`;
  let before: { seq: number; hash: string };
  {
    await using s = new Session({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    await s.pings(3, signal);
    before = await head(log);
    await Deno.remove(log);
    await s.pings(3, signal);
    assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
    assert(s.warnings().some((w) => w.includes("was deleted")), s.proxy.stderr.text());
  }
  await assertNoStrays(dir.path);

  const after = await readLog(log);
  const recover = event(after.records[0], "audit/recover");
  assertEquals(recover.seq, before.seq + 1, "the new file continues the chain");
  assertEquals(recover.prev, before.hash, "linked to the last record of the deleted file");
  const p = params(recover);
  assertEquals([p.cause, p.new_file, p.continues_after_seq], ["deleted", true, before.seq]);
  assertEquals(
    after.records.filter((r) => r.kind === "request").map((r) => r.jsonrpc_id),
    [4, 5, 6],
    "every request after the deletion is in the new file",
  );
  event(after.records.at(-1), "audit/stop");
  // The new file is intact, but the records before it are gone: verify must not vouch for them.
  assertOnlyLost(await verifyLog(log), before.seq, /deleted while the proxy ran/);
});

Deno.test("a log moved away while the proxy runs ends with audit/checkpoint; the new file starts with audit/recover; each verifies, and both joined", async () => {
  await using dir = await tempDir("ev-moved");
  const signal = deadline(60_000);
  const log = `${dir.path}/audit.jsonl`;
  const archive = `${log}.1`;
  {
    await using s = new Session({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    await s.pings(3, signal);
    await Deno.rename(log, archive);
    await s.pings(3, signal);
    assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
    assert(s.warnings().some((w) => w.includes("was moved away")), s.proxy.stderr.text());
  }
  await assertNoStrays(dir.path);

  const old = await readLog(archive);
  const checkpoint = event(old.records.at(-1), "audit/checkpoint");
  assertEquals(params(checkpoint).cause, "moved");
  const now = await readLog(log);
  const recover = event(now.records[0], "audit/recover");
  assertEquals(recover.seq, checkpoint.seq + 1);
  assertEquals(recover.prev, await sha256Hex(old.lines.at(-1)!.text));
  assertEquals(params(recover).continues_after_seq, checkpoint.seq);

  const a = await verifyLog(archive);
  assertEquals(a.code, 0, `the moved file is intact and ends cleanly:\n${a.stdout}`);
  // The new file alone: intact, its earlier records are in the moved file, not checked here.
  const lastOld = old.records.at(-1)!.seq;
  assertOnlyLost(await verifyLog(log), lastOld, /moved away while the proxy ran/);
  const joined = `${dir.path}/joined.jsonl`;
  await Deno.writeFile(joined, new Uint8Array([...old.bytes, ...now.bytes]));
  const c = await verifyLog(joined);
  assertEquals(c.code, 0, `the two files are one chain:\n${c.stdout}`);
});

Deno.test({
  name:
    "a file renamed over the live log is moved aside untouched and never written into; the chain goes on in a new file",
  ignore: !posix,
  fn: async () => {
    await using dir = await tempDir("ev-replaced");
    const signal = deadline(60_000);
    const log = `${dir.path}/audit.jsonl`;
    const stranger = `${dir.path}/stranger.jsonl`;
    await Deno.writeTextFile(stranger, "not a record of yours\n", { mode: 0o644 });
    await Deno.chmod(stranger, 0o644);
    await Deno.utime(stranger, 1_000_000, 1_000_000);
    const seen = await looks(stranger);
    let before: { seq: number; hash: string };
    {
      await using s = new Session({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
      await s.pings(3, signal);
      before = await head(log);
      await Deno.rename(stranger, log);
      await s.pings(3, signal);
      assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
      assert(
        s.warnings().some((w) => w.includes(`replaced the ${words.log}`)),
        s.proxy.stderr.text(),
      );
    }
    await assertNoStrays(dir.path);

    const aside = named(dir.path, "audit.jsonl.foreign-");
    assertEquals(aside.length, 1, "the stranger was moved aside");
    assertEquals(
      await looks(`${dir.path}/${aside[0]}`),
      seen,
      "content, mode and mtime as they were",
    );
    const now = await readLog(log);
    const recover = event(now.records[0], "audit/recover");
    assertEquals(recover.prev, before.hash);
    const p = params(recover);
    assertEquals([p.cause, p.new_file, p.continues_after_seq], ["replaced", true, before.seq]);
    const foreign = p.foreign;
    assert(typeof foreign === "object" && foreign !== null && !Array.isArray(foreign));
    assertEquals(foreign.moved_to, `${dir.path}/${aside[0]}`, "the event says where it went");
    assertOnlyLost(await verifyLog(log), before.seq, /replaced while the proxy ran/);
  },
});

Deno.test({
  name:
    "a symlink put in place of the live log is moved aside; the file it points to is not written",
  ignore: !posix,
  fn: async () => {
    await using dir = await tempDir("ev-symlinked");
    const signal = deadline(60_000);
    const log = `${dir.path}/audit.jsonl`;
    const target = `${dir.path}/target.txt`;
    await Deno.writeTextFile(target, "the target\n");
    const seen = await looks(target);
    {
      await using s = new Session({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
      await s.pings(3, signal);
      // Swapped in atomically, as an attacker would.
      await Deno.symlink(target, `${dir.path}/link`);
      await Deno.rename(`${dir.path}/link`, log);
      await s.pings(3, signal);
      assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
    }
    await assertNoStrays(dir.path);

    assertEquals(await looks(target), seen, "nothing was written through the symlink");
    const aside = named(dir.path, "audit.jsonl.foreign-");
    assertEquals(aside.length, 1);
    assert((await Deno.lstat(`${dir.path}/${aside[0]}`)).isSymlink, "the symlink itself moved");
    assert(!(await Deno.lstat(log)).isSymlink, "the log is a file of the proxy's own again");
    const now = await readLog(log);
    assertEquals(params(event(now.records[0], "audit/recover")).cause, "replaced");
    const lastOld = now.records[0]!.seq - 1;
    assertOnlyLost(await verifyLog(log), lastOld, /replaced while the proxy ran/);
  },
});

Deno.test({
  name:
    "a log cut short while the proxy runs: the cut is recorded in it, and verify reports the removed records",
  // JSONL by nature: the file is cut at a byte offset.
  ignore: sqlite,
}, async () => {
  await using dir = await tempDir("ev-truncated");
  const signal = deadline(60_000);
  const log = `${dir.path}/audit.jsonl`;
  let cutAt = 0;
  let removed: number[] = [];
  {
    await using s = new Session({ cwd: dir.path, upstream: recordingUpstream(dir.path) });
    await s.pings(3, signal);
    const file = await readLog(log);
    // Cut in the middle of the third line from the end: two whole records and half of one go.
    const victim = file.lines.at(-3)!;
    cutAt = victim.offset + 10;
    removed = file.records.slice(-3).map((r) => r.seq);
    await Deno.truncate(log, cutAt);
    await s.pings(2, signal);
    assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
    assert(s.warnings().some((w) => w.includes("was cut from")), s.proxy.stderr.text());
  }
  await assertNoStrays(dir.path);

  const after = await readLog(log);
  const recover = event(
    after.records.find((r) => r.method === "audit/recover"),
    "audit/recover",
  );
  const p = params(recover);
  assertEquals([p.cause, p.new_file, p.found_size], ["truncated", false, cutAt]);
  assertEquals(p.continues_after_seq, removed.at(-1), "it names the last seq written");
  const v = await verifyLog(log);
  assertEquals(v.code, 1, v.stdout);
  const found = problems(v.lines);
  assert(
    found.some((l) => l.includes(`seq ${removed[1]}-${removed[2]}: missing`)),
    `the two whole records removed are missing:\n${v.stdout}`,
  );
  assert(found.some((l) => / modified: /.test(l)), `the cut line is reported:\n${v.stdout}`);
});

Deno.test("the log's directory removed while the proxy runs: forwarding stops, exit 1 (fail closed)", async () => {
  await using dir = await tempDir("ev-dir-removed");
  const signal = deadline(60_000);
  const logs = `${dir.path}/logs`;
  await Deno.mkdir(logs);
  await using s = new Session({
    cwd: dir.path,
    upstream: recordingUpstream(dir.path),
    logPath: `${logs}/audit.jsonl`,
  });
  await s.pings(2, signal);
  await Deno.remove(logs, { recursive: true });
  await s.proxy.write(ping(99));
  const status = await s.proxy.finished(signal);
  assertEquals(status.code, 1, s.proxy.stderr.text());
  assertEquals(s.out.lines.length, 2, "the request that could not be recorded was not answered");
  assertMatch(s.proxy.stderr.text(), /fail closed/);
  // The JSONL store says why; SQLite's error is the failed open of the new database.
  if (!sqlite) assertMatch(s.proxy.stderr.text(), /its directory is gone/);
  await assertNoStrays(dir.path);
});

/** Starts a proxy that is expected to refuse its log path, and returns its exit and stderr. */
async function refused(
  dir: string,
  logPath: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  await using proxy = new ProxyProcess({
    cwd: dir,
    upstream: recordingUpstream(dir),
    logPath,
    env,
  });
  await proxy.closeInput();
  const status = await proxy.finished(deadline(30_000));
  return { code: status.code, stderr: proxy.stderr.text() };
}

/** A real log from a short session, to point symlinks at. */
async function realLog(dir: string, path: string): Promise<void> {
  const signal = deadline(30_000);
  await using s = new Session({
    cwd: dir,
    upstream: recordingUpstream(dir, "-first"),
    logPath: path,
  });
  await s.pings(1, signal);
  assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
}

Deno.test({
  name:
    "a symlinked log path is refused with exit 2 and its target left as it was (mode, content, mtime)",
  ignore: !posix,
  fn: async () => {
    await using dir = await tempDir("ev-symlink-start");
    const target = `${dir.path}/real.jsonl`;
    await realLog(dir.path, target);
    await Deno.chmod(target, 0o644);
    await Deno.utime(target, 1_000_000, 1_000_000);
    const seen = await looks(target);
    const link = `${dir.path}/audit.jsonl`;
    await Deno.symlink(target, link);

    const r = await refused(dir.path, link);
    assertEquals(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("mcp-audit:"));
    assertEquals(lines.length, 1, r.stderr);
    assertMatch(lines[0]!, words.symlink);
    assertEquals(await looks(target), seen, "the target is untouched");
    await assertNoStrays(dir.path);
  },
});

Deno.test({
  name: "with audit.follow_symlinks: true the proxy logs to the file the symlink leads to",
  // JSONL by nature: audit.follow_symlinks is a key of the JSONL store only.
  ignore: !posix || sqlite,
  fn: async () => {
    await using dir = await tempDir("ev-symlink-follow");
    const signal = deadline(30_000);
    const target = `${dir.path}/real.jsonl`;
    await realLog(dir.path, target);
    const link = `${dir.path}/audit.jsonl`;
    await Deno.symlink("real.jsonl", link);
    {
      await using s = new Session({
        cwd: dir.path,
        upstream: recordingUpstream(dir.path),
        logPath: link,
        env: { MCP_AUDIT_AUDIT_FOLLOW_SYMLINKS: "true" },
      });
      await s.pings(2, signal);
      assertEquals((await s.end(signal)).code, 0, s.proxy.stderr.text());
    }
    assert((await Deno.lstat(link)).isSymlink, "the symlink stays");
    const file = await readLog(target);
    assertEquals(file.records.filter((r) => r.method === "audit/start").length, 2);
    const v = await verifyLog(target);
    assertEquals(v.code, 0, v.stdout);
    await assertNoStrays(dir.path);
  },
});

Deno.test({
  name:
    "a directory, a FIFO or a file that is not a log at audit.path is refused with exit 2 and left untouched",
  ignore: !posix,
  fn: async (t) => {
    await using dir = await tempDir("ev-not-a-log");
    await t.step("a directory", async () => {
      const path = `${dir.path}/a-directory`;
      await Deno.mkdir(path);
      const r = await refused(dir.path, path);
      assertEquals(r.code, 2, r.stderr);
      assertMatch(r.stderr, new RegExp(`${words.key}: .*is a directory, ${words.notALog}`));
    });
    await t.step("a FIFO (opening it must not hang the proxy)", async () => {
      const path = `${dir.path}/a-fifo`;
      const made = await new Deno.Command("mkfifo", { args: [path] }).output();
      assert(made.success, "mkfifo");
      const r = await refused(dir.path, path);
      assertEquals(r.code, 2, r.stderr);
      assertMatch(r.stderr, new RegExp(`${words.key}: .*is a FIFO, ${words.notALog}`));
    });
    const strangers: [string, string][] = [
      ["a text file", "hello\nworld\n"],
      ["a one-line file without a newline", '{"some":"json"}'],
      ["a JSONL file of other records", '{"seq":1,"prev":"x"}\n{"seq":2,"prev":"y"}\n'],
    ];
    for (const [i, [what, content]] of strangers.entries()) {
      // JSONL by nature: what a JSONL log looks like (a file that is not SQLite is a case of
      // storage_faults_test.ts).
      await t.step({
        name: what,
        ignore: sqlite,
        fn: async () => {
          const path = `${dir.path}/notes-${i}.txt`;
          await Deno.writeTextFile(path, content, { mode: 0o644 });
          await Deno.chmod(path, 0o644);
          await Deno.utime(path, 1_000_000, 1_000_000);
          const seen = await looks(path);
          const r = await refused(dir.path, path);
          assertEquals(r.code, 2, r.stderr);
          assertMatch(r.stderr, /audit\.path: .*is not an mcp-audit log/);
          assertEquals(await looks(path), seen, "content, mode and mtime as they were");
        },
      });
    }
    await assertNoStrays(dir.path);
  },
});
