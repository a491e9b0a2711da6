/**
 * The hash chain: numbers, links, signs and stores records, one at a time and in order.
 *
 * @module
 */
import { hash } from "node:crypto";
import { recordText } from "./record_text.ts";
import {
  type AuditFields,
  type AuditRecord,
  eventFields,
  EventMethod,
  GENESIS,
  type TransportName,
} from "./record.ts";
import type { Signer } from "./signing.ts";
import type { RecordStore, TargetChange } from "./storage/store.ts";
import type { JsonObject } from "../jsonrpc/json.ts";

/** Hex SHA-256 of bytes, or of a string's UTF-8 bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return hash("sha256", data, "hex");
}

/** Raised when the existing log cannot be continued. */
export class ChainError extends Error {
  override name = "ChainError";
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
}

/**
 * The audit log. Appends are synchronous and in order; a record reaches the file at the latest
 * on the next `flush` or `sync`, which the transport calls before it forwards any bytes.
 *
 * Before the first record of each batch (the records between two flushes) the store checks that
 * it still writes where it should. When the log was deleted, moved or replaced, the chain goes on
 * in a new file whose first record is an `audit/recover` event naming the seq it continues after
 * (its `prev` is that record's hash); when the file was cut short or written into, the event
 * follows in the same file.
 */
export class AuditLog {
  #opts: AuditLogOptions;
  #seq: number;
  #prev: string;
  #closed = false;
  /** Records were appended since the last flush: the store has checked its target for them. */
  #inBatch = false;

  constructor(opts: AuditLogOptions) {
    this.#opts = opts;
    const { last, torn } = opts.store.opened;
    if (last === undefined) {
      this.#seq = 0;
      this.#prev = GENESIS;
    } else {
      const parsed: unknown = JSON.parse(last);
      const seq = typeof parsed === "object" && parsed !== null && "seq" in parsed
        ? parsed.seq
        : undefined;
      if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
        throw new ChainError("the last record of the existing log has no valid seq");
      }
      this.#seq = seq;
      this.#prev = sha256Hex(last);
    }
    if (torn.length > 0) {
      this.event(EventMethod.Recover, {
        reason: "torn record(s) found at start; kept in place and closed with a newline",
        torn: torn.map((t) => ({ file: t.file, offset: t.offset, length: t.length })),
        continues_after_seq: this.#seq,
      });
    }
  }

  /** The seq of the last record written (0 when none). */
  get seq(): number {
    return this.#seq;
  }

  /** Number, link, sign and store a record. */
  append(fields: AuditFields): AuditRecord {
    if (this.#closed) throw new ChainError("the audit log is closed");
    this.#beginBatch();
    const o = this.#opts;
    const now = o.now();
    const record: AuditRecord = {
      v: 1,
      seq: this.#seq + 1,
      id: o.newId(now),
      ts: new Date(now).toISOString(),
      ...fields,
      client_id: o.clientId,
      server_id: o.serverId,
      prev: this.#prev,
      sig: null,
    };
    const text = recordText(record);
    if (o.signer !== null) record.sig = o.signer.sign(text.unsigned);
    const line = text.signed(record.sig);
    o.store.append(line, record);
    this.#seq += 1;
    this.#prev = sha256Hex(line);
    return record;
  }

  /** Appends a proxy event. */
  event(method: string, details: JsonObject, session: string | null = null): AuditRecord {
    return this.append(eventFields(method, details, this.#opts.transport, session));
  }

  /**
   * Appends `audit/stop` with `last_seq` set to its own seq, which is known only once any
   * recovery events the store's check calls for are written.
   */
  stop(details: JsonObject, session: string | null = null): AuditRecord {
    if (this.#closed) throw new ChainError("the audit log is closed");
    this.#beginBatch();
    return this.event(EventMethod.Stop, { ...details, last_seq: this.#seq + 1 }, session);
  }

  /** Hands every record so far to the operating system. Call before forwarding anything. */
  flush(): void {
    if (this.#closed) return;
    this.#opts.store.flush();
    this.#inBatch = false;
  }

  /** Makes every record so far durable. */
  sync(): void {
    if (this.#closed) return;
    this.#opts.store.sync();
    this.#inBatch = false;
  }

  /** Hands every record so far to the operating system and starts an fsync in the background. */
  syncSoon(): void {
    if (this.#closed) return;
    this.#opts.store.syncSoon();
    this.#inBatch = false;
  }

  #beginBatch(): void {
    if (this.#inBatch) return;
    this.#inBatch = true;
    const change = this.#opts.store.checkTarget();
    if (change !== null) this.#recover(change);
  }

  /** Records what the store found, in the file the next records go to. */
  #recover(change: TargetChange): void {
    const store = this.#opts.store;
    switch (change.kind) {
      case "truncated":
      case "extended":
        this.event(EventMethod.Recover, {
          reason: change.reason,
          cause: change.kind,
          ...change.details,
          continues_after_seq: this.#seq,
          new_file: false,
        });
        return;
      case "deleted":
      case "moved":
      case "replaced": {
        if (change.oldFileLinked) {
          // The old file lives on (an archive now): it ends cleanly, saying where the chain went.
          this.event(EventMethod.Checkpoint, {
            reason: change.reason,
            cause: change.kind,
            last_seq: this.#seq + 1,
          });
        }
        const details = store.startNewFile();
        this.event(EventMethod.Recover, {
          reason: change.reason,
          cause: change.kind,
          ...details,
          continues_after_seq: this.#seq,
          new_file: true,
        });
        return;
      }
      default: {
        const never: never = change;
        throw new ChainError(`unknown target change ${JSON.stringify(never)}`);
      }
    }
  }

  /** Closes the store. Write `audit/stop` first. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.store.close();
  }
}
