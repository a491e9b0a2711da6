import assert from "node:assert/strict";
import {
  DEFAULT_MAX_LINE,
  LineTooLongError,
  LogFiles,
  type LogLine,
  LogNotFoundError,
  OpenedLogFile,
  readLogLines,
} from "./log_lines.ts";
import { StorageError } from "./errors.ts";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "log_lines_test_" });
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = ReadableStream.from([new TextEncoder().encode(text)])
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function short(l: LogLine): [string, number, string, boolean] {
  return [l.file.slice(l.file.lastIndexOf("/") + 1), l.lineNo, l.text, l.terminated];
}

Deno.test("readLogLines reads the archives in chain order, gunzipped, then the active file", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(`${log}.20260610T220000Z.10`, "j\n");
  Deno.writeTextFileSync(`${log}.20260610T220000Z.2`, "i\n");
  Deno.writeFileSync(`${log}.20260610T220000Z.gz`, await gzip("g\nh\n"));
  Deno.writeTextFileSync(`${log}.20260610T220000Z.3.tmp`, "not an archive\n");
  Deno.writeTextFileSync(log, "k\r\nl\n\ntorn");
  const lines = await all(readLogLines(log));
  assert.deepEqual(lines.map(short), [
    ["audit.jsonl.20260610T220000Z.gz", 1, "g", true],
    ["audit.jsonl.20260610T220000Z.gz", 2, "h", true],
    ["audit.jsonl.20260610T220000Z.2", 1, "i", true],
    ["audit.jsonl.20260610T220000Z.10", 1, "j", true],
    ["audit.jsonl", 1, "k", true],
    ["audit.jsonl", 2, "l", true],
    ["audit.jsonl", 3, "", true],
    ["audit.jsonl", 4, "torn", false],
  ]);
  assert.deepEqual(lines.slice(4).map((l) => l.offset), [0, 3, 5, 6]);
});

Deno.test("readLogLines refuses a line over maxLine with LineTooLongError", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(log, "short\n" + "x".repeat(5000) + "\nafter\n");
  const seen: string[] = [];
  await assert.rejects(
    async () => {
      for await (const l of readLogLines(log, { maxLine: 4096 })) seen.push(l.text);
    },
    (e) => e instanceof LineTooLongError && e.lineNo === 2 && e.offset === 6,
  );
  assert.deepEqual(seen, ["short"]);
});

/** Writes `<path>` as the gzip of `record` then `size` bytes of `fill` with no newline. */
async function gzipBomb(path: string, record: string, size: number, fill: number): Promise<void> {
  const block = new Uint8Array(1 << 20).fill(fill);
  let left = size;
  const source = new ReadableStream<BufferSource>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(record));
    },
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(left, block.length);
      controller.enqueue(block.subarray(0, n));
      left -= n;
    },
  });
  using out = await Deno.open(path, { write: true, createNew: true });
  await source.pipeThrough(new CompressionStream("gzip")).pipeTo(out.writable, {
    preventClose: true,
  });
}

Deno.test("DEFAULT_MAX_LINE is 64 MiB", () => {
  assert.equal(DEFAULT_MAX_LINE, 64 * 1024 * 1024);
});

Deno.test("a .gz archive of one line far over the cap is refused once the read passes the cap, not read to its end", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  // 256 MiB of one line, about 256 KB compressed: inflating it to its end would hold it all.
  const archive = `${log}.20260101T000000Z.gz`;
  await gzipBomb(archive, "ok\n", 256 << 20, 0x61);
  const size = Deno.statSync(archive).size;
  let read = 0;
  const seen: string[] = [];
  await assert.rejects(
    async () => {
      for await (const l of readLogLines(log, { onRead: (n) => read += n })) seen.push(l.text);
    },
    (e) =>
      e instanceof LineTooLongError && e.file === archive && e.lineNo === 2 && e.offset === 3 &&
      e.max === DEFAULT_MAX_LINE && /is over 67108864 bytes/.test(e.message),
  );
  assert.deepEqual(seen, ["ok"]);
  assert.ok(read < size / 2, `read ${read} of ${size} compressed bytes`);
});

Deno.test("readLogLines: no log and no archive is LogNotFoundError; archives alone are read", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  await assert.rejects(() => all(readLogLines(log)), LogNotFoundError);
  Deno.writeTextFileSync(`${log}.20260610T220000Z`, "a\n");
  assert.deepEqual((await all(readLogLines(log))).map((l) => l.text), ["a"]);
});

Deno.test("readLogLines refuses a directory at the log's path", async () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.dir}/audit.jsonl`);
  await assert.rejects(
    () => all(readLogLines(`${tmp.dir}/audit.jsonl`)),
    (e) => e instanceof StorageError && /not a regular file/.test(e.message),
  );
});

Deno.test("a rotation during the read neither hides lines nor shows them twice", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(`${log}.20260610T220000Z`, "a\nb\n");
  Deno.writeTextFileSync(log, "c\nd\n");
  const it = readLogLines(log)[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done === false && first.value.text, "a");
  // The writer archives the active file and starts a new one.
  Deno.renameSync(log, `${log}.20260611T000000Z`);
  Deno.writeTextFileSync(log, "e\n");
  const rest: string[] = [];
  for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(r.value.text);
  assert.deepEqual(rest, ["b", "c", "d"]);
  // A read started now sees all of it, once.
  assert.deepEqual((await all(readLogLines(log))).map((l) => l.text), ["a", "b", "c", "d", "e"]);
});

Deno.test("an archive compressed after the listing is read from its .gz; one deleted is passed over", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(`${log}.20260610T000000Z`, "a\n");
  Deno.writeTextFileSync(`${log}.20260611T000000Z`, "b\nc\n");
  Deno.writeTextFileSync(`${log}.20260612T000000Z`, "d\n");
  Deno.writeTextFileSync(log, "e\n");
  const it = readLogLines(log)[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done === false && first.value.text, "a");
  Deno.writeFileSync(`${log}.20260611T000000Z.gz`, await gzip("b\nc\n"));
  Deno.removeSync(`${log}.20260611T000000Z`);
  Deno.removeSync(`${log}.20260612T000000Z`);
  const rest: LogLine[] = [];
  for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(r.value);
  assert.deepEqual(rest.map(short), [
    ["audit.jsonl.20260611T000000Z.gz", 1, "b", true],
    ["audit.jsonl.20260611T000000Z.gz", 2, "c", true],
    ["audit.jsonl", 1, "e", true],
  ]);
});

Deno.test("readLogLines stops with the signal's reason and counts the bytes it reads", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(log, "line\n".repeat(100_000));
  const controller = new AbortController();
  let bytes = 0;
  let n = 0;
  await assert.rejects(async () => {
    for await (
      const _ of readLogLines(log, {
        signal: controller.signal,
        onRead: (b) => bytes += b,
      })
    ) {
      if (++n === 10) controller.abort(new Error("enough"));
    }
  }, /enough/);
  assert.equal(n, 10);
  // What the streams read ahead (a few 64 KiB blocks), not the whole file.
  assert.ok(bytes > 0 && bytes <= 5 * 64 * 1024, `read ${bytes} bytes`);
  bytes = 0;
  await all(readLogLines(log, { onRead: (b) => bytes += b }));
  assert.equal(bytes, 500_000);
});

async function backward(path: string, end?: number, maxLine?: number): Promise<LogLine[]> {
  using files = LogFiles.open(path);
  const options = maxLine === undefined ? {} : { maxLine };
  using opened = await OpenedLogFile.open(files.files[files.files.length - 1]!, options);
  assert.ok(opened !== null);
  return await all(opened.linesBackward(end));
}

Deno.test("linesBackward gives the forward lines in reverse, across blocks and long lines", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  // Lines of every length around the 64 KiB block, CRLF, empty lines, multi-byte characters.
  const parts: string[] = [];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  for (let i = 0; i < 300; i++) {
    const len = next() % 5 === 0 ? 60_000 + (next() % 10_000) : next() % 300;
    const body = "é".repeat(len % 7) + "x".repeat(len);
    parts.push(body + (next() % 9 === 0 ? "\r\n" : "\n"));
    if (next() % 17 === 0) parts.push("\n");
  }
  for (const tail of ["", "torn end", "\n"]) {
    Deno.writeTextFileSync(log, parts.join("") + tail);
    const forward = await all(readLogLines(log));
    const back = await backward(log);
    assert.deepEqual(
      back.map((l) => [l.offset, l.text, l.terminated]),
      forward.reverse().map((l) => [l.offset, l.text, l.terminated]),
    );
  }
});

Deno.test("linesBackward from a line start gives the lines before it", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(log, "a\nbb\nccc\n");
  assert.deepEqual((await backward(log, 5)).map((l) => [l.offset, l.text, l.terminated]), [
    [2, "bb", true],
    [0, "a", true],
  ]);
  assert.deepEqual(await backward(log, 0), []);
});

Deno.test("linesBackward refuses a line over maxLine, holding no more than it", async () => {
  using tmp = tempDir();
  const log = `${tmp.dir}/audit.jsonl`;
  Deno.writeTextFileSync(log, "y".repeat(300_000) + "\nok\n");
  await assert.rejects(
    () => backward(log, undefined, 100_000),
    (e) => e instanceof LineTooLongError && e.lineNo === 0,
  );
  assert.equal((await backward(log, undefined, 300_000)).length, 2);
});
