import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { AuditLog, type AuditLogOptions, ChainError, sha256Hex } from "./chain.ts";
import { JsonlStore } from "./storage/jsonl.ts";
import { StorageError } from "./storage/errors.ts";
import type { BatchStart, ChainedRecord, RecordStore } from "./storage/store.ts";
import { type AuditFields, EventMethod, GENESIS, RECORD_FIELDS } from "./record.ts";
import { hmacSigner, type Signer } from "./signing.ts";
import { canonicalize } from "./canonical.ts";
import { isJsonObject, type JsonObject, type JsonValue, parseLossless } from "../jsonrpc/json.ts";

const SECRET = "0123456789abcdef0123456789abcdef";

function tempLog(): { path: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-chain-" });
  return {
    path: `${dir}/audit.jsonl`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

let clock = Date.UTC(2026, 10, 25, 3, 49, 36, 219);
let ids = 0;

function open(
  path: string,
  signer: Signer | null = hmacSigner(SECRET),
  more: Partial<AuditLogOptions> = {},
): AuditLog {
  return new AuditLog({
    store: new JsonlStore(path, { durability: "none" }),
    signer,
    ...more,
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "claude-desktop",
    serverId: "filesystem",
    transport: "stdio",
  });
}

function request(params: JsonValue, id: number | string = 1): AuditFields {
  return {
    kind: "request",
    direction: "client_to_server",
    transport: "stdio",
    session: "s1",
    jsonrpc_id: id,
    method: "tools/call",
    tool_name: "read_file",
    params,
    result: null,
    error: null,
    redacted: [],
    duration_ms: null,
    decision: { action: "allow", rule: null, reason: "" },
    client_info: { name: "test", version: "1" },
    wire_sha256: "ab".repeat(32),
    upstream: null,
  };
}

/** The stored lines, without the empty string after the final newline. */
function lines(path: string): string[] {
  const text = Deno.readTextFileSync(path);
  assert.ok(text.endsWith("\n"), "the log ends with a newline");
  return text.slice(0, -1).split("\n");
}

function record(line: string): JsonObject {
  const v = parseLossless(line);
  assert.ok(isJsonObject(v));
  return v;
}

Deno.test("AuditLog links each record to the SHA-256 of the previous stored line", () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  for (let i = 1; i <= 3; i++) log.append(request({ i }, i));
  log.close();
  const stored = lines(tmp.path);
  assert.equal(stored.length, 3);
  stored.forEach((line, i) => {
    const r = record(line);
    assert.equal(r.seq, i + 1);
    const want = i === 0
      ? GENESIS
      : createHash("sha256").update(new TextEncoder().encode(stored[i - 1])).digest("hex");
    assert.equal(r.prev, want);
  });
  assert.equal(GENESIS, "0".repeat(64));
});

Deno.test("AuditLog hands each store write the SHA-256 of its line: the next record's prev", () => {
  using tmp = tempLog();
  const inner = new JsonlStore(tmp.path, { durability: "none" });
  const written: ChainedRecord[] = [];
  const store: RecordStore = {
    backend: inner.backend,
    path: inner.path,
    begin: () => inner.begin(),
    write: (entry) => {
      written.push(entry);
      inner.write(entry);
    },
    startNewFile: () => inner.startNewFile(),
    commit: () => inner.commit(),
    abort: () => inner.abort(),
    sync: () => inner.sync(),
    settled: () => inner.settled(),
    close: () => inner.close(),
  };
  const log = new AuditLog({
    store,
    signer: hmacSigner(SECRET),
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "claude-desktop",
    serverId: "filesystem",
    transport: "stdio",
  });
  for (let i = 1; i <= 3; i++) log.append(request({ i }, i));
  log.flush();
  log.event(EventMethod.Reload, {});
  log.close();
  assert.deepEqual(written.map((e) => e.line), lines(tmp.path));
  written.forEach((e, i) => {
    assert.equal(e.hash, createHash("sha256").update(e.line).digest("hex"));
    const next = written[i + 1];
    if (next !== undefined) assert.equal(next.record.prev, e.hash);
  });
});

Deno.test("AuditLog stores each record as exactly its canonical JSON, signature included", () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  const observed: string[] = [];
  log.observe((batch) =>
    observed.push(...batch.map((b) => canonicalize(record(JSON.stringify(b.record)))))
  );
  log.append(request(parseLossless('{"name":"read_file","arguments":{"z":1,"a":"é\\u2028"}}')));
  log.event(EventMethod.Stop, { last_seq: 1 });
  log.close();
  const stored = lines(tmp.path);
  assert.deepEqual(observed, stored, "observers see the stored records");
  stored.forEach((line) => {
    const r = record(line);
    assert.equal(canonicalize(r), line);
    assert.deepEqual(Object.keys(r).sort(), [...RECORD_FIELDS].sort());
    assert.equal(r.v, 1);
    assert.equal(r.client_id, "claude-desktop");
    assert.equal(r.server_id, "filesystem");
    assert.match(String(r.ts), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

Deno.test("AuditLog signs the canonical form without sig, checkable with four lines of crypto", () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  log.append(request({ token: "[REDACTED]", n: 1 }));
  log.event(EventMethod.Checkpoint, {});
  log.close();
  for (const line of lines(tmp.path)) {
    const { sig, ...unsigned } = record(line);
    const keyId = createHash("sha256").update(SECRET).digest("hex").slice(0, 8);
    const mac = createHmac("sha256", SECRET).update(canonicalize(unsigned)).digest("hex");
    assert.equal(sig, `hmac-sha256:${keyId}:${mac}`);
  }
});

Deno.test("AuditLog keeps big integers in params as their digits", () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  log.append(request(parseLossless('{"n":12345678901234567890,"m":[9007199254740993]}')));
  log.close();
  const [line] = lines(tmp.path);
  assert.ok(line!.includes('"params":{"m":[9007199254740993],"n":12345678901234567890}'), line);
});

Deno.test("AuditLog writes sig null when signing is off", () => {
  using tmp = tempLog();
  const log = open(tmp.path, null);
  log.append(request({}));
  log.close();
  const r = record(lines(tmp.path)[0]!);
  assert.equal(r.sig, null);
});

Deno.test("AuditLog continues seq and prev from the existing log after a reopen", () => {
  using tmp = tempLog();
  const first = open(tmp.path);
  first.append(request({}, 1));
  first.append(request({}, 2));
  first.event(EventMethod.Stop, { last_seq: 2 });
  first.close();

  const second = open(tmp.path);
  second.append(request({}, 4));
  second.flush();
  assert.equal(second.seq, 4);
  second.close();
  const stored = lines(tmp.path);
  assert.equal(stored.length, 4);
  assert.equal(record(stored[3]!).seq, 4);
  assert.equal(record(stored[3]!).prev, sha256Hex(stored[2]!));
});

Deno.test("AuditLog keeps a torn last line, closes it and names its byte offset in audit/recover", () => {
  using tmp = tempLog();
  const first = open(tmp.path);
  first.append(request({ text: "héllo" }, 1));
  first.append(request({}, 2));
  first.close();
  const intact = Deno.readFileSync(tmp.path);
  const torn = new TextEncoder().encode('{"client_id":"claude-desktop","dir€');
  Deno.writeFileSync(tmp.path, torn, { append: true });

  const second = open(tmp.path);
  second.append(request({}, 3));
  second.close();

  const bytes = Deno.readFileSync(tmp.path);
  assert.deepEqual(bytes.subarray(0, intact.length), intact);
  assert.deepEqual(
    bytes.subarray(intact.length, intact.length + torn.length),
    torn,
    "torn bytes kept",
  );
  assert.equal(bytes[intact.length + torn.length], 0x0a, "closed with a newline");

  const stored = lines(tmp.path);
  assert.equal(stored.length, 5);
  const recover = record(stored[3]!);
  assert.equal(recover.kind, "event");
  assert.equal(recover.direction, "proxy");
  assert.equal(recover.method, EventMethod.Recover);
  assert.equal(recover.seq, 3);
  assert.equal(recover.prev, sha256Hex(stored[1]!), "links past the torn line to seq 2");
  const params = recover.params;
  assert.ok(isJsonObject(params));
  assert.equal(params.continues_after_seq, 2);
  assert.deepEqual(params.torn, [{ file: tmp.path, offset: intact.length, length: torn.length }]);
  const next = record(stored[4]!);
  assert.equal(next.seq, 4);
  assert.equal(next.prev, sha256Hex(stored[3]!));
});

Deno.test("AuditLog continues a last record that lost only its newline instead of reusing its seq", () => {
  // A crash between the record's last byte and its "\n": the record is whole and signed.
  using tmp = tempLog();
  const first = open(tmp.path);
  first.append(request({}, 1));
  first.append(request({}, 2));
  first.close();
  const text = Deno.readTextFileSync(tmp.path);
  Deno.writeTextFileSync(tmp.path, text.slice(0, -1));

  const second = open(tmp.path);
  second.append(request({}, 3));
  second.close();
  const seqs = lines(tmp.path).map((l) => record(l).seq);
  assert.equal(new Set(seqs).size, seqs.length, `seq values repeat: ${seqs.join(",")}`);
});

Deno.test("AuditLog starts a new chain in an empty file and refuses appends once closed", () => {
  using tmp = tempLog();
  Deno.writeFileSync(tmp.path, new Uint8Array(0));
  const log = open(tmp.path);
  assert.equal(log.seq, 0);
  log.append(request({}));
  log.close();
  assert.equal(record(lines(tmp.path)[0]!).seq, 1);
  assert.equal(record(lines(tmp.path)[0]!).prev, GENESIS);
  log.close();
  assert.throws(() => log.append(request({})), ChainError);
});

Deno.test("AuditLog goes on past a last line that is not a valid record, and records it", () => {
  using tmp = tempLog();
  const first = open(tmp.path);
  first.append(request({}));
  first.close();
  const before = lines(tmp.path);
  Deno.writeTextFileSync(tmp.path, '{"seq":"one","prev":"x"}\n', { append: true });
  const second = open(tmp.path);
  second.append(request({}));
  second.close();
  const after = lines(tmp.path);
  const recover = eventOf(after[2]);
  assert.equal(recover.method, EventMethod.Recover);
  assert.equal(recover.seq, 2, "numbered after the last valid record");
  assert.equal(record(after[2]!).prev, sha256Hex(before[0]!));
  assert.equal(after[1], '{"seq":"one","prev":"x"}', "the line is kept as it was");
});

function eventOf(line: string | undefined): { method: unknown; seq: unknown; params: JsonObject } {
  assert.ok(line !== undefined);
  const r = record(line);
  assert.equal(r.kind, "event");
  assert.ok(isJsonObject(r.params));
  return { method: r.method, seq: r.seq, params: r.params };
}

Deno.test({
  name:
    "AuditLog goes on in a new file when its log is deleted: audit/recover first, linked to the last record",
  ignore: Deno.build.os === "windows",
  fn() {
    using tmp = tempLog();
    const log = open(tmp.path);
    log.append(request({}, 1));
    log.append(request({}, 2));
    log.flush();
    const last = lines(tmp.path).at(-1)!;
    Deno.removeSync(tmp.path);
    log.append(request({}, 3));
    log.close();
    const [first, next] = lines(tmp.path);
    const recover = eventOf(first);
    assert.equal(recover.method, EventMethod.Recover);
    assert.equal(recover.seq, 3);
    assert.equal(record(first!).prev, sha256Hex(last));
    assert.equal(recover.params.cause, "deleted");
    assert.equal(recover.params.new_file, true);
    assert.equal(recover.params.continues_after_seq, 2);
    assert.equal(record(next!).seq, 4);
    assert.equal(record(next!).prev, sha256Hex(first!));
  },
});

Deno.test({
  name:
    "AuditLog ends a log moved away with audit/checkpoint and starts the new file with audit/recover",
  ignore: Deno.build.os === "windows",
  fn() {
    using tmp = tempLog();
    const log = open(tmp.path);
    log.append(request({}, 1));
    log.sync();
    Deno.renameSync(tmp.path, `${tmp.path}.1`);
    log.append(request({}, 2));
    log.close();
    const old = lines(`${tmp.path}.1`);
    const checkpoint = eventOf(old.at(-1));
    assert.equal(checkpoint.method, EventMethod.Checkpoint);
    assert.deepEqual([checkpoint.seq, checkpoint.params.last_seq], [2, 2]);
    const now = lines(tmp.path);
    const recover = eventOf(now[0]);
    assert.deepEqual([recover.method, recover.seq], [EventMethod.Recover, 3]);
    assert.equal(recover.params.continues_after_seq, 2);
    assert.equal(record(now[0]!).prev, sha256Hex(old.at(-1)!));
    assert.equal(record(now[1]!).jsonrpc_id, 2, "the record that found the change follows");
  },
});

Deno.test("AuditLog records a log cut short in the same file, and checks once per batch", () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  log.append(request({}, 1));
  log.append(request({}, 2));
  log.flush();
  Deno.truncateSync(tmp.path, lines(tmp.path)[0]!.length + 1);
  log.append(request({}, 3));
  log.append(request({}, 4));
  log.close();
  const stored = lines(tmp.path);
  assert.equal(stored.length, 4, "seq 1, the recover event, seq 4 and 5");
  const recover = eventOf(stored[1]);
  assert.deepEqual([recover.method, recover.seq], [EventMethod.Recover, 3]);
  assert.equal(recover.params.cause, "truncated");
  assert.equal(recover.params.new_file, false);
  assert.equal(recover.params.continues_after_seq, 2);
});

Deno.test({
  name: "AuditLog.stop names its own seq even when the log was moved just before",
  ignore: Deno.build.os === "windows",
  fn() {
    using tmp = tempLog();
    const log = open(tmp.path);
    log.append(request({}, 1));
    log.sync();
    Deno.renameSync(tmp.path, `${tmp.path}.1`);
    log.stop({ reason: "test" });
    log.close();
    const stop = eventOf(lines(tmp.path).at(-1));
    assert.equal(stop.seq, 4, "seq 2 closes the old file, seq 3 opens the new one");
    assert.equal(stop.params.last_seq, 4);
  },
});

/** The real JSONL store, whose commits fail while `failures` is above zero: a full disk. */
class FullDisk implements RecordStore {
  readonly backend = "jsonl" as const;
  failures: number;
  commits = 0;
  #inner: JsonlStore;
  constructor(path: string, failures: number) {
    this.#inner = new JsonlStore(path, { durability: "none" });
    this.failures = failures;
  }
  get path(): string {
    return this.#inner.path;
  }
  begin(): BatchStart {
    return this.#inner.begin();
  }
  write(entry: ChainedRecord): void {
    this.#inner.write(entry);
  }
  startNewFile(): JsonObject {
    return this.#inner.startNewFile();
  }
  commit(): void {
    this.commits++;
    if (this.failures > 0) {
      this.failures--;
      this.#inner.abort();
      throw new StorageError(
        "cannot append to the audit log: No space left on device (os error 28)",
      );
    }
    this.#inner.commit();
  }
  abort(): void {
    this.#inner.abort();
  }
  sync(): void {
    this.#inner.sync();
  }
  settled(): Promise<void> {
    return this.#inner.settled();
  }
  close(): void {
    this.#inner.close();
  }
}

function stored(path: string): number {
  try {
    return lines(path).length;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    if (e instanceof assert.AssertionError) return 0;
    throw e;
  }
}

Deno.test("AuditLog async: records wait for a full batch, forwarding waits only for a full queue", () => {
  using tmp = tempLog();
  const log = open(tmp.path, hmacSigner(SECRET), {
    async: { batchSize: 4, queueSize: 8, flushIntervalMs: 3_600_000 },
  });
  for (let i = 1; i <= 3; i++) log.append(request({}, i));
  log.beforeForward();
  assert.equal(stored(tmp.path), 0, "three records are still queued");
  assert.equal(log.queued, 3);
  log.append(request({}, 4));
  assert.equal(stored(tmp.path), 4, "the fourth made a batch");
  log.append(request({}, 5));
  log.stop({ reason: "test" });
  log.close();
  const seqs = lines(tmp.path).map((l) => record(l).seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6], "drained on close, in order");
});

Deno.test("AuditLog async: a failed batch stays queued and is retried until it is stored", async () => {
  using tmp = tempLog();
  const store = new FullDisk(tmp.path, 2);
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const log = new AuditLog({
    store,
    signer: hmacSigner(SECRET),
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "claude-desktop",
    serverId: "filesystem",
    transport: "stdio",
    async: { batchSize: 2, queueSize: 100, flushIntervalMs: 5 },
  });
  log.observe(() => resolve());
  log.append(request({}, 1));
  log.append(request({}, 2));
  assert.equal(log.queued, 2, "the first attempt failed; nothing was dropped");
  await done;
  assert.equal(store.commits, 3, "two failures, then stored");
  log.close();
  assert.deepEqual(lines(tmp.path).map((l) => record(l).jsonrpc_id), [1, 2]);
  assert.deepEqual(lines(tmp.path).map((l) => record(l).seq), [1, 2], "no seq was spent");
});

Deno.test("AuditLog async: a log that stays unwritable ends the run, and forwarding stops", async () => {
  using tmp = tempLog();
  const store = new FullDisk(tmp.path, Infinity);
  const { promise: failed, resolve } = Promise.withResolvers<StorageError>();
  const log = new AuditLog({
    store,
    signer: null,
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "c",
    serverId: "s",
    transport: "stdio",
    async: { batchSize: 1, queueSize: 10, flushIntervalMs: 1 },
    onFailure: resolve,
  });
  log.append(request({}, 1));
  const error = await failed;
  assert.match(error.message, /No space left/);
  assert.throws(() => log.beforeForward(), StorageError);
  assert.equal(log.queued, 1, "the record is still held, reported by the caller");
  store.failures = 0;
  log.close();
});

Deno.test("AuditLog async: a full queue makes forwarding wait for a write, and fail when it fails", () => {
  using tmp = tempLog();
  const store = new FullDisk(tmp.path, 1);
  const log = new AuditLog({
    store,
    signer: null,
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "c",
    serverId: "s",
    transport: "stdio",
    async: { batchSize: 2, queueSize: 4, flushIntervalMs: 3_600_000 },
  });
  log.append(request({}, 1));
  log.append(request({}, 2)); // the batch fails: queued
  log.append(request({}, 3));
  log.append(request({}, 4));
  assert.equal(log.queued, 4);
  log.beforeForward(); // full: written now (the disk has room again)
  assert.equal(log.queued, 0);
  assert.equal(stored(tmp.path), 4);
  store.failures = 1;
  for (let i = 5; i <= 8; i++) log.append(request({}, i));
  assert.throws(() => log.beforeForward(), StorageError, "full and unwritable: nothing passes");
  log.close();
  assert.equal(stored(tmp.path), 8, "the queue was drained at close");
});

Deno.test("AuditLog sync: a failed write fails every later forward (fail closed)", () => {
  using tmp = tempLog();
  const store = new FullDisk(tmp.path, 1);
  const log = new AuditLog({
    store,
    signer: null,
    now: () => clock++,
    newId: () => "01JD" + String(++ids).padStart(22, "0"),
    clientId: "c",
    serverId: "s",
    transport: "stdio",
  });
  log.append(request({}, 1));
  assert.throws(() => log.beforeForward(), StorageError);
  assert.throws(() => log.beforeForward(), StorageError, "still refused once the disk has room");
  log.close();
});

Deno.test("AuditLog observers: called after the write with each batch; one that throws is counted", async () => {
  using tmp = tempLog();
  const log = open(tmp.path);
  const seen: number[] = [];
  const { promise: twice, resolve } = Promise.withResolvers<void>();
  log.observe(() => {
    throw new Error("observer bug");
  });
  log.observe((batch) => {
    for (const b of batch) {
      assert.ok(stored(tmp.path) >= b.record.seq, "stored before observed");
      seen.push(b.record.seq);
    }
    if (seen.length === 3) resolve();
  });
  log.append(request({}, 1));
  log.append(request({}, 2));
  log.flush();
  log.append(request({}, 3));
  log.flush();
  await twice;
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(log.observerFailures, 2, "two batches, the first observer threw on each");
  log.close();
  assert.equal(stored(tmp.path), 3, "the writes were not affected");
});

Deno.test("AuditLog checkpoints: a signed audit/checkpoint naming the head every N records", () => {
  using tmp = tempLog();
  const log = open(tmp.path, hmacSigner(SECRET), {
    checkpoint: { everyRecords: 3, everySeconds: 0 },
  });
  for (let i = 1; i <= 7; i++) {
    log.append(request({}, i));
    log.flush();
  }
  log.close();
  const all = lines(tmp.path);
  const checkpoints = all.map(record).filter((r) => r.method === EventMethod.Checkpoint);
  assert.equal(checkpoints.length, 2);
  for (const c of checkpoints) {
    assert.ok(isJsonObject(c.params));
    const headSeq = c.params.head_seq;
    assert.equal(headSeq, Number(c.seq) - 1);
    assert.equal(c.params.head_hash, sha256Hex(all[Number(headSeq) - 1]!));
    assert.equal(c.prev, c.params.head_hash);
  }
});
