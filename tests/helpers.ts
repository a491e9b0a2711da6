/**
 * The end-to-end harness: starts the real proxy (`deno run main.ts`) as a child process with its
 * own temporary directory, collects what it writes, speaks MCP to it through the SDK client, reads
 * and checks the audit log, runs `verify`, and looks for processes left behind.
 *
 * Nothing here sleeps: every wait is for an event (a line, the end of a stream, a process exit),
 * with an `AbortSignal` only as a safety net.
 *
 * @module
 */
import { GO_ENV_KEYS, goEnvName } from "../src/config/schema.ts";
import {
  type JsonValue,
  namesMayBeMisread,
  parseJson,
  parseLossless,
} from "../src/jsonrpc/json.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { deserializeMessage, serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { DatabaseSync } from "node:sqlite";

export { assert, assertEquals, assertMatch };

/** The repository root. */
export const REPO = new URL("../", import.meta.url).pathname;
/** The proxy's entry point. */
export const MAIN = `${REPO}main.ts`;
/** The project configuration (import map), named explicitly since tests run in a temp dir. */
export const DENO_JSON = `${REPO}deno.json`;
/** The fixture programs. */
export const FIXTURES = `${REPO}tests/fixtures/`;
/** The HMAC secret every test proxy signs with. */
export const SECRET = "e2e-secret-0f3c9a71d2b84e6a5c1f0e9d8b7a6c5d";
/**
 * The storage backend every proxy of the end-to-end tests writes: `TEST_STORAGE=jsonl` (the
 * default) or `TEST_STORAGE=sqlite`. Not an `MCP_AUDIT_` name: those are taken out of the proxy's
 * environment, and this one chooses what the tests put in.
 */
export const STORAGE: "jsonl" | "sqlite" = testStorage();

function testStorage(): "jsonl" | "sqlite" {
  const value = Deno.env.get("TEST_STORAGE") ?? "jsonl";
  if (value === "jsonl" || value === "sqlite") return value;
  throw new Error(`TEST_STORAGE must be jsonl or sqlite, not ${JSON.stringify(value)}`);
}

/**
 * The environment that makes a proxy write its audit log at `path` with the backend under test
 * ({@link STORAGE}): `MCP_AUDIT_AUDIT_PATH`, or `MCP_AUDIT_AUDIT_STORAGE=sqlite` and
 * `MCP_AUDIT_AUDIT_SQLITE_PATH`. The path is the same for both, so that a test names its log
 * once; {@link readLog} and `verify` tell the two apart by content.
 */
export function auditEnv(path: string): Record<string, string> {
  const storage: Record<string, string> = STORAGE === "sqlite"
    ? { MCP_AUDIT_AUDIT_STORAGE: "sqlite", MCP_AUDIT_AUDIT_SQLITE_PATH: path }
    : { MCP_AUDIT_AUDIT_PATH: path };
  return { ...OWN_PORTS, ...storage };
}

/**
 * Gives a proxy's own listeners (metrics, dashboard) a free port each instead of the fixed
 * defaults, so that proxies started side by side, and a machine already using 9090 or 9091, never
 * collide. Every proxy a test starts gets it (through {@link auditEnv} or by hand); the metrics
 * and the dashboard stay on, so every end-to-end test also runs with them.
 */
export const OWN_PORTS: Readonly<Record<string, string>> = {
  MCP_AUDIT_METRICS_PORT: "0",
  MCP_AUDIT_DASHBOARD_PORT: "0",
};

/** The MCP reference server with every feature, over stdio. */
export const EVERYTHING = [
  "deno",
  "run",
  "-A",
  "npm:@modelcontextprotocol/server-everything@2026.8.31",
  "stdio",
];
/** The MCP filesystem server, serving `dir`. */
export function filesystemServer(dir: string): string[] {
  return ["deno", "run", "-A", "npm:@modelcontextprotocol/server-filesystem@2026.8.31", dir];
}
/** A fixture program as an upstream command. */
export function fixture(name: string, ...args: string[]): string[] {
  return ["deno", "run", "-A", `${FIXTURES}${name}`, ...args];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Joins byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Where two byte arrays first differ, for readable failures; -1 when equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Asserts byte equality without printing megabytes on failure. */
export function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  if (at === -1) return;
  const show = (b: Uint8Array) =>
    JSON.stringify(decoder.decode(b.subarray(Math.max(0, at - 40), at + 40)));
  throw new Error(
    `${what}: bytes differ at offset ${at} (actual ${actual.length} bytes, expected ${expected.length})\n` +
      `  actual:   ${show(actual)}\n  expected: ${show(expected)}`,
  );
}

/** mulberry32: a small seeded generator, so that a failing chunking can be replayed. */
export { seededRandom } from "../src/testdata/seeded_random.ts";

/** A signal that aborts after `ms`, as a safety net around one wait. */
export function deadline(ms: number): AbortSignal {
  return AbortSignal.timeout(ms);
}

/** A temporary directory, removed on dispose. Its path is unique, so it also marks processes. */
export interface TempDir extends AsyncDisposable {
  path: string;
}

/** Makes a temporary directory for one test. */
export async function tempDir(label: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: `mcp-audit-e2e-${label}-` });
  return {
    path,
    async [Symbol.asyncDispose]() {
      // E2E_KEEP=1 keeps the directory (logs, recordings) for a look after a failure.
      if (Deno.env.get("E2E_KEEP") === "1") return console.error(`kept ${path}`);
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Reads a byte stream to its end in the background, keeping the bytes and the complete lines, and
 * lets a test wait until what has arrived satisfies a condition.
 */
export class Collector {
  #chunks: Uint8Array[] = [];
  #length = 0;
  #joined: Uint8Array | undefined;
  #partial: Uint8Array[] = [];
  #waiters = new Set<() => void>();
  #ended = false;
  #keepLines: boolean;
  /** Complete lines so far, decoded, without their `\n` (a `\r` before it is kept). */
  readonly lines: string[] = [];
  /** Resolves at end of stream. */
  readonly done: Promise<void>;

  #context: () => string;

  /**
   * @param options.lines keep decoded lines (default true)
   * @param options.context more to say when a wait fails, e.g. the process's stderr
   */
  constructor(
    stream: ReadableStream<Uint8Array>,
    options: { lines?: boolean; context?: () => string } = {},
  ) {
    this.#keepLines = options.lines ?? true;
    this.#context = options.context ?? (() => "");
    this.done = this.#run(stream);
  }

  async #run(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) {
        this.#chunks.push(chunk);
        this.#length += chunk.length;
        this.#joined = undefined;
        if (this.#keepLines) this.#split(chunk);
        this.#notify();
      }
    } catch {
      // A stream cut by a killed process ends here like any other.
    } finally {
      this.#ended = true;
      this.#notify();
    }
  }

  #split(chunk: Uint8Array): void {
    let start = 0;
    while (true) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.#partial.push(chunk.subarray(start, nl));
      this.lines.push(decoder.decode(concatBytes(this.#partial)));
      this.#partial = [];
      start = nl + 1;
    }
    if (start < chunk.length) this.#partial.push(chunk.slice(start));
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** True once the stream has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes received so far. */
  get length(): number {
    return this.#length;
  }

  /** Everything received so far. */
  bytes(): Uint8Array {
    this.#joined ??= concatBytes(this.#chunks);
    return this.#joined;
  }

  /** Everything received so far, decoded. */
  text(): string {
    return decoder.decode(this.bytes());
  }

  /**
   * Resolves once `condition` holds for what has arrived; rejects if the stream ends first or
   * `signal` aborts.
   */
  waitFor(
    condition: (c: Collector) => boolean,
    what: string,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok = false;
        try {
          ok = condition(this);
        } catch (e) {
          finish();
          reject(e);
          return;
        }
        if (ok) {
          finish();
          resolve();
        } else if (this.#ended) {
          finish();
          reject(new Error(`stream ended before ${what}; last output:\n${this.#tail()}`));
        }
      };
      const onAbort = (): void => {
        finish();
        reject(new Error(`timed out waiting for ${what}; last output:\n${this.#tail()}`));
      };
      const finish = (): void => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      this.#waiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
      check();
    });
  }

  #tail(): string {
    const b = this.bytes();
    const context = this.#context();
    return decoder.decode(b.subarray(Math.max(0, b.length - 2000))) +
      (context === "" ? "" : `\n--- context ---\n${context}`);
  }
}

/** The environment without any mcp-audit settings of the machine running the tests. */
/** Every variable the proxy reads as its configuration: none of them may leak in from the shell. */
const PROXY_VARIABLES: ReadonlySet<string> = new Set([
  "AUDIT_SECRET",
  "PROXY_UPSTREAM",
  ...GO_ENV_KEYS.map(goEnvName),
]);

/**
 * This process's environment without the proxy's own variables (`MCP_AUDIT_*`, `AUDIT_SECRET` and
 * the Go tool's unprefixed names), so that a machine's settings never change what a test runs.
 */
export function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (PROXY_VARIABLES.has(name) || name.startsWith("MCP_AUDIT_")) delete env[name];
  }
  return env;
}

/** How to start a proxy. */
export interface ProxyOptions {
  /** Working directory; also the marker for processes left behind. */
  cwd: string;
  /** The upstream argv, given after `--`. */
  upstream: string[];
  /** Audit log path; default `audit.jsonl` in `cwd`, passed as {@link auditEnv} gives it. */
  logPath?: string;
  /** HMAC secret; `null` for none. */
  secret?: string | null;
  /** More environment variables for the proxy. */
  env?: Record<string, string>;
  /** More proxy flags, before `--`. */
  flags?: string[];
}

/** A running proxy: `deno run main.ts [flags] -- UPSTREAM`. */
export class ProxyProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly logPath: string;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdoutTaken = false;
  #exited = false;
  #inputClosed = false;

  constructor(opts: ProxyOptions) {
    this.logPath = opts.logPath ?? `${opts.cwd}/audit.jsonl`;
    const env: Record<string, string> = {
      ...cleanEnv(),
      ...auditEnv(this.logPath),
      ...opts.env,
    };
    const secret = opts.secret === undefined ? SECRET : opts.secret;
    if (secret !== null) env.AUDIT_SECRET = secret;
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        DENO_JSON,
        MAIN,
        "--no-dashboard",
        "--no-metrics",
        ...(opts.flags ?? []),
        "--",
        ...opts.upstream,
      ],
      cwd: opts.cwd,
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Writes bytes to the proxy's stdin (the client side of the wire). */
  write(bytes: Uint8Array): Promise<void> {
    return this.#stdin.write(bytes);
  }

  /** Ends the proxy's stdin: the client is done. */
  async closeInput(): Promise<void> {
    if (this.#inputClosed) return;
    this.#inputClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  /** Takes the proxy's stdout as raw collected bytes. */
  stdout(options: { lines?: boolean } = {}): Collector {
    return new Collector(this.#takeStdout(), {
      ...options,
      context: () => `proxy stderr:\n${this.#tail()}`,
    });
  }

  /** Takes the proxy's stdout and stdin as an MCP SDK transport. */
  transport(): WireTransport {
    return new WireTransport(this.#takeStdout(), this.#stdin, () => this.closeInput());
  }

  #takeStdout(): ReadableStream<Uint8Array> {
    if (this.#stdoutTaken) throw new Error("stdout is already taken");
    this.#stdoutTaken = true;
    return this.child.stdout;
  }

  /** The structured log lines the proxy wrote to stderr, parsed (other lines skipped). */
  logLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.stderr.lines) {
      try {
        const v = parseJson(line);
        if (typeof v === "object" && v !== null && !Array.isArray(v)) {
          out.push(v as Record<string, unknown>);
        }
      } catch {
        // The upstream shares stderr; its lines are not ours.
      }
    }
    return out;
  }

  /** Waits for the proxy's "upstream started" log line and returns the upstream's pid. */
  async upstreamPid(signal: AbortSignal): Promise<number> {
    const find = () => this.logLines().find((l) => l.msg === "upstream started");
    await this.stderr.waitFor(() => find() !== undefined, "the upstream to start", signal);
    const pid = find()?.pid;
    assert(typeof pid === "number", "upstream started log line has a pid");
    return pid;
  }

  /**
   * Waits for the proxy to exit and for its stderr to end. Since the upstream inherits stderr,
   * the end of stderr also means every process of the session that kept it open has exited.
   */
  async finished(signal: AbortSignal): Promise<Deno.CommandStatus> {
    const status = await raceAbort(this.status, signal, "the proxy to exit", () => this.#tail());
    await raceAbort(
      this.stderr.done,
      signal,
      "the proxy's stderr to end (a process of the session still holds it)",
      () => this.#tail(),
    );
    return status;
  }

  #tail(): string {
    const t = this.stderr.text();
    return t.slice(Math.max(0, t.length - 3000));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.closeInput();
    this.#stdin.releaseLock();
    if (!this.#stdoutTaken) await this.child.stdout.cancel().catch(() => {});
    await releaseStderr(this.child, this.stderr);
  }
}

/**
 * A log written by a real proxy in front of the echo fixture, in `dir` (`audit.jsonl` or
 * `audit.db`): one `ping` and its answer, the proxy ended by the end of its input. Returns its path.
 */
export async function echoProxyLog(
  dir: string,
  storage: "jsonl" | "sqlite" = "jsonl",
): Promise<string> {
  const logPath = `${dir}/audit.${storage === "jsonl" ? "jsonl" : "db"}`;
  await using proxy = new ProxyProcess({
    cwd: dir,
    upstream: fixture("echo_upstream.ts"),
    logPath,
    env: storage === "jsonl"
      ? { MCP_AUDIT_AUDIT_STORAGE: "jsonl", MCP_AUDIT_AUDIT_PATH: logPath }
      : { MCP_AUDIT_AUDIT_STORAGE: "sqlite", MCP_AUDIT_AUDIT_SQLITE_PATH: logPath },
  });
  const stdout = proxy.stdout();
  await proxy.write(utf8('{"jsonrpc":"2.0","id":1,"method":"ping"}\n'));
  await stdout.waitFor((c) => c.lines.length === 1, "the answer", deadline(30_000));
  await proxy.closeInput();
  assertEquals((await proxy.finished(deadline(30_000))).code, 0);
  return logPath;
}

/** Awaits `promise`, or rejects when `signal` aborts first. */
export function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  what: string,
  context: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error(`timed out waiting for ${what}\n${context()}`));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Ends a child a test is done with: SIGKILL unless it has `exited`, then its exit status. */
export async function killChild(
  child: Deno.ChildProcess,
  exited: boolean,
  status: Promise<Deno.CommandStatus>,
): Promise<void> {
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone already.
    }
  }
  await status;
}

/**
 * Waits up to 5 s for a dead child's `stderr` to end, then lets go of it: an upstream sharing it
 * may outlive the proxy, and must not hang the test.
 */
export async function releaseStderr(child: Deno.ChildProcess, stderr: Collector): Promise<void> {
  await raceAbort(stderr.done, deadline(5000), "stderr end", () => "").catch(() => {
    child.stderr.cancel().catch(() => {});
  });
}

/**
 * Waits for `status` and then for the end of `stderr`; if `signal` aborts first, the error names
 * `what` ("the proxy") and shows the tail of stderr.
 */
export async function exitAndStderr(
  status: Promise<Deno.CommandStatus>,
  stderr: Collector,
  signal: AbortSignal,
  what: string,
): Promise<Deno.CommandStatus> {
  const tail = () => stderr.text().slice(-3000);
  const s = await raceAbort(status, signal, `${what} to exit`, tail);
  await raceAbort(stderr.done, signal, `${what}'s stderr to end`, tail);
  return s;
}

/**
 * An MCP SDK transport over the proxy's stdio, keeping every line sent and received so that tests
 * can match the audit log's `wire_sha256` against the actual wire.
 */
export class WireTransport implements Transport {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: (<T extends JSONRPCMessage>(message: T) => void) | undefined;
  /** Lines written to the proxy, without their `\n`. */
  readonly sentLines: string[] = [];
  /** Lines read from the proxy, without their `\n`. */
  readonly receivedLines: string[] = [];
  #stdout: ReadableStream<Uint8Array>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #closeInput: () => Promise<void>;
  #loop: Promise<void> | undefined;

  constructor(
    stdout: ReadableStream<Uint8Array>,
    stdin: WritableStreamDefaultWriter<Uint8Array>,
    closeInput: () => Promise<void>,
  ) {
    this.#stdout = stdout;
    this.#stdin = stdin;
    this.#closeInput = closeInput;
  }

  start(): Promise<void> {
    this.#loop ??= this.#read();
    return Promise.resolve();
  }

  async #read(): Promise<void> {
    let partial: Uint8Array[] = [];
    try {
      for await (const chunk of this.#stdout) {
        let start = 0;
        while (true) {
          const nl = chunk.indexOf(0x0a, start);
          if (nl === -1) break;
          partial.push(chunk.subarray(start, nl));
          const line = decoder.decode(concatBytes(partial));
          partial = [];
          start = nl + 1;
          this.receivedLines.push(line);
          try {
            this.onmessage?.(deserializeMessage(line.replace(/\r$/, "")));
          } catch (e) {
            this.onerror?.(e instanceof Error ? e : new Error(String(e)));
          }
        }
        if (start < chunk.length) partial.push(chunk.slice(start));
      }
    } catch (e) {
      this.onerror?.(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.onclose?.();
    }
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const text = serializeMessage(message);
    this.sentLines.push(text.slice(0, -1));
    await this.#stdin.write(encoder.encode(text));
  }

  /** Ends the proxy's input and waits until its output has ended. */
  async close(): Promise<void> {
    await this.#closeInput();
    await this.#loop;
  }
}

/** A JSON value as read back from the log. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A stored audit record (SPEC §3), as read back. */
export interface AuditRecord {
  v: number;
  seq: number;
  id: string;
  ts: string;
  kind: "request" | "notification" | "response" | "error" | "invalid" | "event";
  direction: "client_to_server" | "server_to_client" | "proxy";
  transport: string;
  session: string | null;
  jsonrpc_id: number | string | null;
  method: string | null;
  tool_name: string | null;
  params: Json;
  result: Json;
  error: { code: number; message: string; data?: Json } | null;
  redacted: string[];
  duration_ms: number | null;
  decision: Json;
  client_id: string;
  server_id: string;
  client_info: { name?: string; version?: string } | null;
  wire_sha256: string | null;
  upstream: string | null;
  prev: string;
  sig: string | null;
}

/** One line of the log file (of a SQLite log: one row, as if it were a line of a file). */
export interface LogLine {
  /** The line without its `\n`. */
  text: string;
  /** Byte offset of the line in the file. */
  offset: number;
  /** False for a last line without `\n`. */
  terminated: boolean;
  /** The parsed record, when the line is one. */
  record: AuditRecord | undefined;
}

/** The log file as bytes, lines and records. */
export interface AuditLogFile {
  bytes: Uint8Array;
  lines: LogLine[];
  records: AuditRecord[];
}

/** The first 16 bytes of every SQLite database file. */
const SQLITE_MAGIC = encoder.encode("SQLite format 3\0");

/**
 * Reads an audit log, JSONL or SQLite (told apart by content, as `verify` does). A SQLite log
 * reads as the JSONL file holding the same lines would: its rows' stored lines in `seq` order,
 * each terminated, `bytes` their UTF-8 with a `\n` after each, offsets counted in those bytes.
 */
export async function readLog(path: string): Promise<AuditLogFile> {
  if (!await isSqlite(path)) return parseLog(await Deno.readFile(path));
  return parseLog(encoder.encode(sqliteLines(path).map((l) => l + "\n").join("")));
}

/** Whether the file at `path` starts as a SQLite database does. */
async function isSqlite(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const head = new Uint8Array(SQLITE_MAGIC.length);
  let got = 0;
  while (got < head.length) {
    const n = await file.read(head.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === head.length && SQLITE_MAGIC.every((b, i) => head[i] === b);
}

/**
 * The stored lines of a SQLite log in `seq` order, read with `node:sqlite` on a read-only
 * connection, from the one table that has `seq` and `line` columns. Independent of the store's
 * code, so that what the tests check is what is in the file.
 */
function sqliteLines(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all()
      .map((row) => String(row.name))
      .filter((name) => {
        const columns = db.prepare("SELECT name FROM pragma_table_info(?)").all(name)
          .map((row) => row.name);
        return columns.includes("seq") && columns.includes("line");
      });
    assertEquals(tables.length, 1, `one table of records (seq, line) in ${path}: ${tables}`);
    const table = `"${tables[0]!.replaceAll('"', '""')}"`;
    return db.prepare(`SELECT line FROM ${table} ORDER BY seq`).all().map((row, i) => {
      assert(typeof row.line === "string", `row ${i + 1} of ${path} holds its line as text`);
      return row.line;
    });
  } finally {
    db.close();
  }
}

/** Splits a JSONL log's bytes into lines and parses the records. */
function parseLog(bytes: Uint8Array): AuditLogFile {
  const lines: LogLine[] = [];
  let start = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl === -1 ? bytes.length : nl;
    const text = decoder.decode(bytes.subarray(start, end));
    let record: AuditRecord | undefined;
    try {
      let v: unknown = JSON.parse(text, keepNumberText);
      // V8 may misread an escaped member name (nodejs/node#63785); such a line is read again by
      // the proxy's own reader, whose names are as written (its numbers kept by its own rule).
      if (namesMayBeMisread(text, v as JsonValue)) v = parseLossless(text);
      if (typeof v === "object" && v !== null && "seq" in v) record = v as AuditRecord;
    } catch {
      record = undefined;
    }
    lines.push({ text, offset: start, terminated: nl !== -1, record });
    start = end + 1;
  }
  const records = lines.flatMap((l) => l.record ? [l.record] : []);
  return { bytes, lines, records };
}

/** The outcome of `mcp-audit verify`. */
export interface VerifyResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout lines. */
  lines: string[];
}

/** What a run of `main.ts` printed, and its exit code. */
export interface MainRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout's lines, empty ones left out. */
  out: string[];
  /** stderr's lines, empty ones left out. */
  err: string[];
}

/**
 * Runs `mcp-audit ARGS` from source (`deno run main.ts ARGS`) to its end, stdin closed. With `env`,
 * the program sees exactly that environment; without, this process's. `signal` kills it.
 */
export async function runMain(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<MainRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN, ...args],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env, clearEnv: true }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decoder.decode(out.stdout);
  const stderr = decoder.decode(out.stderr);
  const lines = (text: string) => text.split("\n").filter((l) => l !== "");
  return { code: out.code, stdout, stderr, out: lines(stdout), err: lines(stderr) };
}

/** Runs `mcp-audit verify PATH` with the given secret (none when `null`). */
export async function verifyLog(
  path: string,
  options: { secret?: string | null; args?: string[] } = {},
): Promise<VerifyResult> {
  const env = cleanEnv();
  const secret = options.secret === undefined ? SECRET : options.secret;
  if (secret !== null) env.AUDIT_SECRET = secret;
  const run = await runMain(["verify", ...(options.args ?? []), path], { env });
  return { code: run.code, stdout: run.stdout, stderr: run.stderr, lines: run.out };
}

/** One row of the process table. */
export interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  stat: string;
  args: string;
  /** The working directory (Linux), when readable. */
  cwd: string | null;
}

/** The process table, from `ps`. */
export async function processTable(): Promise<Proc[]> {
  const out = await new Deno.Command("ps", {
    args: ["-eo", "pid=,ppid=,pgid=,stat=,args="],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const rows: Proc[] = [];
  for (const line of decoder.decode(out.stdout).split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s?(.*)$/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    let cwd: string | null = null;
    try {
      cwd = Deno.readLinkSync(`/proc/${pid}/cwd`);
    } catch {
      cwd = null;
    }
    rows.push({ pid, ppid: Number(m[2]), pgid: Number(m[3]), stat: m[4]!, args: m[5]!, cwd });
  }
  return rows;
}

/** Every process below `root` in `table`. */
export function descendants(table: readonly Proc[], root: number): Proc[] {
  const out: Proc[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of table) {
      if (p.ppid === parent) {
        out.push(p);
        queue.push(p.pid);
      }
    }
  }
  return out;
}

/**
 * Live processes (zombies excluded) that belong to a test: whose arguments mention `marker`, whose
 * working directory is under it, or whose pid is one of `pids` with the same arguments as seen
 * then.
 */
export async function strays(marker: string, known: readonly Proc[] = []): Promise<Proc[]> {
  const table = await processTable();
  return table.filter((p) =>
    p.pid !== Deno.pid && !p.stat.startsWith("Z") &&
    (p.args.includes(marker) || (p.cwd !== null && p.cwd.startsWith(marker)) ||
      known.some((k) => k.pid === p.pid && k.args === p.args))
  );
}

/**
 * Fails if any process of the test is still alive. Whatever is found is killed first (they are
 * the test's own processes), so that one failure does not leak into the next test.
 */
export async function assertNoStrays(marker: string, known: readonly Proc[] = []): Promise<void> {
  const left = await strays(marker, known);
  for (const p of left) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  assertEquals(
    left.map((p) => `${p.pid} (ppid ${p.ppid}, pgid ${p.pgid}, ${p.stat}) ${p.args}`),
    [],
    "processes left behind after the session",
  );
}

/** Records with the given kind/method/direction. */
export function pick(
  records: readonly AuditRecord[],
  where: Partial<Pick<AuditRecord, "kind" | "method" | "direction" | "tool_name">>,
): AuditRecord[] {
  return records.filter((r) =>
    (where.kind === undefined || r.kind === where.kind) &&
    (where.method === undefined || r.method === where.method) &&
    (where.direction === undefined || r.direction === where.direction) &&
    (where.tool_name === undefined || r.tool_name === where.tool_name)
  );
}

/**
 * The invariants every log must hold: schema v1 fields, `seq` 1..n without gaps, `prev` links,
 * HMAC signatures with the secret, canonical storage, `audit/start` first and (unless
 * `unfinished`) `audit/stop` last. Lines that are not records (torn lines kept after a crash)
 * fail the check unless their indices are listed in `tornLines`; the chain runs over them.
 */
export async function assertChain(
  file: AuditLogFile,
  options: { secret?: string; tornLines?: readonly number[]; unfinished?: boolean } = {},
): Promise<void> {
  const secret = options.secret ?? SECRET;
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const keyId = (await sha256Hex(secret)).slice(0, 8);
  let prev = "0".repeat(64);
  let seq = 0;
  let lastOfRun: AuditRecord | undefined;
  const records = file.records;
  assert(records.length > 0, "the log has records");
  for (const [i, line] of file.lines.entries()) {
    const r = line.record;
    if (options.tornLines?.includes(i)) {
      assert(r === undefined, `line ${i + 1} is a torn line, not a record`);
      continue;
    }
    assert(line.terminated, `line ${i + 1} ends with a newline`);
    assert(r !== undefined, `line ${i + 1} is a record: ${line.text.slice(0, 200)}`);
    assertEquals(r.v, 1);
    assertEquals(r.seq, ++seq, `seq of line ${i + 1}`);
    assertEquals(r.prev, prev, `prev of seq ${r.seq}`);
    assert(/^[0-9A-HJKMNP-TV-Z]{26}$/.test(r.id), `seq ${r.seq} id is a ULID: ${r.id}`);
    assert(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(r.ts),
      `seq ${r.seq} ts is RFC 3339 UTC with milliseconds: ${r.ts}`,
    );
    assert(Array.isArray(r.redacted), `seq ${r.seq} redacted is an array`);
    // The stored line is the canonical form: the next prev is its hash, and the signature is over
    // the same text without "sig".
    const { sig, ...unsigned } = r;
    const canonicalUnsigned = canonicalize(unsigned as unknown as Json);
    const mac = new Uint8Array(
      await crypto.subtle.sign("HMAC", key, encoder.encode(canonicalUnsigned)),
    );
    const hex = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
    assertEquals(sig, `hmac-sha256:${keyId}:${hex}`, `signature of seq ${r.seq}`);
    assertEquals(line.text, canonicalize(r as unknown as Json), `seq ${r.seq} is stored canonical`);
    prev = await sha256Hex(line.text);
    // Within one run of the proxy, ids are monotonic ULIDs and time does not go back.
    if (r.kind === "event" && r.method === "audit/start") lastOfRun = undefined;
    if (lastOfRun !== undefined) {
      assert(r.id > lastOfRun.id, `id of seq ${r.seq} sorts after the one before`);
      assert(r.ts >= lastOfRun.ts, `ts of seq ${r.seq} is not before the one before`);
    }
    lastOfRun = r;
  }
  const first = records[0]!;
  const last = records.at(-1)!;
  assertEquals([first.kind, first.method, first.direction], ["event", "audit/start", "proxy"]);
  if (!options.unfinished) {
    assertEquals([last.kind, last.method, last.direction], ["event", "audit/stop", "proxy"]);
  }
}

/**
 * A reviver keeping the text of numbers a double may change: more than 15 significant digits, a
 * three-digit exponent, or a negative zero. (The proxy keeps fewer, only those a double does
 * change; the tests' numbers never tell the two rules apart.)
 */
function keepNumberText(_key: string, value: unknown, context?: { source?: string }): unknown {
  const source = context?.source;
  if (typeof value !== "number" || source === undefined) return value;
  const digits = source.replace(/^-/, "").replace(/[eE].*$/, "").replace(".", "")
    .replace(/^0+/, "");
  const keep = digits.length > 15 || /[eE][+-]?\d{3}/.test(source) || Object.is(value, -0);
  return keep ? (JSON as unknown as { rawJSON(t: string): unknown }).rawJSON(source) : value;
}

/** The number an id denotes, as the SDK clients read it (`Number(id)`), kept text included. */
export function idNumber(id: unknown): number {
  const raw = typeof id === "object" && id !== null && "rawJSON" in id ? id.rawJSON : id;
  return Number(raw);
}

/**
 * RFC 8785 for the values a test reads back with `JSON.parse`, with numbers kept as their text
 * where a double may change them, written here independently of the proxy's implementation.
 */
export function canonicalize(value: Json): string {
  if (typeof value === "object" && value !== null && "rawJSON" in value) {
    return String(value.rawJSON);
  }
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") return Object.is(value, -0) ? "0" : String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalize(value[k]!)).join(",") + "}";
}

/** The one record answering `request`: opposite direction, same id and method, after it. */
export function answerTo(records: readonly AuditRecord[], request: AuditRecord): AuditRecord {
  const opposite = request.direction === "client_to_server"
    ? "server_to_client"
    : "client_to_server";
  const answers = records.filter((r) =>
    (r.kind === "response" || r.kind === "error") && r.direction === opposite &&
    r.jsonrpc_id === request.jsonrpc_id && r.seq > request.seq && r.method === request.method
  );
  assertEquals(
    answers.length,
    1,
    `exactly one answer to ${request.method} id ${
      JSON.stringify(request.jsonrpc_id)
    } (seq ${request.seq})`,
  );
  return answers[0]!;
}

/**
 * Checks one complete MCP session against the wire as the client saw it: one record per line in
 * each direction, in order, hashing the exact bytes; `client_info` from `initialize` on every
 * message; every request (either way) answered once, with its method, tool name and a duration.
 */
export async function assertConversation(
  file: AuditLogFile,
  wire: { sentLines: readonly string[]; receivedLines: readonly string[] },
  clientInfo: { name: string; version: string },
): Promise<void> {
  const records = file.records;
  const start = records[0]!;
  const messages = records.filter((r) => r.kind !== "event");
  assertEquals(pick(records, { kind: "invalid" }), [], "no message was classified invalid");
  for (const r of messages) {
    assertEquals(r.transport, "stdio");
    assert(r.session !== null && r.session !== "", "stdio records have a session id");
    assertEquals(r.session, start.session, `seq ${r.seq} carries the session of audit/start`);
    assertEquals(r.client_info, clientInfo, `client_info of seq ${r.seq}`);
  }
  assertEquals(
    pick(records, { direction: "client_to_server" }).map((r) => r.wire_sha256),
    await Promise.all(wire.sentLines.map((l) => sha256Hex(l))),
    "client_to_server records are the lines the client sent, in order, hashed as sent",
  );
  assertEquals(
    pick(records, { direction: "server_to_client" }).map((r) => r.wire_sha256),
    await Promise.all(wire.receivedLines.map((l) => sha256Hex(l))),
    "server_to_client records are the lines the client received, in order, hashed as received",
  );
  const init = pick(records, { kind: "request", method: "initialize" });
  assertEquals(init.map((r) => r.direction), ["client_to_server"], "one initialize request");
  assertEquals(
    pick(records, { kind: "notification", method: "notifications/initialized" }).map((r) =>
      r.direction
    ),
    ["client_to_server"],
  );
  for (const request of pick(records, { kind: "request" })) {
    assert(request.jsonrpc_id !== null, `request seq ${request.seq} has an id`);
    const answer = answerTo(records, request);
    assertEquals(answer.kind, "response", `${request.method} seq ${request.seq} got a result`);
    assertEquals(typeof answer.jsonrpc_id, typeof request.jsonrpc_id, "the id type is kept");
    assertEquals(answer.tool_name, request.tool_name, `tool_name copied onto seq ${answer.seq}`);
    assert(
      typeof answer.duration_ms === "number" && answer.duration_ms >= 0,
      `duration_ms of seq ${answer.seq} is a number >= 0: ${answer.duration_ms}`,
    );
  }
  for (const r of records) {
    if (r.kind === "notification" || r.kind === "event") assertEquals(r.jsonrpc_id, null);
    if (r.kind !== "response" && r.kind !== "error") {
      assertEquals(r.duration_ms, null, `seq ${r.seq} (${r.kind}) has no duration`);
    }
    if (r.kind === "request" && r.method === "tools/call") {
      assert(typeof r.tool_name === "string", `tools/call seq ${r.seq} names its tool`);
    } else if (r.kind !== "response" && r.kind !== "error") {
      assertEquals(r.tool_name, null, `seq ${r.seq} has no tool_name`);
    }
  }
  const stop = records.at(-1)!;
  assert(typeof stop.params === "object" && stop.params !== null && !Array.isArray(stop.params));
  assertEquals(stop.params.exit_code, 0, "audit/stop records exit code 0");
  assertEquals(stop.params.last_seq, stop.seq, "audit/stop names the last seq");
  assertEquals(stop.params.pending, [], "audit/stop: nothing was left unanswered");
}

/**
 * The recording fixture as an upstream: what it reads goes to `DIR/in.bin`, what it writes to
 * `DIR/out.bin` (`inTAG.bin`, `outTAG.bin` with a tag); it answers `ping` and `big` requests.
 */
export function recordingUpstream(dir: string, tag = "", ...extra: string[]): string[] {
  return fixture(
    "recording_upstream.ts",
    "--in",
    `${dir}/in${tag}.bin`,
    "--out",
    `${dir}/out${tag}.bin`,
    ...extra,
  );
}

/**
 * Rewrites the file at `path` in place (same inode) with `text`, in one write and without
 * truncating it first, so that a process polling it never reads it empty or half written: the
 * proxy rightly rejects a configuration it reads empty (an editor truncates before it writes), and
 * that extra rejected reload would make what a test counts depend on when the proxy looked. The
 * text is padded with newlines to one byte more than the file held, so its size always changes:
 * a change of the modification time alone can fall within the file system's clock granularity.
 */
export function rewriteInPlace(path: string, text: string): void {
  const old = Deno.statSync(path).size;
  const bytes = encoder.encode(text);
  const padded = new Uint8Array(Math.max(bytes.length, old + 1)).fill(0x0a);
  padded.set(bytes);
  using file = Deno.openSync(path, { write: true });
  let at = 0;
  while (at < padded.length) at += file.writeSync(padded.subarray(at));
}

/**
 * A command spoken to over its stdin and stdout (an MCP SDK transport from `transport()`), with
 * its stderr collected. Unlike the SDK's `StdioClientTransport`, whose `close()` sends SIGTERM to
 * a process that has not exited within two seconds and SIGKILL two seconds later, nothing here
 * depends on how fast the machine is: `finished()` waits for the process itself.
 */
export class StdioCommand implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #inputClosed = false;
  #exited = false;

  /** `env` is the whole environment of the command. */
  constructor(
    command: string,
    args: string[],
    options: { env: Record<string, string>; cwd?: string },
  ) {
    this.child = new Deno.Command(command, {
      args,
      env: options.env,
      clearEnv: true,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** The command's stdin and stdout as an MCP SDK transport; its `close()` ends stdin. */
  transport(): WireTransport {
    return new WireTransport(this.child.stdout, this.#stdin, () => this.#closeInput());
  }

  async #closeInput(): Promise<void> {
    if (this.#inputClosed) return;
    this.#inputClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for the command to exit and for its stderr to end (every holder of it gone). */
  finished(signal: AbortSignal): Promise<Deno.CommandStatus> {
    return exitAndStderr(this.status, this.stderr, signal, "the command");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.#closeInput();
    this.#stdin.releaseLock();
    await this.child.stdout.cancel().catch(() => {});
    await releaseStderr(this.child, this.stderr);
  }
}
