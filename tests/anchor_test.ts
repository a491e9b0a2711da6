/**
 * The anchor (`audit.anchor.path`) over real proxy processes: a log cut back to an earlier clean
 * `audit/stop` verifies as intact on its own, and is caught with the anchor; a key holder who
 * rewrites the end of the log is caught the same way; the proxy will not start over such a log;
 * the anchor moves while the proxy runs and is never ahead of the log after a crash.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import {
  assert,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditRecord,
  canonicalize,
  deadline,
  type Json,
  ProxyProcess,
  readLog,
  recordingUpstream,
  SECRET,
  sha256Hex,
  STORAGE,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";

function ping(id: number): Uint8Array {
  return utf8(`{"jsonrpc":"2.0","id":${id},"method":"ping"}\n`);
}

interface AnchorJson {
  format: string;
  log: string;
  seq: number;
  hash: string;
  id: string;
  ts: string;
  key_id: string | null;
  sig: string | null;
}

async function readAnchor(path: string): Promise<AnchorJson> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** Paths for one test: the log, and the anchor in a directory of its own. */
async function layout(dir: string): Promise<{ log: string; anchor: string }> {
  await Deno.mkdir(`${dir}/elsewhere`);
  return { log: `${dir}/audit.jsonl`, anchor: `${dir}/elsewhere/audit.anchor` };
}

/** One clean proxy run of `pings` round trips on the log, with the anchor. */
async function cleanRun(
  dir: string,
  paths: { log: string; anchor: string },
  pings: number,
  tag: string,
): Promise<void> {
  const signal = deadline(30_000);
  await using proxy = new ProxyProcess({
    cwd: dir,
    upstream: recordingUpstream(dir, tag),
    logPath: paths.log,
    env: { MCP_AUDIT_AUDIT_ANCHOR_PATH: paths.anchor },
  });
  const out = proxy.stdout();
  for (let id = 1; id <= pings; id++) await proxy.write(ping(id));
  await out.waitFor((c) => c.lines.length >= pings, `${pings} answers`, signal);
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text());
}

/** The anchor names the log's last record: its seq, its hash, its id and ts, with our key. */
async function assertAnchorsEnd(paths: { log: string; anchor: string }): Promise<AuditRecord> {
  const file = await readLog(paths.log);
  const last = file.records.at(-1)!;
  const anchor = await readAnchor(paths.anchor);
  assertEquals(anchor.format, "mcp-audit-anchor/1");
  assertEquals(anchor.log, paths.log);
  assertEquals(
    [anchor.seq, anchor.hash, anchor.id, anchor.ts],
    [last.seq, await sha256Hex(file.lines.at(-1)!.text), last.id, last.ts],
  );
  assertEquals(anchor.key_id, (await sha256Hex(SECRET)).slice(0, 8));
  assertMatch(anchor.sig ?? "", /^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$/);
  return last;
}

Deno.test({
  name:
    "a log cut back to an earlier clean audit/stop verifies on its own, is caught with its anchor, and the proxy will not start on it",
  // JSONL by nature: the log is cut at a byte offset.
  ignore: STORAGE === "sqlite",
}, async () => {
  await using dir = await tempDir("anchor-cut");
  const paths = await layout(dir.path);
  await cleanRun(dir.path, paths, 2, "-1");
  const firstStop = await assertAnchorsEnd(paths);
  const firstBytes = (await readLog(paths.log)).bytes.length;
  await cleanRun(dir.path, paths, 3, "-2");
  const secondStop = await assertAnchorsEnd(paths);
  await assertNoStrays(dir.path);

  const whole = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assertEquals(whole.code, 0, whole.stdout);
  assertMatch(whole.stdout, new RegExp(`note: the log reaches seq ${secondStop.seq}`));

  // Cut back to the end of the first run: a clean audit/stop, a chain intact to it.
  await Deno.truncate(paths.log, firstBytes);
  const alone = await verifyLog(paths.log);
  assertEquals(alone.code, 0, `the chain alone cannot see this:\n${alone.stdout}`);
  const anchored = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assertEquals(anchored.code, 1, anchored.stdout);
  assertMatch(
    anchored.stdout,
    new RegExp(`seq ${firstStop.seq + 1}-${secondStop.seq}: missing: the anchor .* names seq`),
  );

  const cut = await Deno.readFile(paths.log);
  const anchorBefore = await Deno.readTextFile(paths.anchor);
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: recordingUpstream(dir.path, "-3"),
      logPath: paths.log,
      env: { MCP_AUDIT_AUDIT_ANCHOR_PATH: paths.anchor },
    });
    await proxy.closeInput();
    const status = await proxy.finished(deadline(30_000));
    assertEquals(status.code, 1, proxy.stderr.text());
    assertMatch(proxy.stderr.text(), /records were removed from the end of the log/);
  }
  assertEquals(await Deno.readFile(paths.log), cut, "the log is left as evidence");
  assertEquals(await Deno.readTextFile(paths.anchor), anchorBefore, "and so is the anchor");
  await assertNoStrays(dir.path);
});

/** HMAC-signs a record as the proxy does: someone holding the key can. */
async function signed(record: AuditRecord): Promise<string> {
  const { sig: _sig, ...unsigned } = record;
  const mac = createHmac("sha256", SECRET).update(canonicalize(unsigned as unknown as Json))
    .digest("hex");
  const sig = `hmac-sha256:${(await sha256Hex(SECRET)).slice(0, 8)}:${mac}`;
  return canonicalize({ ...unsigned, sig } as unknown as Json);
}

Deno.test({
  name:
    "a key holder who rewrites the last record and signs it again is caught by the anchor alone",
  // JSONL by nature: the file's last line is rewritten.
  ignore: STORAGE === "sqlite",
}, async () => {
  await using dir = await tempDir("anchor-resign");
  const paths = await layout(dir.path);
  await cleanRun(dir.path, paths, 2, "");
  await assertNoStrays(dir.path);
  const file = await readLog(paths.log);
  const stop = file.records.at(-1)!;
  const forged = await signed({
    ...stop,
    params: { ...(stop.params as { [k: string]: Json }), reason: "nothing to see" },
  });
  const lines = file.lines.map((l) => l.text);
  lines[lines.length - 1] = forged;
  await Deno.writeTextFile(paths.log, lines.map((l) => l + "\n").join(""));

  const alone = await verifyLog(paths.log);
  assertEquals(alone.code, 0, `a correctly signed rewrite passes the chain:\n${alone.stdout}`);
  const anchored = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assertEquals(anchored.code, 1, anchored.stdout);
  assertMatch(anchored.stdout, new RegExp(`seq ${stop.seq}: modified: .*do not match the anchor`));
});

Deno.test("verify reports an edited anchor, and exits 2 for one it cannot read", async () => {
  await using dir = await tempDir("anchor-edited");
  const paths = await layout(dir.path);
  await cleanRun(dir.path, paths, 1, "");
  await assertNoStrays(dir.path);
  const text = await Deno.readTextFile(paths.anchor);
  const anchor = await readAnchor(paths.anchor);
  // Moved back by one record, as if the last one had never been written.
  await Deno.writeTextFile(
    paths.anchor,
    text.replace(`"seq":${anchor.seq}`, `"seq":${anchor.seq - 1}`),
  );
  const edited = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assertEquals(edited.code, 1, edited.stdout);
  assertMatch(edited.stdout, /audit\.anchor: modified: the anchor's signature does not match/);

  const wrongKey = await verifyLog(paths.log, {
    args: ["--anchor", paths.anchor],
    secret: SECRET + "-other",
  });
  assertEquals(wrongKey.code, 1);
  assertMatch(wrongKey.stdout, /audit\.anchor: wrong key: /);

  await Deno.writeTextFile(paths.anchor, "not an anchor\n");
  const garbage = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assertEquals(garbage.code, 2, garbage.stdout);
  assertMatch(garbage.stdout, /cannot read the anchor/);
  const missing = await verifyLog(paths.log, { args: ["--anchor", `${dir.path}/nope`] });
  assertEquals(missing.code, 2, missing.stdout);
});

/** Waits until the anchor names at least `seq`, woken by changes in its directory. */
async function anchorReaches(path: string, seq: number, signal: AbortSignal): Promise<number> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  using watcher = Deno.watchFs(dir);
  signal.addEventListener("abort", () => watcher.close(), { once: true });
  const current = async () => {
    try {
      return (await readAnchor(path)).seq;
    } catch {
      return 0;
    }
  };
  let seen = await current();
  if (seen >= seq) return seen;
  for await (const _ of watcher) {
    seen = await current();
    if (seen >= seq) return seen;
  }
  throw new Error(`the anchor never reached seq ${seq} (last seen ${seen})`);
}

Deno.test("the anchor moves with the log while the proxy runs, not only at its end", async () => {
  await using dir = await tempDir("anchor-live");
  const paths = await layout(dir.path);
  const signal = deadline(30_000);
  await using proxy = new ProxyProcess({
    cwd: dir.path,
    upstream: recordingUpstream(dir.path),
    logPath: paths.log,
    env: { MCP_AUDIT_AUDIT_ANCHOR_PATH: paths.anchor },
  });
  const out = proxy.stdout();
  for (let id = 1; id <= 5; id++) await proxy.write(ping(id));
  await out.waitFor((c) => c.lines.length >= 5, "5 answers", signal);
  // Every answer was forwarded after its records were written; their fsync, then the anchor,
  // follow in the background.
  const last = (await readLog(paths.log)).records.at(-1)!;
  assertEquals(await anchorReaches(paths.anchor, last.seq, signal), last.seq);
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0, proxy.stderr.text());
  await assertAnchorsEnd(paths);
});

Deno.test("kill -9 under load, then a restart with the anchor: it is never ahead of the log", async () => {
  await using dir = await tempDir("anchor-crash");
  const paths = await layout(dir.path);
  const signal = deadline(60_000);
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: recordingUpstream(dir.path),
      logPath: paths.log,
      env: { MCP_AUDIT_AUDIT_ANCHOR_PATH: paths.anchor },
    });
    const out = proxy.stdout();
    let next = 1;
    let stop = false;
    const load = (async () => {
      try {
        while (!stop) {
          await out.waitFor((c) => stop || next - c.lines.length < 200, "room to send", signal);
          let batch = "";
          for (let i = 0; i < 20; i++) {
            batch += `{"jsonrpc":"2.0","id":${next++},"method":"ping"}\n`;
          }
          await proxy.write(utf8(batch));
        }
      } catch {
        // Killed under us: the point.
      }
    })();
    await out.waitFor((c) => c.lines.length >= 300, "300 answers under load", signal);
    await anchorReaches(paths.anchor, 2, signal);
    proxy.child.kill("SIGKILL");
    await proxy.status;
    stop = true;
    await load;
    await proxy.finished(signal);
  }
  await assertNoStrays(dir.path);
  const anchor = await readAnchor(paths.anchor);
  const crashed = await readLog(paths.log);
  assert(crashed.records.at(-1)!.seq >= anchor.seq, "the log reaches the anchor after the crash");

  await cleanRun(dir.path, paths, 1, "-restart");
  await assertNoStrays(dir.path);
  const v = await verifyLog(paths.log, { args: ["--anchor", paths.anchor] });
  assert(!/ missing: /.test(v.stdout), `nothing is missing:\n${v.stdout}`);
  assert(!/ modified: /.test(v.stdout), `nothing is modified:\n${v.stdout}`);
});
