/**
 * The storage part of `deno task bench`: records per second through the audit log itself
 * (numbering, canonical text, HMAC signing, hashing and the store), for JSONL and SQLite, written
 * synchronously (a batch per record, as a lockstep client makes) and asynchronously (batches of
 * `audit.async.batch_size`); then reads of a large SQLite log: a filtered newest-first page of 50
 * and a free-text `q` query, medians of several runs. Reported against the targets of the storage
 * issue, never asserted.
 *
 * @module
 */
import { monotonicFactory } from "ulid";
import { AuditLog, type AuditLogOptions } from "../../src/audit/chain.ts";
import type { AuditFields } from "../../src/audit/record.ts";
import { hmacSigner } from "../../src/audit/signing.ts";
import { JsonlStore } from "../../src/audit/storage/jsonl.ts";
import { SqliteQuery } from "../../src/audit/storage/sqlite_query.ts";
import { SqliteStore } from "../../src/audit/storage/sqlite.ts";
import type { RecordStore } from "../../src/audit/storage/store.ts";

/** The targets, in records per second and milliseconds. */
export const STORAGE_TARGET = {
  jsonlAsync: 50_000,
  sqliteAsync: 30_000,
  pageMs: 50,
  qMs: 300,
} as const;

/** One write configuration measured. */
export interface WriteFigure {
  backend: "jsonl" | "sqlite";
  mode: "sync" | "async";
  records: number;
  perSecond: number;
}

/** What the storage bench found. */
export interface StorageBenchResult {
  writes: WriteFigure[];
  /** Rows in the SQLite log read back. */
  queryRows: number;
  pageMs: number;
  qMs: number;
}

const SECRET = "bench-secret-bench-secret-bench-secret!!";
const PROSE = "The quarterly report lists every vendor invoice with its due date and amount; " +
  "reconcile them against the ledger before the audit committee meets on Thursday.";

function call(i: number): AuditFields {
  return {
    kind: i % 2 === 0 ? "request" : "response",
    direction: i % 2 === 0 ? "client_to_server" : "server_to_client",
    transport: "stdio",
    session: "01JDBENCH000000000000000000",
    jsonrpc_id: i >> 1,
    method: i % 2 === 0 ? "tools/call" : null,
    tool_name: `tool_${i % 17}`,
    params: i % 2 === 0
      ? { name: `tool_${i % 17}`, arguments: { path: `/srv/${i}`, note: PROSE } }
      : null,
    result: i % 2 === 0
      ? null
      : { content: [{ type: "text", text: PROSE }], isError: i % 97 === 1 },
    error: null,
    redacted: [],
    duration_ms: i % 2 === 0 ? null : 1.25,
    decision: i % 2 === 0 ? { action: "allow", rule: null, reason: "" } : null,
    client_info: { name: "bench", version: "1" },
    wire_sha256: "ab".repeat(32),
    upstream: null,
  };
}

function openLog(store: RecordStore, async: boolean): AuditLog {
  const ulid = monotonicFactory();
  const options: AuditLogOptions = {
    store,
    signer: hmacSigner(SECRET),
    now: Date.now,
    newId: (now) => ulid(now),
    clientId: "bench",
    serverId: "bench",
    transport: "stdio",
  };
  return new AuditLog(
    async
      ? { ...options, async: { batchSize: 128, queueSize: 4096, flushIntervalMs: 1000 } }
      : options,
  );
}

function makeStore(backend: "jsonl" | "sqlite", path: string): RecordStore {
  return backend === "jsonl"
    ? new JsonlStore(path, { durability: "none" })
    : new SqliteStore(path, { durability: "none", busyTimeoutMs: 5000 });
}

function measureWrites(
  backend: "jsonl" | "sqlite",
  mode: "sync" | "async",
  records: number,
  path: string,
): WriteFigure {
  const log = openLog(makeStore(backend, path), mode === "async");
  const started = performance.now();
  for (let i = 0; i < records; i++) {
    log.append(call(i));
    log.beforeForward();
  }
  log.close();
  const seconds = (performance.now() - started) / 1000;
  return { backend, mode, records, perSecond: records / seconds };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function timeQueries(path: string, rows: number): Promise<{ pageMs: number; qMs: number }> {
  const query = new SqliteQuery(path);
  try {
    const page: number[] = [];
    const q: number[] = [];
    for (let i = 0; i < 7; i++) {
      let t = performance.now();
      await query.page({
        filter: { toolName: `tool_${i % 17}`, kinds: ["request"] },
        order: "newest",
        limit: 50,
        after: rows - i * 1000,
      });
      page.push(performance.now() - t);
      t = performance.now();
      await query.page({ filter: { q: `/srv/${rows - 17 * i}` }, order: "newest", limit: 50 });
      q.push(performance.now() - t);
    }
    return { pageMs: median(page), qMs: median(q) };
  } finally {
    query.close();
  }
}

/** Runs the storage bench in `dir`. */
export async function runStorageBench(
  options: { quick: boolean; dir: string; progress: (text: string) => void },
): Promise<StorageBenchResult> {
  const n = options.quick ? 20_000 : 100_000;
  const writes: WriteFigure[] = [];
  for (const backend of ["jsonl", "sqlite"] as const) {
    for (const mode of ["sync", "async"] as const) {
      // A transaction per record is slow in SQLite: fewer of them tell the rate as well.
      const records = backend === "sqlite" && mode === "sync" ? Math.min(n, 10_000) : n;
      options.progress(`storage: ${backend} ${mode}, ${records} records`);
      writes.push(
        measureWrites(backend, mode, records, `${options.dir}/storage-${backend}-${mode}.log`),
      );
    }
  }
  const rows = options.quick ? 100_000 : 1_000_000;
  const path = `${options.dir}/storage-query.db`;
  options.progress(`storage: filling a SQLite log with ${rows} records`);
  measureWrites("sqlite", "async", rows, path);
  options.progress("storage: timing pages and free-text queries");
  const { pageMs, qMs } = await timeQueries(path, rows);
  return { writes, queryRows: rows, pageMs, qMs };
}

/** The storage part of the report. */
export function storageReport(r: StorageBenchResult): string[] {
  const target = (w: WriteFigure): string => {
    if (w.mode !== "async") return "";
    const want = w.backend === "jsonl" ? STORAGE_TARGET.jsonlAsync : STORAGE_TARGET.sqliteAsync;
    return `  (target ≥ ${want}: ${w.perSecond >= want ? "met" : "NOT met"})`;
  };
  return [
    "storage: records/s through the audit log (HMAC signing, durability none, one process)",
    ...r.writes.map((w) =>
      `  ${w.backend.padEnd(6)} ${w.mode.padEnd(5)} ${
        Math.round(w.perSecond).toString().padStart(8)
      } records/s over ${w.records}${target(w)}`
    ),
    `storage: SQLite log of ${r.queryRows} records: filtered newest-first page of 50 ` +
    `${r.pageMs.toFixed(2)} ms (target < ${STORAGE_TARGET.pageMs}: ${
      r.pageMs < STORAGE_TARGET.pageMs ? "met" : "NOT met"
    }), q ${r.qMs.toFixed(2)} ms (target < ${STORAGE_TARGET.qMs}: ${
      r.qMs < STORAGE_TARGET.qMs ? "met" : "NOT met"
    })`,
  ];
}
