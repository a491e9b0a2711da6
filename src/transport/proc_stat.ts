/**
 * Reading Linux's process table from `/proc/<pid>/stat`: who a process's parent is, its process
 * group and session, and when it started. The start time tells a process from a later one that
 * was given the same pid, which matters where pids wrap at 32768.
 *
 * Deno allows reading `/proc` only with all permissions; without them every read here throws
 * `Deno.errors.NotCapable`, which callers treat as "cannot see the process table".
 *
 * @module
 */

/** One process, as `/proc/<pid>/stat` describes it. */
export interface ProcStat {
  pid: number;
  /** The one-letter state; `Z` is a zombie (dead, not yet reaped). */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Clock ticks after boot at which the process started: with `pid`, its identity. */
  start: number;
}

/**
 * Parses the text of `/proc/<pid>/stat`, or returns undefined when it is not one.
 *
 * @example
 * ```ts
 * const s = parseProcStat("42 (a) b) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0");
 * // s?.ppid === 1, s?.start === 777
 * ```
 */
export function parseProcStat(text: string): ProcStat | undefined {
  // The command name is in parentheses and may itself hold spaces and parentheses: the fields
  // start after the last ")".
  const open = text.indexOf(" (");
  const close = text.lastIndexOf(")");
  if (open === -1 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  const fields = text.slice(close + 2).split(" ");
  const [state, ppid, pgrp, session] = fields;
  const start = Number(fields[19]);
  if (
    !Number.isSafeInteger(pid) || state === undefined || !Number.isSafeInteger(start) ||
    ppid === undefined || pgrp === undefined || session === undefined
  ) {
    return undefined;
  }
  return { pid, state, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session), start };
}

/**
 * The stat of `pid`, or undefined when there is no such process (any more).
 * Throws `Deno.errors.NotCapable` when Deno may not read `/proc`.
 */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) throw e;
    return undefined;
  }
  return parseProcStat(text);
}

/**
 * Every process in `/proc`, zombies included. Processes that end while the table is read are
 * left out. Throws `Deno.errors.NotCapable` when Deno may not read `/proc`.
 */
export function listProcStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    const c = entry.name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const stat = readProcStat(Number(entry.name));
    if (stat !== undefined) out.push(stat);
  }
  return out;
}

/** True while `pid` is the process that started at `start` and has not died. */
export function isAlive(pid: number, start: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.start === start && stat.state !== "Z";
}
