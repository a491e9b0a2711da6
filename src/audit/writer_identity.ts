/**
 * Who is writing: the facts `audit/start` records about the proxy process, so that records of a
 * log shared by several proxies can be told apart by writer (each record's `session` names its
 * exchange; the `audit/start` before it names the process).
 *
 * @module
 */
import type { JsonObject } from "../jsonrpc/json.ts";

function orNull<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    // A fact the permissions or the platform do not give is recorded as unknown.
    return null;
  }
}

/** The writing process: pid, parent pid, host, user id, executable and when it started. */
export function writerIdentity(): JsonObject {
  return {
    pid: Deno.pid,
    ppid: orNull(() => Deno.ppid),
    hostname: orNull(() => Deno.hostname()),
    uid: orNull(() => Deno.uid()),
    exec_path: orNull(() => Deno.execPath()),
    started_at: new Date(Date.now() - performance.now()).toISOString(),
  };
}
