/**
 * The stdio sections' upstream server:
 *
 * - `node-sdk` (the default): `scripts/bench_node_upstream.mjs --like-sdk`: every line parsed and
 *   each answer written on its own, the least a server on the MCP TypeScript SDK's stdio
 *   transport does (the issue's measurements used such a Node upstream, about 73k msg/s direct);
 * - `node`: the same script without `--like-sdk`: the answers to one read in one write, several
 *   times faster direct than any real server;
 * - `deno`: `scripts/bench_upstream.ts`, the bench's upstream before.
 *
 * Without a `node` on the PATH the bench falls back to the Deno one and says so.
 *
 * Before a Node upstream is used, {@link checkSameAnswers} feeds both servers the same input
 * (split mid-line, every id shape, notifications, lines that are not JSON-RPC, a write larger than
 * a read) and requires the same bytes back: the answers every stdio run checks stay those of
 * `bench_upstream.ts`.
 *
 * @module
 */
import { INITIALIZE, scriptPath, toolCall } from "./common.ts";

export const UPSTREAM_KINDS = ["node", "node-sdk", "deno"] as const;
export type UpstreamKind = typeof UPSTREAM_KINDS[number];

/** `scripts/bench_upstream.ts`, run by this Deno. */
export const DENO_UPSTREAM: readonly string[] = [
  Deno.execPath(),
  "run",
  scriptPath("./bench_upstream.ts"),
];
const NODE_UPSTREAM_SCRIPT = scriptPath("./bench_node_upstream.mjs");

/** The upstream a run uses. */
export interface StdioUpstream {
  kind: UpstreamKind;
  /** What `--upstream` asked for. */
  requested: UpstreamKind;
  /** Its command line (append `--mark` for the first-read mark). */
  argv: readonly string[];
  /** `node v20.20.2` or `deno 2.9.6`. */
  runtime: string;
  /** Why it is not the one asked for, when it is not. */
  fallback: string | null;
}

const decoder = new TextDecoder();

/**
 * Node's absolute path and version, or why there is none. Where there is no `node` on the PATH,
 * Deno puts a `node` of its own there for its children (a link to itself, in its Node
 * compatibility mode): that one is Deno, and is not taken.
 */
async function findNode(): Promise<{ path: string; version: string } | string> {
  try {
    const out = await new Deno.Command("node", {
      args: ["-p", '[process.execPath, process.version, process.versions.deno ?? ""].join("\\n")'],
      stdin: "null",
      stderr: "null",
    }).output();
    const [path, version, deno] = decoder.decode(out.stdout).trim().split("\n");
    if (!out.success || path === undefined || version === undefined) {
      return `node -p exited with code ${out.code}`;
    }
    if (deno !== undefined && deno !== "") return `no node on the PATH (only Deno's own, ${path})`;
    return { path, version };
  } catch (e) {
    return e instanceof Deno.errors.NotFound
      ? "no node on the PATH"
      : `node could not be run: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** The upstream `requested`, or the Deno one when it is Node and Node cannot be run. */
export async function stdioUpstream(requested: UpstreamKind): Promise<StdioUpstream> {
  const deno = (fallback: string | null): StdioUpstream => ({
    kind: "deno",
    requested,
    argv: DENO_UPSTREAM,
    runtime: `deno ${Deno.version.deno}`,
    fallback,
  });
  if (requested === "deno") return deno(null);
  const node = await findNode();
  if (typeof node === "string") return deno(`${node}: the Deno upstream is used instead`);
  const upstream: StdioUpstream = {
    kind: requested,
    requested,
    argv: [node.path, NODE_UPSTREAM_SCRIPT, ...(requested === "node" ? [] : ["--like-sdk"])],
    runtime: `node ${node.version}`,
    fallback: null,
  };
  await checkSameAnswers(upstream.argv, DENO_UPSTREAM);
  return upstream;
}

const encoder = new TextEncoder();

/**
 * The check's input, as writes: the first ends mid-line, and the second is written only once the
 * answers to the first's whole lines are back, so that the line is split across two reads.
 */
function probeWrites(): { text: string; answersBefore: number }[] {
  const lines = [
    INITIALIZE,
    `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
    `{"jsonrpc":"2.0","id":"list","method":"tools/list","params":{}}`,
    toolCall(1),
    `{"jsonrpc":"2.0","id":"a\\"b\\\\","method":"tools/call","params":{}}`,
    `{"jsonrpc":"2.0","id":-2.5e3,"method":"ping"}`,
    `{"jsonrpc":"2.0","id":null,"method":"tools/list"}`,
    `{"id":7,"jsonrpc":"2.0","method":"tools/list"}`,
    `{"method":"tools/call","id":"x","jsonrpc":"2.0"}`,
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
    `{"id":"only"}`,
    `not json`,
    `[1,2]`,
    `"a string"`,
    ``,
    `{"jsonrpc":"2.0","id":{"a":1},"method":"x"}`,
  ];
  const call = toolCall(2);
  const cut = Math.floor(call.length / 2);
  // More than one 64 KiB read's worth of calls.
  const many = Array.from({ length: 400 }, (_, i) => toolCall(100 + i)).join("\n");
  return [
    { text: `${lines.join("\n")}\n${call.slice(0, cut)}`, answersBefore: 0 },
    // Every line above but the two notifications is answered.
    {
      text: `${call.slice(cut)}\n${many}\n${lines.join("\n")}\n`,
      answersBefore: lines.length - 2,
    },
  ];
}

/** How long a server gets to answer the check's input before it is ended. */
const CHECK_TIMEOUT_MS = 10_000;

/** What `argv` answers to {@link probeWrites}, to the end of its output. */
async function answersOf(argv: readonly string[]): Promise<Uint8Array> {
  const [command, ...args] = argv;
  const child = new Deno.Command(command!, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // A server that leaves a line unanswered would be waited for forever: end it, and its stdout.
  const deadline = AbortSignal.timeout(CHECK_TIMEOUT_MS);
  const onDeadline = (): void => {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has exited already.
    }
  };
  deadline.addEventListener("abort", onDeadline, { once: true });
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const parts: Uint8Array[] = [];
  let lines = 0;
  const read = async (): Promise<boolean> => {
    const { value, done } = await reader.read();
    if (done) return false;
    parts.push(value);
    for (const byte of value) if (byte === 0x0a) lines++;
    return true;
  };
  try {
    for (const { text, answersBefore } of probeWrites()) {
      while (lines < answersBefore) {
        if (!(await read())) {
          throw new Error(
            `${argv.join(" ")}: stdout ended with ${lines} of ${answersBefore} answers` +
              (deadline.aborted ? ` after ${CHECK_TIMEOUT_MS} ms` : ""),
          );
        }
      }
      await writer.write(encoder.encode(text));
    }
    await writer.close();
    while (await read()) {
      // To the end.
    }
  } catch (e) {
    try {
      child.kill("SIGTERM");
    } catch {
      // It has exited already.
    }
    throw e;
  } finally {
    await writer.close().catch(() => {});
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
    deadline.removeEventListener("abort", onDeadline);
  }
  const status = await child.status;
  if (!status.success) throw new Error(`${argv.join(" ")} exited with code ${status.code}`);
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** Throws unless `argv` answers the probe with the same bytes as `reference`. */
export async function checkSameAnswers(
  argv: readonly string[],
  reference: readonly string[],
): Promise<void> {
  const [got, want] = await Promise.all([answersOf(argv), answersOf(reference)]);
  if (got.length === want.length && got.every((b, i) => b === want[i])) return;
  const a = decoder.decode(got).split("\n");
  const b = decoder.decode(want).split("\n");
  const line = a.findIndex((l, i) => l !== b[i]);
  throw new Error(
    `${argv.join(" ")} does not answer as ${reference.join(" ")}: line ${line + 1} is\n` +
      `  ${(a[line] ?? "(none)").slice(0, 500)}\nnot\n  ${(b[line] ?? "(none)").slice(0, 500)}`,
  );
}
