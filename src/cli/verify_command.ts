/**
 * `mcp-audit verify [--key-file FILE]... [--public-key FILE] [--key-id ID] [--anchor FILE]
 * [--no-signatures] PATH`: checks an audit log, whichever backend wrote it.
 *
 * - PATH a JSONL log (`audit.jsonl`): its archives (`audit.jsonl.20260610T220000Z`, `.1`, `.gz`…)
 *   in chain order, then the file itself, as one chain. Problems name the file and line.
 * - PATH one archive (its name ends in a rotation stamp, `.gz` or not): that file alone; its
 *   start after seq 1 is a note, as for a file that begins with a new file's `audit/recover`.
 * - PATH a SQLite database (told by its first bytes, whatever its name): every row's stored line
 *   in seq order, and each row whose indexed columns disagree with its line is `modified`.
 *
 * Keys: each signature names its scheme and key id, and is checked with the key given for that
 * pair. The keys are those of every `--key-file` (format in `src/audit/key_file.ts`), plus the
 * `--public-key` (Ed25519), or else the HMAC secret in `AUDIT_SECRET` (or
 * `MCP_AUDIT_SIGNING_SECRET`); `--key-id` names the key id of the latter two. So a log that spans a
 * key rotation verifies with a key file listing the old and new keys; a record signed with a key
 * not given is `wrong key`.
 *
 * A log being written: verify reads what is there when it gets there. A last line of the active
 * file that has no newline yet is a writer mid-write when a writer holds the log's lock, or the
 * line got its newline since: a note, not `torn`; with no writer at work it is `torn` (see
 * `beingWritten`). A log that does not end in `audit/stop` is `missing` its end, as records after
 * its last checkpoint could have been cut away unseen, the checkpoint itself included: a log cut
 * right after a checkpoint looks just like one whose proxy is about to write the next record. The
 * summary then says `INCOMPLETE` and how far the log is covered ("intact up to its last
 * checkpoint at seq N (M records after it not yet covered)", or "intact up to its last
 * checkpoint at seq N, where it ends without audit/stop") when that is the only problem.
 *
 * Exit codes (a script may rely on them):
 * - 0: verified: no problem at all: every signature checked with a key given (and within the seqs
 *   its key file gives it), every line the canonical form of its record, the chain intact across
 *   every file from seq 1 (or from archives retention deleted), the log ending in `audit/stop`
 *   (and the anchor, when given, reached). One archive checked alone, or a file whose proxy moved
 *   on to a new file, may end otherwise: a note;
 * - 1: problems found;
 * - 2: could not check: the log, the anchor or a key file cannot be read or is not valid, or no
 *   key was given (the one way to check without a key is to ask for it with `--no-signatures`);
 * - 3: `--no-signatures`: the chain's structure is intact, but without signatures nothing vouches
 *   for the content, so this is never 0;
 * - 4: `INCOMPLETE`: no problem but the end: intact and signed up to the last checkpoint (or
 *   `audit/stop` of an earlier run), which is the last record or has records after it, and no
 *   `audit/stop` after them — a running log (`audit.checkpoint.*` keeps the window small), or a
 *   log cut after that checkpoint. A script watching a live log accepts 4; one checking a log
 *   whose proxies have all stopped does not.
 *
 * @module
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { AnchorFormatError, checkAnchor, parseAnchor } from "../audit/anchor.ts";
import type { KeyRing } from "../audit/key_file.ts";
import { type AnchorToCheck, ChainVerifier, type Problem, type Report } from "../audit/verify.ts";
import { openArchiveLines } from "../audit/storage/archives.ts";
import { StorageError } from "../audit/storage/errors.ts";
import {
  DEFAULT_MAX_LINE,
  LineTooLongError,
  LogFiles,
  type LogLine,
  OpenedLogFile,
} from "../audit/storage/log_lines.ts";
import { isSqliteFile, readSqliteLines } from "../audit/storage/sqlite_lines.ts";
import { LineSplitter } from "../streams/line_splitter.ts";
import { UsageError } from "./errors.ts";
import { KEY_FLAG_OPTIONS, keysFor } from "./key_flags.ts";

/** Everything the command touches outside itself. */
export interface VerifyIo {
  env: Readonly<Record<string, string>>;
  out: (line: string) => void;
  /** Progress output; `undefined` when stderr is not a terminal. */
  progress: ((text: string) => void) | undefined;
}

const USAGE = "usage: mcp-audit verify [--key-file FILE]... [--public-key FILE] [--key-id ID] " +
  "[--anchor FILE] [--no-signatures] PATH";

/** Exit code 3: the chain's structure is intact, but no signature was checked. */
export const EXIT_UNVOUCHED = 3;
/**
 * Exit code 4: `INCOMPLETE`: every record checked, the chain intact up to its last checkpoint
 * (or `audit/stop`), and records after it that no checkpoint covers yet: a log still being
 * written, or one whose end was cut after that checkpoint.
 */
export const EXIT_INCOMPLETE = 4;

const NO_KEY = "mcp-audit verify: no key to check signatures with: set AUDIT_SECRET (HMAC), " +
  "give --public-key FILE (Ed25519) or --key-file FILE (several keys); --no-signatures checks " +
  "the chain alone (exit 3 at best)";
const MAX_LINE = DEFAULT_MAX_LINE;
// Below this, a check is over before progress would be worth showing.
const PROGRESS_FROM = 8 << 20;
const PROGRESS_EVERY_MS = 250;
const ARCHIVE_NAME = /\.\d{8}T\d{6}Z(?:\.\d+)?(?:\.gz)?$/;

/** A failure to check that is nobody's problem with the log: exit 2 with this message. */
class CannotCheck extends Error {
  override name = "CannotCheck";
}

function where(p: Problem, multiFile: boolean, rows: boolean): string {
  // A row's line number is its seq column: named only when the line gives no seq of its own.
  const at = p.file === "" || p.line <= 0
    ? ""
    : rows
    ? (p.seq === null ? `row seq ${p.line}` : "")
    : `${multiFile ? `${p.file} ` : ""}line ${p.line}`;
  const seq = p.seq === null
    ? ""
    : p.seqEnd !== null && p.seqEnd !== p.seq
    ? `seq ${p.seq}-${p.seqEnd}`
    : `seq ${p.seq}`;
  const both = [at, seq].filter((s) => s !== "").join(" ");
  // A problem of no line in particular is the log's, or the anchor's when it names that file.
  return both || (p.file !== "" && p.line === 0 ? p.file : "log");
}

function describe(p: Problem, multiFile: boolean, rows: boolean): string {
  return `${where(p, multiFile, rows)}: ${p.kind}: ${p.detail}`;
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? "" : "s"}`;
}

/** What the signatures were checked with. */
function keysText(r: Report, keys: KeyRing | null): string {
  if (keys === null) return "signatures NOT checked (--no-signatures)";
  if (keys.size === 1) {
    const k = keys.keys[0]!;
    return `signatures checked with ${k.scheme} key ${k.keyId}`;
  }
  const used = r.keysUsed.map((u) => `${u.scheme} ${u.keyId} (${plural(u.records, "record")})`);
  return `signatures checked with ${used.length} of ${keys.size} keys given${
    used.length > 0 ? `: ${used.join(", ")}` : ""
  }`;
}

/** The summary line. */
export function summary(r: Report, keys: KeyRing | null): string {
  const range = r.firstSeq === null
    ? "no records"
    : `${plural(r.records, "record")}, seq ${r.firstSeq}-${r.lastSeq}${
      r.files > 1 ? ` in ${r.files} files` : ""
    }`;
  const sigs = keysText(r, keys);
  const because = r.continuesBecause === null
    ? ""
    : r.continuesBecause === "retention"
    ? ", earlier archives deleted by retention"
    : r.continuesBecause === "rotated"
    ? ", from the archive before it"
    : `, previous file ${r.continuesBecause}`;
  const start = r.continuesAfter === null
    ? ""
    : ` (continues after seq ${r.continuesAfter}${because})`;
  const n = r.problems.length + r.moreProblems;
  const clean = r.lastClean;
  // The end alone is missing: the summary says how far the log is covered.
  if (n === 1 && r.endMissing && clean !== null) {
    const what = clean.method === "audit/checkpoint" ? "checkpoint" : "audit/stop";
    const after = r.uncovered === 0
      ? ", where it ends without audit/stop (a proxy still running, or the log cut there)"
      : ` (${plural(r.uncovered, "record")} after it not yet covered)`;
    return `INCOMPLETE: ${range}${start}; intact up to its last ${what} at seq ${clean.seq}${after}; ${sigs}`;
  }
  if (n > 0) return `FAILED: ${plural(n, "problem")} in ${range}${start}; ${sigs}`;
  const end = r.endsClean
    ? `ends with ${r.endsWith}`
    : r.endsMovedOn !== null
    ? `ends with the audit/checkpoint written when the proxy found the file ${r.endsMovedOn} (the chain goes on in a new file)`
    : "ends mid-chain (an archive)";
  if (keys === null) {
    return `UNVOUCHED: ${range}${start}; chain structure intact; ${sigs}, so the content is not vouched for; ${end}`;
  }
  return `OK: ${range}${start}; chain intact; ${sigs}; ${end}`;
}

/** Reads the anchor and checks its signature; a bad one is a problem of its own. */
function readAnchorFile(
  path: string,
  keys: KeyRing | null,
): { anchor: AnchorToCheck; problem: Problem | null } {
  const anchor = parseAnchor(Deno.readTextFileSync(path));
  const found = { ...anchor, file: path };
  const problem = (kind: Problem["kind"], detail: string) => ({
    anchor: found,
    problem: { kind, file: path, line: 0, seq: null, seqEnd: null, detail },
  });
  if (keys === null) return { anchor: found, problem: null };
  const key = keys.verifierFor(anchor.sig);
  if (anchor.sig === null) return problem("unsigned", "the anchor has no signature");
  if (key === undefined) {
    const given = keys.size === 1 ? keys.keys[0]!.keyId : `none of ${keys.describe()}`;
    return problem(
      "wrong key",
      `the anchor was signed with key id ${anchor.keyId}, checked with ${given}`,
    );
  }
  switch (checkAnchor(anchor, key)) {
    case "ok": {
      const outside = keys.outsideSeqs(anchor.sig, anchor.seq);
      return outside === null ? { anchor: found, problem: null } : problem(
        "wrong key",
        `the anchor names seq ${anchor.seq} and was signed with key id ${anchor.keyId}, valid only for ${outside}`,
      );
    }
    case "unsigned":
      return problem("unsigned", "the anchor has no signature");
    case "wrong key":
      return problem(
        "wrong key",
        `the anchor was signed with key id ${anchor.keyId}, checked with ${key.keyId}`,
      );
    case "modified":
    case "malformed":
      return problem("modified", "the anchor's signature does not match its content");
  }
}

/** Shows how far the check is, at most every 250 ms, on a terminal and for large logs only. */
class Progress {
  #show: ((text: string) => void) | undefined;
  #last = 0;
  #shown = false;

  constructor(show: ((text: string) => void) | undefined, size: number) {
    this.#show = size > PROGRESS_FROM ? show : undefined;
  }

  update(text: () => string): void {
    if (this.#show === undefined) return;
    const now = Date.now();
    if (now - this.#last <= PROGRESS_EVERY_MS) return;
    this.#last = now;
    this.#shown = true;
    this.#show(`\r${text()}`);
  }

  clear(): void {
    if (this.#shown) this.#show?.("\r\x1b[K");
  }
}

/** Feeds every line of the JSONL log at `path` (archives, then the active file) to `checker`. */
async function checkJsonl(path: string, io: VerifyIo, anchor: Anchored): Promise<Checked> {
  let files: LogFiles;
  try {
    files = LogFiles.open(path);
  } catch (e) {
    throw new CannotCheck(`cannot read ${path}: ${(e as Error).message}`);
  }
  using _ = files;
  const active = files.files.find((f) => f.kind === "active");
  const checker = new ChainVerifier(anchor.keys, { ...anchor.options, scope: "log" });
  const activeId = active === undefined ? null : identity(active.path);
  let total = 0;
  for (const f of files.files) {
    try {
      // By path, for progress only: a rotation meanwhile makes it approximate.
      total += (await Deno.stat(f.path)).size;
    } catch {
      // Deleted since the listing: it is passed over, and the chain shows the gap.
    }
  }
  let read = 0;
  let lines = 0;
  const progress = new Progress(io.progress, total);
  const options = { maxLine: MAX_LINE, onRead: (n: number) => read += n };
  const paths = new Set<string>();
  let last: LogLine | undefined;
  for (const [i, f] of files.files.entries()) {
    using opened = await OpenedLogFile.open(f, options);
    if (opened === null) continue;
    paths.add(opened.path);
    for await (const l of opened.lines()) {
      lines++;
      last = l;
      checker.line(l.text, l.file, l.lineNo, l.offset, l.terminated);
      progress.update(() =>
        `verifying ${path}: ${Math.min(99, Math.floor((read / total) * 100))}% (${lines} lines${
          files.files.length > 1 ? `, file ${i + 1} of ${files.files.length}` : ""
        })`
      );
    }
  }
  progress.clear();
  if (
    last !== undefined && !last.terminated && active !== undefined && last.file === active.path &&
    beingWritten(active.path, activeId, last.offset)
  ) {
    checker.midWrite();
  }
  return { report: checker.finish(), multiFile: paths.size > 1, rows: false };
}

/** The device and inode of the file at `path`, or null when they cannot be known. */
function identity(path: string): { dev: number; ino: number } | null {
  try {
    const info = Deno.statSync(path);
    return info.ino === null ? null : { dev: info.dev, ino: info.ino };
  } catch {
    return null;
  }
}

/**
 * Whether the active file's last line, found with no newline at byte `offset`, is a line a writer
 * is still writing rather than a torn one. Writers append each batch under an exclusive lock on
 * `<log>.lock`; verify only tries that lock (shared), never waits for it:
 * - the lock file does not exist: no writer of this version ever wrote the log: torn;
 * - a writer holds the lock: it is mid-batch: being written;
 * - verify holds it: no writer is mid-batch, so the line is a writer's only if it has its newline
 *   by now (the batch ended between the read and the lock); still incomplete is torn (a writer
 *   killed mid-write, or the file cut), until the next writer closes it and records it;
 * - anything that cannot be told (no permission, a rotation since): being written, which is a
 *   note, as a live log must not fail for a writer doing its work.
 */
function beingWritten(
  path: string,
  read: { dev: number; ino: number } | null,
  offset: number,
): boolean {
  let lock: Deno.FsFile;
  try {
    lock = Deno.openSync(`${path}.lock`, { read: true });
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound);
  }
  try {
    if (!lock.tryLockSync(false)) return true;
    try {
      return completedSince(path, read, offset);
    } finally {
      lock.unlockSync();
    }
  } catch {
    return true;
  } finally {
    lock.close();
  }
}

/** Whether a newline now follows byte `offset` of the file read (true when it is another file). */
function completedSince(
  path: string,
  read: { dev: number; ino: number } | null,
  offset: number,
): boolean {
  using file = Deno.openSync(path, { read: true });
  const now = file.statSync();
  if (read === null || now.ino === null || now.dev !== read.dev || now.ino !== read.ino) {
    return true;
  }
  file.seekSync(offset, Deno.SeekMode.Start);
  const block = new Uint8Array(64 * 1024);
  for (let seen = 0; seen <= MAX_LINE + 2;) {
    const n = file.readSync(block);
    if (n === null) return false;
    if (block.subarray(0, n).includes(0x0a)) return true;
    seen += n;
  }
  return false;
}

/** One archive alone, gunzipped when its name ends in `.gz`. */
async function checkArchive(path: string, io: VerifyIo, anchor: Anchored): Promise<Checked> {
  let size: number;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
    size = info.size;
  } catch (e) {
    throw new CannotCheck(`cannot read ${path}: ${(e as Error).message}`);
  }
  const checker = new ChainVerifier(anchor.keys, { ...anchor.options, scope: "archive" });
  const progress = new Progress(io.progress, size);
  const decoder = new TextDecoder();
  let lineNo = 0;
  let offset = 0;
  for await (
    const frames of openArchiveLines(path).pipeThrough(
      new LineSplitter(MAX_LINE, undefined, { stopAtOversized: true }),
    )
  ) {
    for (const frame of frames) {
      lineNo++;
      if (frame.kind === "oversized") throw new LineTooLongError(path, lineNo, offset, MAX_LINE);
      const text = decoder.decode(frame.bytes.subarray(0, frame.contentLength));
      checker.line(text, path, lineNo, offset, frame.terminated);
      offset += frame.bytes.length;
    }
    progress.update(() => `verifying ${path}: ${lineNo} lines`);
  }
  progress.clear();
  return { report: checker.finish(), multiFile: false, rows: false };
}

/** Every row of a SQLite database, in seq order. */
async function checkSqlite(
  path: string,
  size: number,
  io: VerifyIo,
  anchor: Anchored,
): Promise<Checked> {
  const checker = new ChainVerifier(anchor.keys, { ...anchor.options, scope: "log" });
  const progress = new Progress(io.progress, size);
  let rows = 0;
  for await (const row of readSqliteLines(path)) {
    rows++;
    checker.line(row.text, row.file, row.lineNo, row.offset, row.terminated);
    if (row.disagree !== null) checker.disagrees(row.file, row.lineNo, row.lineNo, row.disagree);
    progress.update(() => `verifying ${path}: ${rows} records`);
  }
  progress.clear();
  return { report: checker.finish(), multiFile: false, rows: true };
}

interface Anchored {
  keys: KeyRing | null;
  options: { anchor?: AnchorToCheck };
}

interface Checked {
  report: Report;
  multiFile: boolean;
  /** Records are rows (SQLite): problems name seqs, not lines. */
  rows: boolean;
}

/** Runs the command; returns the exit code. */
export async function verifyCommand(args: string[], io: VerifyIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        ...KEY_FLAG_OPTIONS,
        anchor: { type: "string" },
        "no-signatures": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`verify: ${(e as Error).message}`);
  }
  const values = parsed.values;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError(`verify: expected one PATH; ${USAGE}`);
  const path = parsed.positionals[0]!;
  const noSignatures = values["no-signatures"] === true;
  if (noSignatures && (values["public-key"] !== undefined || values["key-file"] !== undefined)) {
    throw new UsageError(
      "verify: give keys (--public-key, --key-file) or --no-signatures, not both",
    );
  }
  let keys: KeyRing | null = null;
  if (!noSignatures) {
    try {
      keys = keysFor(values, io.env);
    } catch (e) {
      io.out(`mcp-audit verify: ${(e as Error).message}`);
      return 2;
    }
    if (keys === null) {
      io.out(NO_KEY);
      return 2;
    }
  }
  let anchor: AnchorToCheck | undefined;
  let anchorProblem: Problem | null = null;
  if (values.anchor !== undefined) {
    try {
      ({ anchor, problem: anchorProblem } = readAnchorFile(values.anchor, keys));
    } catch (e) {
      const why = e instanceof AnchorFormatError
        ? `not an anchor: ${e.message}`
        : (e as Error).message;
      io.out(`mcp-audit verify: cannot read the anchor ${values.anchor}: ${why}`);
      return 2;
    }
  }
  // An anchor whose signature fails says nothing about the log: it is not checked against it.
  const anchored: Anchored = {
    keys,
    options: anchor !== undefined && anchorProblem === null ? { anchor } : {},
  };
  let checked: Checked;
  try {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      // A missing active file is no error while its archives exist.
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new CannotCheck(`cannot read ${path}: ${(e as Error).message}`);
      }
    }
    if (info !== null && info.isFile && isSqliteFile(path)) {
      checked = await checkSqlite(path, info.size, io, anchored);
    } else if (ARCHIVE_NAME.test(basename(path))) {
      checked = await checkArchive(path, io, anchored);
    } else {
      checked = await checkJsonl(path, io, anchored);
    }
  } catch (e) {
    if (e instanceof StorageError || e instanceof CannotCheck) {
      io.out(`mcp-audit verify: ${e.message}`);
    } else {
      io.out(`mcp-audit verify: reading ${path} failed: ${(e as Error).message}`);
    }
    return 2;
  }
  const { report, multiFile, rows } = checked;
  if (anchorProblem !== null) report.problems.unshift(anchorProblem);
  io.out(summary(report, keys));
  for (const p of report.problems) io.out(describe(p, multiFile, rows));
  if (report.moreProblems > 0) io.out(`... and ${report.moreProblems} more problems`);
  for (const note of report.notes) io.out(`note: ${note}`);
  if (incompleteOnly(report) && keys !== null) return EXIT_INCOMPLETE;
  if (report.problems.length > 0) return 1;
  return keys === null ? EXIT_UNVOUCHED : 0;
}

/** The one problem is the end: the log is intact up to a checkpoint or stop, then goes on. */
function incompleteOnly(r: Report): boolean {
  return r.problems.length === 1 && r.moreProblems === 0 && r.endMissing && r.lastClean !== null;
}
