/**
 * Checks a stored chain: signatures, `seq` continuity, `prev` links, torn lines and a clean end,
 * and, given an anchor, that the log still reaches the record the anchor names. Fed one line at a
 * time, so logs of any size take bounded memory.
 *
 * A log starts at seq 1, or mid-chain with an `audit/recover` event that says so (`new_file:
 * true`, `continues_after_seq` one less than its own seq): the proxy writes one when it has to
 * start a new file (the old one was deleted, moved or replaced), and that is the one way a file
 * may start from a known head instead of the beginning.
 *
 * @module
 */
import { canonicalize } from "./canonical.ts";
import { sha256Hex } from "./chain.ts";
import type { AnchorHead } from "./anchor.ts";
import { EventMethod, GENESIS } from "./record.ts";
import type { SignatureVerifier } from "./signing.ts";
import { isJsonObject, type JsonObject, parseLossless } from "../jsonrpc/json.ts";

/** The kinds of problem `verify` names. */
export type ProblemKind = "modified" | "missing" | "reordered" | "torn" | "unsigned" | "wrong key";

/** One problem, or a run of the same problem over consecutive records. */
export interface Problem {
  kind: ProblemKind;
  /** 1-based line number in its file (of the first record of a run). */
  line: number;
  file: string;
  /** The seq concerned (first of a run), or null when it cannot be known. */
  seq: number | null;
  /** Last seq of a run of the same problem. */
  seqEnd: number | null;
  detail: string;
}

/** The outcome of a check. */
export interface Report {
  records: number;
  firstSeq: number | null;
  lastSeq: number | null;
  problems: Problem[];
  /** Problems beyond the cap, counted only. */
  moreProblems: number;
  /** Facts that are not problems: unclean restarts, unchecked signatures. */
  notes: string[];
  /** How the log ends: the last record's method when it is an event. */
  endsWith: string | null;
  signaturesChecked: boolean;
  /** The seq the log continues after when it starts mid-chain (see the module doc), else null. */
  continuesAfter: number | null;
  /** Why it starts mid-chain: the recover event's `cause` (`deleted`, `moved`, `replaced`). */
  continuesBecause: string | null;
}

/** An anchor to check the log against: its head, and where it was read from for messages. */
export interface AnchorToCheck extends AnchorHead {
  file: string;
}

const MAX_PROBLEMS = 1000;

/** What the `cause` of an `audit/recover` event the proxy wrote at run time means. */
const CAUSES: Readonly<Record<string, string>> = {
  deleted: "deleted",
  moved: "moved away",
  replaced: "replaced by something it did not create",
  truncated: "cut short (records at its end removed)",
  extended: "written into by another program",
};
// How many recent record hashes are kept to check `prev` links of records that come late.
const HASH_WINDOW = 4096;

interface Unparsed {
  file: string;
  line: number;
  offset: number;
  afterSeq: number | null;
  final: boolean;
}

/** Checks records line by line; call {@link ChainVerifier.finish} at the end. */
export class ChainVerifier {
  #verifier: SignatureVerifier | null;
  #problems: Problem[] = [];
  #more = 0;
  #notes: string[] = [];
  #records = 0;
  #firstSeq: number | null = null;
  #maxSeq = 0;
  /** Recent records by seq: the hash of their stored bytes, and where they stand. */
  #hashes = new Map<number, { hash: string; file: string; line: number }>();
  #gaps = new Set<number>();
  #flagged = new Set<string>();
  #unparsed: Unparsed[] = [];
  /** Byte offsets of torn lines that recovery events name. */
  #tornListed = new Set<number>();
  #lastMethod: string | null = null;
  #lastKind: string | null = null;
  #lastSeqSeen: number | null = null;
  #continuesAfter: number | null = null;
  #continuesBecause: string | null = null;
  #anchor: AnchorToCheck | undefined;

  /**
   * @param verifier the key to check signatures with; `null` checks the structure alone (no
   *   signature, present or missing, is looked at), which cannot vouch for the content
   * @param options.anchor the head the log must still reach
   */
  constructor(verifier: SignatureVerifier | null, options: { anchor?: AnchorToCheck } = {}) {
    this.#verifier = verifier;
    this.#anchor = options.anchor;
  }

  #add(kind: ProblemKind, file: string, line: number, seq: number | null, detail: string): void {
    if (seq !== null) {
      const key = `${kind}:${seq}`;
      if (this.#flagged.has(key)) return;
      this.#flagged.add(key);
    }
    const last = this.#problems.at(-1);
    if (
      last && last.kind === kind && last.detail === detail && seq !== null &&
      last.seqEnd !== null &&
      seq === last.seqEnd + 1
    ) {
      last.seqEnd = seq;
      return;
    }
    if (this.#problems.length >= MAX_PROBLEMS) {
      this.#more++;
      return;
    }
    this.#problems.push({ kind, file, line, seq, seqEnd: seq, detail });
  }

  /**
   * Checks one line. `text` excludes the newline; `terminated` is false only for a last line
   * that has none. Never throws: a line that cannot be checked is a problem on that line.
   */
  line(text: string, file: string, lineNo: number, offset: number, terminated: boolean): void {
    try {
      this.#line(text, file, lineNo, offset, terminated);
    } catch (e) {
      // A hostile line (nested too deep to canonicalize, say) must not end the check.
      const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.#add("modified", file, lineNo, null, `line cannot be checked (${why})`);
    }
  }

  #line(text: string, file: string, lineNo: number, offset: number, terminated: boolean): void {
    let record: JsonObject;
    try {
      const value = parseLossless(text);
      if (!isJsonObject(value)) throw new Error("not an object");
      record = value;
    } catch {
      this.#unparsed.push({
        file,
        line: lineNo,
        offset,
        afterSeq: this.#lastSeqSeen,
        final: !terminated,
      });
      return;
    }
    const seq = record.seq;
    if (record.v !== 1 || typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      this.#add("modified", file, lineNo, null, "not an audit record (no v:1 or no valid seq)");
      return;
    }
    this.#records++;
    if (this.#firstSeq === null) this.#first(record, seq, file, lineNo);
    this.#firstSeq ??= seq;
    this.#lastSeqSeen = seq;
    const hash = sha256Hex(text);
    const anchor = this.#anchor;
    if (anchor !== undefined && seq === anchor.seq && hash !== anchor.hash) {
      this.#add(
        "modified",
        file,
        lineNo,
        seq,
        `its stored bytes do not match the anchor ${anchor.file} (written for seq ${seq} at ${anchor.ts})`,
      );
    }

    const { sig, ...unsigned } = record;
    if (sig !== null && typeof sig !== "string") {
      this.#add("modified", file, lineNo, seq, "sig is not a string");
    } else if (this.#verifier !== null) {
      const check = this.#verifier.check(canonicalize(unsigned), sig);
      if (check === "unsigned") this.#add("unsigned", file, lineNo, seq, "record has no signature");
      else if (check === "wrong key") {
        const id = typeof sig === "string" ? sig.split(":")[1] : "";
        this.#add(
          "wrong key",
          file,
          lineNo,
          seq,
          `signed with key id ${id}, checked with ${this.#verifier.keyId}`,
        );
      } else if (check === "modified") {
        this.#add("modified", file, lineNo, seq, "signature does not match the record");
      } else if (check === "malformed") {
        this.#add("modified", file, lineNo, seq, "sig is malformed");
      }
    }

    const expected = this.#maxSeq + 1;
    if (seq > expected) {
      for (let s = expected; s < seq && this.#gaps.size < 1_000_000; s++) this.#gaps.add(s);
      this.#maxSeq = seq;
    } else if (seq < expected) {
      if (this.#gaps.delete(seq)) {
        this.#add("reordered", file, lineNo, seq, "record stands after a later one");
      } else {
        this.#add("reordered", file, lineNo, seq, "seq appears more than once");
      }
    } else {
      this.#maxSeq = seq;
    }

    const prev = record.prev;
    if (seq === 1) {
      if (prev !== GENESIS) {
        this.#add("modified", file, lineNo, seq, "the first record does not start the chain");
      }
    } else {
      const before = this.#hashes.get(seq - 1);
      if (before !== undefined && prev !== before.hash) {
        this.#add(
          "modified",
          before.file,
          before.line,
          seq - 1,
          "its stored bytes do not match the next record's prev",
        );
      }
    }
    if (!this.#hashes.has(seq)) this.#hashes.set(seq, { hash, file, line: lineNo });
    if (this.#hashes.size > HASH_WINDOW) {
      const oldest = this.#hashes.keys().next().value;
      if (oldest !== undefined) this.#hashes.delete(oldest);
    }

    const method = typeof record.method === "string" ? record.method : null;
    if (record.kind === "event" && method === EventMethod.Start && this.#records > 1) {
      if (
        this.#lastKind !== "event" ||
        (this.#lastMethod !== EventMethod.Stop && this.#lastMethod !== EventMethod.Recover)
      ) {
        this.#notes.push(`seq ${seq}: the proxy restarted without a clean audit/stop before it`);
      }
    }
    if (record.kind === "event" && method === EventMethod.Recover) {
      const params = record.params;
      const torn = isJsonObject(params) ? params.torn : undefined;
      if (Array.isArray(torn)) {
        for (const t of torn) {
          if (isJsonObject(t) && typeof t.offset === "number") this.#tornListed.add(t.offset);
        }
      }
      const cause = isJsonObject(params) ? params.cause : undefined;
      this.#notes.push(
        typeof cause === "string"
          ? `seq ${seq}: the proxy found its log ${CAUSES[cause] ?? cause} while it ran`
          : `seq ${seq}: recovery after a crash (torn line(s) kept in place)`,
      );
    }
    this.#lastMethod = method;
    this.#lastKind = typeof record.kind === "string" ? record.kind : null;
  }

  /**
   * The first record: seq 1, or an `audit/recover` event that opens a new file mid-chain. Any other
   * start leaves seq 1 up to it missing.
   */
  #first(record: JsonObject, seq: number, file: string, lineNo: number): void {
    if (seq === 1) return;
    const params = record.params;
    if (
      record.kind !== "event" || record.method !== EventMethod.Recover || !isJsonObject(params) ||
      params.new_file !== true || params.continues_after_seq !== seq - 1
    ) {
      return;
    }
    this.#maxSeq = seq - 1;
    this.#continuesAfter = seq - 1;
    this.#continuesBecause = typeof params.cause === "string" ? params.cause : null;
    const anchor = this.#anchor;
    if (anchor !== undefined && anchor.seq === seq - 1 && record.prev !== anchor.hash) {
      this.#add(
        "modified",
        file,
        lineNo,
        seq,
        `its prev is not the hash of seq ${anchor.seq} that the anchor ${anchor.file} names`,
      );
    }
  }

  /** Ends the check. */
  finish(): Report {
    for (const u of this.#unparsed) {
      const where = u.afterSeq === null ? "before the first record" : `after seq ${u.afterSeq}`;
      if (u.final || this.#tornListed.has(u.offset)) {
        this.#add(
          "torn",
          u.file,
          u.line,
          null,
          `record cut short by a crash (${where}, byte ${u.offset})`,
        );
      } else {
        // A damaged line between seq k and k+2 is seq k+1: name it, and do not call it missing.
        const seq = u.afterSeq === null ? 1 : u.afterSeq + 1;
        const known = this.#gaps.delete(seq);
        this.#add(
          "modified",
          u.file,
          u.line,
          known ? seq : null,
          `line is not a valid record (${where}, byte ${u.offset})`,
        );
      }
    }
    const gaps = [...this.#gaps].sort((a, b) => a - b);
    for (const seq of gaps) this.#add("missing", "", 0, seq, "record is missing");
    const endsClean = this.#lastKind === "event" &&
      (this.#lastMethod === EventMethod.Stop || this.#lastMethod === EventMethod.Checkpoint);
    if (this.#records === 0) {
      this.#add(
        "missing",
        "",
        0,
        null,
        "the log holds no records (an audit log starts with audit/start)",
      );
    } else if (!endsClean) {
      this.#add(
        "missing",
        "",
        0,
        null,
        `log ends at seq ${this.#maxSeq} without audit/stop or audit/checkpoint (proxy still running, crashed, or records removed from the end)`,
      );
    }
    this.#finishAnchor();
    if (this.#continuesAfter !== null) {
      const where = this.#continuesBecause === "deleted"
        ? "a file that was deleted while the proxy ran (those records are gone unless a copy exists)"
        : this.#continuesBecause === "moved"
        ? "a file that was moved away while the proxy ran"
        : this.#continuesBecause === "replaced"
        ? "a file that something else replaced while the proxy ran"
        : "an earlier file";
      this.#notes.push(
        `the log starts mid-chain: seq ${
          this.#continuesAfter + 1
        } continues after seq ${this.#continuesAfter} from ${where}`,
      );
    }
    if (this.#verifier === null) {
      this.#notes.push(
        "signatures were not checked (--no-signatures): the chain's structure is intact, but anyone could have rewritten it",
      );
    }
    return {
      records: this.#records,
      firstSeq: this.#firstSeq,
      lastSeq: this.#records > 0 ? this.#maxSeq : null,
      problems: this.#problems,
      moreProblems: this.#more,
      notes: this.#notes,
      endsWith: this.#lastKind === "event" ? this.#lastMethod : null,
      signaturesChecked: this.#verifier !== null,
      continuesAfter: this.#continuesAfter,
      continuesBecause: this.#continuesBecause,
    };
  }

  /** The log must reach the anchored seq; a log that ends before it was cut back. */
  #finishAnchor(): void {
    const anchor = this.#anchor;
    if (anchor === undefined) return;
    const first = this.#continuesAfter !== null ? this.#continuesAfter + 1 : 1;
    if (this.#records > 0 && anchor.seq < first - 1) {
      this.#notes.push(
        `the anchor ${anchor.file} names seq ${anchor.seq}, before this log's first record: not checked against it`,
      );
      return;
    }
    if (anchor.seq <= this.#maxSeq) {
      this.#notes.push(`the log reaches seq ${anchor.seq}, which the anchor ${anchor.file} names`);
      return;
    }
    const from = this.#maxSeq + 1;
    const detail =
      `the anchor ${anchor.file} names seq ${anchor.seq} (${anchor.ts}); the log ends before it`;
    if (this.#problems.length >= MAX_PROBLEMS) {
      this.#more++;
      return;
    }
    // One run, however long: the records from the end of the log up to the anchored one.
    this.#problems.push({
      kind: "missing",
      file: "",
      line: 0,
      seq: from,
      seqEnd: anchor.seq,
      detail,
    });
  }
}
