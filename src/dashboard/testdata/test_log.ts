/**
 * Logs for the dashboard's tests. {@link TestLog}: one written in both backends with the same
 * content, each record numbered, linked and signed as the chain does (canonical text, HMAC
 * signature, `prev` the SHA-256 of the line before), with a fixed clock and fixed ids, appended to
 * a JSONL file and stored through the SQLite store; tests read it through both queries.
 * {@link ChainLogs} and {@link chainWriter}: a log written by the real chain (`AuditLog` over a
 * `JsonlStore` or `SqliteStore`), as proxies write it, with a fixed clock and fixed ids.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { AuditLog } from "../../audit/chain.ts";
import { type AuditFields, type AuditRecord, GENESIS } from "../../audit/record.ts";
import { recordText } from "../../audit/record_text.ts";
import { hmacSigner, type Signer } from "../../audit/signing.ts";
import { JsonlStore } from "../../audit/storage/jsonl.ts";
import { JsonlQuery } from "../../audit/storage/jsonl_query.ts";
import type { RecordQuery } from "../../audit/storage/query.ts";
import type { Rotation } from "../../audit/storage/rotation.ts";
import { SqliteQuery } from "../../audit/storage/sqlite_query.ts";
import { SqliteStore } from "../../audit/storage/sqlite.ts";
import type { JsonObject } from "../../jsonrpc/json.ts";

/** The first record's time: 2026-06-10T12:00:00Z; record n is stamped n seconds later. */
export const T0 = Date.UTC(2026, 5, 10, 12, 0, 0);
/** The key the test records are signed with. */
export const SECRET = "dashboard-test-secret";

/** What a test says of a record; the rest is a client's `tools/call` of `echo` in session s1. */
export type Draft = Partial<Omit<AuditRecord, "v" | "seq" | "prev" | "sig">>;

/** A backend's name and a query of the log in it. */
export interface Backend {
  name: "jsonl" | "sqlite";
  query: RecordQuery;
}

/** The test log: a JSONL file and a SQLite database holding the same records. */
export class TestLog implements Disposable {
  readonly dir: string;
  readonly jsonl: string;
  readonly sqlite: string;
  /** Every record written, by seq (index 0 unused). */
  readonly records: AuditRecord[] = [];
  readonly #signer: Signer = hmacSigner(SECRET, "test");
  readonly #store: SqliteStore;
  readonly #queries: RecordQuery[] = [];
  #prev = GENESIS;

  constructor() {
    this.dir = Deno.makeTempDirSync({ prefix: "mcp-audit-dashboard-" });
    this.jsonl = `${this.dir}/audit.jsonl`;
    this.sqlite = `${this.dir}/audit.db`;
    Deno.writeTextFileSync(this.jsonl, "");
    this.#store = new SqliteStore(this.sqlite, { durability: "none", busyTimeoutMs: 5000 });
    this.records.length = 1;
  }

  /** The seq of the last record written (0 before the first). */
  get seq(): number {
    return this.records.length - 1;
  }

  /** Writes one record; returns it as stored. */
  add(draft: Draft = {}): AuditRecord {
    return this.addAll([draft])[0]!;
  }

  /** Writes records in one batch; returns them as stored. */
  addAll(drafts: readonly Draft[]): AuditRecord[] {
    const out: AuditRecord[] = [];
    const lines: string[] = [];
    this.#store.begin();
    for (const draft of drafts) {
      const seq = this.records.length;
      const r: AuditRecord = {
        v: 1,
        seq,
        id: `01JTEST${String(seq).padStart(19, "0")}`,
        ts: new Date(T0 + seq * 1000).toISOString(),
        kind: "request",
        direction: "client_to_server",
        transport: "stdio",
        upstream: null,
        session: "s1",
        jsonrpc_id: seq,
        method: "tools/call",
        tool_name: "echo",
        params: { name: "echo", arguments: { text: `call ${seq}` } },
        result: null,
        error: null,
        redacted: [],
        duration_ms: null,
        decision: null,
        client_id: "claude-desktop",
        server_id: "everything",
        client_info: { name: "claude-ai", version: "0.1.0" },
        wire_sha256: null,
        ...draft,
        prev: this.#prev,
        sig: null,
      };
      const text = recordText(r);
      r.sig = this.#signer.sign(text.unsigned);
      const line = text.signed(r.sig);
      const hash = createHash("sha256").update(line).digest("hex");
      this.#store.write({ line, record: r, hash });
      lines.push(line);
      this.#prev = hash;
      this.records.push(r);
      out.push(r);
    }
    this.#store.commit();
    Deno.writeTextFileSync(this.jsonl, lines.map((l) => l + "\n").join(""), { append: true });
    return out;
  }

  /** A query of each backend (closed with the log). */
  backends(): Backend[] {
    const jsonl = new JsonlQuery(this.jsonl);
    const sqlite = new SqliteQuery(this.sqlite);
    this.#queries.push(jsonl, sqlite);
    return [{ name: "jsonl", query: jsonl }, { name: "sqlite", query: sqlite }];
  }

  [Symbol.dispose](): void {
    for (const q of this.#queries) q.close();
    this.#store.close();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** The draft of a client's request (a `tools/call` of `tool` unless `o` says otherwise). */
export function call(id: string | number, tool = "echo", o: Draft = {}): Draft {
  return {
    jsonrpc_id: id,
    tool_name: tool,
    params: { name: tool, arguments: { id } },
    ...o,
  };
}

/** The draft of the answer to `request`: a result, travelling the other way. */
export function answer(request: AuditRecord, result: AuditRecord["result"], o: Draft = {}): Draft {
  return {
    kind: "response",
    direction: request.direction === "client_to_server" ? "server_to_client" : "client_to_server",
    session: request.session,
    jsonrpc_id: request.jsonrpc_id,
    method: request.method,
    tool_name: request.tool_name,
    params: null,
    result,
    duration_ms: 12.5,
    ...o,
  };
}

/** The draft of an error answer to `request`. */
export function failure(
  request: AuditRecord,
  error: NonNullable<AuditRecord["error"]>,
  o: Draft = {},
): Draft {
  return answer(request, null, { kind: "error", error, ...o });
}

/** A storage backend's name. */
export type BackendName = Backend["name"];

/** No rotation: one file for the whole log. */
export const NO_ROTATION: Rotation = {
  max_size_bytes: 0,
  max_files: 0,
  interval: "",
  max_age_days: 0,
  compress: "",
};

/**
 * The time and ids of the writers of one log: 1 ms later at each reading, from 2026-06-10T22:00Z,
 * and ULID-shaped ids numbered in order.
 */
export class TestClock {
  #ms = Date.UTC(2026, 5, 10, 22);
  #ids = 0;
  readonly now = (): number => this.#ms++;
  readonly newId = (): string => "01JD" + String(++this.#ids).padStart(22, "0");
}

/** How {@link chainWriter} writes. */
export interface WriterOptions {
  /** The HMAC secret records are signed with (key id: its default one). */
  secret: string;
  /** Shared by the writers of one log; a new one by default. */
  clock?: TestClock;
  /** JSONL rotation; none by default. */
  rotation?: Rotation;
}

/** The file name of a log in a test's directory, by backend. */
export function logName(backend: BackendName): string {
  return backend === "jsonl" ? "audit.jsonl" : "audit.db";
}

/** A writer of the log at `path` through the real chain and store: another proxy sharing it. */
export function chainWriter(
  path: string,
  backend: BackendName,
  options: WriterOptions,
): { log: AuditLog; store: JsonlStore | SqliteStore } {
  const store = backend === "jsonl"
    ? new JsonlStore(path, { durability: "none", rotation: options.rotation ?? NO_ROTATION })
    : new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
  const clock = options.clock ?? new TestClock();
  const log = new AuditLog({
    store,
    signer: hmacSigner(options.secret),
    now: clock.now,
    newId: clock.newId,
    clientId: "claude-desktop",
    serverId: "filesystem",
    transport: "stdio",
  });
  return { log, store };
}

/** A temporary directory with a log in it, written through the real chain by its writers. */
export class ChainLogs implements Disposable {
  readonly dir: string;
  readonly path: string;
  readonly backend: BackendName;
  readonly #secret: string;
  readonly #clock = new TestClock();
  readonly #writers: AuditLog[] = [];
  readonly #jsonl: JsonlStore[] = [];

  constructor(backend: BackendName, secret: string, name = logName(backend)) {
    this.dir = Deno.makeTempDirSync({ prefix: "mcp-audit-dashboard-" });
    this.backend = backend;
    this.path = `${this.dir}/${name}`;
    this.#secret = secret;
  }

  /** Another writer of the log: another proxy process sharing it. */
  writer(rotation: Rotation = NO_ROTATION): AuditLog {
    const { log, store } = chainWriter(this.path, this.backend, {
      secret: this.#secret,
      clock: this.#clock,
      rotation,
    });
    if (store instanceof JsonlStore) this.#jsonl.push(store);
    this.#writers.push(log);
    return log;
  }

  /** Waits for the background work of the writers' stores (archive compression). */
  async settled(): Promise<void> {
    for (const store of this.#jsonl) await store.settled();
  }

  /** Closes the writers (a proxy that stopped). */
  closeWriters(): void {
    for (const w of this.#writers) w.close();
  }

  [Symbol.dispose](): void {
    this.closeWriters();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/**
 * A client's `tools/call` of `tool` in session s1, as the chain takes it. `args` defaults to
 * `{text: "message ID"}`; `o` overrides fields.
 */
export function callFields(
  id: number,
  tool = "echo",
  args: JsonObject = { text: `message ${id}` },
  o: Partial<AuditFields> = {},
): AuditFields {
  return {
    kind: "request",
    direction: "client_to_server",
    transport: "stdio",
    session: "s1",
    jsonrpc_id: id,
    method: "tools/call",
    tool_name: tool,
    params: { name: tool, arguments: args },
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: { action: "allow", rule: null, reason: "" },
    client_info: { name: "test", version: "1" },
    wire_sha256: "ab".repeat(32),
    upstream: null,
    ...o,
  };
}

/** The server's answer to {@link callFields}`(id, tool)`: a text result. */
export function resultFields(
  id: number,
  tool: string,
  text: string,
  durationMs: number,
): AuditFields {
  return callFields(id, tool, {}, {
    kind: "response",
    direction: "server_to_client",
    params: null,
    result: { content: [{ type: "text", text }] },
    duration_ms: durationMs,
    decision: null,
  });
}

/**
 * Stores `n` calls with `log`, flushed every `batch`; returns the last seq stored. Each call's
 * text names the seq it gets when one writer writes at a time ("message SEQ").
 */
export function writeCalls(log: AuditLog, n: number, batch = 100): number {
  for (let i = 1; i <= n; i++) {
    log.append(callFields(log.seq + log.queued + 1));
    if (i % batch === 0) log.flush();
  }
  log.flush();
  return log.seq;
}
