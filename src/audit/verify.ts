/**
 * Checks a stored chain: signatures, `seq` continuity, `prev` links, torn lines and a clean end,
 * and, given an anchor, that the log still reaches the record the anchor names. Fed one line at a
 * time, file after file, so logs of any size take bounded memory.
 *
 * Every line must be the canonical JSON (RFC 8785, numbers as `parseLossless` keeps them) of the
 * record it holds, as the proxy writes it: anything else (a member given twice, members out of
 * order, blanks, another spelling of a number or string) is `modified`, for a reader other than
 * JSON.parse may see another record in it than the one the signature covers.
 *
 * A log starts at seq 1. A file may start mid-chain only with an event that says so, with
 * `continues_after_seq` one less than its own seq:
 * - `audit/recover` with `new_file: true`: the proxy had to start a new file (the old one was
 *   deleted, moved or replaced while it ran). The records before it are not here: `missing`,
 *   with the cause the event gives, in any scope;
 * - `audit/rotate`: the first record of a file after rotation; `archive` names the file before.
 *
 * When the lines are the whole log (the active file and every archive, or a database), its first
 * file may start with `audit/rotate` only when `audit/rotate` or `audit/retention` events
 * (`deleted_archives`) say retention deleted the archives that held the records before it; any
 * other start after seq 1 leaves those records `missing`. Between files the chain must run on: a
 * gap is `missing` (an archive deleted), a step back `reordered` (archives renamed out of order).
 *
 * A log ends cleanly only with `audit/stop`. A checkpoint vouches for the records before it, not
 * that none came after it, so a log that ends in one or goes on past its last one is `missing`
 * its end (the CLI calls that INCOMPLETE when it is the only problem). Two ends are not the log's:
 * an archive checked alone (rotation ended it; the next file goes on) and a file whose last record
 * is the checkpoint the proxy wrote on finding that file moved away, deleted or replaced (the
 * chain goes on in the new file); both are notes.
 *
 * @module
 */
import { hash } from "node:crypto";
import { basename } from "node:path";
import { canonicalize } from "./canonical.ts";
import type { AnchorHead } from "./anchor.ts";
import { KeyRing } from "./key_file.ts";
import { EventMethod, GENESIS } from "./record.ts";
import type { Scheme, SignatureVerifier } from "./signing.ts";
import {
  isJsonObject,
  isRawNumber,
  type JsonObject,
  type JsonValue,
  parseLossless,
} from "../jsonrpc/json.ts";

/** The kinds of problem `verify` names. */
export type ProblemKind = "modified" | "missing" | "reordered" | "torn" | "unsigned" | "wrong key";

/** One problem, or a run of the same problem over consecutive records. */
export interface Problem {
  kind: ProblemKind;
  /** 1-based line number in its file (of the first record of a run); 0 for none. */
  line: number;
  /** The file the line is in; `""` for a problem of no file in particular. */
  file: string;
  /** The seq concerned (first of a run), or null when it cannot be known. */
  seq: number | null;
  /** Last seq of a run of the same problem. */
  seqEnd: number | null;
  detail: string;
}

/** A key that checked signatures, and how many. */
export interface KeyUse {
  scheme: Scheme;
  keyId: string;
  records: number;
}

/**
 * The last record the log is vouched for up to: `audit/stop`, or a checkpoint (which vouches for
 * the records before it, but does not end the log).
 */
export interface CleanPoint {
  seq: number;
  method: typeof EventMethod.Stop | typeof EventMethod.Checkpoint;
}

/** The outcome of a check. */
export interface Report {
  records: number;
  /** The lowest seq read (the first record's, unless records stand out of order). */
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
  /** The keys that checked at least one signature, in the order first used. */
  keysUsed: KeyUse[];
  /** The seq the log continues after when it starts mid-chain (see the module doc), else null. */
  continuesAfter: number | null;
  /**
   * Why it starts mid-chain: the recover event's `cause` (`deleted`, `moved`, `replaced`),
   * `retention` (the archives before it were deleted by retention), `rotated` (a file after a
   * rotation, checked alone), or null.
   */
  continuesBecause: string | null;
  /** The last record is `audit/stop`. */
  endsClean: boolean;
  /**
   * The log's end is a problem (`missing`): it does not end in `audit/stop` and is not an archive
   * checked alone, nor a file the proxy moved on from, whose end the next file vouches for.
   */
  endMissing: boolean;
  /**
   * The file ends with the checkpoint the proxy wrote on finding it `deleted`, `moved` or
   * `replaced` while it ran (that cause), so the chain goes on in a new file; else null.
   */
  endsMovedOn: string | null;
  /** The last `audit/stop` or `audit/checkpoint`: the log is covered up to there. */
  lastClean: CleanPoint | null;
  /** Records after {@link lastClean} (every record when there is none). */
  uncovered: number;
  /** How many files the records were read from. */
  files: number;
}

/** An anchor to check the log against: its head, and where it was read from for messages. */
export interface AnchorToCheck extends AnchorHead {
  file: string;
}

/** What a {@link ChainVerifier} is told about the lines it is fed. */
export interface ChainVerifierOptions {
  /** The head the log must still reach. */
  anchor?: AnchorToCheck;
  /**
   * What the lines are:
   * - `log`: the whole log (every archive and the active file, or a database): a first file that
   *   starts with `audit/rotate` after seq 1 must be explained by retention (module doc);
   * - `file` (the default): one file checked alone: such a start is a note, like that of a new
   *   file's `audit/recover`;
   * - `archive`: one archive checked alone: as `file`, and it may end mid-chain too (rotation
   *   ended it; the file after it continues the chain), which is a note.
   */
  scope?: "log" | "file" | "archive";
}

const MAX_PROBLEMS = 1000;
// Gaps are kept as ranges; past this many, new ones are reported at once (a hostile log).
const MAX_GAPS = 100_000;
// Retention's deleted archives kept to explain a log that starts after seq 1.
const MAX_DELETED = 100_000;

/** What the `cause` of an `audit/recover` event the proxy wrote at run time means. */
const CAUSES: Readonly<Record<string, string>> = {
  deleted: "deleted",
  moved: "moved away",
  replaced: "replaced by something it did not create",
  truncated: "cut short (records at its end removed)",
  extended: "written into by another program",
};
/** Causes of a new file after which the old file's records are elsewhere or gone. */
const NEW_FILE_CAUSES = new Set(["deleted", "moved", "replaced"]);

/**
 * Why the records before a file that an `audit/recover` with `new_file: true` starts (at `seq`)
 * are not in it: a `missing` problem's detail. Says nothing of their seqs, so that it stays true
 * of each part when a record turns up in their midst.
 */
function lostBefore(cause: string | null, seq: number): string {
  const says = `(the audit/recover at seq ${seq} says so)`;
  switch (cause) {
    case "deleted":
      return `the records before seq ${seq} were in a file that was deleted while the proxy ran ${says}: they are gone unless a copy of that file exists, and nothing here vouches for them`;
    case "moved":
      return `the records before seq ${seq} are in the file that was moved away while the proxy ran ${says}: they are not checked here (verify that file too)`;
    case "replaced":
      return `the records before seq ${seq} were in a file that something else replaced while the proxy ran ${says}: they are not checked here`;
    default:
      return `the records before seq ${seq} were in an earlier file (the audit/recover at seq ${seq} gives ${
        cause === null ? "no cause" : `the cause ${JSON.stringify(cause)}`
      }): they are not checked here`;
  }
}

// How many recent record hashes are kept to check `prev` links of records that come late.
const HASH_WINDOW = 4096;
// Marks the gap before a whole log's first file that retention may explain.
const BEFORE_FIRST_FILE = "";

interface Unparsed {
  file: string;
  line: number;
  offset: number;
  afterSeq: number | null;
  final: boolean;
  /** Its position among all lines fed. */
  index: number;
}

interface Linked {
  hash: string;
  prev: unknown;
  file: string;
  line: number;
}

interface Gap {
  from: number;
  to: number;
  why: string;
}

/** Seqs not seen yet, as sorted disjoint ranges: a whole deleted archive is one entry. */
class Gaps {
  #list: Gap[] = [];

  get full(): boolean {
    return this.#list.length >= MAX_GAPS;
  }

  get ranges(): readonly Gap[] {
    return this.#list;
  }

  /** Another set of the same ranges, to change without changing this one. */
  copy(): Gaps {
    const other = new Gaps();
    other.#list = this.#list.map((g) => ({ ...g }));
    return other;
  }

  /** Adds `from`-`to`, above every range held (seqs only grow past the highest seen). */
  add(from: number, to: number, why: string): void {
    const i = this.#list.findLastIndex((g) => g.to < from);
    this.#list.splice(i + 1, 0, { from, to, why });
  }

  /** Removes one seq; true when it was in a gap. */
  delete(seq: number): boolean {
    let lo = 0;
    let hi = this.#list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const g = this.#list[mid]!;
      if (seq < g.from) hi = mid - 1;
      else if (seq > g.to) lo = mid + 1;
      else {
        if (g.from === g.to) this.#list.splice(mid, 1);
        else if (seq === g.from) g.from++;
        else if (seq === g.to) g.to--;
        else {
          this.#list.splice(mid + 1, 0, { from: seq + 1, to: g.to, why: g.why });
          g.to = seq - 1;
        }
        return true;
      }
    }
    return false;
  }
}

/** The seq ranges of `from`-`to` that none of `cover` holds, and those it does. */
function subtract(
  from: number,
  to: number,
  cover: readonly { from: number; to: number }[],
): { left: [number, number][]; covered: [number, number][] } {
  const sorted = [...cover].sort((a, b) => a.from - b.from);
  const left: [number, number][] = [];
  const covered: [number, number][] = [];
  let at = from;
  for (const c of sorted) {
    if (c.to < at) continue;
    if (c.from > to) break;
    if (c.from > at) left.push([at, c.from - 1]);
    const end = Math.min(c.to, to);
    covered.push([Math.max(at, c.from), end]);
    at = end + 1;
    if (at > to) break;
  }
  if (at <= to) left.push([at, to]);
  return { left, covered };
}

/**
 * For an `audit/recover` at `seq` that opens a new file (`new_file: true`, continuing after the
 * seq before its own): its `cause`, null when it gives none; undefined for any other record.
 */
function newFileCause(record: JsonObject, seq: number): string | null | undefined {
  const params = record.params;
  if (
    record.kind !== "event" || record.method !== EventMethod.Recover || !isJsonObject(params) ||
    params.new_file !== true || params.continues_after_seq !== seq - 1
  ) {
    return undefined;
  }
  return typeof params.cause === "string" ? params.cause : null;
}

/** Whether every object in `value` has its members in RFC 8785 order. Iterative: any depth. */
function membersSorted(value: JsonValue): boolean {
  const pending: JsonValue[] = [value];
  for (let v = pending.pop(); v !== undefined; v = pending.pop()) {
    if (typeof v !== "object" || v === null || isRawNumber(v)) continue;
    if (Array.isArray(v)) {
      for (const item of v) if (typeof item === "object" && item !== null) pending.push(item);
      continue;
    }
    let last: string | null = null;
    for (const key of Object.keys(v)) {
      // `<` compares UTF-16 code units, the order RFC 8785 sorts members in.
      if (last !== null && !(last < key)) return false;
      last = key;
      const member = v[key];
      if (typeof member === "object" && member !== null) pending.push(member);
    }
  }
  return true;
}

/**
 * Whether `text` is the canonical JSON of `record`, its parse, and the canonical text of the
 * record without `sig`, which its signature covers.
 *
 * Most lines take the quick way: JSON.stringify writes a value's members in the order it holds
 * them (the order of the text) and writes numbers, strings and kept raw numbers exactly as RFC
 * 8785 and `canonicalize` do, so when it gives `text` back and every object's members are sorted,
 * `text` is canonical. Anything else (a line that is not canonical, members named like array
 * indexes, which JavaScript keeps in numeric order, a value too deep for the native writer) is
 * decided by the canonicalizer itself.
 */
function canonicalCheck(
  record: JsonObject,
  text: string,
): { canonical: boolean; unsigned: string } {
  let quick: string | null = null;
  try {
    quick = JSON.stringify(record);
  } catch {
    // Nested deeper than the native writer goes: the canonicalizer has no such limit.
  }
  if (quick === text && membersSorted(record)) {
    const { sig: _, ...unsigned } = record;
    return { canonical: true, unsigned: JSON.stringify(unsigned) };
  }
  const forms = canonicalForms(record);
  return { canonical: forms.stored === text, unsigned: forms.unsigned };
}

/**
 * A record's canonical text as stored (with `sig`) and as signed (without), from one pass: the
 * members that sort before `sig` and those after it are canonicalized apart and joined both ways.
 */
function canonicalForms(record: JsonObject): { stored: string; unsigned: string } {
  // No prototype: a member named __proto__ is a member like any other.
  const before: JsonObject = Object.create(null);
  const after: JsonObject = Object.create(null);
  for (const key of Object.keys(record)) {
    // `<` compares UTF-16 code units, the order RFC 8785 sorts members in.
    if (key < "sig") before[key] = record[key]!;
    else if (key > "sig") after[key] = record[key]!;
  }
  const head = canonicalize(before).slice(1, -1);
  const tail = canonicalize(after).slice(1, -1);
  const sig = record.sig;
  const join = (parts: string[]) => `{${parts.filter((p) => p !== "").join(",")}}`;
  return {
    stored: join([head, sig === undefined ? "" : `"sig":${canonicalize(sig)}`, tail]),
    unsigned: join([head, tail]),
  };
}

const range = (a: number, b: number) => a === b ? `seq ${a}` : `seq ${a}-${b}`;

/** Where a line that is not a record stands, for messages. */
const standing = (u: Unparsed) =>
  u.afterSeq === null ? "before the first record" : `after seq ${u.afterSeq}`;
const tornText = (u: Unparsed) => `record cut short by a crash (${standing(u)}, byte ${u.offset})`;
const notRecordText = (u: Unparsed) =>
  `line is not a valid record (${standing(u)}, byte ${u.offset})`;
const UNEXPLAINED_START =
  "record is missing: the log's first file starts after it, and no audit/rotate or " +
  "audit/retention event says retention deleted it";

/**
 * What a check has found so far, while lines may still follow (see
 * {@link ChainVerifier.soFar}).
 */
export interface Interim {
  records: number;
  /** The highest seq read, or null before the first record. */
  lastSeq: number | null;
  /** At most 1,000; the rest are counted in {@link Interim.moreProblems}. */
  problems: Problem[];
  moreProblems: number;
  /** The last record's method when it is an event. */
  endsWith: string | null;
  /** The last record is `audit/stop`. */
  endsClean: boolean;
  /** The last `audit/stop` or `audit/checkpoint`. */
  lastClean: CleanPoint | null;
  /** Records after {@link lastClean} (every record when there is none). */
  uncovered: number;
}

/** Checks records line by line; call {@link ChainVerifier.finish} at the end. */
export class ChainVerifier {
  #keys: KeyRing | null;
  #scope: "log" | "file" | "archive";
  /** The last line fed is a writer's, still being written (see {@link ChainVerifier.midWrite}). */
  #midWrite = false;
  #problems: Problem[] = [];
  #more = 0;
  #notes: string[] = [];
  #records = 0;
  #lines = 0;
  #firstSeq: number | null = null;
  #minSeq: number | null = null;
  #maxSeq = 0;
  /** Recent records by seq: the hash of their stored bytes, their prev, and where they stand. */
  #hashes = new Map<number, Linked>();
  #gaps = new Gaps();
  #flagged = new Set<string>();
  #unparsed: Unparsed[] = [];
  /** Torn lines that recovery events name, as `file:offset` and `*:offset`. */
  #tornListed = new Set<string>();
  /** The last event that is not rotation's or retention's bookkeeping, for the restart note. */
  #lastRunMethod: string | null = null;
  #lastMethod: string | null = null;
  #lastKind: string | null = null;
  #lastSeqSeen: number | null = null;
  #continuesAfter: number | null = null;
  #continuesBecause: string | null = null;
  #anchor: AnchorToCheck | undefined;
  #file: string | null = null;
  #prevFile: string | null = null;
  #files = 0;
  #fileHasRecord = false;
  #clean: CleanPoint | null = null;
  /** The `cause` of the last checkpoint, when the proxy wrote it on moving on to a new file. */
  #cleanCause: string | null = null;
  #recordsAtClean = 0;
  #used = new Map<string, KeyUse>();
  /** What retention says it deleted: seq ranges, and names for the note. */
  #deleted: { from: number; to: number; name: string; rule: string; at: number }[] = [];

  /**
   * @param keys the key or keys to check signatures with (each record's signature names its key
   *   id); `null` checks the structure alone (no signature, present or missing, is looked at),
   *   which cannot vouch for the content
   */
  constructor(
    keys: SignatureVerifier | KeyRing | null,
    options: ChainVerifierOptions = {},
  ) {
    this.#keys = keys === null || keys instanceof KeyRing ? keys : new KeyRing([{
      verifier: keys,
      source: "the key given",
      fingerprint: "",
    }]);
    this.#anchor = options.anchor;
    this.#scope = options.scope ?? "file";
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
    this.#push({ kind, file, line, seq, seqEnd: seq, detail });
  }

  #push(p: Problem): void {
    if (this.#problems.length >= MAX_PROBLEMS) {
      this.#more++;
      return;
    }
    this.#problems.push(p);
  }

  /**
   * Checks one line. `text` excludes the newline; `terminated` is false only for a last line
   * that has none. Lines come file after file, in the chain's order; a new `file` starts a new
   * file. Never throws: a line that cannot be checked is a problem on that line.
   */
  line(text: string, file: string, lineNo: number, offset: number, terminated: boolean): void {
    this.#lines++;
    if (file !== this.#file) {
      this.#prevFile = this.#fileHasRecord ? this.#file : this.#prevFile;
      this.#file = file;
      this.#files++;
      this.#fileHasRecord = false;
    }
    try {
      this.#line(text, file, lineNo, offset, terminated);
    } catch (e) {
      // A hostile line (nested too deep to canonicalize, say) must not end the check.
      const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.#add("modified", file, lineNo, null, `line cannot be checked (${why})`);
    }
  }

  /**
   * Says that the last line fed, which has no newline, is a line a writer is still writing (its
   * caller saw a writer hold the log's lock, or the line completed since it was read): a note, not
   * a torn record. Call before {@link ChainVerifier.finish}.
   */
  midWrite(): void {
    this.#midWrite = true;
  }

  /**
   * A stored row whose indexed columns disagree with its stored line (SQLite): someone edited the
   * row, not through the proxy. `modified` at that seq.
   */
  disagrees(file: string, lineNo: number, seq: number, detail: string): void {
    this.#add("modified", file, lineNo, seq, `a column disagrees with the stored line (${detail})`);
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
        index: this.#lines,
      });
      return;
    }
    const seq = record.seq;
    if (record.v !== 1 || typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      this.#add("modified", file, lineNo, null, "not an audit record (no v:1 or no valid seq)");
      return;
    }
    this.#records++;
    const firstOfFile = !this.#fileHasRecord;
    this.#fileHasRecord = true;
    if (this.#firstSeq === null) this.#first(record, seq, file, lineNo);
    else if (firstOfFile) this.#boundary(record, seq, file);
    this.#firstSeq ??= seq;
    this.#minSeq = Math.min(this.#minSeq ?? seq, seq);
    const previous = this.#lastSeqSeen;
    this.#lastSeqSeen = seq;
    const hashed = hash("sha256", text, "hex");
    const anchor = this.#anchor;
    if (anchor !== undefined && seq === anchor.seq && hashed !== anchor.hash) {
      this.#add(
        "modified",
        file,
        lineNo,
        seq,
        `its stored bytes do not match the anchor ${anchor.file} (written for seq ${seq} at ${anchor.ts})`,
      );
    }

    const canonical = canonicalCheck(record, text);
    if (!canonical.canonical) {
      this.#add(
        "modified",
        file,
        lineNo,
        seq,
        "the stored line is not its record's canonical JSON (a member repeated or out of order, " +
          "blanks, or a value spelled another way): not as the proxy writes it",
      );
    }
    const sig = record.sig;
    if (sig !== null && typeof sig !== "string") {
      this.#add("modified", file, lineNo, seq, "sig is not a string");
    } else if (this.#keys !== null) {
      this.#signature(this.#keys, canonical.unsigned, sig, file, lineNo, seq);
    }

    const expected = this.#maxSeq + 1;
    if (seq > expected) {
      const lost = firstOfFile ? newFileCause(record, seq) : undefined;
      const why = lost !== undefined
        ? lostBefore(lost, seq)
        : firstOfFile && this.#prevFile !== null
        ? `record is missing (${basename(this.#prevFile)} ends before it and ${
          basename(file)
        } starts after it: a file of the log deleted?)`
        : "record is missing";
      this.#gap(expected, seq - 1, why);
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

    this.#links(record, seq, hashed, file, lineNo);
    this.#event(record, seq, previous);
  }

  #gap(from: number, to: number, why: string): void {
    if (this.#gaps.full) {
      this.#push({ kind: "missing", file: "", line: 0, seq: from, seqEnd: to, detail: why });
    } else {
      this.#gaps.add(from, to, why);
    }
  }

  #signature(
    keys: KeyRing,
    canonical: string,
    sig: string | null,
    file: string,
    lineNo: number,
    seq: number,
  ): void {
    const check = keys.check(canonical, sig);
    const by = check === "ok" ? keys.verifierFor(sig) : undefined;
    const outside = by === undefined ? null : keys.outsideSeqs(sig, seq);
    if (by !== undefined && outside !== null) {
      // A retired key (or one not yet in use) signs nothing here, however well it signs.
      this.#add(
        "wrong key",
        file,
        lineNo,
        seq,
        `signed with ${by.scheme} key id ${by.keyId}, valid only for ${outside}`,
      );
    } else if (by !== undefined) {
      const name = `${by.scheme}:${by.keyId}`;
      const use = this.#used.get(name);
      if (use === undefined) {
        this.#used.set(name, { scheme: by.scheme, keyId: by.keyId, records: 1 });
      } else use.records++;
    } else if (check === "unsigned") {
      this.#add("unsigned", file, lineNo, seq, "record has no signature");
    } else if (check === "wrong key") {
      const [scheme, id] = typeof sig === "string" ? sig.split(":") : [];
      const only = keys.size === 1 ? keys.keys[0] : undefined;
      this.#add(
        "wrong key",
        file,
        lineNo,
        seq,
        only !== undefined
          ? `signed with key id ${id}, checked with ${only.keyId}`
          : `signed with ${scheme} key id ${id}, which none of the keys given has (${keys.describe()})`,
      );
    } else if (check === "modified") {
      this.#add("modified", file, lineNo, seq, "signature does not match the record");
    } else if (check === "malformed") {
      this.#add("modified", file, lineNo, seq, "sig is malformed");
    }
  }

  /**
   * `prev` links, both ways: to the record before, and from the record after when it came first
   * (archives out of order), so every link in the window is checked whatever the order.
   */
  #links(record: JsonObject, seq: number, hashed: string, file: string, lineNo: number): void {
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
    const after = this.#hashes.get(seq + 1);
    if (after !== undefined && after.prev !== hashed) {
      this.#add(
        "modified",
        file,
        lineNo,
        seq,
        "its stored bytes do not match the next record's prev",
      );
    }
    if (!this.#hashes.has(seq)) this.#hashes.set(seq, { hash: hashed, prev, file, line: lineNo });
    if (this.#hashes.size > HASH_WINDOW) {
      const oldest = this.#hashes.keys().next().value;
      if (oldest !== undefined) this.#hashes.delete(oldest);
    }
  }

  /** What the proxy's own events say: restarts, recoveries, clean points, retention. */
  #event(record: JsonObject, seq: number, previous: number | null): void {
    const method = typeof record.method === "string" ? record.method : null;
    const event = record.kind === "event";
    const params = isJsonObject(record.params) ? record.params : {};
    // Only where the chain runs straight on: out of order, the record before says nothing.
    if (event && method === EventMethod.Start && previous !== null && previous === seq - 1) {
      if (this.#lastRunMethod !== EventMethod.Stop && this.#lastRunMethod !== EventMethod.Recover) {
        this.#notes.push(
          `seq ${seq}: audit/start while an earlier run had written no audit/stop (a proxy that crashed, or several sharing the log)`,
        );
      }
    }
    if (event && method === EventMethod.Recover) {
      const torn = params.torn;
      if (Array.isArray(torn)) {
        for (const t of torn) {
          if (!isJsonObject(t) || typeof t.offset !== "number") continue;
          const where = typeof t.file === "string" ? basename(t.file) : "*";
          this.#tornListed.add(`${where}:${t.offset}`);
        }
      }
      const cause = params.cause;
      this.#notes.push(
        typeof cause === "string" && cause !== "torn"
          ? `seq ${seq}: the proxy found its log ${CAUSES[cause] ?? cause} while it ran`
          : `seq ${seq}: recovery after a crash (torn line(s) kept in place)`,
      );
    }
    if (event && (method === EventMethod.Rotate || method === EventMethod.Retention)) {
      this.#retention(params.deleted_archives, seq);
    }
    if (event && method === EventMethod.Checkpoint) this.#checkpoint(record, params, seq);
    if (event && (method === EventMethod.Stop || method === EventMethod.Checkpoint)) {
      this.#clean = { seq, method };
      this.#recordsAtClean = this.#records;
      const cause = params.cause;
      this.#cleanCause = method === EventMethod.Checkpoint && typeof cause === "string" &&
          NEW_FILE_CAUSES.has(cause)
        ? cause
        : null;
    }
    if (!event || (method !== EventMethod.Rotate && method !== EventMethod.Retention)) {
      this.#lastRunMethod = event ? method : null;
    }
    this.#lastMethod = method;
    this.#lastKind = typeof record.kind === "string" ? record.kind : null;
  }

  /** A periodic checkpoint names the head it follows: its own seq − 1 and its own prev. */
  #checkpoint(record: JsonObject, params: JsonObject, seq: number): void {
    const file = this.#file ?? "";
    const headSeq = params.head_seq;
    const headHash = params.head_hash;
    if (headSeq !== undefined && headSeq !== seq - 1) {
      this.#add(
        "modified",
        file,
        0,
        seq,
        `the checkpoint names head seq ${JSON.stringify(headSeq)} but stands at seq ${seq}`,
      );
    } else if (headHash !== undefined && headHash !== record.prev) {
      this.#add("modified", file, 0, seq, "the checkpoint's head_hash is not its own prev");
    }
  }

  #retention(list: unknown, at: number): void {
    if (!Array.isArray(list)) return;
    for (const d of list) {
      if (this.#deleted.length >= MAX_DELETED) return;
      if (!isJsonObject(d)) continue;
      const { first_seq: from, last_seq: to, name, rule } = d;
      if (
        typeof from !== "number" || typeof to !== "number" || !Number.isSafeInteger(from) ||
        !Number.isSafeInteger(to) || from < 1 || to < from
      ) {
        continue;
      }
      this.#deleted.push({
        from,
        to,
        name: typeof name === "string" ? name : "?",
        rule: typeof rule === "string" ? rule : "?",
        at,
      });
    }
  }

  /**
   * The first record: seq 1, or an event that opens a file mid-chain (module doc). Any other
   * start leaves seq 1 up to it missing.
   */
  #first(record: JsonObject, seq: number, file: string, lineNo: number): void {
    if (seq === 1) return;
    const params = record.params;
    if (
      record.kind !== "event" || !isJsonObject(params) || params.continues_after_seq !== seq - 1
    ) {
      return;
    }
    const lost = newFileCause(record, seq);
    if (lost !== undefined) {
      // The records before it are not here, whatever happened to them.
      this.#continuesBecause = lost;
      this.#gaps.add(1, seq - 1, lostBefore(lost, seq));
    } else if (record.method === EventMethod.Rotate) {
      if (this.#scope === "log") {
        // Retention may have deleted what came before; finish() decides once every event is read.
        this.#gaps.add(1, seq - 1, BEFORE_FIRST_FILE);
        this.#continuesBecause = "retention";
      } else {
        this.#continuesBecause = "rotated";
      }
    } else {
      return;
    }
    this.#maxSeq = seq - 1;
    this.#continuesAfter = seq - 1;
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

  /** The first record of a later file, when it carries the chain on with no gap. */
  #boundary(record: JsonObject, seq: number, file: string): void {
    if (seq !== this.#maxSeq + 1 || this.#prevFile === null) return;
    const params = isJsonObject(record.params) ? record.params : {};
    const event = record.kind === "event";
    const before = basename(this.#prevFile).replace(/\.gz$/, "");
    if (event && record.method === EventMethod.Rotate) {
      const archive = typeof params.archive === "string"
        ? basename(params.archive).replace(/\.gz$/, "")
        : null;
      if (archive !== null && archive !== before) {
        this.#notes.push(
          `seq ${seq}: audit/rotate says the records before it went to ${archive}, but the file before ${
            basename(file)
          } is ${before} (renamed?)`,
        );
      }
    } else if (!(event && record.method === EventMethod.Recover && params.new_file === true)) {
      this.#notes.push(
        `seq ${seq}: ${
          basename(file)
        } starts without an audit/rotate event, though the chain runs on from ${before}`,
      );
    }
  }

  /** Records read so far. */
  get records(): number {
    return this.#records;
  }

  /** The highest seq read so far, or null before the first record. */
  get lastSeq(): number | null {
    return this.#records > 0 ? this.#maxSeq : null;
  }

  /**
   * What the check has found so far, without ending it: more lines may be fed after (a log
   * still being written, followed as it grows). The problems of the lines fed, the lines that are
   * not records, and the seqs below the highest one read that no line held — judged as
   * {@link finish} judges them; but not the log's end, which only `finish` judges (whether it ends
   * in `audit/stop` is told by `endsClean`), nor the anchor, nor the log holding no record. A last
   * line fed with no newline is left out: it may be a writer's line not yet complete. Changes
   * nothing.
   */
  soFar(): Interim {
    const problems = this.#problems.slice(0, MAX_PROBLEMS);
    let more = this.#more;
    const push = (p: Problem) => {
      if (problems.length >= MAX_PROBLEMS) more++;
      else problems.push(p);
    };
    const gaps = this.#gaps.copy();
    for (const u of this.#unparsed) {
      if (u.final && u.index === this.#lines) continue;
      const listed = this.#tornListed.has(`${basename(u.file)}:${u.offset}`) ||
        this.#tornListed.has(`*:${u.offset}`);
      if (u.final || listed) {
        push({
          kind: "torn",
          file: u.file,
          line: u.line,
          seq: null,
          seqEnd: null,
          detail: tornText(u),
        });
      } else {
        const seq = u.afterSeq === null ? 1 : u.afterSeq + 1;
        const at = gaps.delete(seq) ? seq : null;
        push({
          kind: "modified",
          file: u.file,
          line: u.line,
          seq: at,
          seqEnd: at,
          detail: notRecordText(u),
        });
      }
    }
    for (const g of gaps.ranges) {
      const missing = (from: number, to: number, detail: string) =>
        push({ kind: "missing", file: "", line: 0, seq: from, seqEnd: to, detail });
      if (g.why !== BEFORE_FIRST_FILE) missing(g.from, g.to, g.why);
      else {
        for (const [a, b] of subtract(g.from, g.to, this.#deleted).left) {
          missing(a, b, UNEXPLAINED_START);
        }
      }
    }
    return {
      records: this.#records,
      lastSeq: this.lastSeq,
      problems,
      moreProblems: more,
      endsWith: this.#lastKind === "event" ? this.#lastMethod : null,
      endsClean: this.#lastKind === "event" && this.#lastMethod === EventMethod.Stop,
      lastClean: this.#clean,
      uncovered: this.#records - this.#recordsAtClean,
    };
  }

  /** Ends the check. */
  finish(): Report {
    for (const u of this.#unparsed) {
      const listed = this.#tornListed.has(`${basename(u.file)}:${u.offset}`) ||
        this.#tornListed.has(`*:${u.offset}`);
      if (u.final && this.#midWrite && u.index === this.#lines) {
        this.#notes.push(
          `last line incomplete (a writer may be mid-write): ${basename(u.file)} line ${u.line}, ${
            standing(u)
          }, byte ${u.offset}; not checked`,
        );
      } else if (u.final || listed) {
        this.#add("torn", u.file, u.line, null, tornText(u));
      } else {
        // A damaged line between seq k and k+2 is seq k+1: name it, and do not call it missing.
        const seq = u.afterSeq === null ? 1 : u.afterSeq + 1;
        const known = this.#gaps.delete(seq);
        this.#add("modified", u.file, u.line, known ? seq : null, notRecordText(u));
      }
    }
    this.#finishGaps();
    const endsClean = this.#lastKind === "event" && this.#lastMethod === EventMethod.Stop;
    const uncovered = this.#records - this.#recordsAtClean;
    const clean = this.#clean;
    const onCheckpoint = !endsClean && clean !== null && uncovered === 0;
    const movedOn = onCheckpoint ? this.#cleanCause : null;
    if (this.#records === 0) {
      this.#add(
        "missing",
        "",
        0,
        null,
        "the log holds no records (an audit log starts with audit/start)",
      );
    } else if (!endsClean && this.#scope === "archive") {
      this.#notes.push(
        `the archive ends at seq ${this.#maxSeq}, where rotation moved the chain on to the next file: its end is checked when the whole log is (give the active log's path)`,
      );
    } else if (movedOn !== null) {
      this.#notes.push(
        `the file ends at seq ${this.#maxSeq} with the audit/checkpoint the proxy wrote on finding it ${
          CAUSES[movedOn] ?? movedOn
        } while it ran: the chain goes on in a new file at the log's path, which holds the records after it (verify that file too)`,
      );
    } else if (!endsClean) {
      const why = "(proxy still running, crashed, or records removed from the end)";
      this.#add(
        "missing",
        "",
        0,
        null,
        clean === null
          ? `log ends at seq ${this.#maxSeq} without audit/stop ${why}`
          : onCheckpoint
          ? `log ends at seq ${this.#maxSeq} with audit/checkpoint, not audit/stop: a checkpoint vouches for the records before it, not that none came after it ${why}`
          : `log ends at seq ${this.#maxSeq} without audit/stop: the ${uncovered} record${
            uncovered === 1 ? "" : "s"
          } after the last ${clean.method} at seq ${clean.seq} are not yet covered ${why}`,
      );
    }
    this.#finishAnchor();
    // A new file's audit/recover leaves what came before missing (a problem that says why).
    const because = this.#continuesBecause;
    if (this.#continuesAfter !== null && (because === "retention" || because === "rotated")) {
      const where = because === "retention"
        ? "archives that are not here"
        : "the archive before this one (give the active log's path to check them together)";
      this.#notes.push(
        `the log starts mid-chain: seq ${
          this.#continuesAfter + 1
        } continues after seq ${this.#continuesAfter} from ${where}`,
      );
    }
    if (this.#keys === null) {
      this.#notes.push(
        "signatures were not checked (--no-signatures): the chain's structure is intact, but anyone could have rewritten it",
      );
    }
    return {
      records: this.#records,
      firstSeq: this.#minSeq,
      lastSeq: this.#records > 0 ? this.#maxSeq : null,
      problems: this.#problems,
      moreProblems: this.#more,
      notes: this.#notes,
      endsWith: this.#lastKind === "event" ? this.#lastMethod : null,
      signaturesChecked: this.#keys !== null,
      keysUsed: [...this.#used.values()],
      continuesAfter: this.#continuesAfter,
      continuesBecause: this.#continuesBecause,
      endsClean,
      endMissing: this.#records > 0 && !endsClean && this.#scope !== "archive" && movedOn === null,
      endsMovedOn: movedOn,
      lastClean: this.#clean,
      uncovered,
      files: this.#files,
    };
  }

  /**
   * Seqs never seen are missing, but for those before a whole log's first file that retention
   * says it deleted: those are a note.
   */
  #finishGaps(): void {
    const explained: string[] = [];
    const unexplained: Gap[] = [];
    for (const g of this.#gaps.ranges) {
      if (g.why !== BEFORE_FIRST_FILE) {
        unexplained.push(g);
        continue;
      }
      const { left, covered } = subtract(g.from, g.to, this.#deleted);
      for (const [a, b] of covered) {
        const by = this.#deleted.filter((d) => d.to >= a && d.from <= b);
        const names = by.slice(0, 5).map((d) => `${d.name} (${d.rule}, at seq ${d.at})`);
        if (by.length > 5) names.push(`${by.length - 5} more`);
        explained.push(`${range(a, b)} were in archives retention deleted: ${names.join(", ")}`);
      }
      for (const [a, b] of left) unexplained.push({ from: a, to: b, why: UNEXPLAINED_START });
    }
    if (explained.length === 0 && this.#continuesBecause === "retention") {
      // Nothing retention deleted: what came before is missing or came later, not a start.
      this.#continuesBecause = null;
      this.#continuesAfter = null;
    }
    for (const g of unexplained) {
      this.#push({ kind: "missing", file: "", line: 0, seq: g.from, seqEnd: g.to, detail: g.why });
    }
    for (const n of explained) this.#notes.push(n);
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
    // One run, however long: the records from the end of the log up to the anchored one.
    this.#push({ kind: "missing", file: "", line: 0, seq: from, seqEnd: anchor.seq, detail });
  }
}
