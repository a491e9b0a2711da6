/**
 * `mcp-audit verify [--public-key FILE] [--anchor FILE] [--no-signatures] PATH`: checks a JSONL
 * audit log.
 *
 * Exit codes (a script may rely on them):
 * - 0: verified: every signature checked with the key given, the chain intact, a clean end (and the
 *   anchor, when given, reached);
 * - 1: problems found;
 * - 2: could not check: the log or the anchor cannot be read, or no key was given (the one way
 *   to check without a key is to ask for it with `--no-signatures`);
 * - 3: `--no-signatures`: the chain's structure is intact, but without signatures nothing vouches
 *   for the content, so this is never 0.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { AnchorFormatError, checkAnchor, parseAnchor } from "../audit/anchor.ts";
import { type AnchorToCheck, ChainVerifier, type Problem, type Report } from "../audit/verify.ts";
import { ed25519Verifier, hmacSigner, KeyError, type SignatureVerifier } from "../audit/signing.ts";
import { LineSplitter } from "../streams/line_splitter.ts";
import { UsageError } from "./errors.ts";

/** Everything the command touches outside itself. */
export interface VerifyIo {
  env: Readonly<Record<string, string>>;
  out: (line: string) => void;
  /** Progress output; `undefined` when stderr is not a terminal. */
  progress: ((text: string) => void) | undefined;
}

const USAGE =
  "usage: mcp-audit verify [--public-key FILE] [--key-id ID] [--anchor FILE] [--no-signatures] PATH";

/** Exit code 3: the chain's structure is intact, but no signature was checked. */
export const EXIT_UNVOUCHED = 3;

const NO_KEY = "mcp-audit verify: no key to check signatures with: set AUDIT_SECRET (HMAC) or " +
  "give --public-key FILE (Ed25519); --no-signatures checks the chain alone (exit 3 at best)";
// A stored line holds one message of up to proxy.max_message_bytes, escaped; far more than that
// is not a line of ours.
const MAX_LINE = 1 << 30;

function keyFor(
  values: { "public-key"?: string | undefined; "key-id"?: string | undefined },
  env: Readonly<Record<string, string>>,
): SignatureVerifier | null {
  const keyId = values["key-id"];
  if (values["public-key"] !== undefined) {
    let pem: string;
    try {
      pem = Deno.readTextFileSync(values["public-key"]);
    } catch (e) {
      throw new KeyError(`cannot read ${values["public-key"]}: ${(e as Error).message}`);
    }
    return ed25519Verifier(pem, keyId);
  }
  const secret = env["MCP_AUDIT_SIGNING_SECRET"] ?? env["AUDIT_SECRET"];
  if (secret !== undefined && secret !== "") return hmacSigner(secret, keyId);
  return null;
}

function describe(p: Problem): string {
  const where = [
    p.file && p.line > 0 ? `line ${p.line}` : "",
    p.seq !== null
      ? (p.seqEnd !== null && p.seqEnd !== p.seq ? `seq ${p.seq}-${p.seqEnd}` : `seq ${p.seq}`)
      : "",
  ]
    .filter((s) => s !== "").join(" ");
  // A problem of no line in particular is the log's, or the anchor's when it names that file.
  return `${where || (p.file !== "" && p.line === 0 ? p.file : "log")}: ${p.kind}: ${p.detail}`;
}

/** The summary line. */
export function summary(r: Report, key: SignatureVerifier | null): string {
  const range = r.firstSeq === null
    ? "no records"
    : `${r.records} records, seq ${r.firstSeq}-${r.lastSeq}`;
  const sigs = key === null
    ? "signatures NOT checked (--no-signatures)"
    : `signatures checked with ${key.scheme} key ${key.keyId}`;
  const start = r.continuesAfter === null
    ? ""
    : ` (continues after seq ${r.continuesAfter}${
      r.continuesBecause === null ? "" : `, previous file ${r.continuesBecause}`
    })`;
  if (r.problems.length > 0) {
    const n = r.problems.length + r.moreProblems;
    return `FAILED: ${n} problem${n === 1 ? "" : "s"} in ${range}; ${sigs}`;
  }
  if (key === null) {
    return `UNVOUCHED: ${range}${start}; chain structure intact; ${sigs}, so the content is not vouched for; ends with ${r.endsWith}`;
  }
  return `OK: ${range}${start}; chain intact; ${sigs}; ends with ${r.endsWith}`;
}

/** Reads the anchor and checks its signature; a bad one is a problem of its own. */
function readAnchorFile(
  path: string,
  key: SignatureVerifier | null,
): { anchor: AnchorToCheck; problem: Problem | null } {
  const anchor = parseAnchor(Deno.readTextFileSync(path));
  const problem = (kind: Problem["kind"], detail: string): Problem => ({
    kind,
    file: path,
    line: 0,
    seq: null,
    seqEnd: null,
    detail,
  });
  if (key !== null) {
    switch (checkAnchor(anchor, key)) {
      case "ok":
        break;
      case "unsigned":
        return {
          anchor: { ...anchor, file: path },
          problem: problem("unsigned", "the anchor has no signature"),
        };
      case "wrong key":
        return {
          anchor: { ...anchor, file: path },
          problem: problem(
            "wrong key",
            `the anchor was signed with key id ${anchor.keyId}, checked with ${key.keyId}`,
          ),
        };
      case "modified":
      case "malformed":
        return {
          anchor: { ...anchor, file: path },
          problem: problem("modified", "the anchor's signature does not match its content"),
        };
    }
  }
  return { anchor: { ...anchor, file: path }, problem: null };
}

/** Runs the command; returns the exit code. */
export async function verifyCommand(args: string[], io: VerifyIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        "public-key": { type: "string" },
        "key-id": { type: "string" },
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
  if (parsed.values.help) {
    io.out(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError(`verify: expected one PATH; ${USAGE}`);
  const path = parsed.positionals[0]!;
  const noSignatures = parsed.values["no-signatures"] === true;
  if (noSignatures && parsed.values["public-key"] !== undefined) {
    throw new UsageError("verify: give --public-key or --no-signatures, not both");
  }
  let key: SignatureVerifier | null = null;
  if (!noSignatures) {
    try {
      key = keyFor(parsed.values, io.env);
    } catch (e) {
      io.out(`mcp-audit verify: ${(e as Error).message}`);
      return 2;
    }
    if (key === null) {
      io.out(NO_KEY);
      return 2;
    }
  }
  let anchor: AnchorToCheck | undefined;
  let anchorProblem: Problem | null = null;
  if (parsed.values.anchor !== undefined) {
    try {
      ({ anchor, problem: anchorProblem } = readAnchorFile(parsed.values.anchor, key));
    } catch (e) {
      const why = e instanceof AnchorFormatError
        ? `not an anchor: ${e.message}`
        : (e as Error).message;
      io.out(`mcp-audit verify: cannot read the anchor ${parsed.values.anchor}: ${why}`);
      return 2;
    }
  }
  let file: Deno.FsFile;
  let size: number;
  try {
    file = await Deno.open(path, { read: true });
    size = (await file.stat()).size;
  } catch (e) {
    io.out(`mcp-audit verify: cannot read ${path}: ${(e as Error).message}`);
    return 2;
  }
  // An anchor whose signature fails says nothing about the log: it is not checked against it.
  const checker = new ChainVerifier(
    key,
    anchor !== undefined && anchorProblem === null ? { anchor } : {},
  );
  const decoder = new TextDecoder();
  let lineNo = 0;
  let offset = 0;
  let lastShown = 0;
  const showProgress = io.progress !== undefined && size > 8 << 20 ? io.progress : undefined;
  try {
    for await (const frames of file.readable.pipeThrough(new LineSplitter(MAX_LINE))) {
      for (const frame of frames) {
        lineNo++;
        if (frame.kind === "oversized") {
          io.out(`mcp-audit verify: line ${lineNo} of ${path} is over ${MAX_LINE} bytes`);
          return 2;
        }
        const text = decoder.decode(frame.bytes.subarray(0, frame.contentLength));
        checker.line(text, path, lineNo, offset, frame.terminated);
        offset += frame.bytes.length;
      }
      const now = Date.now();
      if (showProgress && now - lastShown > 250) {
        lastShown = now;
        showProgress(
          `\rverifying ${path}: ${Math.floor((offset / size) * 100)}% (${lineNo} lines)`,
        );
      }
    }
  } catch (e) {
    io.out(`mcp-audit verify: reading ${path} failed: ${(e as Error).message}`);
    return 2;
  }
  if (showProgress) showProgress("\r\x1b[K");
  const report = checker.finish();
  if (anchorProblem !== null) report.problems.unshift(anchorProblem);
  io.out(summary(report, key));
  for (const p of report.problems) io.out(describe(p));
  if (report.moreProblems > 0) io.out(`... and ${report.moreProblems} more problems`);
  for (const note of report.notes) io.out(`note: ${note}`);
  if (report.problems.length > 0) return 1;
  return key === null ? EXIT_UNVOUCHED : 0;
}
