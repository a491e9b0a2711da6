/**
 * Starting and ending a stdio upstream: no shell, its own process group, and an orderly end
 * (stdin closed, then SIGTERM, then SIGKILL, each to the whole group).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { groupAlive, signalTree } from "./process_group.ts";

/** Raised when the upstream command cannot be started. */
export class SpawnError extends Error {
  override name = "SpawnError";
}

/** Starts `argv` with exactly `env`, stdin and stdout piped, stderr shared with ours. */
export function spawnUpstream(
  argv: readonly string[],
  env: Record<string, string>,
): Deno.ChildProcess {
  const [command, ...args] = argv;
  if (command === undefined) throw new SpawnError("no upstream command");
  try {
    return new Deno.Command(command, {
      args,
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      // Its own process group, so that ending it also ends what it started.
      detached: Deno.build.os !== "windows",
    }).spawn();
  } catch (e) {
    throw new SpawnError(
      `cannot start upstream ${JSON.stringify(command)}: ${(e as Error).message}`,
    );
  }
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
 * sends SIGTERM to its group, then SIGKILL. Returns true when signals were needed.
 */
export async function awaitExitOrEnd(
  child: Deno.ChildProcess,
  graceMs: number,
  logger: Logger,
): Promise<boolean> {
  if (await within(child.status, graceMs)) return false;
  logger.warn("upstream did not exit after its stdin closed; sending SIGTERM", {
    grace_ms: graceMs,
  });
  signalTree(child.pid, "SIGTERM");
  if (await within(child.status, graceMs)) return true;
  logger.warn("upstream ignored SIGTERM; sending SIGKILL");
  signalTree(child.pid, "SIGKILL");
  return true;
}

/** Kills whatever is left of the upstream's process group (grandchildren holding pipes). */
export function reapGroup(child: Deno.ChildProcess): void {
  if (groupAlive(child.pid)) signalTree(child.pid, "SIGKILL");
}
