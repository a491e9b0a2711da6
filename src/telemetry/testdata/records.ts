/**
 * Audit records for the telemetry unit tests: every field filled in, a test saying only what it
 * checks. The keys stand in the order the tests' records always had, so a stored `line` reads the
 * same.
 *
 * @module
 */
import type { AuditRecord } from "../../audit/record.ts";
import type { StoredRecord } from "../../audit/storage/store.ts";

/** A client's tools/call with nothing else said. */
const BASE: AuditRecord = {
  v: 1,
  seq: 1,
  id: "id-1",
  ts: "2026-03-01T10:00:00.000Z",
  kind: "request",
  direction: "client_to_server",
  transport: "stdio",
  upstream: null,
  session: null,
  jsonrpc_id: 1,
  method: "tools/call",
  tool_name: null,
  params: null,
  result: null,
  error: null,
  redacted: [],
  duration_ms: null,
  decision: null,
  client_id: "agent-1",
  server_id: "srv-1",
  client_info: null,
  wire_sha256: null,
  prev: "0".repeat(64),
  sig: null,
};

/** A record: {@link BASE} under `fields`. */
export function record(fields: Partial<AuditRecord>): AuditRecord {
  return { ...BASE, ...fields };
}

/** `record` as the log hands it to its observers: with its line (plain JSON here). */
export function stored(record: AuditRecord): StoredRecord {
  return { line: JSON.stringify(record), record };
}

/** How a numbered record's `id` and `ts` follow its `seq`. */
export interface Numbering {
  id(seq: number): string;
  ts(seq: number): string;
}

/**
 * Records numbered 1, 2, 3 …: each takes the next `seq` (also its `jsonrpc_id`), an `id` and a
 * `ts` that follow it, then `defaults`, then what the test says.
 */
export class RecordSequence {
  /** The `seq` of the last record made. */
  seq = 0;
  readonly #defaults: Partial<AuditRecord>;
  readonly #numbering: Numbering;

  constructor(numbering: Numbering, defaults: Partial<AuditRecord> = {}) {
    this.#numbering = numbering;
    this.#defaults = defaults;
  }

  next(fields: Partial<AuditRecord>): AuditRecord {
    const seq = ++this.seq;
    return record({
      seq,
      id: this.#numbering.id(seq),
      ts: this.#numbering.ts(seq),
      jsonrpc_id: seq,
      ...this.#defaults,
      ...fields,
    });
  }
}
