/**
 * Following an upstream's descendants through Linux's process table, for when it cannot have a
 * cgroup of its own. A process that moves to a new session or process group, or whose parent
 * exits so that it is reparented to init, leaves the upstream's process group; it is still found
 * here if a scan saw it (or an ancestor of it that we track) before then.
 *
 * Scans run while the upstream lives, every 500 ms or more (a scan reads every `/proc/<pid>/stat`;
 * the interval grows so that scanning stays under 2% of a core on a busy machine). At the end,
 * everything tracked is stopped with SIGSTOP, which cannot be caught, and the table is scanned
 * again for children forked meanwhile, until nothing new appears; then all get SIGKILL. Stopped
 * processes cannot fork, so nothing that is still attached to the tree escapes the end.
 *
 * The limit: a descendant that forks, and whose parent exits, both between two scans, and that
 * also leaves the upstream's session, is not seen (a fast "fork, setsid, fork" daemon). A cgroup
 * has no such gap.
 *
 * @module
 */
import { listProcStats, type ProcStat } from "./proc_stat.ts";

/** At most this many processes are tracked; beyond it a fork bomb is left to the group kill. */
const MAX_TRACKED = 4096;
const MIN_INTERVAL_MS = 500;
const MAX_INTERVAL_MS = 5000;
/** Rounds of stop-and-rescan before the final SIGKILL; each round only finds newer forks. */
const MAX_STOP_ROUNDS = 50;

type Sig = "SIGTERM" | "SIGKILL" | "SIGSTOP";

function send(pid: number, signal: Sig): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The descendants of one process that leads its own session (it was spawned detached). */
export class Descendants {
  readonly root: number;
  /** pid → start time and group of every live process known to be the root's or a descendant. */
  readonly #tracked = new Map<number, { start: number; pgrp: number }>();
  #rootStart: number | undefined;
  /** Once the root's pid belongs to another process, its group and session ids may too. */
  #idsReused = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #intervalMs = MIN_INTERVAL_MS;
  #stopped = false;

  /**
   * Starts tracking the descendants of `root` (a session leader) with a first scan, and keeps
   * scanning until {@linkcode Descendants.stop}. Throws `Deno.errors.NotCapable` when Deno may not
   * read `/proc`.
   */
  constructor(root: number) {
    this.root = root;
    this.scan();
    this.#schedule();
  }

  /** How many live processes are tracked, the root included. */
  get size(): number {
    return this.#tracked.size;
  }

  /** The pids tracked now. */
  pids(): number[] {
    return [...this.#tracked.keys()];
  }

  /** Reads the process table and adds every new descendant; forgets the dead. */
  scan(): void {
    const table = listProcStats();
    const byPid = new Map<number, ProcStat>();
    for (const p of table) byPid.set(p.pid, p);
    const root = byPid.get(this.root);
    if (this.#rootStart === undefined && root !== undefined) {
      this.#rootStart = root.start;
      if (root.state !== "Z") this.#tracked.set(this.root, { start: root.start, pgrp: root.pgrp });
    }
    if (root !== undefined && this.#rootStart !== undefined && root.start !== this.#rootStart) {
      this.#idsReused = true;
    }
    for (const [pid, known] of this.#tracked) {
      const p = byPid.get(pid);
      if (p === undefined || p.start !== known.start || p.state === "Z") this.#tracked.delete(pid);
      else known.pgrp = p.pgrp;
    }
    // A child starts after its parent: in start order, one pass finds whole chains.
    table.sort((a, b) => a.start - b.start || a.pid - b.pid);
    for (let grew = true; grew;) {
      grew = false;
      for (const p of table) {
        if (this.#tracked.size >= MAX_TRACKED) return;
        if (p.state === "Z" || p.pid === Deno.pid || this.#tracked.has(p.pid)) continue;
        if (this.#belongs(p)) {
          this.#tracked.set(p.pid, { start: p.start, pgrp: p.pgrp });
          grew = true;
        }
      }
    }
  }

  #belongs(p: ProcStat): boolean {
    const parent = this.#tracked.get(p.ppid);
    if (parent !== undefined && parent.start <= p.start) return true;
    // Whoever is still in the root's process group or session came from the root, even after its
    // parent exited, as long as those ids are not another process's now.
    return !this.#idsReused && this.#rootStart !== undefined && p.start >= this.#rootStart &&
      (p.pgrp === this.root || p.session === this.root);
  }

  /**
   * Scans, then sends `signal` once to every tracked process: to the root's process group, and to
   * each tracked process outside it (a second SIGTERM means "hurry" to some programs).
   */
  signal(signal: "SIGTERM" | "SIGKILL"): void {
    this.#scanQuietly();
    const grouped = this.#signalGroup(signal);
    for (const [pid, known] of this.#tracked) {
      if (!grouped || known.pgrp !== this.root) send(pid, signal);
    }
  }

  /** The root's process group, members beyond what is tracked included. */
  #signalGroup(signal: Sig): boolean {
    return !this.#idsReused && send(-this.root, signal);
  }

  /**
   * Ends every tracked process and every process forked meanwhile: stops them all, rescans until
   * no new one appears, then kills them all. Stops the scanning.
   */
  killAll(): void {
    this.stop();
    const stopped = new Set<number>();
    for (let round = 0; round < MAX_STOP_ROUNDS; round++) {
      this.#scanQuietly();
      let fresh = false;
      for (const pid of this.#tracked.keys()) {
        if (stopped.has(pid)) continue;
        stopped.add(pid);
        if (send(pid, "SIGSTOP")) fresh = true;
      }
      if (!fresh) break;
    }
    for (const pid of this.#tracked.keys()) send(pid, "SIGKILL");
    this.#signalGroup("SIGKILL");
    this.#tracked.clear();
  }

  /** Stops scanning; what is tracked is kept. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** A scan whose failure keeps what is tracked: /proc was readable when tracking began. */
  #scanQuietly(): void {
    try {
      this.scan();
    } catch {
      // Signal what is known.
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      const began = performance.now();
      this.#scanQuietly();
      const took = performance.now() - began;
      this.#intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, took * 50));
      this.#schedule();
    }, this.#intervalMs);
    // Scanning never keeps the proxy alive. Web timers are numbers in Deno.
    Deno.unrefTimer(Number(this.#timer));
  }
}
