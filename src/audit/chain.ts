/**
 * The hash chain: numbers, links, signs and stores records, in order, in batches.
 *
 * A record's content, `id` and `ts` are fixed when the message passes (`append`); its `seq`,
 * `prev` and signature are given when its batch is stored, under the store's cross-process lock,
 * from the head as stored — so any number of proxy processes writing one log make one chain.
 *
 * - **sync** (default): the transport calls {@link AuditLog.beforeForward} before it forwards
 *   any bytes; every record appended so far is stored first (durable per `audit.durability`).
 * - **async** (`audit.async.enabled`): records wait in a bounded queue and are stored in batches
 *   of `batch_size`, every `flush_interval_ms`, and on every way out (`close`). When the queue
 *   holds `queue_size` records, forwarding waits until they are stored; a store that stays
 *   unwritable ends the run (fail closed). What a `kill -9` can lose is the queue.
 *
 * After each stored batch, observers (telemetry, the dashboard's live feed) are called with its
 * records, off the hot path; an observer that throws is counted, never fails the write.
 *
 * @module
 */
import { hash } from "node:crypto";
import { clearInterval, setImmediate, setInterval } from "node:timers";
import { isoTimestamps } from "./ids.ts";
import { signedLine } from "./record_text.ts";
import {
  type AuditFields,
  type AuditRecord,
  eventFields,
  EventMethod,
  GENESIS,
  type TransportName,
} from "./record.ts";
import type { Signer } from "./signing.ts";
import { StorageError } from "./storage/errors.ts";
import type { ChainedRecord, RecordStore, StoreChange, StoredRecord } from "./storage/store.ts";
import type { JsonObject } from "../jsonrpc/json.ts";
import type { Logger } from "../log.ts";

/** Hex SHA-256 of bytes, or of a string's UTF-8 bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return hash("sha256", data, "hex");
}

/** Raised when the log cannot be used as asked (closed, or a stored head that makes no sense). */
export class ChainError extends Error {
  override name = "ChainError";
}

/** `audit.async.*`: batched writing. */
export interface AsyncOptions {
  batchSize: number;
  queueSize: number;
  flushIntervalMs: number;
}

/** `audit.checkpoint.*`: signed checkpoints naming the chain head. 0 turns a trigger off. */
export interface CheckpointOptions {
  everyRecords: number;
  everySeconds: number;
}

/** What the log needs from outside. */
export interface AuditLogOptions {
  store: RecordStore;
  signer: Signer | null;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** A new ULID, monotonic within the process. */
  newId: (now: number) => string;
  clientId: string;
  serverId: string;
  transport: TransportName;
  /** Batched writing; absent: every record is stored before the bytes it describes pass. */
  async?: AsyncOptions;
  checkpoint?: CheckpointOptions;
  /**
   * Called once when records can no longer be stored outside a caller's own call (an async
   * batch kept failing, a timer's write failed): the run must end. Calls that store records
   * throw the error themselves.
   */
  onFailure?: (error: StorageError) => void;
  logger?: Pick<Logger, "warn" | "error">;
}

/** Called with each stored batch, in order. */
export type RecordObserver = (batch: readonly StoredRecord[]) => void;

/** One attempt to store a batch, as telemetry counts it. */
export interface WriteReport {
  /** Records in the batch (written, or lost to the failure and kept queued). */
  records: number;
  /** Wall time of the attempt, from taking the store's lock to commit or abort. */
  seconds: number;
  ok: boolean;
  mode: "sync" | "async";
}

/** Called with the store attempts of one turn of the event loop, after they happened. */
export type WriteObserver = (reports: readonly WriteReport[]) => void;

/** A record waiting for its batch: everything but seq, prev and sig is fixed. */
interface Pending {
  id: string;
  ts: string;
  /** The fields, or how to make them from the seq the record gets (`audit/stop`). */
  fields: AuditFields | ((seq: number) => AuditFields);
}

// An async store failing this many times in a row (a flush interval apart) ends the run.
const MAX_ASYNC_ATTEMPTS = 5;

/** The audit log. */
export class AuditLog {
  #opts: AuditLogOptions;
  #seq = 0;
  #prev = GENESIS;
  #closed = false;
  #failure: StorageError | undefined;
  #pending: Pending[] = [];
  #observers: RecordObserver[] = [];
  #observerFailures = 0;
  #toObserve: StoredRecord[][] = [];
  #observing = false;
  #writeObservers: WriteObserver[] = [];
  #reports: WriteReport[] = [];
  #backpressure = 0;
  #sinceCheckpoint = 0;
  #failedAttempts = 0;
  #timers: ReturnType<typeof setInterval>[] = [];
  #isoTimestamp = isoTimestamps();

  constructor(opts: AuditLogOptions) {
    this.#opts = opts;
    const a = opts.async;
    if (a !== undefined) {
      if (a.batchSize < 1 || a.queueSize < a.batchSize || a.flushIntervalMs < 1) {
        throw new ChainError(
          "async: need 1 <= batch_size <= queue_size and flush_interval_ms >= 1",
        );
      }
      this.#every(a.flushIntervalMs, () => this.#storeInBackground());
    }
    const seconds = opts.checkpoint?.everySeconds ?? 0;
    if (seconds > 0) {
      this.#every(seconds * 1000, () => {
        if (this.#sinceCheckpoint > 0 || this.#pending.length > 0) {
          this.#storeInBackground(true);
        }
      });
    }
  }

  /** The seq of the last record stored by this process (0 before the first). */
  get seq(): number {
    return this.#seq;
  }

  /** Records appended and not yet stored. */
  get queued(): number {
    return this.#pending.length;
  }

  /** Most records the async queue holds before forwarding waits; 0 without async. */
  get queueCapacity(): number {
    return this.#opts.async?.queueSize ?? 0;
  }

  /** How many times forwarding found the async queue full and waited for a store. */
  get backpressure(): number {
    return this.#backpressure;
  }

  /** How many times an observer threw. */
  get observerFailures(): number {
    return this.#observerFailures;
  }

  /**
   * Calls `observer` with the store attempts (stored or failed) from now on, off the hot path.
   * Returns a function that stops it.
   */
  observeWrites(observer: WriteObserver): () => void {
    this.#writeObservers.push(observer);
    return () => {
      this.#writeObservers = this.#writeObservers.filter((o) => o !== observer);
    };
  }

  /** Calls `observer` with every batch stored from now on. Returns a function that stops it. */
  observe(observer: RecordObserver): () => void {
    this.#observers.push(observer);
    return () => {
      this.#observers = this.#observers.filter((o) => o !== observer);
    };
  }

  /** Queues a record; it is numbered, linked, signed and stored with its batch. */
  append(fields: AuditFields): void {
    this.#queue(fields);
  }

  /** Queues a proxy event. */
  event(method: string, details: JsonObject, session: string | null = null): void {
    this.#queue(eventFields(method, details, this.#opts.transport, session));
  }

  /**
   * Stores `audit/stop` (with `last_seq` set to its own seq) and everything before it, durably.
   * @throws {StorageError} when it cannot be stored
   */
  stop(details: JsonObject, session: string | null = null): void {
    const transport = this.#opts.transport;
    this.#queue((seq) =>
      eventFields(EventMethod.Stop, { ...details, last_seq: seq }, transport, session)
    );
    this.sync();
  }

  /**
   * Called by a transport before it forwards bytes. Sync: stores every queued record. Async:
   * stores them only when the queue is full (forwarding waits for that).
   * @throws {StorageError} when records that must be stored first cannot be
   */
  beforeForward(): void {
    if (this.#failure !== undefined) throw this.#failure;
    const a = this.#opts.async;
    if (a === undefined) return this.flush();
    if (this.#pending.length >= a.queueSize) {
      this.#backpressure++;
      this.flush();
    }
  }

  /**
   * Stores every queued record now.
   * @throws {StorageError} when they cannot be stored (sync mode: the log is then failed)
   */
  flush(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) return;
    this.#store(false);
  }

  /** Stores every queued record and makes everything stored durable. */
  sync(): void {
    this.flush();
    this.#opts.store.sync();
  }

  /**
   * Stores what is queued, delivers what observers have not seen, and closes the store. Write
   * `audit/stop` first. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    try {
      if (this.#failure === undefined) this.#store(false);
    } finally {
      this.#closed = true;
      this.#deliver();
      this.#opts.store.close();
    }
  }

  #queue(fields: AuditFields | ((seq: number) => AuditFields)): void {
    if (this.#closed) throw new ChainError("the audit log is closed");
    const now = this.#opts.now();
    this.#pending.push({ id: this.#opts.newId(now), ts: this.#isoTimestamp(now), fields });
    const a = this.#opts.async;
    if (a !== undefined && this.#pending.length % a.batchSize === 0 && this.#failedAttempts === 0) {
      this.#storeInBackground();
    }
  }

  #every(ms: number, run: () => void): void {
    // Kept referenced: queued records hold the process until `close` stores them.
    this.#timers.push(setInterval(run, ms));
  }

  /**
   * Stores queued records outside any caller that could act on a failure (a full async batch,
   * a timer): a failure is retried on the next interval, and ends the run after a few in a row
   * or at once in sync mode.
   */
  #storeInBackground(checkpoint = false): void {
    if (this.#closed || this.#failure !== undefined) return;
    try {
      this.#store(checkpoint);
      this.#failedAttempts = 0;
    } catch (e) {
      const error = e instanceof StorageError
        ? e
        : new StorageError(`cannot store audit records: ${(e as Error).message}`, { cause: e });
      this.#failedAttempts++;
      const retry = this.#opts.async !== undefined && this.#failedAttempts < MAX_ASYNC_ATTEMPTS;
      this.#opts.logger?.error(
        retry
          ? "cannot store audit records; keeping them queued and retrying"
          : "cannot store audit records; stopping",
        { error: error.message, queued: this.#pending.length, attempt: this.#failedAttempts },
      );
      if (!retry) {
        this.#failure = error;
        this.#opts.onFailure?.(error);
      }
    }
  }

  /** One batch: everything queued, after what the store found, under the store's lock. */
  #store(checkpoint: boolean): void {
    if (this.#pending.length === 0 && !checkpoint) return;
    const began = performance.now();
    const queued = this.#pending.length;
    let written: number;
    try {
      written = this.#storeBatch(checkpoint);
    } catch (e) {
      this.#report(queued, began, false);
      throw e;
    }
    this.#report(written, began, true);
  }

  #report(records: number, began: number, ok: boolean): void {
    if (this.#writeObservers.length === 0) return;
    this.#reports.push({
      records,
      seconds: (performance.now() - began) / 1000,
      ok,
      mode: this.#opts.async === undefined ? "sync" : "async",
    });
    this.#scheduleDelivery();
  }

  /** Returns how many records it stored. */
  #storeBatch(checkpoint: boolean): number {
    const store = this.#opts.store;
    const start = store.begin();
    // Another writer's records move the head on. A head behind this writer's own last record
    // means records were removed: the chain goes on after its own (the store reports the cut).
    if (start.head !== undefined && (start.head?.seq ?? 0) >= this.#seq) {
      this.#seq = start.head === null ? 0 : start.head.seq;
      this.#prev = start.head === null ? GENESIS : start.head.hash;
    }
    const base = { seq: this.#seq, prev: this.#prev };
    const batch: StoredRecord[] = [];
    try {
      for (const change of start.changes) this.#recordChange(change, batch);
      for (const p of this.#pending) this.#write(p, batch);
      const every = this.#opts.checkpoint?.everyRecords ?? 0;
      if (checkpoint || (every > 0 && this.#sinceCheckpoint >= every)) this.#checkpoint(batch);
    } catch (e) {
      this.#seq = base.seq;
      this.#prev = base.prev;
      this.#sinceCheckpoint -= batch.length;
      store.abort();
      throw e;
    }
    try {
      store.commit();
    } catch (e) {
      this.#seq = base.seq;
      this.#prev = base.prev;
      this.#sinceCheckpoint -= batch.length;
      store.abort();
      if (this.#opts.async === undefined) {
        this.#failure = e instanceof StorageError
          ? e
          : new StorageError(`cannot store audit records: ${(e as Error).message}`, { cause: e });
      }
      throw e;
    }
    this.#pending = [];
    this.#observed(batch);
    return batch.length;
  }

  #write(p: Pending, batch: StoredRecord[]): void {
    const o = this.#opts;
    const seq = this.#seq + 1;
    const f = typeof p.fields === "function" ? p.fields(seq) : p.fields;
    // Field by field rather than a spread, which costs ten times as much per record; the
    // canonical order is the writer's (record_text.ts), not this one.
    const record: AuditRecord = {
      v: 1,
      seq,
      id: p.id,
      ts: p.ts,
      kind: f.kind,
      direction: f.direction,
      transport: f.transport,
      upstream: f.upstream,
      session: f.session,
      jsonrpc_id: f.jsonrpc_id,
      method: f.method,
      tool_name: f.tool_name,
      params: f.params,
      result: f.result,
      error: f.error,
      redacted: f.redacted,
      duration_ms: f.duration_ms,
      decision: f.decision,
      client_id: o.clientId,
      server_id: o.serverId,
      client_info: f.client_info,
      wire_sha256: f.wire_sha256,
      prev: this.#prev,
      sig: null,
    };
    const line = signedLine(record, o.signer);
    // The one hash of the stored line: the next record's prev, and the stores' head and anchor.
    const entry: ChainedRecord = { line, record, hash: sha256Hex(line) };
    o.store.write(entry);
    batch.push(entry);
    this.#seq = seq;
    this.#prev = entry.hash;
    this.#sinceCheckpoint++;
  }

  #writeEvent(method: string, details: JsonObject, batch: StoredRecord[]): void {
    const now = this.#opts.now();
    this.#write({
      id: this.#opts.newId(now),
      ts: this.#isoTimestamp(now),
      fields: eventFields(method, details, this.#opts.transport, null),
    }, batch);
  }

  #checkpoint(batch: StoredRecord[]): void {
    this.#writeEvent(EventMethod.Checkpoint, {
      reason: "periodic",
      head_seq: this.#seq,
      head_hash: this.#prev,
      records_since_last: this.#sinceCheckpoint,
    }, batch);
    this.#sinceCheckpoint = 0;
  }

  /** Records what the store found, in the file the next records go to. */
  #recordChange(change: StoreChange, batch: StoredRecord[]): void {
    const after = () => this.#seq;
    switch (change.kind) {
      case "torn":
      case "truncated":
      case "extended":
        this.#writeEvent(EventMethod.Recover, {
          reason: change.reason,
          cause: change.kind,
          ...change.details,
          continues_after_seq: after(),
          new_file: false,
        }, batch);
        return;
      case "rotated":
        this.#writeEvent(EventMethod.Rotate, {
          reason: change.reason,
          ...change.details,
          continues_after_seq: after(),
          new_file: true,
        }, batch);
        return;
      case "retention":
        this.#writeEvent(EventMethod.Retention, {
          reason: change.reason,
          ...change.details,
        }, batch);
        return;
      case "deleted":
      case "moved":
      case "replaced": {
        if (change.oldFileLinked) {
          // The old file lives on (an archive now): it ends cleanly, saying where the chain went.
          this.#writeEvent(EventMethod.Checkpoint, {
            reason: change.reason,
            cause: change.kind,
            last_seq: this.#seq + 1,
          }, batch);
        }
        const details = this.#opts.store.startNewFile();
        this.#writeEvent(EventMethod.Recover, {
          reason: change.reason,
          cause: change.kind,
          ...details,
          continues_after_seq: after(),
          new_file: true,
        }, batch);
        return;
      }
      default: {
        const never: never = change;
        throw new ChainError(`unknown store change ${JSON.stringify(never)}`);
      }
    }
  }

  /** Hands a stored batch to the observers at the end of the current turn of the event loop. */
  #observed(batch: StoredRecord[]): void {
    if (this.#observers.length === 0 || batch.length === 0) return;
    this.#toObserve.push(batch);
    this.#scheduleDelivery();
  }

  #scheduleDelivery(): void {
    if (this.#observing) return;
    this.#observing = true;
    setImmediate(() => this.#deliver());
  }

  #deliver(): void {
    this.#observing = false;
    const batches = this.#toObserve;
    this.#toObserve = [];
    const reports = this.#reports;
    this.#reports = [];
    if (reports.length > 0) {
      for (const observer of this.#writeObservers) {
        try {
          observer(reports);
        } catch {
          this.#observerFailures++;
        }
      }
    }
    for (const batch of batches) {
      for (const observer of this.#observers) {
        try {
          observer(batch);
        } catch {
          this.#observerFailures++;
        }
      }
    }
  }
}
