/**
 * The chain status the dashboard shows (`GET /api/v1/verify`), kept up to date without reading
 * the whole log again per request.
 *
 * - **First pass.** {@link ChainStatusTracker.start} reads the whole log in the background the
 *   way `mcp-audit verify` does — a JSONL log's archives in chain order, then its active file
 *   (the same line reader), or every row of an SQLite database — into the same `ChainVerifier`,
 *   checking the whole log (`scope: "log"`) with the keys given (`null`: the structure alone,
 *   `signatures_checked: false`). It yields to other work every few milliseconds, and `close()`
 *   stops it. Meanwhile the state is `checking`, with `records` counting up.
 * - **Following.** Then each batch of records the live feed reads is fed to the same verifier
 *   ({@link ChainStatusTracker.follow}). A batch that does not continue where the check stands
 *   (the feed ran ahead during the pass, or a batch came while the tracker was reading) is
 *   preceded by reading the records in between through the query; records already checked are
 *   passed over. The log is never read again from its start.
 * - **The log's end.** A log a proxy is writing has no `audit/stop` yet: that is not a problem
 *   here (the dashboard is open while proxies run), but a note; `mcp-audit verify` reports it as
 *   the end missing (INCOMPLETE). Likewise the active file's last line when it has no newline
 *   yet (a writer mid-write, or a line cut short with no writer since): it is not checked until
 *   it is complete, and the note says so.
 * - **What following cannot see.** The live feed reads records through the query, which passes
 *   over lines that are not records. A seq such a line held shows as missing; a line cut short by
 *   a crash after the first pass is known from the `audit/recover` event the next proxy writes
 *   (which lists it), and counted as `torn` then. An SQLite row's indexed columns are compared
 *   with its line in the first pass only. Records changed after they were checked are found by
 *   the next first pass (a dashboard started again) or by `mcp-audit verify`.
 *
 * @example
 * ```ts
 * import { ChainStatusTracker } from "./chain_status.ts";
 *
 * const tracker = new ChainStatusTracker({ path: "audit.jsonl", keys: null, logger: console });
 * tracker.start();
 * tracker.status().state; // "checking", then "intact" or "problems"
 * tracker.close();
 * ```
 *
 * @module
 */
import type { KeyRing } from "../audit/key_file.ts";
import { EventMethod } from "../audit/record.ts";
import {
  DEFAULT_MAX_LINE,
  LogFiles,
  LogNotFoundError,
  OpenedLogFile,
} from "../audit/storage/log_lines.ts";
import { openQuery } from "../audit/storage/open.ts";
import type { ReadRecord, RecordQuery } from "../audit/storage/query.ts";
import { isSqliteFile, readSqliteLines } from "../audit/storage/sqlite_lines.ts";
import { ChainVerifier, type Interim, type Problem } from "../audit/verify.ts";
import { isJsonObject } from "../jsonrpc/json.ts";
import type { Logger } from "../log.ts";
import type { ChainStatus } from "./api.ts";

/** What the tracker checks, and with what. */
export interface ChainStatusOptions {
  /** The log: a JSONL log's active file, or an SQLite database. */
  path: string;
  /** The keys to check signatures with; null checks the structure alone. */
  keys: KeyRing | null;
  logger: Pick<Logger, "warn">;
  /** The clock for `checked_at`. */
  now?: () => Date;
  /**
   * Reads the records between where the check stands and a batch the feed hands over, when they
   * are not contiguous. Default: a query of `path` of its own, closed with the tracker.
   */
  query?: RecordQuery;
  /** Called with the number of stored lines each read of the log hands over (tests, metrics). */
  onRead?: (lines: number) => void;
  /** How long the first pass works before it lets other work run (milliseconds; default 10). */
  sliceMs?: number;
}

/** Records asked for in one catch-up read. */
const READ_LIMIT = 500;
const WARN_EVERY_MS = 60_000;
/** Crash recoveries kept as problems; more are counted only. */
const MAX_TORN = 100;
/** A log not found at the first pass is looked for again at most this often. */
const RETRY_MS = 10_000;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * `path` as one word of a POSIX shell, which a leading `-` cannot turn into a flag (`./-x`), as
 * the page's own quoting does.
 */
export function shellQuote(path: string): string {
  const p = path.startsWith("-") ? `./${path}` : path;
  if (/^[A-Za-z0-9_\/.,:@%+=-]+$/.test(p)) return p;
  return `'${p.replaceAll("'", `'\\''`)}'`;
}

/** A problem for the status: lowest seq first, then the order found. */
function firstOf(problems: readonly Problem[]): Problem | null {
  let first: Problem | null = null;
  for (const p of problems) {
    if (first === null) first = p;
    else if (p.seq !== null && (first.seq === null || p.seq < first.seq)) first = p;
  }
  return first;
}

/** Lets timers and I/O callbacks run: the first pass must not hold the event loop. */
function pause(): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 0);
    Deno.unrefTimer(Number(t));
  });
}

type Phase =
  | { kind: "idle" }
  | { kind: "checking" }
  | { kind: "following" }
  | { kind: "unavailable"; why: string; retry: boolean; at: number };

/** The chain status of one log, checked once whole and then as it grows. */
export class ChainStatusTracker implements AsyncDisposable {
  readonly #path: string;
  readonly #keys: KeyRing | null;
  readonly #logger: Pick<Logger, "warn">;
  readonly #now: () => Date;
  readonly #onRead: ((lines: number) => void) | undefined;
  readonly #sliceMs: number;
  #query: RecordQuery | null;
  readonly #ownQuery: boolean;
  readonly #abort = new AbortController();
  #checker: ChainVerifier;
  #phase: Phase = { kind: "idle" };
  /** The pass or a catch-up is under way: batches are not fed, only remembered in `#wanted`. */
  #busy: Promise<void> | null = null;
  /** The highest seq the feed handed over. */
  #wanted = 0;
  /** The active file's last line had no newline at the end of the pass (its byte offset). */
  #incompleteAt: number | null = null;
  /** Lines cut short that `audit/recover` events read while following list. */
  #torn: Problem[] = [];
  /** Such events beyond {@link MAX_TORN}, counted only. */
  #moreTorn = 0;
  #checkedAt: Date;
  #cached: ChainStatus | null = null;
  #warnedAt: number | null = null;
  #closed = false;

  constructor(options: ChainStatusOptions) {
    this.#path = options.path;
    this.#keys = options.keys;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
    this.#onRead = options.onRead;
    this.#sliceMs = options.sliceMs ?? 10;
    this.#query = options.query ?? null;
    this.#ownQuery = options.query === undefined;
    this.#checkedAt = this.#now();
    this.#checker = this.#newChecker();
  }

  #newChecker(): ChainVerifier {
    return new ChainVerifier(this.#keys, { scope: "log" });
  }

  /** The seq the check has reached (0 before any record). */
  get #last(): number {
    return this.#checker.lastSeq ?? 0;
  }

  /** Starts the first pass over the whole log in the background. Once. */
  start(): void {
    if (this.#closed || this.#phase.kind !== "idle") return;
    this.#run(() => this.#pass());
  }

  /** Runs background work, one piece at a time; catches up with the feed after it. */
  #run(work: () => Promise<void>): void {
    const busy = (async () => {
      await work();
      while (!this.#closed && this.#phase.kind === "following" && this.#wanted > this.#last) {
        if (!(await this.#catchUp())) break;
      }
    })();
    this.#busy = busy;
    void busy.then(() => {
      if (this.#busy !== busy) return;
      this.#busy = null;
      // A batch handed over as the work ended was only remembered.
      if (!this.#closed && this.#phase.kind === "following" && this.#wanted > this.#last) {
        this.#run(() => Promise.resolve());
      }
    });
  }

  /**
   * New records were read by the feed (seq order): checks them, after reading any records
   * between where the check stands and them.
   */
  follow(records: readonly ReadRecord[]): void {
    const last = records[records.length - 1];
    if (this.#closed || last === undefined) return;
    this.#wanted = Math.max(this.#wanted, last.record.seq);
    const phase = this.#phase;
    if (phase.kind === "unavailable") {
      // A log that was not there at first: look again now that records are stored.
      if (phase.retry && this.#busy === null && this.#now().getTime() - phase.at >= RETRY_MS) {
        this.#checker = this.#newChecker();
        this.#torn = [];
        this.#moreTorn = 0;
        this.#incompleteAt = null;
        this.#run(() => this.#pass());
      }
      return;
    }
    if (phase.kind !== "following" || this.#busy !== null) return;
    if (records[0]!.record.seq > this.#last + 1) {
      this.#run(() => Promise.resolve());
      return;
    }
    this.#feed(records);
  }

  /** Feeds records after the last checked to the verifier. */
  #feed(records: readonly ReadRecord[]): void {
    let fed = 0;
    for (const r of records) {
      if (r.record.seq <= this.#last) continue;
      this.#checker.line(r.line, this.#path, 0, 0, true);
      this.#recovered(r);
      fed++;
    }
    if (fed === 0) return;
    this.#incompleteAt = null;
    this.#changed();
  }

  /** An `audit/recover` read while following names lines cut short that the pass never saw. */
  #recovered(r: ReadRecord): void {
    const { record } = r;
    if (record.kind !== "event" || record.method !== EventMethod.Recover) return;
    const params = record.params;
    const torn = isJsonObject(params) && Array.isArray(params.torn) ? params.torn.length : 0;
    if (torn === 0) return;
    if (this.#torn.length >= MAX_TORN) {
      this.#moreTorn++;
      return;
    }
    this.#torn.push({
      kind: "torn",
      file: this.#path,
      line: 0,
      seq: record.seq,
      seqEnd: record.seq,
      detail: `${torn === 1 ? "a line" : `${torn} lines`} cut short by a crash, which the ` +
        `audit/recover at seq ${record.seq} lists`,
    });
  }

  /** Reads one page of records after the last checked; false when there was nothing to read. */
  async #catchUp(): Promise<boolean> {
    try {
      this.#query ??= openQuery(this.#path);
      const page = await this.#query.page({
        filter: {},
        order: "oldest",
        after: this.#last,
        limit: READ_LIMIT,
      });
      if (this.#closed) return false;
      this.#onRead?.(page.records.length);
      this.#feed(page.records);
      this.#warnedAt = null;
      return page.records.length > 0;
    } catch (e) {
      if (this.#closed) return false;
      const now = Date.now();
      if (this.#warnedAt === null || now - this.#warnedAt >= WARN_EVERY_MS) {
        this.#warnedAt = now;
        this.#logger.warn("dashboard: reading records for the chain status failed; retrying", {
          error: message(e),
        });
      }
      return false;
    }
  }

  /** The first pass: the whole log, as `mcp-audit verify` reads it. */
  async #pass(): Promise<void> {
    this.#phase = { kind: "checking" };
    this.#changed();
    const signal = this.#abort.signal;
    try {
      if (isSqliteFile(this.#path)) await this.#passSqlite(signal);
      else await this.#passJsonl(signal);
      if (this.#closed) return;
      this.#phase = { kind: "following" };
    } catch (e) {
      if (this.#closed) return;
      this.#phase = {
        kind: "unavailable",
        why: e instanceof LogNotFoundError
          ? message(e)
          : `cannot read ${this.#path}: ${message(e)}`,
        retry: e instanceof LogNotFoundError || e instanceof Deno.errors.NotFound,
        at: this.#now().getTime(),
      };
    }
    this.#changed();
  }

  /** Feeds lines, letting other work run every few milliseconds. */
  #slicer(signal: AbortSignal): { tick(): Promise<void> | null; flush(): void } {
    let since = performance.now();
    let lines = 0;
    return {
      tick: () => {
        signal.throwIfAborted();
        lines++;
        if (performance.now() - since < this.#sliceMs) return null;
        this.#onRead?.(lines);
        lines = 0;
        return pause().then(() => {
          since = performance.now();
        });
      },
      flush: () => {
        if (lines > 0) this.#onRead?.(lines);
        lines = 0;
      },
    };
  }

  async #passJsonl(signal: AbortSignal): Promise<void> {
    using files = LogFiles.open(this.#path);
    const slicer = this.#slicer(signal);
    for (const f of files.files) {
      using opened = await OpenedLogFile.open(f, { signal, maxLine: DEFAULT_MAX_LINE });
      if (opened === null) continue;
      for await (const l of opened.lines()) {
        if (!l.terminated && f.kind === "active") {
          // Being written, or cut short: checked once complete (it comes through the feed).
          this.#incompleteAt = l.offset;
          break;
        }
        this.#checker.line(l.text, l.file, l.lineNo, l.offset, l.terminated);
        const paused = slicer.tick();
        if (paused !== null) await paused;
      }
    }
    slicer.flush();
  }

  async #passSqlite(signal: AbortSignal): Promise<void> {
    const slicer = this.#slicer(signal);
    for await (const row of readSqliteLines(this.#path, { signal })) {
      this.#checker.line(row.text, row.file, row.lineNo, row.offset, row.terminated);
      if (row.disagree !== null) {
        this.#checker.disagrees(row.file, row.lineNo, row.lineNo, row.disagree);
      }
      const paused = slicer.tick();
      if (paused !== null) await paused;
    }
    slicer.flush();
  }

  #changed(): void {
    this.#cached = null;
    this.#checkedAt = this.#now();
  }

  /** The status now. Cheap: computed again only after records were checked. */
  status(): ChainStatus {
    if (this.#cached !== null && this.#phase.kind !== "checking") return this.#cached;
    const status = this.#compute();
    this.#cached = status;
    return status;
  }

  #compute(): ChainStatus {
    const phase = this.#phase;
    const signatures_checked = this.#keys !== null;
    const checked_at = this.#checkedAt.toISOString();
    const command = `mcp-audit verify ${shellQuote(this.#path)}`;
    if (phase.kind === "unavailable") {
      return {
        state: "unavailable",
        records: 0,
        last_seq: null,
        problems: 0,
        first_problem: null,
        signatures_checked,
        checked_at,
        note: phase.why,
        command,
      };
    }
    const found: Interim = this.#checker.soFar();
    const problems = [...found.problems, ...this.#torn];
    const count = problems.length + found.moreProblems + this.#moreTorn;
    const first = firstOf(problems);
    const checking = phase.kind !== "following";
    return {
      state: checking ? "checking" : count > 0 ? "problems" : "intact",
      records: found.records,
      last_seq: found.lastSeq,
      problems: count,
      first_problem: first === null
        ? null
        : { seq: first.seq, kind: first.kind, detail: first.detail },
      signatures_checked,
      checked_at,
      note: checking ? null : this.#note(found),
      command,
    };
  }

  /** What is worth knowing besides the problems: the end, the last line, the keys. */
  #note(found: Interim): string | null {
    const notes: string[] = [];
    if (found.records === 0) notes.push("the log holds no records yet");
    else if (!found.endsClean) {
      const clean = found.lastClean;
      const since = clean === null
        ? ""
        : `; ${found.uncovered} record${
          found.uncovered === 1 ? "" : "s"
        } since the last ${clean.method} (seq ${clean.seq})`;
      notes.push(
        `no audit/stop after seq ${found.lastSeq} yet: a proxy is writing the log, or stopped ` +
          `without writing one (mcp-audit verify says INCOMPLETE; not a problem while the log ` +
          `is live)${since}`,
      );
    }
    if (this.#incompleteAt !== null) {
      notes.push(
        `the last line (byte ${this.#incompleteAt}) has no newline yet: a writer mid-write, or ` +
          "cut short; it is checked once complete",
      );
    }
    if (this.#keys === null) {
      notes.push("no key given: the structure is checked, not the signatures");
    }
    return notes.length === 0 ? null : notes.join("; ");
  }

  /** Resolves when the first pass and any reading under way have ended (at once when none is). */
  async idle(): Promise<void> {
    while (this.#busy !== null) await this.#busy;
  }

  /** Stops the first pass and any read. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    const query = this.#ownQuery ? this.#query : null;
    // Closed once no read uses it any more.
    if (query !== null) void (this.#busy ?? Promise.resolve()).then(() => query.close());
  }

  /** Closes, then waits for the first pass or a read under way to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.idle();
    if (this.#ownQuery) this.#query?.close();
  }
}
