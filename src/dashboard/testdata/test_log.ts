/**
 * A log for the dashboard's unit tests, written in both backends with the same content: each
 * record numbered, linked and signed as the chain does (canonical text, HMAC signature, `prev` the
 * SHA-256 of the line before), with a fixed clock and fixed ids, appended to a JSONL file and
 * stored through the SQLite store. Tests read it through both queries.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type AuditRecord, GENESIS } from "../../audit/record.ts";
import { recordText } from "../../audit/record_text.ts";
import { hmacSigner, type Signer } from "../../audit/signing.ts";
import { JsonlQuery } from "../../audit/storage/jsonl_query.ts";
import type { RecordQuery } from "../../audit/storage/query.ts";
import { SqliteQuery } from "../../audit/storage/sqlite_query.ts";
import { SqliteStore } from "../../audit/storage/sqlite.ts";

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
      this.#store.write({ line, record: r });
      lines.push(line);
      this.#prev = createHash("sha256").update(line).digest("hex");
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
