/**
 * Starting and ending a stdio upstream: no shell, its own session and process group, contained as
 * far as the OS and the Deno permissions allow (see process_tree.ts), and an orderly end: stdin
 * closed, then SIGTERM, then SIGKILL, each to the upstream and everything it started.
 *
 * The callers (the stdio transport, and the HTTP bridge with one upstream per session) hold only
 * the `Deno.ChildProcess`; the tree behind each one is kept here, keyed by it.
 *
 * @module
 */
import type { ProxyStats } from "../telemetry/proxy_stats.ts";
import type { Logger } from "../log.ts";
import {
  describeTreeSupport,
  probeTreeSupport,
  type TreeSupport,
  UpstreamTree,
} from "./process_tree.ts";

/** Raised when the upstream command cannot be started. */
export class SpawnError extends Error {
  override name = "SpawnError";
}

// What the machine and the permissions allow does not change during a run: decided at the first
// spawn, told once, and shared by every upstream of the run (the HTTP bridge starts many).
let support: TreeSupport | undefined;
let told = false;
const trees = new WeakMap<Deno.ChildProcess, UpstreamTree>();
/** Trees not yet reaped: ended when the process exits, whatever path led there. */
const live = new Set<UpstreamTree>();

/** Trees whose lesser containment has been told. */
const toldDegraded = new WeakSet<UpstreamTree>();

function tell(logger: Logger | undefined, tree: UpstreamTree): void {
  if (logger === undefined) return;
  if (tree.degraded !== undefined && !toldDegraded.has(tree)) {
    toldDegraded.add(tree);
    logger.warn("the upstream could not be contained as the others are", {
      pid: tree.child.pid,
      reason: tree.degraded,
    });
  }
  if (told || support === undefined) return;
  told = true;
  const notice = describeTreeSupport(support);
  logger.log(notice.level, notice.msg, notice.fields);
}

function onUnload(): void {
  for (const tree of live) tree.abandon();
  live.clear();
}

/** Optional settings of {@linkcode spawnUpstream}. */
export interface SpawnOptions {
  /**
   * Hears, once per run, how far the upstream's descendants are contained. Without it the first
   * {@linkcode awaitExitOrEnd} tells its logger.
   */
  logger?: Logger;
  /** How long what the upstream leaves behind may outlive it before it is killed. */
  graceMs?: number;
  /** Counts the start and the end, for metrics. */
  stats?: ProxyStats;
}

/** The proxy's grace before signals (main.ts uses the same). */
const DEFAULT_GRACE_MS = 3000;

/**
 * Starts `argv` with exactly `env`, stdin and stdout piped, stderr shared with ours. Once it exits,
 * whatever it started gets the grace to exit too and is then killed.
 */
export function spawnUpstream(
  argv: readonly string[],
  env: Record<string, string>,
  options: SpawnOptions = {},
): Deno.ChildProcess {
  const [command, ...args] = argv;
  if (command === undefined) throw new SpawnError("no upstream command");
  if (support === undefined) {
    support = probeTreeSupport();
    globalThis.addEventListener("unload", onUnload);
  }
  let tree: UpstreamTree;
  try {
    tree = UpstreamTree.spawn(
      new Deno.Command(command, {
        args,
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
        // Its own session and process group, so that ending it also ends what it started.
        detached: Deno.build.os !== "windows",
      }),
      support,
    );
  } catch (e) {
    throw new SpawnError(
      `cannot start upstream ${JSON.stringify(command)}: ${(e as Error).message}`,
    );
  }
  const stats = options.stats;
  if (stats !== undefined) {
    stats.upstreamStarted();
    void tree.child.status.then((s) => stats.upstreamEnded(s.code, s.signal), () => {});
  }
  trees.set(tree.child, tree);
  live.add(tree);
  void tree.reapAfterExit(options.graceMs ?? DEFAULT_GRACE_MS).then(() => live.delete(tree));
  tell(options.logger, tree);
  return tree.child;
}

/** Resolves after `ms`, or when `promise` settles, whichever is first: true if it settled. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ends an upstream whose stdin the caller has just closed: waits `graceMs` for it to exit, then
 * sends SIGTERM to it and everything it started, then SIGKILL. Returns true when signals were
 * needed.
 */
export async function awaitExitOrEnd(
  child: Deno.ChildProcess,
  graceMs: number,
  logger: Logger,
): Promise<boolean> {
  const tree = trees.get(child);
  if (tree !== undefined) tell(logger, tree);
  if (await within(child.status, graceMs)) return false;
  logger.warn("upstream did not exit after its stdin closed; sending SIGTERM", {
    grace_ms: graceMs,
  });
  if (tree !== undefined) tree.terminate();
  else child.kill("SIGTERM");
  if (await within(child.status, graceMs)) return true;
  logger.warn("upstream ignored SIGTERM; sending SIGKILL");
  if (tree !== undefined) tree.kill();
  else child.kill("SIGKILL");
  return true;
}

/**
 * Once the upstream has exited: kills what it left behind (grandchildren holding pipes, daemons,
 * processes that left its process group) and removes its cgroup. The killing is done when this
 * returns; the promise resolves once the cgroup is gone too.
 */
export function reapGroup(child: Deno.ChildProcess): Promise<void> {
  const tree = trees.get(child);
  if (tree === undefined) return Promise.resolve();
  return tree.reap().then(() => {
    live.delete(tree);
  });
}
