/**
 * The hash chain: numbers, links, signs and stores records, one at a time and in order.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { canonicalMembers } from "./canonical.ts";
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

/** Hex SHA-256 of a string's UTF-8 bytes. */
export function sha256Hex(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
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

/** Builds the canonical text of a record with and without its signature in one pass. */
function canonicalPair(
  record: Omit<AuditRecord, "sig">,
  sig: (unsigned: string) => string | null,
): {
  line: string;
  sig: string | null;
} {
  const members = canonicalMembers(record);
  const unsigned = "{" + members.join(",") + "}";
  const value = sig(unsigned);
  // "sig" sorts after "session" and before "tool_name"; find its slot among the sorted members.
  let at = 0;
  while (at < members.length && members[at]! < '"sig"') at++;
  members.splice(at, 0, '"sig":' + (value === null ? "null" : JSON.stringify(value)));
  return { line: "{" + members.join(",") + "}", sig: value };
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
    const unsigned: Omit<AuditRecord, "sig"> = {
      v: 1,
      seq: this.#seq + 1,
      id: o.newId(now),
      ts: new Date(now).toISOString(),
      ...fields,
      client_id: o.clientId,
      server_id: o.serverId,
      prev: this.#prev,
    };
    const signer = o.signer;
    const { line, sig } = canonicalPair(
      unsigned,
      (text) => signer === null ? null : signer.sign(text),
    );
    const record: AuditRecord = { ...unsigned, sig };
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

  /** Closes the store. Write `audit/stop` first. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.store.close();
  }
}
