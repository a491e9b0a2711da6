import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { FileLock, LOCK_SUFFIX, LockError, lockFile } from "./file_lock.ts";

function tempFile(): { dir: string; path: string } {
  const dir = Deno.makeTempDirSync({ prefix: "file-lock-" });
  const path = `${dir}/mcp.json`;
  Deno.writeTextFileSync(path, "{}");
  return { dir, path };
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("a lock is a file beside the config, private, naming its holder, and is gone once released", async () => {
  const { dir, path } = tempFile();
  try {
    const lock = await lockFile(path);
    assert(lock instanceof FileLock);
    assertEquals(names(dir), ["mcp.json", `mcp.json${LOCK_SUFFIX}`]);
    assertEquals(Deno.statSync(lock.lockPath).mode! & 0o777, 0o600);
    assertEquals(JSON.parse(Deno.readTextFileSync(lock.lockPath)).pid, Deno.pid);
    lock.release();
    lock.release();
    assertEquals(names(dir), ["mcp.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a second taker waits while the lock is held and gets it once the holder releases it", async () => {
  const { dir, path } = tempFile();
  try {
    const first = await lockFile(path);
    const waits: number[] = [];
    const second = await lockFile(path, {
      wait: (attempt) => {
        waits.push(attempt);
        // The holder finishes while the second run waits: the next attempt gets the lock.
        first.release();
        return Promise.resolve();
      },
    });
    assertEquals(waits, [0]);
    assert(second.lockPath === first.lockPath);
    second.release();
    assertEquals(names(dir), ["mcp.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a lock still held after every attempt is refused as busy, naming the holder and the lock", async () => {
  const { dir, path } = tempFile();
  try {
    using _held = await lockFile(path);
    let waited = 0;
    await rejects(
      lockFile(path, { attempts: 3, wait: () => (waited++, Promise.resolve()) }),
      (e) => {
        assert(e instanceof LockError);
        assertEquals(e.kind, "busy");
        assert(e.reason.includes(`pid ${Deno.pid}`), e.reason);
        assert(e.reason.includes(`${path}${LOCK_SUFFIX}`), e.reason);
        assert(e.reason.includes("nothing written"), e.reason);
        return true;
      },
    );
    assertEquals(waited, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a stale lock is broken: its holder's pid is gone from this host, or it is older than ten minutes", async () => {
  const { dir, path } = tempFile();
  const lockPath = `${path}${LOCK_SUFFIX}`;
  try {
    const noWait = { attempts: 2, wait: () => Promise.reject(new Error("waited")) };
    // A dead holder on this host.
    Deno.writeTextFileSync(
      lockPath,
      JSON.stringify({ pid: 4242, host: Deno.hostname(), since: "2026-01-01T00:00:00Z" }),
    );
    (await lockFile(path, { ...noWait, pidAlive: (pid) => pid !== 4242 })).release();
    // A live holder on another host is never judged by pid here; an old lock is stale anyway.
    Deno.writeTextFileSync(
      lockPath,
      JSON.stringify({ pid: 4242, host: "elsewhere", since: "2026-01-01T00:00:00Z" }),
    );
    await rejects(lockFile(path, { ...noWait, pidAlive: () => false }), /waited/);
    const old = new Date(Date.now() - 11 * 60 * 1000);
    Deno.utimeSync(lockPath, old, old);
    (await lockFile(path, { ...noWait, pidAlive: () => true })).release();
    // Unreadable content: only its age counts.
    Deno.writeTextFileSync(lockPath, "not json");
    await rejects(lockFile(path, noWait), /waited/);
    Deno.utimeSync(lockPath, old, old);
    (await lockFile(path, noWait)).release();
    assertEquals(names(dir), ["mcp.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("releasing never removes a lock another run took after breaking ours", async () => {
  const { dir, path } = tempFile();
  try {
    const lock = await lockFile(path);
    Deno.writeTextFileSync(lock.lockPath, JSON.stringify({ pid: 1, since: "x" }));
    lock.release();
    assertEquals(names(dir), ["mcp.json", `mcp.json${LOCK_SUFFIX}`]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "a read-only folder is reported as denied, and nothing is created",
  // Root writes into any folder.
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
}, async () => {
  const { dir, path } = tempFile();
  Deno.chmodSync(dir, 0o555);
  try {
    await rejects(lockFile(path), (e) => {
      assert(e instanceof LockError);
      assertEquals(e.kind, "denied");
      assert(e.reason.includes("read-only"), e.reason);
      return true;
    });
    assertEquals(names(dir), ["mcp.json"]);
  } finally {
    Deno.chmodSync(dir, 0o755);
    Deno.removeSync(dir, { recursive: true });
  }
});
