/**
 * Check 6, `upstream`: the upstream answers `initialize`, reached exactly as the proxy reaches it,
 * and nothing else is sent to it.
 *
 * - A command: split as the proxy splits `proxy.upstream` (or the argv after `--`), started by the
 *   proxy's own `spawnUpstream` with the environment the proxy gives it (its own secrets taken
 *   out), in its own process group; one `initialize` line on its stdin, its stdout read line by
 *   line (each capped at `proxy.max_message_bytes`) for the answer until the deadline; then its
 *   stdin is closed and it is ended as the proxy ends it (`awaitExitOrEnd`: the grace, SIGTERM,
 *   SIGKILL, to the whole group), and what it left behind is reaped.
 * - A URL: one `initialize` POST through the proxy's upstream client (its `proxy.tls` settings),
 *   accepting a JSON or an SSE answer; a session the server opened is ended with DELETE.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { parseJson } from "../jsonrpc/json.ts";
import { Logger } from "../log.ts";
import { LineSplitter } from "../streams/line_splitter.ts";
import { readCapped } from "../streams/read_capped.ts";
import { SseTap } from "../streams/sse_tap.ts";
import { CommandLineError, splitCommandLine, upstreamEnv } from "../transport/command_line.ts";
import { awaitExitOrEnd, reapGroup, spawnUpstream } from "../transport/upstream_process.ts";
import { upstreamTls, UpstreamTlsError } from "../transport/http/upstream_tls.ts";
import { VERSION } from "../version.ts";
import { type CheckResult, message, result } from "./result.ts";

/** The protocol version asked for, as the proxy's tests ask. */
export const PROTOCOL_VERSION = "2025-06-18";
/** The grace the proxy gives an upstream after its stdin closes, and again after SIGTERM. */
const GRACE_MS = 3000;
const REQUEST_ID = 1;

/** What the check needs besides the configuration. */
export interface UpstreamCheckDeps {
  env: Readonly<Record<string, string>>;
  /** How long to wait for the answer. */
  timeoutMs: number;
  /** Ends the wait early (Ctrl-C). */
  signal?: AbortSignal | undefined;
  mono: () => number;
}

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: REQUEST_ID,
  method: "initialize",
  params: {
    protocolVersion: PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: "mcp-audit-doctor", version: VERSION },
  },
});

/**
 * A wait's end: after `ms`, or when `outer` aborts. Disposed, its timer is cleared, so that a
 * check that is over does not hold the process open (as `AbortSignal.timeout`'s timer does).
 */
class Deadline implements Disposable {
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #outer: AbortSignal | undefined;
  readonly #onOuter = () => this.#controller.abort();
  constructor(ms: number, outer: AbortSignal | undefined) {
    this.#timer = setTimeout(() => this.#controller.abort(), ms);
    this.#outer = outer;
    if (outer?.aborted) this.#controller.abort();
    outer?.addEventListener("abort", this.#onOuter, { once: true });
  }
  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
    this.#outer?.removeEventListener("abort", this.#onOuter);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What the answer said. */
type Answer =
  | { kind: "result"; server: string; protocol: string; complete: boolean }
  | { kind: "error"; text: string };

/** The answer to our request in `text`, or undefined when `text` is something else. */
export function readAnswer(text: string): Answer | undefined {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || value["id"] !== REQUEST_ID) return undefined;
  const error = value["error"];
  if (isRecord(error)) {
    const msg = typeof error["message"] === "string" ? error["message"] : "(no message)";
    return { kind: "error", text: `error ${String(error["code"])}: ${msg}` };
  }
  const res = value["result"];
  if (!isRecord(res)) return undefined;
  const info = res["serverInfo"];
  const name = isRecord(info) && typeof info["name"] === "string" ? info["name"] : undefined;
  const version = isRecord(info) && typeof info["version"] === "string"
    ? info["version"]
    : undefined;
  const protocol = typeof res["protocolVersion"] === "string" ? res["protocolVersion"] : undefined;
  return {
    kind: "result",
    server: `${name ?? "(no serverInfo.name)"} ${version ?? ""}`.trim(),
    protocol: protocol ?? "(none)",
    complete: name !== undefined && protocol !== undefined,
  };
}

function answered(a: Answer, how: string, ms: number): CheckResult {
  if (a.kind === "error") {
    return result("upstream", "fail", `${how} answered initialize with ${a.text}`, {
      fix: "the server refused the handshake: check its arguments, environment and version",
    });
  }
  const detail = `${a.server}, protocol ${a.protocol} (${how}, ${ms} ms)`;
  if (!a.complete) {
    return result("upstream", "warn", `${detail}: the answer lacks serverInfo or protocolVersion`, {
      fix: "is this an MCP server? clients expect both in the initialize result",
    });
  }
  return result("upstream", "ok", detail);
}

/** Whether the configuration names a URL upstream (as the proxy decides). */
function isUrl(config: Config): boolean {
  return /^https?:\/\//i.test(config.proxy.upstream.trim()) &&
    config.proxy.upstream_argv.length === 0;
}

/**
 * Starts (or reaches) the configured upstream and asks it `initialize`.
 *
 * @example
 * ```ts
 * const r = await checkUpstream(config, {
 *   env: Deno.env.toObject(),
 *   timeoutMs: 10_000,
 *   mono: () => performance.now(),
 * });
 * console.log(r.status, r.detail); // ok mcp-servers/everything 2.0.0, protocol 2025-06-18 (…)
 * ```
 */
export async function checkUpstream(config: Config, deps: UpstreamCheckDeps): Promise<CheckResult> {
  if (isUrl(config)) return await checkUrl(config, deps);
  let argv = config.proxy.upstream_argv;
  if (argv.length === 0) {
    if (config.proxy.upstream.trim() === "") {
      return result(
        "upstream",
        "skip",
        "no upstream configured (proxy.upstream, --upstream or after --)",
        {
          fix:
            "give the upstream to check: mcp-audit doctor [flags] -- CMD ARGS, or --upstream URL",
        },
      );
    }
    try {
      argv = splitCommandLine(config.proxy.upstream, Deno.build.os === "windows");
    } catch (e) {
      if (!(e instanceof CommandLineError)) throw e;
      return result("upstream", "fail", `proxy.upstream: ${e.message}`, {
        fix: "quote the command as a shell would, or give it after --",
      });
    }
  }
  return await checkCommand(argv, config.proxy.max_message_bytes, deps);
}

async function checkCommand(
  argv: string[],
  maxBytes: number,
  deps: UpstreamCheckDeps,
): Promise<CheckResult> {
  const shown = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
  const notes: string[] = [];
  const logger = new Logger("warn", (line) => {
    const parsed = parseJson(line);
    if (isRecord(parsed) && typeof parsed["msg"] === "string") notes.push(parsed["msg"]);
  });
  const started = deps.mono();
  let child: Deno.ChildProcess;
  try {
    child = spawnUpstream(argv, upstreamEnv(deps.env), { logger, graceMs: GRACE_MS });
  } catch (e) {
    return result("upstream", "fail", message(e), {
      fix: `check that ${JSON.stringify(argv[0])} is installed and on PATH (no shell is used)`,
    });
  }
  using deadline = new Deadline(deps.timeoutMs, deps.signal);
  const frames = child.stdout.pipeThrough(new LineSplitter(maxBytes)).getReader();
  const writer = child.stdin.getWriter();
  const decoder = new TextDecoder();
  let found: Answer | undefined;
  let ended = "";
  let stray = 0;
  const stopped = new Promise<"deadline">((resolve) => {
    if (deadline.signal.aborted) resolve("deadline");
    deadline.signal.addEventListener("abort", () => resolve("deadline"), { once: true });
  });
  try {
    try {
      await writer.write(new TextEncoder().encode(`${INITIALIZE}\n`));
    } catch (e) {
      ended = `its stdin closed before the request was written (${message(e)})`;
    }
    while (found === undefined && ended === "") {
      const next = await Promise.race([frames.read(), stopped]);
      if (next === "deadline") {
        ended = deps.signal?.aborted ? "interrupted" : `no answer within ${deps.timeoutMs} ms`;
        break;
      }
      if (next.done) {
        const status = await child.status;
        ended = `it exited (${
          status.signal === null ? `code ${status.code}` : `signal ${status.signal}`
        }) before answering initialize`;
        break;
      }
      for (const frame of next.value) {
        if (frame.kind === "oversized") {
          stray++;
          continue;
        }
        const a = readAnswer(decoder.decode(frame.bytes.subarray(0, frame.contentLength)));
        if (a === undefined) stray++;
        else if (found === undefined) found = a;
      }
    }
  } finally {
    await frames.cancel().catch(() => {});
    await writer.close().catch(() => {});
    await awaitExitOrEnd(child, GRACE_MS, logger);
    await reapGroup(child);
  }
  const ms = Math.round(deps.mono() - started);
  if (stray > 0) notes.push(`${stray} other line(s) on its stdout before the answer`);
  if (found === undefined) {
    return result("upstream", "fail", `${shown}: ${ended}`, {
      fix: `run it by hand to see its errors (${shown}), or give it longer with --timeout MS`,
      notes,
    });
  }
  const r = answered(found, `stdio: ${shown}`, ms);
  return notes.length === 0 ? r : { ...r, notes };
}

async function checkUrl(config: Config, deps: UpstreamCheckDeps): Promise<CheckResult> {
  let url: URL;
  try {
    url = new URL(config.proxy.upstream.trim());
  } catch {
    return result(
      "upstream",
      "fail",
      `proxy.upstream is not a valid URL: ${config.proxy.upstream}`,
      {
        fix: "set proxy.upstream (--upstream) to the server's http(s) URL",
      },
    );
  }
  const notes: string[] = [];
  let tls;
  try {
    tls = await upstreamTls(config.proxy.tls, { warn: (msg) => notes.push(msg) });
  } catch (e) {
    if (!(e instanceof UpstreamTlsError)) throw e;
    return result("upstream", "fail", e.message, { fix: `correct ${e.key}` });
  }
  await using client = tls;
  using deadline = new Deadline(deps.timeoutMs, deps.signal);
  const started = deps.mono();
  const maxBytes = config.proxy.max_message_bytes;
  let found: Answer | undefined;
  let session: string | null = null;
  try {
    const response = await client.fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: INITIALIZE,
      signal: deadline.signal,
    });
    session = response.headers.get("mcp-session-id");
    if (!response.ok) {
      await response.body?.cancel();
      return result(
        "upstream",
        "fail",
        `${url.href} answered initialize with HTTP ${response.status}`,
        {
          fix: response.status === 401 || response.status === 403
            ? "the server wants credentials the proxy does not have (proxy.forward_headers passes the client's)"
            : "check the URL (path included) and that the server speaks MCP's streamable HTTP",
        },
      );
    }
    const type = response.headers.get("content-type") ?? "";
    if (response.body === null) {
      found = undefined;
    } else if (type.toLowerCase().startsWith("text/event-stream")) {
      found = await answerFromSse(response.body, maxBytes);
    } else {
      const read = await readCapped(response.body, maxBytes);
      found = read.kind === "complete"
        ? readAnswer(new TextDecoder().decode(read.bytes))
        : undefined;
    }
  } catch (e) {
    const why = deadline.signal.aborted ? `no answer within ${deps.timeoutMs} ms` : message(e);
    return result("upstream", "fail", `${url.href}: ${why}`, {
      fix:
        "check that the server is running and reachable from here, or give it longer with --timeout MS",
      notes,
    });
  } finally {
    if (session !== null) {
      const ended = await endSession(client.fetch, url, session);
      if (ended !== "") notes.push(ended);
    }
  }
  const ms = Math.round(deps.mono() - started);
  if (found === undefined) {
    return result(
      "upstream",
      "fail",
      `${url.href} did not answer initialize with a JSON-RPC response`,
      {
        fix: "check that the URL is the server's MCP endpoint",
        notes,
      },
    );
  }
  const r = answered(found, `http: ${url.href}`, ms);
  return notes.length === 0 ? r : { ...r, notes };
}

/** The answer in an SSE body: the first event whose data is our response; the rest is dropped. */
async function answerFromSse(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<Answer | undefined> {
  let found: Answer | undefined;
  const reader = body.pipeThrough(
    new SseTap(maxBytes, {
      onEvent: (e) => {
        found ??= readAnswer(e.data);
        return null;
      },
      onOversized: () => null,
    }),
  ).getReader();
  try {
    while (found === undefined) {
      const { done } = await reader.read();
      if (done) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return found;
}

/** Ends the session the server opened; what went wrong, or "". */
async function endSession(
  fetch: (input: URL, init: RequestInit) => Promise<Response>,
  url: URL,
  session: string,
): Promise<string> {
  try {
    const r = await fetch(url, {
      method: "DELETE",
      headers: { "mcp-session-id": session, "mcp-protocol-version": PROTOCOL_VERSION },
      signal: AbortSignal.timeout(GRACE_MS),
    });
    await r.body?.cancel();
    // 405: the server does not let clients end sessions, which the protocol allows.
    return r.ok || r.status === 405 ? "" : `ending the session got HTTP ${r.status}`;
  } catch (e) {
    return `ending the session failed: ${message(e)}`;
  }
}
