/**
 * Signalling an upstream's process group with whatever Deno permits. On Unix the upstream leads
 * its own process group (it is spawned detached), so a signal to the group also reaches what a
 * wrapper such as `npx` started.
 *
 * `Deno.kill` needs `--allow-run` without a list of programs; with a list (the README's
 * `--allow-run=npx`) it throws, and so did every group signal before this was checked. Then the
 * `kill` program is used if the list names it; otherwise only the upstream itself can be
 * signalled, through its `Deno.ChildProcess`, which needs no permission.
 *
 * @module
 */

/** A signal this module sends. */
export type TreeSignal = "SIGTERM" | "SIGKILL" | "SIGCONT";

/** How signals can reach processes other than our own children. */
export type SignalRoute =
  /** `Deno.kill`: `--allow-run` without a list. */
  | { kind: "deno" }
  /** The `kill` program: named in `--allow-run`. */
  | { kind: "program" }
  /** Windows: `taskkill /T`, which ends a tree by parent pid. */
  | { kind: "taskkill" }
  /** Nothing but the child's own handle. */
  | { kind: "none" };

/** The route this process's permissions allow. Never prompts. */
export function signalRoute(): SignalRoute {
  const mayRun = (command?: string): boolean =>
    Deno.permissions.querySync(command === undefined ? { name: "run" } : { name: "run", command })
      .state === "granted";
  if (Deno.build.os === "windows") {
    return mayRun() || mayRun("taskkill") ? { kind: "taskkill" } : { kind: "none" };
  }
  if (mayRun()) return { kind: "deno" };
  if (mayRun("kill")) return { kind: "program" };
  return { kind: "none" };
}

/**
 * Sends `signal` to the process group `pgid` (Unix), or to the tree below `pgid` (Windows, where
 * it is the root's pid). Returns true when the signal was delivered to at least one process.
 */
export function signalGroup(route: SignalRoute, pgid: number, signal: TreeSignal): boolean {
  switch (route.kind) {
    case "deno":
      try {
        Deno.kill(-pgid, signal);
        return true;
      } catch {
        return false;
      }
    case "program":
      return runQuietly("kill", ["-s", signal.slice(3), "--", String(-pgid)]);
    case "taskkill": {
      if (signal === "SIGCONT") return false;
      const args = ["/PID", String(pgid), "/T"];
      if (signal === "SIGKILL") args.push("/F");
      return runQuietly("taskkill", args);
    }
    case "none":
      return false;
    default: {
      const unreachable: never = route;
      throw new Error(`unknown signal route ${JSON.stringify(unreachable)}`);
    }
  }
}

/** True while any process of the group is alive (Unix, when the route allows asking). */
export function groupAlive(route: SignalRoute, pgid: number): boolean {
  // Signal 0 is not exposed by Deno.kill; SIGCONT is harmless to running processes.
  return route.kind !== "taskkill" && signalGroup(route, pgid, "SIGCONT");
}

/** Runs a program with no output; true when it exits 0. */
function runQuietly(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdin: "null", stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    // Not permitted or not installed: nothing was sent.
    return false;
  }
}
