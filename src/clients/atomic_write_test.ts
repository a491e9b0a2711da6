import assert from "node:assert/strict";
import {
  CHANGED_REASON,
  ConfigReadError,
  ConfigWriteError,
  readConfigText,
  replaceFileAtomically,
} from "./atomic_write.ts";

const POSIX = Deno.build.os !== "windows";
const CLOCK = () => new Date("2026-12-06T09:08:07.654Z");
const STAMP = "20261206T090807Z";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-atomic-" });
  try {
    await fn(dir);
  } finally {
    if (POSIX) await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

async function refused(promise: Promise<unknown>, reason: RegExp): Promise<ConfigWriteError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof ConfigWriteError, String(e));
    assert.match(e.reason, reason);
    assert.equal(e.message, `${e.path}: ${e.reason}`);
    return e;
  }
  assert.fail("the replacement was not refused");
}

const ORIGINAL = '\uFEFF{\r\n  "mcpServers": {} // none\r\n}\r\n';
const NEXT = '\uFEFF{\r\n  "mcpServers": {"a": {}} // none\r\n}\r\n';

Deno.test("replaces the file, after a backup of its exact bytes with its mode; keeps a BOM as read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/claude_desktop_config.json`;
    await Deno.writeTextFile(path, ORIGINAL);
    if (POSIX) await Deno.chmod(path, 0o640);
    const text = await readConfigText(path);
    assert.equal(text, ORIGINAL, "the BOM is kept");
    const { backupPath } = await replaceFileAtomically(path, text, NEXT, { now: CLOCK });
    assert.equal(backupPath, `${path}.mcp-audit-backup-${STAMP}`);
    assert.equal(await Deno.readTextFile(path), NEXT);
    assert.deepEqual(await Deno.readFile(backupPath), new TextEncoder().encode(ORIGINAL));
    assert.deepEqual(await names(dir), [
      "claude_desktop_config.json",
      `claude_desktop_config.json.mcp-audit-backup-${STAMP}`,
    ]);
    if (POSIX) {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
      assert.equal((await Deno.stat(backupPath)).mode! & 0o777, 0o640);
    }
  });
});

Deno.test("a backup never overwrites an earlier one; no backup when asked; nothing written when nothing changes", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mcp.json`;
    await Deno.writeTextFile(path, "{}");
    const first = await replaceFileAtomically(path, "{}", "[1]", { now: CLOCK });
    const second = await replaceFileAtomically(path, "[1]", "[2]", { now: CLOCK });
    assert.equal(first.backupPath, `${path}.mcp-audit-backup-${STAMP}`);
    assert.equal(second.backupPath, `${path}.mcp-audit-backup-${STAMP}-2`);
    assert.equal(await Deno.readTextFile(first.backupPath!), "{}");
    assert.equal(await Deno.readTextFile(second.backupPath!), "[1]");

    const unchanged = await replaceFileAtomically(path, "[2]", "[2]", { now: CLOCK });
    assert.equal(unchanged.backupPath, undefined);
    const none = await replaceFileAtomically(path, "[2]", "[3]", { backup: false });
    assert.equal(none.backupPath, undefined);
    const named = await replaceFileAtomically(path, "[3]", "[4]", { backupSuffix: ".bak" });
    assert.equal(named.backupPath, `${path}.bak`);
    assert.equal(await Deno.readTextFile(path), "[4]");
    assert.equal((await names(dir)).length, 4);
  });
});

Deno.test("a file changed since it was read is refused and left as the client wrote it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mcp.json`;
    await Deno.writeTextFile(path, '{"client": 2}');
    const e = await refused(
      replaceFileAtomically(path, '{"client": 1}', '{"ours": 1}', { now: CLOCK }),
      /^changed while we edited it \(the client wrote it\?\); nothing written, run again$/,
    );
    assert.equal(e.reason, CHANGED_REASON);
    assert.equal(e.path, path);
    assert.equal(await Deno.readTextFile(path), '{"client": 2}');
    assert.deepEqual(await names(dir), ["mcp.json"]);
  });
});

Deno.test("a client writing the file while the new text is being written wins: nothing written, no temporary file or backup left", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/mcp.json`;
    await Deno.writeTextFile(path, "{}");
    let sawTemp = false;
    await refused(
      replaceFileAtomically(path, "{}", '{"ours": 1}', {
        now: CLOCK,
        beforeRename: async () => {
          sawTemp = (await names(dir)).some((name) => name.endsWith(".tmp"));
          await Deno.writeTextFile(path, '{"client": 1}');
        },
      }),
      /changed while we edited it/,
    );
    assert.ok(sawTemp, "the new text was in a temporary file beside the original");
    assert.equal(await Deno.readTextFile(path), '{"client": 1}');
    assert.deepEqual(await names(dir), ["mcp.json"]);
  });
});

Deno.test({
  name: "a read-only file or directory is refused with a clear reason, the original untouched",
  ignore: !POSIX,
  fn: async () => {
    await withDir(async (dir) => {
      const path = `${dir}/mcp.json`;
      await Deno.writeTextFile(path, "{}");
      await Deno.chmod(path, 0o444);
      await refused(
        replaceFileAtomically(path, "{}", "[]", { now: CLOCK }),
        /^is read-only \(mode 0444\); nothing written\. Make it writable/,
      );
      assert.equal(await Deno.readTextFile(path), "{}");
      assert.deepEqual(await names(dir), ["mcp.json"]);

      await Deno.chmod(path, 0o644);
      await Deno.chmod(dir, 0o555);
      await refused(
        replaceFileAtomically(path, "{}", "[]", { now: CLOCK }),
        /^its directory .* is read-only \(mode 0555\), so the new file cannot be written beside it/,
      );
      await Deno.chmod(dir, 0o755);
      assert.equal(await Deno.readTextFile(path), "{}");
      assert.deepEqual(await names(dir), ["mcp.json"]);
    });
  },
});

Deno.test({
  name: "a symlinked config is replaced through the link: the link stays, its target changes",
  ignore: !POSIX,
  fn: async () => {
    await withDir(async (dir) => {
      await Deno.mkdir(`${dir}/dotfiles`);
      await Deno.mkdir(`${dir}/.cursor`);
      const target = `${dir}/dotfiles/mcp.json`;
      const link = `${dir}/.cursor/mcp.json`;
      await Deno.writeTextFile(target, "{}");
      await Deno.symlink("../dotfiles/mcp.json", link);
      const { backupPath } = await replaceFileAtomically(link, "{}", "[]", { now: CLOCK });
      assert.ok((await Deno.lstat(link)).isSymlink);
      assert.equal(await Deno.readLink(link), "../dotfiles/mcp.json");
      assert.equal(await Deno.readTextFile(target), "[]");
      assert.equal(backupPath, `${await Deno.realPath(target)}.mcp-audit-backup-${STAMP}`);
      assert.deepEqual(await names(`${dir}/.cursor`), ["mcp.json"]);
    });
  },
});

Deno.test("missing files, directories, bytes that are not UTF-8 and oversized files are refused by name", async () => {
  await withDir(async (dir) => {
    await refused(
      replaceFileAtomically(`${dir}/absent.json`, "{}", "[]"),
      /^does not exist; nothing written$/,
    );
    await refused(replaceFileAtomically(dir, "{}", "[]"), /is not a regular file; nothing written/);

    const latin1 = `${dir}/latin1.json`;
    await Deno.writeFile(latin1, new Uint8Array([0x7b, 0x22, 0xe9, 0x22, 0x7d]));
    await assert.rejects(readConfigText(latin1), (e) => {
      assert.ok(e instanceof ConfigReadError);
      assert.equal(e.path, latin1);
      assert.match(e.reason, /is not UTF-8 text; it cannot be edited without changing bytes/);
      return true;
    });
    // Whatever text was expected, bytes that are not UTF-8 are not it.
    await refused(replaceFileAtomically(latin1, '{"\uFFFD"}', "[]"), /changed while we edited it/);
    assert.deepEqual(await Deno.readFile(latin1), new Uint8Array([0x7b, 0x22, 0xe9, 0x22, 0x7d]));

    const big = `${dir}/big.json`;
    await Deno.writeTextFile(big, "x".repeat(200));
    await assert.rejects(readConfigText(big, 100), /at most 100 bytes/);
    assert.equal(await readConfigText(big, 200), "x".repeat(200));
    await assert.rejects(readConfigText(`${dir}/absent.json`), (e) => {
      assert.ok(e instanceof ConfigReadError);
      assert.equal(e.reason, "does not exist");
      return true;
    });
    await assert.rejects(readConfigText(dir), /is a directory, not a file/);
  });
});

Deno.test("readConfigText refuses a FIFO without waiting for a writer", async () => {
  if (Deno.build.os === "windows") return;
  const dir = Deno.makeTempDirSync();
  try {
    const fifo = `${dir}/mcp.json`;
    const made = new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
    assert.equal(made.code, 0);
    await assert.rejects(readConfigText(fifo), /named pipe \(FIFO\), not a file/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
