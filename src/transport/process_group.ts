/**
 * Ending a child and everything it started. On Unix the child leads its own process group (it is
 * spawned detached), so a signal to the group also reaches what a wrapper such as `npx` started.
 *
 * @module
 */

/** Sends `signal` to the child's whole process group (Unix) or process tree (Windows). */
export function signalTree(pid: number, signal: "SIGTERM" | "SIGKILL"): void {
  if (Deno.build.os === "windows") {
    const args = ["/PID", String(pid), "/T"];
    if (signal === "SIGKILL") args.push("/F");
    try {
      new Deno.Command("taskkill", { args, stdout: "null", stderr: "null" }).outputSync();
    } catch {
      // Nothing left to end.
    }
    return;
  }
  try {
    Deno.kill(-pid, signal);
  } catch {
    try {
      Deno.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** True while any process of the group is alive (Unix); false on Windows. */
export function groupAlive(pid: number): boolean {
  if (Deno.build.os === "windows") return false;
  try {
    // Signal 0 is not exposed by Deno.kill; SIGCONT is harmless to running processes.
    Deno.kill(-pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}
