import assert from "node:assert/strict";
import { RefusedPathError, StorageError } from "./errors.ts";
import { FileLock } from "./file_lock.ts";

const posix = Deno.build.os !== "windows";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-lock-" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test({
  name: "FileLock creates its file with mode 0600 and never writes or deletes it",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/audit.jsonl.lock`;
    const lock = new FileLock(path);
    lock.lock();
    lock.unlock();
    lock.close();
    lock.close();
    const stat = Deno.statSync(path);
    assert.equal(stat.mode! & 0o777, 0o600);
    assert.equal(stat.size, 0);
  },
});

Deno.test({
  name: "FileLock refuses a symlink or a directory at its path",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    Deno.symlinkSync(`${tmp.dir}/elsewhere`, `${tmp.dir}/link.lock`);
    assert.throws(
      () => new FileLock(`${tmp.dir}/link.lock`),
      (e: unknown) => e instanceof RefusedPathError && /symbolic link/.test(e.message),
    );
    assert.throws(() => Deno.statSync(`${tmp.dir}/elsewhere`), Deno.errors.NotFound);
    Deno.mkdirSync(`${tmp.dir}/dir.lock`);
    assert.throws(() => new FileLock(`${tmp.dir}/dir.lock`), RefusedPathError);
  },
});

Deno.test("two FileLocks on one path exclude each other, even in one process", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/x.lock`;
  using a = new FileLock(path);
  using b = new FileLock(path);
  a.lock();
  assert.ok(a.held);
  assert.equal(b.tryLock(), false);
  assert.throws(() => a.lock(), /already held/);
  a.unlock();
  assert.equal(b.tryLock(), true);
  assert.equal(a.tryLock(), false);
  b.close();
  assert.equal(a.tryLock(), true, "closing releases the lock");
  a.unlock();
  assert.throws(() => b.lock(), StorageError);
});

/** A process that takes the lock, says so, and holds it until its stdin closes. */
function holder(path: string): Deno.ChildProcess {
  const code = `
    const file = Deno.openSync(${JSON.stringify(path)}, { read: true, write: true });
    file.lockSync(true);
    await Deno.stdout.write(new TextEncoder().encode("locked\\n"));
    for await (const _ of Deno.stdin.readable) { /* hold until stdin closes */ }
  `;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  return text.trim();
}

Deno.test("a lock held by another process is released when it ends, even by kill -9", async () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/x.lock`;
  using lock = new FileLock(path);
  for (const end of ["exit", "SIGKILL"] as const) {
    const child = holder(path);
    assert.equal(await firstLine(child), "locked");
    assert.equal(lock.tryLock(), false, `held by the child (${end})`);
    if (end === "exit") await child.stdin.close();
    else child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
    if (end === "SIGKILL") await child.stdin.close().catch(() => {});
    lock.lock();
    assert.ok(lock.held);
    lock.unlock();
  }
});

Deno.test("a lock taken after its file was deleted is taken on the file now at the path", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/audit.jsonl.lock`;
  using old = new FileLock(path);
  Deno.removeSync(path);
  // Opened after the deletion: a new file at the path.
  using fresh = new FileLock(path);
  old.lock();
  assert.equal(fresh.tryLock(), false, "both lock the file at the path");
  old.unlock();
  assert.equal(fresh.tryLock(), true);
  assert.equal(old.tryLock(), false);
  fresh.unlock();

  // Deleted with nobody to make it again: the lock makes it, as the first open does.
  Deno.removeSync(path);
  old.lock();
  if (posix) assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  using later = new FileLock(path);
  assert.equal(later.tryLock(), false);
  assert.equal(fresh.tryLock(), false);
  old.unlock();
});

Deno.test("tryLock on a lock file deleted or replaced meanwhile defers to whoever holds the new one", () => {
  using tmp = tempDir();
  const path = `${tmp.dir}/x.lock`;
  for (const change of ["deleted", "replaced"] as const) {
    using old = new FileLock(path);
    if (change === "deleted") Deno.removeSync(path);
    else {
      Deno.writeTextFileSync(`${path}.new`, "");
      Deno.renameSync(`${path}.new`, path);
    }
    using fresh = new FileLock(path);
    fresh.lock();
    assert.equal(old.tryLock(), false, `${change}: the new file is held`);
    assert.equal(old.held, false);
    fresh.unlock();
    assert.equal(old.tryLock(), true, change);
    assert.equal(fresh.tryLock(), false, change);
    old.unlock();
  }
});

Deno.test({
  name: "a lock file replaced by a symlink is refused when the lock is taken again",
  ignore: !posix,
  fn() {
    using tmp = tempDir();
    const path = `${tmp.dir}/x.lock`;
    using lock = new FileLock(path);
    Deno.removeSync(path);
    Deno.symlinkSync(`${tmp.dir}/elsewhere`, path);
    assert.throws(() => lock.lock(), RefusedPathError);
    assert.throws(() => Deno.statSync(`${tmp.dir}/elsewhere`), Deno.errors.NotFound);
    assert.throws(() => lock.tryLock(), /closed/);
  },
});

Deno.test("a lock whose directory is gone is still taken on the file it has open", () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.dir}/logs`);
  const path = `${tmp.dir}/logs/x.lock`;
  using a = new FileLock(path);
  using b = new FileLock(path);
  Deno.removeSync(`${tmp.dir}/logs`, { recursive: true });
  a.lock();
  assert.equal(b.tryLock(), false, "the open file still excludes");
  a.unlock();
  assert.equal(b.tryLock(), true);
  b.unlock();
});
