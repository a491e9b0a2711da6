/**
 * `mcp-audit verify [--public-key FILE] PATH`: checks a JSONL audit log. Exit 0 intact, 1
 * problems found, 2 could not read.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ChainVerifier, type Problem, type Report } from "../audit/verify.ts";
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

const USAGE = "usage: mcp-audit verify [--public-key FILE] [--key-id ID] PATH";
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
  return `${where || "log"}: ${p.kind}: ${p.detail}`;
}

/** The summary line. */
export function summary(r: Report, key: SignatureVerifier | null): string {
  const range = r.firstSeq === null
    ? "no records"
    : `${r.records} records, seq ${r.firstSeq}-${r.lastSeq}`;
  const sigs = key === null
    ? "signatures NOT checked (no key)"
    : `signatures checked with ${key.scheme} key ${key.keyId}`;
  if (r.problems.length === 0) {
    return `OK: ${range}; chain intact; ${sigs}; ends with ${r.endsWith}`;
  }
  const n = r.problems.length + r.moreProblems;
  return `FAILED: ${n} problem${n === 1 ? "" : "s"} in ${range}; ${sigs}`;
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
  let key: SignatureVerifier | null;
  try {
    key = keyFor(parsed.values, io.env);
  } catch (e) {
    io.out(`mcp-audit verify: ${(e as Error).message}`);
    return 2;
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
  const checker = new ChainVerifier(key);
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
  io.out(summary(report, key));
  for (const p of report.problems) io.out(describe(p));
  if (report.moreProblems > 0) io.out(`... and ${report.moreProblems} more problems`);
  for (const note of report.notes) io.out(`note: ${note}`);
  return report.problems.length === 0 ? 0 : 1;
}
