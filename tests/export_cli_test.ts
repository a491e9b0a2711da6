/**
 * `mcp-audit export` over real logs on disk: a JSONL log with an archive, and a SQLite database,
 * read through `openQuery` (which tells them apart by content), written to a stream or to a file.
 * The command function is driven directly with the I/O that main.ts gives it.
 */
import assert from "node:assert/strict";
import { exportCommand, type ExportIo, parseTimeFlag } from "../src/cli/export_command.ts";
import { UsageError } from "../src/cli/errors.ts";
import { openQuery } from "../src/audit/storage/open.ts";
import { SqliteStore } from "../src/audit/storage/sqlite.ts";
import { sha256Hex } from "../src/audit/chain.ts";
import type { ReadRecord } from "../src/audit/storage/query.ts";
import {
  ANY_LINE_BREAK,
  chain,
  fields,
  FIRST_TS,
  RAW_CONTROL,
  sampleLog,
  SAMPLES,
} from "../src/export/testdata/records.ts";
import {
  deadline,
  fixture,
  type MainRun,
  ProxyProcess,
  readLog,
  runMain,
  STORAGE,
  tempDir,
} from "./helpers.ts";

const decoder = new TextDecoder();

/** What the command wrote: its stdout bytes, messages and progress. */
interface Run {
  code: number;
  stdout: string;
  err: string[];
  out: string[];
  progress: string[];
}

async function run(
  args: string[],
  options: { terminal?: boolean; sink?: WritableStream<Uint8Array> } = {},
): Promise<Run> {
  const chunks: Uint8Array[] = [];
  const result: Omit<Run, "code"> = { stdout: "", err: [], out: [], progress: [] };
  const io: ExportIo = {
    openQuery,
    stdout: options.sink ?? new WritableStream({ write: (c) => void chunks.push(c) }),
    out: (line) => void result.out.push(line),
    err: (line) => void result.err.push(line),
    progress: options.terminal ? (t) => void result.progress.push(t) : undefined,
  };
  const code = await exportCommand(args, io);
  result.stdout = chunks.map((c) => decoder.decode(c, { stream: true })).join("") +
    decoder.decode();
  return { code, ...result };
}

/** The sample log, split as a rotation leaves it: seq 1-22 archived, the rotate event on. */
interface Log {
  dir: string;
  path: string;
  records: ReadRecord[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function writeLog(): Promise<Log> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-export-" });
  const path = `${dir}/audit.jsonl`;
  const first = sampleLog();
  const rotateAt = first.findIndex((r) => r.record.method === "audit/rotate");
  const last = first[first.length - 1]!;
  const more = chain(
    [
      {
        name: "after",
        fields: fields({ jsonrpc_id: 100, method: "tools/call", tool_name: "read_file" }),
      },
      {
        name: "after answered",
        fields: fields({
          kind: "response",
          direction: "server_to_client",
          jsonrpc_id: 100,
          method: "tools/call",
          tool_name: "read_file",
          result: { content: [] },
          duration_ms: 5,
        }),
      },
    ],
    {
      firstSeq: last.record.seq + 1,
      prev: sha256Hex(last.line),
      firstTs: FIRST_TS + first.length * 1000,
    },
  );
  const records = [...first, ...more];
  const text = (rs: ReadRecord[]) => rs.map((r) => r.line + "\n").join("");
  await Deno.writeTextFile(`${path}.20261125T035000Z`, text(records.slice(0, rotateAt)));
  await Deno.writeTextFile(path, text(records.slice(rotateAt)));
  return {
    dir,
    path,
    records,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function seqsOf(jsonl: string): number[] {
  return jsonl.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).seq);
}

Deno.test("export with no flags writes every stored line, archive first, byte for byte", async () => {
  await using log = await writeLog();
  const r = await run([log.path]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.equal(r.stdout, log.records.map((x) => x.line + "\n").join(""));
  assert.deepEqual(r.err, []);
  assert.deepEqual(r.progress, []);
});

Deno.test("a SQLite database exports as a JSONL log does: the stored lines, filtered, in every format", async () => {
  await using log = await writeLog();
  const path = `${log.dir}/audit.db`;
  const store = new SqliteStore(path, { durability: "batch", busyTimeoutMs: 1000 });
  try {
    store.begin();
    for (const read of log.records) store.write({ ...read, hash: sha256Hex(read.line) });
    store.commit();
  } finally {
    store.close();
  }
  const all = await run([path]);
  assert.equal(all.code, 0, all.err.join("\n"));
  assert.equal(all.stdout, log.records.map((x) => x.line + "\n").join(""));
  for (const format of ["csv", "ocsf", "cef"]) {
    const fromDb = await run(["--format", format, path]);
    const fromFile = await run(["--format", format, log.path]);
    assert.equal(fromDb.code, 0, fromDb.err.join("\n"));
    // The same records, whichever backend held them (OCSF names the file it read).
    assert.equal(
      fromDb.stdout.replaceAll('"log_name":"audit.db"', '"log_name":"audit.jsonl"'),
      fromFile.stdout,
      format,
    );
  }
  const filtered = await run(
    ["--tool", "delete_file", "--kind", "request", "--from", "2026-11-25", path],
  );
  assert.deepEqual(
    seqsOf(filtered.stdout),
    seqsOf((await run(["--tool", "delete_file", "--kind", "request", log.path])).stdout),
  );
  assert.equal(seqsOf(filtered.stdout).length, 2);
});

Deno.test("filters: kinds, method, tool, session, client, and times as RFC 3339 or dates", async () => {
  await using log = await writeLog();
  const all = log.records.map((x) => x.record);
  const seqs = (pick: (i: number) => boolean) =>
    all.map((r, i) => (pick(i) ? r.seq : -1)).filter((s) => s > 0);
  const sampleAt = (i: number) => SAMPLES[i]?.fields;

  const kinds = await run(["--kind", "error", "--kind", "event", log.path]);
  assert.deepEqual(
    seqsOf(kinds.stdout),
    seqs((i) => ["error", "event"].includes(sampleAt(i)?.kind ?? "request")),
  );
  assert.deepEqual(
    seqsOf((await run(["--kind", "error,event", log.path])).stdout),
    seqsOf(kinds.stdout),
  );

  const tool = await run(["--tool", "delete_file", log.path]);
  assert.deepEqual(seqsOf(tool.stdout), seqs((i) => sampleAt(i)?.tool_name === "delete_file"));
  assert.equal(seqsOf(tool.stdout).length, 3);

  const method = await run(["--method", "tools/call", "--kind", "response", log.path]);
  assert.deepEqual(seqsOf(method.stdout), [6, log.records.length]);

  const session = await run(["--session", "+SUM(1,2)", log.path]);
  assert.deepEqual(seqsOf(session.stdout), seqs((i) => sampleAt(i)?.session === "+SUM(1,2)"));
  assert.equal(seqsOf(session.stdout).length, 1);

  assert.equal((await run(["--client", "nobody", log.path])).stdout, "");
  assert.equal(
    seqsOf((await run(["--client", "claude-desktop", log.path])).stdout).length,
    log.records.length,
  );

  // One record a second from FIRST_TS: --from is inclusive, --to exclusive.
  const at = (i: number) => new Date(FIRST_TS + i * 1000).toISOString();
  const window = await run(["--from", at(4), "--to", at(7), log.path]);
  assert.deepEqual(seqsOf(window.stdout), [5, 6, 7]);
  const offset = await run(["--from", "2026-11-25T04:49:40.219+01:00", "--to", at(5), log.path]);
  assert.deepEqual(seqsOf(offset.stdout), [5]);
  // A date is its UTC day: --to takes in the whole day it names.
  const day = await run(["--from", "2026-11-25", "--to", "2026-11-25", log.path]);
  assert.equal(seqsOf(day.stdout).length, log.records.length);
  assert.equal((await run(["--to", "2026-11-24", log.path])).stdout, "");
  assert.equal((await run(["--from", "2026-11-26", log.path])).stdout, "");
});

Deno.test("--output writes a new file, mode 0600; an existing one is refused and left as it was", async () => {
  await using log = await writeLog();
  const out = `${log.dir}/export.csv`;
  const r = await run(["--format", "csv", "--output", out, log.path]);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.equal(r.stdout, "");
  const text = await Deno.readTextFile(out);
  const lines = text.split("\r\n");
  assert.equal(lines[0]!.split(",")[0], "seq");
  assert.equal(lines[lines.length - 1], "", "ends with CRLF");
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);

  await Deno.writeTextFile(out, "keep me");
  await assert.rejects(
    run(["--format", "csv", "--output", out, log.path]),
    (e: Error) => e instanceof UsageError && /--output: .* exists; give --force/.test(e.message),
  );
  assert.equal(await Deno.readTextFile(out), "keep me");

  await Deno.chmod(out, 0o644);
  const forced = await run(["--format", "jsonl", "--output", out, "--force", log.path]);
  assert.equal(forced.code, 0, forced.err.join("\n"));
  assert.equal(await Deno.readTextFile(out), log.records.map((x) => x.line + "\n").join(""));
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
});

Deno.test("--force never overwrites the log or its archives", async () => {
  await using log = await writeLog();
  const before = await Deno.readTextFile(log.path);
  for (const target of [log.path, `${log.path}.20261125T035000Z`]) {
    await assert.rejects(
      run(["--output", target, "--force", log.path]),
      (e: Error) =>
        e instanceof UsageError && /is the audit log or one of its files/.test(e.message),
    );
  }
  assert.equal(await Deno.readTextFile(log.path), before);
});

/** Names of the files in `dir`, sorted. */
async function namesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("--force refuses a hard link to the log, an archive, the lock, the -wal and -shm: nothing is written", async () => {
  await using log = await writeLog();
  const archive = `${log.path}.20261125T035000Z`;
  // A compressed archive and the writers' lock, as a running log has them.
  await Deno.writeFile(
    `${log.path}.20261125T034900Z.gz`,
    new Uint8Array(
      await new Response(
        new Blob([log.records[0]!.line + "\n"]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer(),
    ),
  );
  await Deno.writeTextFile(`${log.path}.lock`, "");
  const db = `${log.dir}/audit.db`;
  // Open while the export runs: its -wal and -shm are there.
  const store = new SqliteStore(db, { durability: "batch", busyTimeoutMs: 1000 });
  try {
    store.begin();
    for (const read of log.records) store.write({ ...read, hash: sha256Hex(read.line) });
    store.commit();
    const targets: [string, string][] = [
      [log.path, log.path],
      [archive, log.path],
      [`${log.path}.20261125T034900Z.gz`, log.path],
      [`${log.path}.lock`, log.path],
      [db, db],
      [`${db}-wal`, db],
      [`${db}-shm`, db],
    ];
    for (const [target, exported] of targets) {
      const before = await Deno.readFile(target);
      const link = `${log.dir}/report-${targets.findIndex((t) => t[0] === target)}.csv`;
      await Deno.link(target, link);
      await assert.rejects(
        run(["--format", "csv", "--output", link, "--force", exported]),
        (e: Error) =>
          e instanceof UsageError &&
          e.message === `export: --output: ${link} is the audit log or one of its files`,
        `a hard link to ${target}`,
      );
      assert.deepEqual(await Deno.readFile(target), before, target);
      // Through a symbolic link to the hard link, and by a path through another directory.
      await Deno.symlink(link, `${link}.via`);
      await assert.rejects(
        run(["--output", `${link}.via`, "--force", exported]),
        (e: Error) => e instanceof UsageError && /is the audit log/.test(e.message),
      );
      assert.deepEqual(await Deno.readFile(target), before, target);
    }
    assert.equal((await readLog(db)).records.length, log.records.length);
  } finally {
    store.close();
    await store.settled();
  }
  assert.equal(
    await Deno.readTextFile(log.path),
    log.records.slice(log.records.findIndex((r) => r.record.method === "audit/rotate"))
      .map((r) => r.line + "\n").join(""),
  );
});

Deno.test("the log's own file names are refused as an --output, with or without --force; a name that only starts like them is not", async () => {
  await using log = await writeLog();
  for (
    const name of [
      `${log.path}.lock`,
      `${log.path}.20270101T000000Z`,
      `${log.path}.20270101T000000Z.3.gz`,
      `${log.path}.20270101T000000Z.gz.tmp`,
      `${log.path}-wal`,
    ]
  ) {
    for (const force of [[], ["--force"]]) {
      await assert.rejects(
        run(["--output", name, ...force, log.path]),
        (e: Error) =>
          e instanceof UsageError && /is the audit log or one of its files/.test(e.message),
        name,
      );
      await assert.rejects(Deno.lstat(name), Deno.errors.NotFound);
    }
  }
  const beside = await run(["--output", `${log.path}.csv`, "--format", "csv", log.path]);
  assert.equal(beside.code, 0, beside.err.join("\n"));
});

Deno.test("--force writes a new file and renames it over FILE: FILE's other hard links and a failed or stopped export leave the old bytes", async () => {
  await using log = await writeLog();
  const out = `${log.dir}/report.jsonl`;
  const other = `${log.dir}/other-name.jsonl`;
  await Deno.writeTextFile(out, "old report\n");
  await Deno.chmod(out, 0o644);
  await Deno.link(out, other);
  const whole = log.records.map((x) => x.line + "\n").join("");

  const forced = await run(["--output", out, "--force", log.path]);
  assert.equal(forced.code, 0, forced.err.join("\n"));
  assert.equal(await Deno.readTextFile(out), whole);
  // The other name still holds the old file: it was replaced, not written through.
  assert.equal(await Deno.readTextFile(other), "old report\n");
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(out)).mode! & 0o777, 0o600);
  assert.deepEqual(await namesIn(log.dir), [
    "audit.jsonl",
    "audit.jsonl.20261125T035000Z",
    "other-name.jsonl",
    "report.jsonl",
  ]);

  // A symbolic link keeps pointing at the file it named, which is replaced.
  const link = `${log.dir}/latest.jsonl`;
  await Deno.symlink("other-name.jsonl", link);
  const through = await run(["--output", link, "--force", "--kind", "event", log.path]);
  assert.equal(through.code, 0, through.err.join("\n"));
  assert.ok((await Deno.lstat(link)).isSymlink);
  assert.deepEqual(
    seqsOf(await Deno.readTextFile(other)),
    log.records.filter((x) => x.record.kind === "event").map((x) => x.record.seq),
  );
  assert.equal(await Deno.readTextFile(out), whole);

  // A record that cannot be mapped fails the export part way: FILE keeps what it held.
  const last = log.records[log.records.length - 1]!;
  const [bad] = chain([{ name: "bad", fields: fields({ method: "ping" }) }], {
    firstSeq: last.record.seq + 1,
    prev: sha256Hex(last.line),
  });
  await Deno.writeTextFile(
    log.path,
    bad!.line.replace(/"ts":"[^"]*"/, '"ts":"not a time"') + "\n",
    { append: true },
  );
  const failed = await run(["--format", "ocsf", "--output", out, "--force", log.path]);
  assert.equal(failed.code, 1);
  assert.match(failed.err.join("\n"), /is not a time/);
  assert.equal(await Deno.readTextFile(out), whole);

  // Stopped as Ctrl-C would, after the first record: the same.
  const stop = new AbortController();
  const errors: string[] = [];
  const code = await exportCommand(["--output", out, "--force", "--kind", "request", log.path], {
    openQuery: (path) => {
      // The first record read stops it.
      const query = openQuery(path);
      return {
        page: (request) => query.page(request),
        stats: (filter) => query.stats(filter),
        close: () => query.close(),
        stream: async function* (filter, signal) {
          for await (const read of query.stream(filter, signal)) {
            yield read;
            stop.abort();
          }
        },
      };
    },
    stdout: new WritableStream(),
    out: () => {},
    err: (line) => void errors.push(line),
    progress: undefined,
    signal: stop.signal,
  });
  assert.equal(code, 1);
  assert.match(errors.join("\n"), /stopped after \d+ records/);
  assert.equal(await Deno.readTextFile(out), whole);
  // No temporary file is left behind.
  assert.deepEqual(await namesIn(log.dir), [
    "audit.jsonl",
    "audit.jsonl.20261125T035000Z",
    "latest.jsonl",
    "other-name.jsonl",
    "report.jsonl",
  ]);
});

Deno.test("--force replaces only a regular file: a directory or a dangling link is refused", async () => {
  await using log = await writeLog();
  const dir = `${log.dir}/a-directory`;
  await Deno.mkdir(dir);
  await Deno.symlink(`${log.dir}/nowhere`, `${log.dir}/dangling`);
  for (const target of [dir, `${log.dir}/dangling`]) {
    await assert.rejects(
      run(["--output", target, "--force", log.path]),
      (e: Error) =>
        e instanceof UsageError &&
        /is not a regular file; --force replaces only a file/.test(e.message),
      target,
    );
  }
  assert.deepEqual(await namesIn(dir), []);
  await assert.rejects(Deno.stat(`${log.dir}/nowhere`), Deno.errors.NotFound);
});

Deno.test("ocsf and cef: one line per record, in seq order, each keeping seq and the record id", async () => {
  await using log = await writeLog();
  const ocsf = await run(["--format", "ocsf", log.path]);
  assert.equal(ocsf.code, 0, ocsf.err.join("\n"));
  const events = ocsf.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(events.map((e) => e.unmapped.seq), log.records.map((x) => x.record.seq));
  assert.deepEqual(events.map((e) => e.metadata.uid), log.records.map((x) => x.record.id));
  assert.ok(events.every((e) => e.class_uid === 6003 && e.metadata.log_name === "audit.jsonl"));

  const cef = await run(["--format", "cef", "--kind", "request", log.path]);
  assert.equal(cef.code, 0, cef.err.join("\n"));
  const lines = cef.stdout.trimEnd().split("\n");
  const requests = log.records.filter((x) => x.record.kind === "request");
  assert.equal(lines.length, requests.length);
  lines.forEach((line, i) => {
    assert.ok(line.startsWith("CEF:0|mcp-audit|mcp-audit|"), line);
    assert.ok(line.includes(` externalId=${requests[i]!.record.id} `), line);
    assert.ok(line.includes(` cn3Label=seq cn3=${requests[i]!.record.seq} `), line);
  });
});

Deno.test("bad flags are usage errors naming the flag", async () => {
  await using log = await writeLog();
  const cases: [string[], RegExp][] = [
    [["--format", "xml", log.path], /--format: must be one of jsonl, csv, ocsf, cef/],
    [["--from", "yesterday", log.path], /--from: expected an RFC 3339 time/],
    [["--from", "2026-02-30", log.path], /--from: .*no such day/],
    [["--to", "2026-06-10T24:00:00Z", log.path], /--to: .*no such time of day/],
    [["--to", "2026-06-10T12:00:00", log.path], /--to: expected an RFC 3339 time/],
    [["--from", "2026-06-10", "--to", "2026-06-09", log.path], /--to: .* is not after --from/],
    [["--kind", "bogus", log.path], /--kind: must be one of request, notification/],
    [["--tool", "", log.path], /--tool: must not be empty/],
    [["--bogus", log.path], /Unknown option '--bogus'/],
    [["--force", log.path], /--force: only with --output/],
    [[], /expected one PATH/],
    [[log.path, log.path], /expected one PATH/],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(
      run(args),
      (e: Error) => e instanceof UsageError && message.test(e.message),
      `${args.join(" ")} should be refused with ${message}`,
    );
  }
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out[0]!, /^usage: mcp-audit export/);
});

Deno.test("a PATH that cannot be read exits 2 and writes nothing", async () => {
  await using log = await writeLog();
  const out = `${log.dir}/never.jsonl`;
  const missing = await run(["--output", out, `${log.dir}/nothing.jsonl`]);
  assert.equal(missing.code, 2);
  assert.match(missing.err[0]!, /cannot read .*nothing\.jsonl/);
  const dir = await run([log.dir]);
  assert.equal(dir.code, 2);
  assert.match(dir.err[0]!, /is a directory/);
  await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
});

Deno.test("a record that cannot be mapped ends the export with exit 1 and removes the partial file", async () => {
  await using log = await writeLog();
  // A line whose ts is no time: the OCSF time would be a lie.
  const last = log.records[log.records.length - 1]!;
  const [bad] = chain([{ name: "bad", fields: fields({ method: "ping" }) }], {
    firstSeq: last.record.seq + 1,
    prev: sha256Hex(last.line),
  });
  const line = bad!.line.replace(/"ts":"[^"]*"/, '"ts":"not a time"');
  await Deno.writeTextFile(log.path, line + "\n", { append: true });
  const out = `${log.dir}/export.ocsf`;
  const r = await run(["--format", "ocsf", "--output", out, log.path]);
  assert.equal(r.code, 1);
  assert.match(r.err.join("\n"), /seq 26: ts "not a time" is not a time; 25 records were exported/);
  await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
});

Deno.test("an output that fails is reported and exits 1", async () => {
  await using log = await writeLog();
  const failing = new WritableStream<Uint8Array>({
    write() {
      throw new Error("no space left on device");
    },
  });
  const failed = await run([log.path], { sink: failing });
  assert.equal(failed.code, 1);
  assert.match(failed.err[0]!, /cannot write standard output: no space left on device/);
  // A reader that stopped reading (`| head`): exit 1 without a message.
  const closed = new WritableStream<Uint8Array>({
    write() {
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    },
  });
  const piped = await run([log.path], { sink: closed });
  assert.equal(piped.code, 1);
  assert.deepEqual(piped.err, []);
});

Deno.test("a log far larger than the writer's buffer streams out whole and in order", async () => {
  await using log = await writeLog();
  // 20,000 records of about 1 KB: several times the 4 MiB the writer holds before it waits.
  const last = log.records[log.records.length - 1]!;
  const padding = "x".repeat(900);
  const big = chain(
    Array.from({ length: 20_000 }, (_, i) => ({
      name: `bulk ${i}`,
      fields: fields({
        jsonrpc_id: 1000 + i,
        method: "tools/call",
        tool_name: "bulk",
        params: { padding },
      }),
    })),
    { firstSeq: last.record.seq + 1, prev: sha256Hex(last.line) },
  );
  await Deno.writeTextFile(log.path, big.map((r) => r.line + "\n").join(""), { append: true });
  const out = `${log.dir}/bulk.ocsf`;
  const r = await run(["--format", "ocsf", "--tool", "bulk", "--output", out, log.path]);
  assert.equal(r.code, 0, r.err.join("\n"));
  let n = 0;
  for (const line of (await Deno.readTextFile(out)).split("\n")) {
    if (line === "") continue;
    assert.equal(JSON.parse(line).metadata.sequence, big[n]!.record.seq);
    n++;
  }
  assert.equal(n, big.length);
});

Deno.test("an export stopped by its signal exits 1 saying how far it got", async () => {
  await using log = await writeLog();
  const last = log.records[log.records.length - 1]!;
  const bulk = chain(
    Array.from({ length: 5_000 }, (_, i) => ({
      name: `bulk ${i}`,
      fields: fields({ jsonrpc_id: i, method: "ping" }),
    })),
    { firstSeq: last.record.seq + 1, prev: sha256Hex(last.line) },
  );
  await Deno.writeTextFile(log.path, bulk.map((r) => r.line + "\n").join(""), { append: true });
  const stop = new AbortController();
  const errors: string[] = [];
  let seen = 0;
  const code = await exportCommand([log.path], {
    openQuery,
    // Stopped as the first bytes arrive, as Ctrl-C would.
    stdout: new WritableStream({
      write: (chunk) => {
        seen += chunk.length;
        stop.abort();
      },
    }),
    out: () => {},
    err: (line) => void errors.push(line),
    progress: undefined,
    signal: stop.signal,
  });
  assert.equal(code, 1);
  assert.match(errors.join("\n"), /stopped after \d+ records/);
  assert.ok(seen > 0);
});

Deno.test("on a terminal the count is shown on stderr; elsewhere nothing is", async () => {
  await using log = await writeLog();
  const quiet = await run(["--format", "cef", log.path]);
  assert.deepEqual(quiet.progress, []);
  assert.deepEqual(quiet.err, []);
  const shown = await run(["--format", "cef", log.path], { terminal: true });
  assert.equal(shown.code, 0);
  assert.match(shown.progress.join(""), new RegExp(`exported ${log.records.length} records from `));
});

Deno.test("time flags: offsets, fractions and leap seconds are read as RFC 3339 says", () => {
  assert.equal(parseTimeFlag("--from", "2026-06-10T22:00:00Z", false), Date.UTC(2026, 5, 10, 22));
  assert.equal(
    parseTimeFlag("--from", "2026-06-10T22:00:00.123456-02:30", false),
    Date.UTC(2026, 5, 11, 0, 30, 0, 123),
  );
  assert.equal(parseTimeFlag("--to", "2026-06-10", true), Date.UTC(2026, 5, 11));
  assert.equal(parseTimeFlag("--from", "2026-06-10", false), Date.UTC(2026, 5, 10));
  assert.equal(parseTimeFlag("--to", "2016-12-31T23:59:60Z", true), Date.UTC(2017, 0, 1));
  assert.equal(parseTimeFlag("--from", "2024-02-29", false), Date.UTC(2024, 1, 29));
  assert.throws(() => parseTimeFlag("--from", "2023-02-29", false), /no such day/);
  assert.equal(parseTimeFlag("--from", "0050-01-01", false), -60589296000000);
});

const HOSTILE_TOOL =
  "nul\u0000 esc\u001b[2J\u001b[31mRED ls\u2028ps\u2029nel\u0085vt\u000bff\u000cdel\u007f" +
  "csi\u009b1m lf\ncr\r";

/** `deno run main.ts export ARGS`, as a user runs it. */
/** Runs `mcp-audit export ARGS` from source in `cwd`. */
function exportMain(args: string[], cwd: string): Promise<MainRun> {
  return runMain(["export", ...args], { cwd });
}

Deno.test(`a log written by a real proxy run exports through main.ts (${STORAGE})`, async () => {
  await using dir = await tempDir("export");
  const path = `${dir.path}/audit.${STORAGE === "sqlite" ? "db" : "jsonl"}`;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: fixture("echo_upstream.ts"),
      logPath: path,
    });
    const answers = proxy.stdout();
    const send = (m: unknown) => proxy.write(new TextEncoder().encode(JSON.stringify(m) + "\n"));
    await send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        clientInfo: { name: "export-test", version: "1.0" },
      },
    });
    await send({ jsonrpc: "2.0", method: "notifications/initialized" });
    await send({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "read_file", arguments: { path: "/tmp/x|y=z" } },
    });
    // A name a server or client can send that a SIEM's line reader or a terminal would act on.
    await send({
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: HOSTILE_TOOL, arguments: { v: HOSTILE_TOOL } },
    });
    await answers.waitFor((c) => c.lines.length >= 3, "three answers", deadline(20_000));
    await proxy.closeInput();
    assert.equal((await proxy.finished(deadline(20_000))).code, 0);
  }
  const stored = await readLog(path);
  assert.ok(stored.records.length >= 6, `records: ${stored.records.length}`);

  const jsonl = await exportMain([path], dir.path);
  assert.equal(jsonl.code, 0, jsonl.stderr);
  assert.equal(jsonl.stderr, "");
  assert.equal(jsonl.stdout, stored.lines.map((l) => l.text + "\n").join(""));

  const ocsf = await exportMain(["--format", "ocsf", "--tool", "read_file", path], dir.path);
  assert.equal(ocsf.code, 0, ocsf.stderr);
  const events = ocsf.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  const calls = stored.records.filter((r) => r.tool_name === "read_file");
  assert.deepEqual(events.map((e) => e.unmapped.seq), calls.map((r) => r.seq));
  assert.ok(events.every((e) => e.actor.invoked_by === "export-test/1.0"), ocsf.stdout);
  assert.deepEqual(events.map((e) => e.unmapped.kind), ["request", "response"]);

  const csv = `${dir.path}/out.csv`;
  const written = await exportMain(["--format", "csv", "--output", csv, path], dir.path);
  assert.equal(written.code, 0, written.stderr);
  assert.equal((await Deno.readTextFile(csv)).split("\r\n").length, stored.records.length + 2);
  const again = await exportMain(["--format", "csv", "--output", csv, path], dir.path);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /--output: .* exists; give --force/);

  // Every format but JSONL (the stored lines, byte for byte) holds one event a line, no control
  // character raw.
  for (const format of ["csv", "ocsf", "cef"]) {
    const r = await exportMain(["--format", format, path], dir.path);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split(format === "csv" ? "\r\n" : "\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, stored.records.length + (format === "csv" ? 1 : 0), format);
    assert.equal(lines.filter((l) => l.includes("\ufffd[2J") || l.includes("\\u001b")).length, 2);
    for (const line of lines) {
      assert.ok(!RAW_CONTROL.test(line), `${format}: ${JSON.stringify(line)}`);
      assert.equal(line.split(ANY_LINE_BREAK).length, 1);
    }
  }

  // A hard link to the log under another name, --force: refused, the log as it was.
  const link = `${dir.path}/report.csv`;
  await Deno.link(path, link);
  const before = await Deno.readFile(path);
  const linked = await exportMain(["--format", "csv", "--output", link, "--force", path], dir.path);
  assert.equal(linked.code, 2);
  assert.match(linked.stderr, /--output: .*report\.csv is the audit log or one of its files/);
  assert.deepEqual(await Deno.readFile(path), before);

  const bad = await exportMain(["--from", "last tuesday", path], dir.path);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--from: expected an RFC 3339 time/);
});
