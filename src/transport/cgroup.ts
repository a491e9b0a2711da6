/**
 * One Linux cgroup (v2) per upstream: everything the upstream starts is born into it, whatever
 * session or process group it moves to and whoever it is reparented to, so writing `1` to its
 * `cgroup.kill` ends all of it at once, and atomically against a process forking meanwhile.
 *
 * The upstream must be born inside: a process moved in after it started may already have forked,
 * and those children stay behind. `Deno.Command` cannot run code between fork and exec, so this
 * process moves itself into the new cgroup, spawns (the child inherits the cgroup at fork), and
 * moves itself back. Moving a process moves all its threads; JavaScript spawns nothing else
 * between the two moves because they and the spawn run synchronously.
 *
 * Needs: cgroup v2 mounted and writable by us (root, or a delegated subtree such as a systemd
 * user session's), `cgroup.kill` (Linux 5.14+), and Deno permission to read `/proc` and write
 * under `/sys/fs/cgroup`, which Deno grants only with all permissions.
 *
 * @module
 */

/** Raised when a cgroup cannot be made, entered or used. */
export class CgroupError extends Error {
  override name = "CgroupError";
}

const PREFIX = "mcp-audit.";

/** The cgroup v2 directory this process is in, found through `/proc/self`. */
export function ownCgroupDir(): string {
  const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) =>
    l.startsWith("0::")
  );
  if (line === undefined) throw new CgroupError("no cgroup v2 (unified) hierarchy");
  const path = line.slice(3);
  for (const mount of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const dash = mount.indexOf(" - ");
    if (dash === -1 || !mount.startsWith("cgroup2 ", dash + 3)) continue;
    const fields = mount.slice(0, dash).split(" ");
    const root = unescapeMount(fields[3] ?? "");
    const point = unescapeMount(fields[4] ?? "");
    if (root === "/") return point + (path === "/" ? "" : path);
    if (path === root || path.startsWith(root + "/")) return point + path.slice(root.length);
  }
  throw new CgroupError(`no cgroup2 mount holds our cgroup ${path}`);
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMount(text: string): string {
  return text.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Never notified: `Atomics.wait` on it is a synchronous pause. */
const pause = new Int32Array(new SharedArrayBuffer(4));

function moveTo(dir: string, pid: number): void {
  Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(pid));
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Removes `dir` after every cgroup below it (a nested mcp-audit leaves its own). */
function removeTree(dir: string): void {
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory) removeTree(`${dir}/${entry.name}`);
  }
  Deno.removeSync(dir);
}

function processExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes cgroups that an earlier mcp-audit made beside ours and could not remove because it was
 * killed first. Only empty ones whose maker is gone; a busy one is left alone. Called before this
 * process makes any.
 */
export function sweepStale(parent: string): void {
  for (const entry of Deno.readDirSync(parent)) {
    if (!entry.isDirectory || !entry.name.startsWith(PREFIX)) continue;
    const owner = Number(entry.name.slice(PREFIX.length).split(".")[0]);
    if (!Number.isSafeInteger(owner)) continue;
    // One with our pid is from an earlier process that had it: we have made none yet.
    if (owner !== Deno.pid && processExists(owner)) continue;
    try {
      removeTree(`${parent}/${entry.name}`);
    } catch {
      // Still populated, or not ours to remove.
    }
  }
}

/** A cgroup made for one upstream, below this process's own. */
export class Cgroup {
  /** The cgroup this process is in, and returns to after each spawn. */
  readonly parent: string;
  readonly dir: string;
  #holdsUs = false;
  #removed = false;

  private constructor(parent: string, dir: string) {
    this.parent = parent;
    this.dir = dir;
  }

  /** Makes `parent/mcp-audit.<our pid>.<label>`; checks it has `cgroup.kill`. */
  static create(parent: string, label: string): Cgroup {
    const dir = `${parent}/${PREFIX}${Deno.pid}.${label}`;
    try {
      Deno.mkdirSync(dir);
    } catch (e) {
      throw new CgroupError(`cannot make ${dir}: ${message(e)}`);
    }
    const cgroup = new Cgroup(parent, dir);
    try {
      Deno.statSync(`${dir}/cgroup.kill`);
    } catch {
      cgroup.#removeNow();
      throw new CgroupError("no cgroup.kill (Linux before 5.14)");
    }
    return cgroup;
  }

  /**
   * Runs `spawn` with this process inside the cgroup, so that the child starts in it. Throws
   * CgroupError, having spawned nothing, when this process cannot enter the cgroup.
   */
  spawnInside<T>(spawn: () => T): T {
    try {
      moveTo(this.dir, Deno.pid);
    } catch (e) {
      throw new CgroupError(`cannot enter ${this.dir}: ${message(e)}`);
    }
    try {
      return spawn();
    } finally {
      try {
        moveTo(this.parent, Deno.pid);
      } catch {
        // Stuck inside: killing the cgroup would kill us too, so it is emptied pid by pid.
        this.#holdsUs = true;
      }
    }
  }

  /** True when this process could not leave the cgroup after a spawn. */
  get holdsUs(): boolean {
    return this.#holdsUs;
  }

  /** The pids in the cgroup (and none of its children), this process excepted. */
  members(): number[] {
    try {
      return Deno.readTextFileSync(`${this.dir}/cgroup.procs`).split("\n").filter((l) => l !== "")
        .map(Number).filter((pid) => pid !== Deno.pid);
    } catch {
      return [];
    }
  }

  /** True while any process is in the cgroup or below it. */
  populated(): boolean {
    try {
      return /^populated 1$/m.test(Deno.readTextFileSync(`${this.dir}/cgroup.events`));
    } catch {
      return false;
    }
  }

  /** Sends `signal` to every process in the cgroup (and none in cgroups below it). */
  signalMembers(signal: "SIGTERM" | "SIGKILL"): void {
    for (const pid of this.members()) {
      try {
        Deno.kill(pid, signal);
      } catch {
        // Gone meanwhile.
      }
    }
  }

  /** SIGKILLs every process in the cgroup and below it, including any forked meanwhile. */
  kill(): void {
    if (this.#removed) return;
    if (this.#holdsUs) return this.signalMembers("SIGKILL");
    try {
      Deno.writeTextFileSync(`${this.dir}/cgroup.kill`, "1");
    } catch {
      this.signalMembers("SIGKILL");
    }
  }

  /**
   * Kills what is left, waits (up to `ms`) for it to be gone, and removes the cgroup. Returns false
   * when it is still populated, e.g. a process stuck in uninterruptible sleep.
   */
  async remove(ms = 5000): Promise<boolean> {
    if (this.#removed) return true;
    this.kill();
    const until = Date.now() + ms;
    for (let wait = 1; this.populated() && Date.now() < until; wait = Math.min(wait * 2, 100)) {
      if (this.#holdsUs) this.signalMembers("SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    return this.#removeNow();
  }

  /**
   * Kills what is left and removes the cgroup without giving up the thread: for when this process
   * is exiting and nothing can be awaited. Blocks up to `ms` for the killed to finish exiting.
   */
  removeSync(ms = 0): boolean {
    if (this.#removed) return true;
    this.kill();
    const until = Date.now() + ms;
    while (this.populated() && Date.now() < until) Atomics.wait(pause, 0, 0, 5);
    return this.#removeNow();
  }

  #removeNow(): boolean {
    if (this.#holdsUs) return false;
    try {
      removeTree(this.dir);
      this.#removed = true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) this.#removed = true;
    }
    return this.#removed;
  }
}

/**
 * Checks that this process can contain an upstream in a cgroup: it finds its own cgroup, clears
 * stale ones an earlier run left, then makes a cgroup, enters it and leaves it again. Returns the
 * directory to make upstream cgroups in. Throws CgroupError (or Deno.errors.NotCapable) saying
 * why not.
 */
export function probeCgroups(): string {
  const parent = ownCgroupDir();
  try {
    sweepStale(parent);
  } catch (e) {
    throw new CgroupError(`cannot list ${parent}: ${message(e)}`);
  }
  const probe = Cgroup.create(parent, "probe");
  try {
    probe.spawnInside(() => undefined);
    if (probe.holdsUs) throw new CgroupError(`cannot leave ${probe.dir} once in it`);
  } finally {
    probe.removeSync();
  }
  return parent;
}
