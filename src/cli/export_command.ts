/**
 * `mcp-audit export [--format jsonl|csv|ocsf|cef] [--from T] [--to T] [--kind K]... [--method M]
 * [--tool NAME] [--session S] [--client ID] [--output FILE [--force]] PATH`: streams the records
 * of a JSONL log (its archives included) or a SQLite database out in a SIEM format, in `seq`
 * order, one record in and one line out, so memory stays the same whatever the log's size.
 *
 * `--output FILE` is created new, mode 0600. With `--force` a FILE that is there is never opened:
 * the export is written to a new file beside it and renamed over it once whole, so a failed or
 * stopped export leaves FILE as it was. FILE is refused when it is the log or one of its files
 * (the active file, an archive, `-wal`, `-shm`, `.lock`), by name or as the same file (device and
 * inode: a hard link).
 *
 * Exit codes: 0 exported; 1 the export failed part way (a read or write error, a record that
 * cannot be mapped; a partial `--output` file is removed); 2 bad usage, an unreadable PATH, or an
 * `--output` file that exists (without `--force`), is not a regular file, or is one of the log's.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { type Archive, listArchives } from "../audit/storage/archives.ts";
import { StorageError } from "../audit/storage/errors.ts";
import type { RecordKind } from "../audit/record.ts";
import {
  QueryError,
  type ReadRecord,
  type RecordFilter,
  type RecordQuery,
} from "../audit/storage/query.ts";
import { BatchWriter, SinkClosedError } from "../streams/batch_writer.ts";
import { cefLine } from "../export/cef.ts";
import { CSV_EOL, CSV_HEADER, csvRow } from "../export/csv.ts";
import { RecordMappingError } from "../export/describe.ts";
import { exactRecord } from "../export/exact_record.ts";
import { jsonlLine } from "../export/jsonl.ts";
import { ocsfLine } from "../export/ocsf.ts";
import { UsageError } from "./errors.ts";

/** Everything the command touches outside itself. */
export interface ExportIo {
  /** Opens a log for reading, whichever backend holds it (`openQuery` from storage/open.ts). */
  openQuery: (path: string) => RecordQuery;
  /** Where the records go without `--output`. Flushed at the end, never closed. */
  stdout: WritableStream<Uint8Array>;
  /** `--help`. */
  out: (line: string) => void;
  /** Errors, one line each. */
  err: (line: string) => void;
  /** Progress output; `undefined` when stderr is not a terminal. */
  progress: ((text: string) => void) | undefined;
  /** Ends the export early (exit 1, a partial `--output` removed). */
  signal?: AbortSignal;
}

const USAGE = "usage: mcp-audit export [--format jsonl|csv|ocsf|cef] [--from T] [--to T] " +
  "[--kind K]... [--method M] [--tool NAME] [--session S] [--client ID] " +
  "[--output FILE [--force]] PATH";

const FORMATS = ["jsonl", "csv", "ocsf", "cef"] as const;
type Format = (typeof FORMATS)[number];

const KINDS: readonly RecordKind[] = [
  "request",
  "notification",
  "response",
  "error",
  "invalid",
  "event",
];

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Milliseconds since the epoch of a UTC time; unlike `Date.UTC`, years 0–99 are themselves. */
function utc(year: number, month: number, day: number, h = 0, m = 0, s = 0, ms = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, m, s, ms);
  return d.getTime();
}

function daysIn(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/**
 * A `--from`/`--to` value in milliseconds since the epoch: an RFC 3339 time, or a date
 * `YYYY-MM-DD` meaning its UTC midnight — for `--to` (`end`), the midnight after it, so that
 * `--to 2026-06-10` takes in the whole day. Digits beyond milliseconds are dropped.
 * @throws {UsageError} naming the flag when the value is neither, or no such day or time exists
 */
export function parseTimeFlag(flag: string, text: string, end: boolean): number {
  const bad = (why: string) =>
    new UsageError(
      `export: ${flag}: expected an RFC 3339 time (2026-06-10T22:00:00Z) or a date ` +
        `YYYY-MM-DD (UTC), got ${JSON.stringify(text)}${why === "" ? "" : `: ${why}`}`,
    );
  const date = DATE.exec(text);
  const m = date ?? RFC3339.exec(text);
  if (m === null) throw bad("");
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) throw bad("no such day");
  if (date !== null) return utc(year, month, day + (end ? 1 : 0));
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  // 60 is a leap second (RFC 3339 §5.7): it is the instant the next minute starts.
  const second = Number(m[6]);
  if (hour > 23 || minute > 59 || second > 60) throw bad("no such time of day");
  const ms = Number((m[7] ?? "").slice(0, 3).padEnd(3, "0"));
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw bad("no such offset");
    offset = (m[9] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return utc(year, month, day, hour, minute, second, ms) - offset;
}

/** The parsed command line. */
interface Request {
  format: Format;
  filter: RecordFilter;
  output: string | undefined;
  force: boolean;
  path: string;
}

function parse(args: string[]): Request | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        format: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        kind: { type: "string", multiple: true },
        method: { type: "string" },
        tool: { type: "string" },
        session: { type: "string" },
        client: { type: "string" },
        output: { type: "string", short: "o" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`export: ${(e as Error).message}; ${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (parsed.positionals.length !== 1) {
    throw new UsageError(`export: expected one PATH; ${USAGE}`);
  }
  const format = FORMATS.find((f) => f === (v.format ?? "jsonl"));
  if (format === undefined) {
    throw new UsageError(
      `export: --format: must be one of ${FORMATS.join(", ")}, got ${JSON.stringify(v.format)}`,
    );
  }
  const filter: RecordFilter = {};
  if (v.from !== undefined) filter.from = parseTimeFlag("--from", v.from, false);
  if (v.to !== undefined) filter.to = parseTimeFlag("--to", v.to, true);
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) {
    throw new UsageError(`export: --to: ${v.to} is not after --from ${v.from}`);
  }
  if (v.kind !== undefined) {
    const kinds: RecordKind[] = [];
    for (const given of v.kind.flatMap((k) => k.split(","))) {
      const kind = KINDS.find((k) => k === given.trim());
      if (kind === undefined) {
        throw new UsageError(
          `export: --kind: must be one of ${KINDS.join(", ")}, got ${JSON.stringify(given)}`,
        );
      }
      if (!kinds.includes(kind)) kinds.push(kind);
    }
    filter.kinds = kinds;
  }
  const nonEmpty = (flag: string, value: string | undefined): string | undefined => {
    if (value === "") throw new UsageError(`export: ${flag}: must not be empty`);
    return value;
  };
  const method = nonEmpty("--method", v.method);
  if (method !== undefined) filter.method = method;
  const tool = nonEmpty("--tool", v.tool);
  if (tool !== undefined) filter.toolName = tool;
  const session = nonEmpty("--session", v.session);
  if (session !== undefined) filter.session = session;
  const client = nonEmpty("--client", v.client);
  if (client !== undefined) filter.clientId = client;
  const output = nonEmpty("--output", v.output);
  if (v.force === true && output === undefined) {
    throw new UsageError("export: --force: only with --output FILE");
  }
  return { format, filter, output, force: v.force === true, path: parsed.positionals[0]! };
}

/** One record's line in a format, and what comes before the first. */
interface Formatter {
  header: string | null;
  eol: string;
  line: (read: ReadRecord) => string;
}

function formatter(format: Format, logName: string): Formatter {
  switch (format) {
    case "jsonl":
      return { header: null, eol: "\n", line: jsonlLine };
    case "csv":
      return { header: CSV_HEADER, eol: CSV_EOL, line: (read) => csvRow(exactRecord(read)) };
    case "ocsf":
      return { header: null, eol: "\n", line: (read) => ocsfLine(exactRecord(read), { logName }) };
    case "cef":
      return { header: null, eol: "\n", line: (read) => cefLine(exactRecord(read)) };
    default: {
      const never: never = format;
      throw new Error(`unknown format ${JSON.stringify(never)}`);
    }
  }
}

function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

function realPath(path: string): string | null {
  try {
    return Deno.realPathSync(path);
  } catch {
    return null;
  }
}

/** `path` with its directory resolved but not its last part, which may be a link or missing. */
function located(path: string): string {
  const dir = realPath(dirname(path));
  return dir === null ? path : join(dir, basename(path));
}

// What follows `<log>.` in a name the log's writers use: an archive, compressed or being
// compressed (rotation.ts writes `<archive>.gz.tmp`), and the writers' lock.
const LOG_FILE_DOT = /^(?:\d{8}T\d{6}Z(?:\.\d+)?(?:\.gz)?(?:\.tmp)?|lock)$/;
// And after `<log>-`: SQLite's own files.
const LOG_FILE_DASH = /^(?:wal|shm|journal)$/;

/** True when `name` is the log `log` or one of its files by name (both resolved paths). */
function isLogName(name: string, log: string): boolean {
  if (name === log) return true;
  if (dirname(name) !== dirname(log)) return false;
  const base = basename(log);
  const own = basename(name);
  if (!own.startsWith(base) || own.length <= base.length + 1) return false;
  const rest = own.slice(base.length + 1);
  const sep = own[base.length];
  return sep === "." ? LOG_FILE_DOT.test(rest) : sep === "-" && LOG_FILE_DASH.test(rest);
}

/**
 * The files of the log at `log` that are there now: the log, its archives (plain and `.gz`),
 * SQLite's `-wal`, `-shm` and `-journal`, and the writers' `.lock`, beside the path given and
 * beside the file it resolves to.
 */
function logFiles(log: string): string[] {
  const files = new Set<string>();
  for (const base of new Set([located(log), realPath(log) ?? log])) {
    files.add(base);
    for (const suffix of ["-wal", "-shm", "-journal", ".lock"]) files.add(base + suffix);
    let archives: Archive[] = [];
    try {
      archives = listArchives(base);
    } catch (e) {
      // An unreadable directory has no archive this export could name.
      if (!(e instanceof StorageError)) throw e;
    }
    for (const a of archives) {
      files.add(a.path);
      files.add(a.gzip ? a.path.slice(0, -3) : `${a.path}.gz`);
    }
  }
  return [...files];
}

/** The file `path` names, following links; null when there is none. */
function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null;
  }
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.dev === b.dev && a.ino !== null && a.ino === b.ino;
}

/**
 * Refuses an `--output` that is the log or one of its files (an archive `PATH.<time>`, the lock,
 * SQLite's `-wal`), by name or, for a file that is there, as the same file (a hard link to the
 * log has another name but the log's inode, and writing it would write the log).
 * @throws {UsageError} naming the output
 */
function refuseOverwritingLog(output: string, log: string): void {
  const refuse = () =>
    new UsageError(`export: --output: ${output} is the audit log or one of its files`);
  const names = [located(output), realPath(output)].filter((n) => n !== null);
  const logs = [located(log), realPath(log)].filter((n) => n !== null);
  if (names.some((n) => logs.some((l) => isLogName(n, l)))) throw refuse();
  const out = statOrNull(output);
  if (out === null) return;
  for (const file of logFiles(log)) {
    const info = statOrNull(file);
    if (info !== null && sameFile(info, out)) throw refuse();
  }
}

/** Where the records are written, and how the file comes to be `--output` at the end. */
interface Output {
  file: Deno.FsFile;
  /** The file written: `--output` itself, or a new file beside the one `--force` replaces. */
  written: string;
  /** The file renamed over at the end; undefined when `written` is `--output` itself. */
  replaces: string | undefined;
}

/**
 * Opens the output. Without `--force` it is created new; with it, a file that is there is not
 * opened at all: the export goes to a new file beside it, renamed over it once whole, so that the
 * file is never truncated (a hard link to something else keeps what it held) and a failed export
 * leaves it as it was. Only a regular file (or a link to one, which keeps pointing at the new
 * file) is replaced. Mode 0600 either way: the export holds what the log holds.
 * @throws {UsageError} when the file exists (without `--force`), is no regular file, or cannot
 *   be created
 */
async function openOutput(output: string, force: boolean): Promise<Output> {
  let replaces: string | undefined;
  if (force) {
    let there = true;
    try {
      await Deno.lstat(output);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new UsageError(`export: --output: cannot look at ${output}: ${(e as Error).message}`);
      }
      there = false;
    }
    if (there) {
      const info = statOrNull(output);
      const real = realPath(output);
      if (info === null || real === null || !info.isFile) {
        throw new UsageError(
          `export: --output: ${output} is not a regular file; --force replaces only a file`,
        );
      }
      replaces = real;
    }
  }
  const written = replaces === undefined
    ? output
    : join(dirname(replaces), `.${basename(replaces)}.${Deno.pid}.${crypto.randomUUID()}.tmp`);
  try {
    const file = await Deno.open(written, { write: true, createNew: true, mode: 0o600 });
    return { file, written, replaces };
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists && replaces === undefined) {
      throw new UsageError(`export: --output: ${output} exists; give --force to overwrite it`);
    }
    throw new UsageError(`export: --output: cannot create ${written}: ${(e as Error).message}`);
  }
}

const encoder = new TextEncoder();

/** Runs the command; returns the exit code. */
export async function exportCommand(args: string[], io: ExportIo): Promise<number> {
  const request = parse(args);
  if (request === "help") {
    io.out(USAGE);
    return 0;
  }
  const { path, output } = request;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) throw new Error("is a directory");
  } catch (e) {
    io.err(`mcp-audit export: cannot read ${path}: ${(e as Error).message}`);
    return 2;
  }
  if (output !== undefined) refuseOverwritingLog(output, path);
  let query: RecordQuery;
  try {
    query = io.openQuery(path);
  } catch (e) {
    io.err(`mcp-audit export: cannot read ${path}: ${(e as Error).message}`);
    return 2;
  }
  let out: Output | undefined;
  try {
    if (output !== undefined) out = await openOutput(output, request.force);
  } catch (e) {
    query.close();
    throw e;
  }
  const writer = new BatchWriter(out?.file.writable ?? io.stdout);
  const format = formatter(request.format, baseName(path));
  const where = output ?? "standard output";
  let records = 0;
  let failed = true;
  let lastShown = 0;
  try {
    if (format.header !== null) {
      await writer.push(encoder.encode(format.header + format.eol));
    }
    for await (const read of query.stream(request.filter, io.signal)) {
      const wait = writer.push(encoder.encode(format.line(read) + format.eol));
      if (wait !== undefined) await wait;
      records++;
      if (io.progress !== undefined && (records & 1023) === 0) {
        const now = Date.now();
        if (now - lastShown > 250) {
          lastShown = now;
          io.progress(`\rexporting ${path}: ${records} records, at ${read.record.ts}`);
        }
      }
    }
    await writer.flush();
    // On disk before it takes the old file's place: a crash then leaves one or the other whole.
    if (out?.replaces !== undefined) await out.file.syncData();
    failed = false;
  } catch (e) {
    if (e instanceof SinkClosedError) {
      // A reader that has seen enough (`| head`) closes the pipe: not worth a message.
      if (!(output === undefined && e.cause instanceof Deno.errors.BrokenPipe)) {
        const cause = e.cause instanceof Error ? e.cause.message : String(e.cause);
        io.err(`mcp-audit export: cannot write ${where}: ${cause}`);
      }
    } else if (e instanceof RecordMappingError) {
      io.err(`mcp-audit export: ${e.message}; ${records} records were exported before it`);
    } else if (e instanceof QueryError) {
      io.err(`mcp-audit export: ${e.message}`);
    } else if (io.signal?.aborted === true) {
      io.err(`mcp-audit export: stopped after ${records} records`);
    } else {
      io.err(`mcp-audit export: reading ${path} failed: ${(e as Error).message}`);
    }
  } finally {
    query.close();
    if (out !== undefined) await writer.close();
    else await writer.flush().catch(() => {});
    if (io.progress !== undefined) io.progress("\r\x1b[K");
  }
  if (!failed && out?.replaces !== undefined) {
    try {
      await Deno.rename(out.written, out.replaces);
    } catch (e) {
      io.err(`mcp-audit export: cannot replace ${output}: ${(e as Error).message}`);
      failed = true;
    }
  }
  if (failed) {
    // Half an export that looks whole would mislead whoever reads it later; a file `--force`
    // was to replace is left as it was.
    if (out !== undefined) await Deno.remove(out.written).catch(() => {});
    return 1;
  }
  if (io.progress !== undefined) {
    io.progress(`exported ${records} records from ${path} to ${where}\n`);
  }
  return 0;
}
