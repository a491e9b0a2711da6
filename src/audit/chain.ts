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
import type { RecordStore } from "./storage/store.ts";
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
 */
export class AuditLog {
  #opts: AuditLogOptions;
  #seq: number;
  #prev: string;
  #closed = false;

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

  /** Hands every record so far to the operating system. Call before forwarding anything. */
  flush(): void {
    if (!this.#closed) this.#opts.store.flush();
  }

  /** Makes every record so far durable. */
  sync(): void {
    if (!this.#closed) this.#opts.store.sync();
  }

  /** Hands every record so far to the operating system and starts an fsync in the background. */
  syncSoon(): void {
    if (!this.#closed) this.#opts.store.syncSoon();
  }

  /** Closes the store. Write `audit/stop` first. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.store.close();
  }
}
