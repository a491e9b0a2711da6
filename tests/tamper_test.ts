/**
 * `mcp-audit verify` against tampered copies of a real log: each edit gives exit 1 and names the
 * problem and the seq; an unreadable file gives exit 2.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNoStrays,
  type AuditLogFile,
  deadline,
  ProxyProcess,
  readLog,
  recordingUpstream,
  SECRET,
  STORAGE,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";

const PINGS = 6;

/** Runs a short session (PINGS round trips) and returns the log it wrote. */
async function makeLog(dir: string): Promise<string> {
  const signal = deadline(30_000);
  await using proxy = new ProxyProcess({ cwd: dir, upstream: recordingUpstream(dir) });
  const out = proxy.stdout();
  for (let id = 1; id <= PINGS; id++) {
    await proxy.write(utf8(`{"jsonrpc":"2.0","id":${id},"method":"ping"}\n`));
  }
  await out.waitFor((c) => c.lines.length >= PINGS, `${PINGS} answers`, signal);
  await proxy.closeInput();
  assertEquals((await proxy.finished(signal)).code, 0);
  return proxy.logPath;
}

/** The problem lines of a verify run (not the summary, not notes). */
function problems(lines: readonly string[]): string[] {
  return lines.slice(1).filter((l) => !l.startsWith("note:"));
}

function lineOf(file: AuditLogFile, seq: number): number {
  const index = file.lines.findIndex((l) => l.record?.seq === seq);
  assert(index !== -1, `seq ${seq} is in the log`);
  return index;
}

async function writeLines(path: string, lines: readonly string[]): Promise<void> {
  await Deno.writeTextFile(path, lines.map((l) => l + "\n").join(""));
}

/**
 * A step that tampers with the bytes of a JSONL copy of the log: JSONL by nature, so run once,
 * not again under `TEST_STORAGE=sqlite` (the SQLite store's tamper tests edit rows).
 */
function surgery(t: Deno.TestContext, name: string, fn: () => Promise<void>): Promise<boolean> {
  return t.step({ name, ignore: STORAGE === "sqlite", fn });
}

Deno.test("verify names each kind of tampering with exit 1, and exits 2 for a missing file", async (t) => {
  await using dir = await tempDir("tamper");
  const original = await makeLog(dir.path);
  await assertNoStrays(dir.path);
  const file = await readLog(original);
  const texts = file.lines.map((l) => l.text);
  const last = file.records.at(-1)!;
  assertEquals(
    file.records.length,
    2 + 2 * PINGS,
    "start, a request and a response per ping, stop",
  );
  const copy = `${dir.path}/tampered.jsonl`;

  await t.step("the untouched log verifies with exit 0", async () => {
    const v = await verifyLog(original);
    assertEquals(v.code, 0, v.stdout);
    assertMatch(v.lines[0] ?? "", new RegExp(`^OK: ${last.seq} records, seq 1-${last.seq}`));
  });

  await surgery(t, "one byte changed in a stored result: modified, at that seq", async () => {
    const target = file.records.find((r) => r.kind === "response" && r.jsonrpc_id === 3)!;
    const at = lineOf(file, target.seq);
    const text = texts[at]!;
    const byte = text.indexOf('"pong":true');
    assert(byte !== -1, "the response stores its result");
    const lines = [...texts];
    lines[at] = text.slice(0, byte + 1) + "P" + text.slice(byte + 2); // "pong" → "Pong"
    await writeLines(copy, lines);
    const v = await verifyLog(copy);
    assertEquals(v.code, 1, v.stdout);
    assertMatch(v.lines[0] ?? "", /^FAILED/);
    const found = problems(v.lines);
    assert(found.length > 0, v.stdout);
    for (const p of found) {
      assertMatch(p, new RegExp(`\\bseq ${target.seq}: modified\\b`), "every problem names it");
    }
  });

  await surgery(t, "one byte changed so the line is no longer JSON: modified", async () => {
    const target = file.records.find((r) => r.kind === "request" && r.jsonrpc_id === 4)!;
    const at = lineOf(file, target.seq);
    const lines = [...texts];
    lines[at] = lines[at]!.replace('"method":"ping"', '"method":"ping');
    await writeLines(copy, lines);
    const v = await verifyLog(copy);
    assertEquals(v.code, 1, v.stdout);
    assertMatch(v.stdout, new RegExp(`line ${at + 1}\\b.*modified`), "the line is named");
  });

  await surgery(t, "a line deleted: missing, with its seq", async () => {
    const seq = 5;
    const lines = texts.filter((_, i) => i !== lineOf(file, seq));
    await writeLines(copy, lines);
    const v = await verifyLog(copy);
    assertEquals(v.code, 1, v.stdout);
    assertEquals(problems(v.lines).map((p) => p.replace(/^line \d+ /, "")), [
      `seq ${seq}: missing: record is missing`,
    ]);
  });

  await surgery(t, "the last line deleted: the log no longer ends in audit/stop", async () => {
    await writeLines(copy, texts.slice(0, -1));
    const v = await verifyLog(copy);
    assertEquals(v.code, 1, v.stdout);
    assertMatch(v.stdout, /missing/);
    assertMatch(v.stdout, /audit\/stop/);
  });

  await surgery(t, "two lines swapped: reordered, naming one of the two", async () => {
    const seq = 6;
    const at = lineOf(file, seq);
    const lines = [...texts];
    [lines[at], lines[at + 1]] = [lines[at + 1]!, lines[at]!];
    await writeLines(copy, lines);
    const v = await verifyLog(copy);
    assertEquals(v.code, 1, v.stdout);
    const found = problems(v.lines);
    assert(found.length > 0, v.stdout);
    assert(
      found.some((p) => new RegExp(`\\bseq (${seq}|${seq + 1}): reordered\\b`).test(p)),
      `a reordered problem at seq ${seq} or ${seq + 1}:\n${v.stdout}`,
    );
    assert(!found.some((p) => / missing: /.test(p)), `nothing is missing:\n${v.stdout}`);
  });

  await surgery(
    t,
    "the file cut in the middle of a line: torn, after the last whole record",
    async () => {
      const lastLine = file.lines.at(-1)!;
      const cut = lastLine.offset + Math.floor(utf8(lastLine.text).length / 2);
      await Deno.writeFile(copy, file.bytes.subarray(0, cut));
      const v = await verifyLog(copy);
      assertEquals(v.code, 1, v.stdout);
      assert(
        problems(v.lines).some((p) => / torn: /.test(p) && p.includes(`after seq ${last.seq - 1}`)),
        `a torn line after seq ${last.seq - 1}:\n${v.stdout}`,
      );
    },
  );

  await surgery(
    t,
    "every line removed (an empty file): not intact, everything is missing",
    async () => {
      await Deno.writeFile(copy, new Uint8Array(0));
      const v = await verifyLog(copy);
      assertEquals(v.code, 1, `an emptied log must not verify as intact:\n${v.stdout}`);
      assertMatch(v.stdout, / missing: /);
    },
  );

  await t.step("checked with the wrong secret: wrong key, from seq 1", async () => {
    const v = await verifyLog(original, { secret: SECRET + "-wrong" });
    assertEquals(v.code, 1, v.stdout);
    assertMatch(v.stdout, /\bseq 1(-\d+)?: wrong key\b/);
    assert(!/ modified: /.test(v.stdout), `a wrong key is not reported as tampering:\n${v.stdout}`);
  });

  await t.step("a file that does not exist: exit 2", async () => {
    const v = await verifyLog(`${dir.path}/no-such-log.jsonl`);
    assertEquals(v.code, 2, v.stdout + v.stderr);
  });
});
