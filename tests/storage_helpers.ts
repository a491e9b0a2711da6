/**
 * What the storage end-to-end tests share: proxies started on an explicit backend (JSONL or
 * SQLite, sync or async, a durability, rotation), a client that pipelines `tools/call` in
 * windows and checks every answer, and readers of what was stored — written here independently of
 * the product's readers — that check the one chain: `seq` 1..N with no gap or repeat, every `prev`
 * the SHA-256 of the stored line before it, across archives (gzip included) or SQLite rows.
 *
 * Nothing here sleeps: every wait is for an answer, a stream's end or a process's exit.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { parseJson } from "../src/jsonrpc/json.ts";
import {
  assert,
  assertEquals,
  type AuditRecord,
  cleanEnv,
  type Collector,
  DENO_JSON,
  fixture,
  MAIN,
  OWN_PORTS,
  ProxyProcess,
  utf8,
  type VerifyResult,
} from "./helpers.ts";

/**
 * True in the suite's second pass (`TEST_STORAGE=sqlite`, scripts/test.ts). The storage tests
 * choose each proxy's backend themselves and cover both, so that pass would only repeat them.
 */
export const REPEAT_PASS = Deno.env.get("TEST_STORAGE") === "sqlite";

/** A storage end-to-end test: run once per suite run, whatever `TEST_STORAGE` says. */
export function storageTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({ name, ignore: REPEAT_PASS, fn });
}

/** 64 zeros: the `prev` of seq 1. */
export const GENESIS = "0".repeat(64);

/** A storage backend. */
export type Backend = "jsonl" | "sqlite";

/** `audit.durability`. */
export type Durability = "none" | "batch" | "entry";

/** `audit.async.*` when on. */
export interface AsyncSetup {
  batchSize: number;
  queueSize: number;
  flushIntervalMs: number;
}

/** How the proxies of a test store their records. */
export interface StorageSetup {
  backend: Backend;
  /** The JSONL log, or the SQLite database. */
  path: string;
  durability?: Durability;
  async?: AsyncSetup;
  /** `audit.rotation.*` (JSONL). */
  rotation?: { maxSizeBytes: number; compress?: "gzip" };
}

/** The proxy environment for a storage setup, every key set explicitly. */
export function storageEnv(s: StorageSetup): Record<string, string> {
  const env: Record<string, string> = {
    ...OWN_PORTS,
    MCP_AUDIT_AUDIT_STORAGE: s.backend,
    // Both paths are set, so that nothing of the other backend lands in the working directory.
    MCP_AUDIT_AUDIT_PATH: s.backend === "jsonl" ? s.path : `${s.path}.unused.jsonl`,
    MCP_AUDIT_AUDIT_SQLITE_PATH: s.backend === "sqlite" ? s.path : `${s.path}.unused.db`,
    MCP_AUDIT_AUDIT_DURABILITY: s.durability ?? "batch",
    MCP_AUDIT_AUDIT_ASYNC_ENABLED: s.async === undefined ? "false" : "true",
    // Thousands of calls a second are the point here, not what the rate limiter makes of them.
    MCP_AUDIT_MIDDLEWARE_RATE_LIMIT_ENABLED: "false",
  };
  if (s.async !== undefined) {
    env.MCP_AUDIT_AUDIT_ASYNC_BATCH_SIZE = String(s.async.batchSize);
    env.MCP_AUDIT_AUDIT_ASYNC_QUEUE_SIZE = String(s.async.queueSize);
    env.MCP_AUDIT_AUDIT_ASYNC_FLUSH_INTERVAL_MS = String(s.async.flushIntervalMs);
  }
  if (s.rotation !== undefined) {
    env.MCP_AUDIT_AUDIT_ROTATION_MAX_SIZE_BYTES = String(s.rotation.maxSizeBytes);
    if (s.rotation.compress !== undefined) {
      env.MCP_AUDIT_AUDIT_ROTATION_COMPRESS = s.rotation.compress;
    }
  }
  return env;
}

/** A proxy in `cwd` writing per `setup`, in front of the echo fixture. */
export function startWriter(
  cwd: string,
  setup: StorageSetup,
  options: { env?: Record<string, string>; upstream?: string[] } = {},
): ProxyProcess {
  return new ProxyProcess({
    cwd,
    upstream: options.upstream ?? fixture("echo_upstream.ts"),
    logPath: setup.backend === "jsonl" ? setup.path : `${setup.path}.unused.jsonl`,
    env: { ...storageEnv(setup), ...options.env },
  });
}

/** One `tools/call` line, its arguments saying who sent it. */
export function toolCall(id: number, writer: string, pad = ""): string {
  const args: Record<string, string | number> = { i: id, writer };
  if (pad !== "") args.pad = pad;
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "echo", arguments: args },
  }) + "\n";
}

/** What a client got before the proxy stopped answering. */
export interface CallOutcome {
  /** Ids of the calls answered, each answer checked. */
  answered: number[];
  /** Ids of the calls written to the proxy. */
  sent: number[];
  /** True when the proxy's output ended before every call was answered. */
  cut: boolean;
}

/** Raised when an answer is not the answer to the call it names. */
export class WrongAnswerError extends Error {
  override name = "WrongAnswerError";
}

/**
 * A client of one proxy: it writes `tools/call` requests in windows (all of a window in one
 * write), waits for every answer of the window, and checks each: the id of a call sent and not yet
 * answered, and the echo of that call's own arguments.
 */
export class Caller {
  readonly out: Collector;
  readonly writer: string;
  #proxy: ProxyProcess;
  #checked = 0;
  #waiting = new Set<number>();
  readonly answered: number[] = [];
  readonly sent: number[] = [];

  constructor(proxy: ProxyProcess, writer: string) {
    this.#proxy = proxy;
    this.writer = writer;
    this.out = proxy.stdout();
  }

  /** Checks the answers that arrived since the last look. */
  #check(): void {
    const lines = this.out.lines;
    for (; this.#checked < lines.length; this.#checked++) {
      const line = lines[this.#checked]!;
      let v: unknown;
      try {
        v = parseJson(line);
      } catch {
        throw new WrongAnswerError(`${this.writer}: an answer is not JSON: ${line.slice(0, 200)}`);
      }
      const id = answerId(v);
      if (id === undefined || !this.#waiting.has(id)) {
        throw new WrongAnswerError(`${this.writer}: an answer to no call waiting: ${line}`);
      }
      const echoed = echoedArguments(v);
      if (echoed?.i !== id || echoed.writer !== this.writer) {
        throw new WrongAnswerError(`${this.writer}: answer ${id} echoes another call: ${line}`);
      }
      this.#waiting.delete(id);
      this.answered.push(id);
    }
  }

  /**
   * Sends `count` calls with ids from `firstId`, `window` at a time, each window answered before
   * the next. When the proxy's output ends (it stopped), returns what was answered with `cut`.
   * `before` runs before each window; returning false stops early.
   */
  async run(
    firstId: number,
    count: number,
    window: number,
    signal: AbortSignal,
    options: { pad?: string; before?: () => boolean | Promise<boolean> } = {},
  ): Promise<CallOutcome> {
    let next = firstId;
    const end = firstId + count;
    while (next < end) {
      if (options.before !== undefined && !(await options.before())) break;
      let text = "";
      const stop = Math.min(end, next + window);
      for (; next < stop; next++) {
        text += toolCall(next, this.writer, options.pad);
        this.#waiting.add(next);
        this.sent.push(next);
      }
      try {
        await this.#proxy.write(utf8(text));
      } catch {
        // The proxy is gone: its input is closed.
        this.#check();
        return this.#outcome(true);
      }
      const target = this.sent.length;
      try {
        await this.out.waitFor(
          (c) => c.lines.length >= target,
          `${this.writer}: answers up to ${target}`,
          signal,
        );
      } catch (e) {
        this.#check();
        if (this.out.ended) return this.#outcome(true);
        throw e;
      }
      this.#check();
    }
    return this.#outcome(false);
  }

  #outcome(cut: boolean): CallOutcome {
    return { answered: [...this.answered], sent: [...this.sent], cut };
  }
}

function answerId(v: unknown): number | undefined {
  if (typeof v !== "object" || v === null || !("id" in v) || typeof v.id !== "number") {
    return undefined;
  }
  return "result" in v ? v.id : undefined;
}

function echoedArguments(v: unknown): { i?: unknown; writer?: unknown } | undefined {
  if (typeof v !== "object" || v === null || !("result" in v)) return undefined;
  const result = v.result;
  if (typeof result !== "object" || result === null || !("echo" in result)) return undefined;
  const echo = result.echo;
  if (typeof echo !== "object" || echo === null || !("arguments" in echo)) return undefined;
  const args = echo.arguments;
  if (typeof args !== "object" || args === null) return undefined;
  return args;
}

/** Hex SHA-256 of a string's UTF-8 bytes (synchronous: logs of tens of thousands of lines). */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** One stored line: a JSONL line, or a SQLite row's `line`. */
export interface StoredLine {
  /** The file it is in (the database for SQLite). */
  file: string;
  /** Byte offset in its file (the seq for SQLite). */
  offset: number;
  text: string;
  /** False for a last line without `\n`. */
  terminated: boolean;
  /** The record, when the line is one. */
  record: AuditRecord | undefined;
}

const ARCHIVE = /^(\d{8}T\d{6}Z)(?:\.(\d+))?(\.gz)?$/;

/** One archive of a JSONL log, as listed here. */
export interface ArchiveFile {
  path: string;
  name: string;
  gzip: boolean;
}

/**
 * The archives next to a JSONL log in chain order: by stamp, then clash number as a number (`.2`
 * before `.10`). A name present both plain and `.gz` (a compression under way) is listed once,
 * plain; `.tmp` files are not archives.
 */
export function listArchiveFiles(activePath: string): ArchiveFile[] {
  const slash = activePath.lastIndexOf("/");
  const dir = slash === -1 ? "." : activePath.slice(0, slash);
  const base = activePath.slice(slash + 1);
  const found = new Map<string, { stamp: string; clash: number; gzip: boolean }>();
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.isFile || !entry.name.startsWith(`${base}.`)) continue;
    const m = ARCHIVE.exec(entry.name.slice(base.length + 1));
    if (m === null) continue;
    const plainName = entry.name.replace(/\.gz$/, "");
    const gzip = m[3] !== undefined;
    const known = found.get(plainName);
    if (known !== undefined && !known.gzip) continue;
    found.set(plainName, { stamp: m[1]!, clash: Number(m[2] ?? 0), gzip });
  }
  return [...found.entries()]
    .sort(([, a], [, b]) => a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : a.clash - b.clash)
    .map(([name, a]) => {
      const fileName = a.gzip ? `${name}.gz` : name;
      return { path: `${dir}/${fileName}`, name: fileName, gzip: a.gzip };
    });
}

/** Splits a file's bytes into stored lines. */
function splitStored(file: string, bytes: Uint8Array): StoredLine[] {
  const decoder = new TextDecoder();
  const out: StoredLine[] = [];
  let start = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl === -1 ? bytes.length : nl;
    const text = decoder.decode(bytes.subarray(start, end));
    out.push({ file, offset: start, text, terminated: nl !== -1, record: parseRecord(text) });
    start = end + 1;
  }
  return out;
}

/** The record a stored line holds; undefined for a line that is not one (torn, foreign). */
export function parseRecord(text: string): AuditRecord | undefined {
  if (!text.startsWith('{"client_id":"')) return undefined;
  try {
    const v = parseJson(text);
    if (typeof v === "object" && v !== null && "seq" in v && typeof v.seq === "number") {
      return v as AuditRecord;
    }
  } catch {
    // A torn line.
  }
  return undefined;
}

/** The bytes of a file, gunzipped when `gzip`. */
export async function readMaybeGzip(path: string, gzip: boolean): Promise<Uint8Array> {
  if (!gzip) return await Deno.readFile(path);
  const file = await Deno.open(path, { read: true });
  const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Every file of a stored log, in chain order, with its lines. */
export interface StoredLog {
  files: { path: string; gzip: boolean; lines: StoredLine[] }[];
  /** Every line of every file, in order. */
  lines: StoredLine[];
  /** Every record, in order. */
  records: AuditRecord[];
}

/** Reads a JSONL log with its archives, or a SQLite database, as stored lines. */
export async function readStored(
  setup: Pick<StorageSetup, "backend" | "path">,
): Promise<StoredLog> {
  const files: StoredLog["files"] = [];
  if (setup.backend === "sqlite") {
    files.push({ path: setup.path, gzip: false, lines: readSqliteRows(setup.path) });
  } else {
    for (const a of listArchiveFiles(setup.path)) {
      files.push({
        path: a.path,
        gzip: a.gzip,
        lines: splitStored(a.path, await readMaybeGzip(a.path, a.gzip)),
      });
    }
    files.push({
      path: setup.path,
      gzip: false,
      lines: splitStored(setup.path, await Deno.readFile(setup.path)),
    });
  }
  const lines = files.flatMap((f) => f.lines);
  return { files, lines, records: lines.flatMap((l) => l.record === undefined ? [] : [l.record]) };
}

/**
 * The table of a SQLite audit database that holds the stored lines: the one with `seq` and
 * `line` columns (found by shape, so that this reader does not share the product's names).
 */
export function linesTable(db: DatabaseSync): string {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all();
  for (const row of tables) {
    const name = row.name;
    if (typeof name !== "string") continue;
    const columns = db.prepare(`PRAGMA table_info("${name.replaceAll('"', '""')}")`).all()
      .map((c) => c.name);
    if (columns.includes("seq") && columns.includes("line")) return name;
  }
  throw new Error("no table with seq and line columns in the database");
}

/** Every row of a SQLite audit database in seq order, as stored lines. Read-only. */
export function readSqliteRows(path: string): StoredLine[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const table = linesTable(db);
    const out: StoredLine[] = [];
    const rows = db.prepare(`SELECT seq, line FROM "${table}" ORDER BY seq`).iterate();
    for (const row of rows) {
      const text = row.line;
      const seq = row.seq;
      assert(typeof text === "string" && typeof seq === "number", `row ${String(seq)} has a line`);
      out.push({ file: path, offset: seq, text, terminated: true, record: parseRecord(text) });
    }
    return out;
  } finally {
    db.close();
  }
}

/** A torn or foreign line kept in a log. */
export interface TornLine {
  file: string;
  offset: number;
  length: number;
}

/**
 * Checks the one chain over every stored line: each record's line is its canonical stored form
 * (starts with `{"client_id":"`), seq runs 1..N without gap or repeat, and each `prev` is the
 * SHA-256 of the previous record's line (torn lines do not take part: the chain runs over them).
 * A file after the first starts with `audit/rotate` or `audit/recover` (`new_file: true`) whose
 * `continues_after_seq` is its own seq - 1. Returns the lines that are not records.
 */
export function assertOneChain(log: StoredLog): TornLine[] {
  const torn: TornLine[] = [];
  let seq = 0;
  let prev = GENESIS;
  for (const [index, file] of log.files.entries()) {
    const first = file.lines.find((l) => l.record !== undefined)?.record;
    if (index > 0 && first !== undefined) {
      const params = objectOf(first.params);
      assert(
        first.kind === "event" &&
          (first.method === "audit/rotate" ||
            (first.method === "audit/recover" && params?.new_file === true)),
        `${file.path} starts with audit/rotate or a new-file audit/recover, not ${first.method}`,
      );
      assertEquals(params?.continues_after_seq, first.seq - 1, `${file.path} continues after`);
    }
    for (const line of file.lines) {
      const r = line.record;
      if (r === undefined) {
        torn.push({ file: line.file, offset: line.offset, length: utf8(line.text).length });
        continue;
      }
      assert(line.terminated, `seq ${r.seq} in ${line.file} ends with a newline`);
      seq++;
      if (r.seq !== seq) {
        throw new Error(
          `seq ${r.seq} where ${seq} was due (${line.file} at ${line.offset}): a gap or a repeat`,
        );
      }
      if (r.prev !== prev) {
        throw new Error(`prev of seq ${r.seq} is not the SHA-256 of the line of seq ${seq - 1}`);
      }
      prev = sha256(line.text);
    }
  }
  assert(seq > 0, "the log holds records");
  return torn;
}

/** A JSON object's fields, or undefined. */
export function objectOf(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : undefined;
}

/** `audit/start` records, each with the pid its `params.writer` names. */
export function starts(records: readonly AuditRecord[]): { record: AuditRecord; pid: number }[] {
  return records.filter((r) => r.kind === "event" && r.method === "audit/start").map((record) => {
    const pid = objectOf(objectOf(record.params)?.writer)?.pid;
    assert(typeof pid === "number", `audit/start seq ${record.seq} names its writer's pid`);
    return { record, pid };
  });
}

/** The session of the proxy whose process id is `pid`, from its `audit/start`. */
export function sessionOf(records: readonly AuditRecord[], pid: number): string {
  const found = starts(records).filter((s) => s.pid === pid);
  assertEquals(found.length, 1, `one audit/start names writer pid ${pid}`);
  const session = found[0]!.record.session;
  assert(typeof session === "string" && session !== "", `writer ${pid} has a session`);
  return session;
}

/** For a session: which call ids have a request record and which a response record. */
export function recordedCalls(
  records: readonly AuditRecord[],
  session: string,
): { requests: Map<number, number>; responses: Map<number, number> } {
  const requests = new Map<number, number>();
  const responses = new Map<number, number>();
  for (const r of records) {
    if (r.session !== session || r.method !== "tools/call" || typeof r.jsonrpc_id !== "number") {
      continue;
    }
    if (r.kind === "request" && r.direction === "client_to_server") {
      requests.set(r.jsonrpc_id, (requests.get(r.jsonrpc_id) ?? 0) + 1);
    }
    if (r.kind === "response" && r.direction === "server_to_client") {
      responses.set(r.jsonrpc_id, (responses.get(r.jsonrpc_id) ?? 0) + 1);
    }
  }
  return { requests, responses };
}

/** Answered calls of a session lacking their request or response record, and records missing. */
export function unrecorded(
  records: readonly AuditRecord[],
  session: string,
  answered: readonly number[],
): { calls: number[]; records: number } {
  const { requests, responses } = recordedCalls(records, session);
  const calls: number[] = [];
  let missing = 0;
  for (const id of answered) {
    const lacks = (requests.has(id) ? 0 : 1) + (responses.has(id) ? 0 : 1);
    if (lacks > 0) calls.push(id);
    missing += lacks;
  }
  return { calls, records: missing };
}

/**
 * Every answered call of a session has exactly one request and one response record; and no call
 * was recorded twice.
 */
export function assertCallsRecorded(
  records: readonly AuditRecord[],
  session: string,
  answered: readonly number[],
  who: string,
): void {
  const lacking = unrecorded(records, session, answered);
  assertEquals(
    lacking.calls.slice(0, 20),
    [],
    `${who}: ${lacking.calls.length} answered calls lack their request or response record`,
  );
  const { requests, responses } = recordedCalls(records, session);
  const twice = [...requests, ...responses].filter(([, n]) => n > 1).map(([id]) => id);
  assertEquals(twice.slice(0, 20), [], `${who}: calls recorded more than once`);
}

/** One problem line of `verify`'s output. */
export interface VerifyProblem {
  kind: string;
  line: string;
}

const PROBLEM = /^[^:]*: (modified|missing|reordered|torn|unsigned|wrong key): /;

/** The problems `verify` printed (its notes and summary excluded). */
export function verifyProblems(v: VerifyResult): VerifyProblem[] {
  return v.lines.flatMap((line) => {
    if (line.startsWith("note:")) return [];
    const m = PROBLEM.exec(line);
    return m === null ? [] : [{ kind: m[1]!, line }];
  });
}

/** The `audit/recover` events of a log with the torn lines they name (`params.torn`). */
export function recoveredTorn(records: readonly AuditRecord[]): { offset: number; file: string }[] {
  const out: { offset: number; file: string }[] = [];
  for (const r of records) {
    if (r.kind !== "event" || r.method !== "audit/recover") continue;
    const torn = objectOf(r.params)?.torn;
    if (!Array.isArray(torn)) continue;
    for (const t of torn) {
      const entry = objectOf(t);
      if (typeof entry?.offset === "number") {
        out.push({ offset: entry.offset, file: typeof entry.file === "string" ? entry.file : "" });
      }
    }
  }
  return out;
}

/** Every torn line is named by an `audit/recover` event (by its byte offset in its file). */
export function assertTornCovered(log: StoredLog, torn: readonly TornLine[]): void {
  const named = recoveredTorn(log.records);
  for (const t of torn) {
    const base = t.file.slice(t.file.lastIndexOf("/") + 1);
    assert(
      named.some((n) =>
        n.offset === t.offset && (n.file === "" || n.file === t.file || n.file.endsWith(base))
      ),
      `the torn line at byte ${t.offset} of ${t.file} is named by an audit/recover event ` +
        `(named: ${JSON.stringify(named)})`,
    );
  }
}

/**
 * A tmpfs of `size` mounted at a new directory under `parent`; unmounted and removed on dispose.
 * `null` when this machine does not let the test mount one (not root, no CAP_SYS_ADMIN).
 */
export async function mountTmpfs(
  parent: string,
  size: string,
): Promise<(AsyncDisposable & { path: string; reason: string }) | { path: null; reason: string }> {
  const path = `${parent}/tmpfs`;
  await Deno.mkdir(path);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", path],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    return { path: null, reason: `cannot run mount: ${(e as Error).message}` };
  }
  if (!out.success) {
    return { path: null, reason: new TextDecoder().decode(out.stderr).trim() };
  }
  return {
    path,
    reason: "",
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path], stdin: "null", stdout: "null" }).output();
    },
  };
}

/** The output of a command run to its end. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `mcp-audit ARGS` (e.g. `export`, `verify`) to its end, with the machine's mcp-audit
 * settings stripped and `env` added.
 */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CommandResult> {
  const env = cleanEnv();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN, ...args],
    env: { ...env, ...options.env },
    clearEnv: true,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}
