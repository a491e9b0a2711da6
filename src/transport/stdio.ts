/**
 * The stdio transport: the upstream is a child process; the client is our stdin and stdout. Two
 * pumps move framed lines through the exchange, which records each one before it is written on.
 *
 * @module
 */
import type { ProxyStats } from "../telemetry/proxy_stats.ts";
import type { Exchange, Outbound, Side } from "../pipeline/exchange.ts";
import { BatchWriter } from "../streams/batch_writer.ts";
import { LineSplitter } from "../streams/line_splitter.ts";
import type { Logger } from "../log.ts";
import {
  awaitExitOrEnd,
  reapGroup,
  SpawnError,
  spawnUpstream,
  within,
} from "./upstream_process.ts";

/** What the stdio transport needs. */
export interface StdioOptions {
  /** The upstream command; `argv[0]` is looked up on PATH. */
  argv: string[];
  /** The upstream's whole environment. */
  env: Record<string, string>;
  /** The client's end: what it writes to us, and where we write to it. */
  client: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
  exchange: Exchange;
  /** Called before each batch goes out, to make its records durable first. */
  beforeWrite: () => void;
  maxMessageBytes: number;
  logger: Logger;
  /** Counts the upstream process's start and end, for metrics. */
  stats?: ProxyStats;
  /** Aborted on SIGINT/SIGTERM: stop reading, end the upstream, finish cleanly. */
  signal: AbortSignal;
  /** How long the upstream gets to exit after its stdin closes, and again after SIGTERM. */
  graceMs: number;
}

/** How the session ended. */
export interface StdioOutcome {
  /** The process exit code to use. */
  exitCode: 0 | 1;
  /** One line on why it ended. */
  reason: string;
  upstream: { code: number; signal: string | null } | null;
}

/** Runs one stdio session to its end. Never throws for upstream or client failures. */
export async function runStdio(opts: StdioOptions): Promise<StdioOutcome> {
  const { logger, exchange } = opts;
  let child: Deno.ChildProcess;
  try {
    child = spawnUpstream(opts.argv, opts.env, {
      logger,
      graceMs: opts.graceMs,
      ...(opts.stats === undefined ? {} : { stats: opts.stats }),
    });
  } catch (e) {
    if (!(e instanceof SpawnError)) throw e;
    logger.error(e.message);
    return { exitCode: 1, reason: e.message, upstream: null };
  }
  logger.info("upstream started", {
    pid: child.pid,
    command: opts.argv[0],
    session: exchange.session,
  });

  let stopping: Promise<void> | undefined;
  let escalated = false;
  let clientGone = false;
  let auditFailure: string | undefined;
  // Stops the client pump on a shutdown signal or when the audit log fails.
  const stopClient = new AbortController();
  const clientSignal = AbortSignal.any([opts.signal, stopClient.signal]);

  /** Records could not be written: forward nothing more, end the session, exit 1. */
  const failClosed = (e: unknown): void => {
    if (auditFailure !== undefined) return;
    auditFailure = e instanceof Error ? e.message : String(e);
    logger.error("cannot write the audit log; forwarding stopped (fail closed)", {
      error: auditFailure,
    });
    stopClient.abort();
    stopUpstream("audit log failure");
  };

  // A batch goes out only after its records are written; if they cannot be, it never does.
  const recordsFirst = (): void => {
    try {
      opts.beforeWrite();
    } catch (e) {
      failClosed(e);
      throw e;
    }
  };
  const writers: Record<Side, BatchWriter> = {
    client: new BatchWriter(opts.client.writable, { beforeWrite: recordsFirst }),
    server: new BatchWriter(child.stdin, { beforeWrite: recordsFirst }),
  };
  const dispatch = async (outs: Outbound[]): Promise<void> => {
    let wait: Promise<void> | undefined;
    for (const out of outs) {
      const writer = writers[out.to];
      if (writer.failure !== undefined) continue;
      try {
        wait = writer.push(out.bytes) ?? wait;
      } catch {
        // A failed sink is handled where it is noticed below.
      }
    }
    if (wait) await wait.catch(() => {});
    if (writers.client.failure !== undefined && !clientGone && auditFailure === undefined) {
      clientGone = true;
      logger.warn("the client stopped reading; ending the session");
      stopUpstream("client closed its input");
    }
  };

  const stopUpstream = (why: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info("closing upstream stdin", { why });
      await writers.server.close();
      escalated = await awaitExitOrEnd(child, opts.graceMs, logger);
    })();
    return stopping;
  };

  const pump = async (
    from: Side,
    source: ReadableStream<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<void> => {
    const reader = source.pipeThrough(new LineSplitter(opts.maxMessageBytes)).getReader();
    const cancel = (): void => {
      reader.cancel().catch(() => {});
    };
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        const outs: Outbound[] = [];
        try {
          for (const frame of value) outs.push(...exchange.receive(from, frame));
          // Records of messages that send nothing on (a dropped oversized line) reach the file too.
          if (outs.length === 0) recordsFirst();
        } catch (e) {
          // Nothing more goes out: no record, no forwarding.
          failClosed(e);
          break;
        }
        await dispatch(outs);
      }
    } catch (e) {
      if (!signal?.aborted) logger.warn(`reading from the ${from} failed`, { error: String(e) });
    } finally {
      signal?.removeEventListener("abort", cancel);
      reader.releaseLock();
    }
  };

  // A pending read of our stdin may not end when cancelled, so the signal ends the upstream itself.
  opts.signal.addEventListener("abort", () => stopUpstream("shutdown signal"), { once: true });
  const serverDone = new AbortController();
  const serverPump = pump("server", child.stdout, serverDone.signal);
  const clientPump = pump("client", opts.client.readable, clientSignal).then(() => {
    if (!clientSignal.aborted) logger.info("client closed its input");
    return stopUpstream(opts.signal.aborted ? "shutdown signal" : "client closed its input");
  });

  const status = await child.status;
  // What the upstream wrote before it died is still in the pipe: forward it before answering
  // the requests left waiting. A grandchild holding the pipe open gets a bounded wait.
  if (!(await within(serverPump, opts.graceMs))) serverDone.abort();

  const code = status.code;
  const reason = status.signal !== null
    ? `upstream ended by ${status.signal}`
    : `upstream exited with code ${code}`;
  (code === 0 ? logger.info : logger.warn).call(logger, reason, { code, signal: status.signal });

  if (auditFailure === undefined) {
    try {
      await dispatch(exchange.upstreamGone(opts.signal.aborted ? "proxy shutting down" : reason));
    } catch (e) {
      failClosed(e);
    }
  }
  await writers.client.flush().catch(() => {});
  // Whatever the upstream left running ends now; the client has had its answers first.
  await reapGroup(child);
  if (stopping === undefined) {
    // The upstream went first: stop reading the client too.
    await writers.server.close();
  }
  void clientPump;
  // An upstream we had to signal ended because of us; any other unclean end is a failure.
  const failed = auditFailure !== undefined ||
    (!opts.signal.aborted && !escalated && (code !== 0 || status.signal !== null));
  return {
    exitCode: failed ? 1 : 0,
    reason: auditFailure !== undefined
      ? `audit log failure: ${auditFailure}`
      : opts.signal.aborted
      ? "shutdown signal"
      : reason,
    upstream: { code, signal: status.signal },
  };
}
