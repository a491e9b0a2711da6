/**
 * An upstream and everything it starts, ended together. How far "everything" reaches depends on
 * the OS and on what Deno permits, decided once per run, best first:
 *
 * - `cgroup` (Linux, cgroup v2 writable, all Deno permissions): the upstream is born in a cgroup
 *   of its own; every descendant is in it whatever it does, and `cgroup.kill` ends them all.
 * - `tracked` (Linux, `/proc` readable but no cgroup): the upstream's process group plus every
 *   descendant a scan of the process table found, stopped and killed together at the end.
 * - `group` (macOS; Linux without all permissions; Windows via `taskkill /T`): the upstream's
 *   process group only. A descendant that calls `setsid()` or `setpgid()` escapes it.
 *
 * In every case the upstream itself gets SIGTERM and SIGKILL through its own handle, which needs
 * no permission, so an upstream that ignores SIGTERM always ends.
 *
 * @module
 */
import type { LogFields } from "../log.ts";
import { Cgroup, CgroupError, probeCgroups } from "./cgroup.ts";
import { Descendants } from "./descendants.ts";
import { groupAlive, signalGroup, type SignalRoute, signalRoute } from "./process_group.ts";

/** How an upstream's descendants can be contained on this machine, with these permissions. */
export type Containment =
  | { kind: "cgroup"; parent: string }
  | { kind: "tracked"; why: string }
  | { kind: "group"; why: string };

/** What this run can do to end an upstream's tree. */
export interface TreeSupport {
  containment: Containment;
  route: SignalRoute;
}

/** A log line telling the operator what is and is not contained. */
export interface TreeNotice {
  level: "info" | "warn";
  msg: string;
  fields: LogFields;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const NO_ALL_PERMISSIONS = "Deno reads /proc and writes /sys/fs/cgroup only with all permissions";

/** Finds out, once, what this run can do. Never prompts for a permission. */
export function probeTreeSupport(): TreeSupport {
  return { containment: probeContainment(), route: signalRoute() };
}

function probeContainment(): Containment {
  switch (Deno.build.os) {
    case "linux":
      break;
    case "windows":
      return { kind: "group", why: "Windows: taskkill /T finds the tree by parent pid" };
    default:
      return { kind: "group", why: `${Deno.build.os}: no cgroups, and /proc is not readable` };
  }
  try {
    Deno.readTextFileSync("/proc/self/stat");
  } catch (e) {
    const why = e instanceof Deno.errors.NotCapable ? NO_ALL_PERMISSIONS : message(e);
    return { kind: "group", why };
  }
  try {
    return { kind: "cgroup", parent: probeCgroups() };
  } catch (e) {
    return {
      kind: "tracked",
      why: e instanceof Deno.errors.NotCapable ? NO_ALL_PERMISSIONS : message(e),
    };
  }
}

/** What to tell the operator about `support`, once per run. */
export function describeTreeSupport(support: TreeSupport): TreeNotice {
  const { containment, route } = support;
  const fields: LogFields = { containment: containment.kind };
  if (containment.kind !== "cgroup") fields.reason = containment.why;
  if (route.kind === "none") {
    fields.signals = "only the upstream itself can be signalled, not its process group: " +
      "Deno.kill needs --allow-run without a list, or name kill in --allow-run";
  }
  switch (containment.kind) {
    case "cgroup":
      return route.kind === "none"
        ? { level: "warn", msg: "upstream processes are contained in a cgroup", fields }
        : {
          level: "info",
          msg: "upstream processes are contained in a cgroup",
          fields: { ...fields, cgroup_parent: containment.parent },
        };
    case "tracked":
      return {
        level: "warn",
        msg: "cannot give the upstream a cgroup; following its descendants by parent pid: " +
          "one that forks, leaves its session and loses its parent between two scans " +
          "(500 ms) can outlive the session",
        fields,
      };
    case "group": {
      const fixable = Deno.build.os === "linux" || route.kind === "none";
      return {
        level: fixable ? "warn" : "info",
        msg: "only the upstream's process group is ended with it: a process it starts in a " +
          "new session or process group can outlive the session",
        fields,
      };
    }
    default: {
      const unreachable: never = containment;
      throw new Error(`unknown containment ${JSON.stringify(unreachable)}`);
    }
  }
}

/** An upstream process and what it started; see the module documentation. */
export class UpstreamTree {
  static #spawned = 0;
  readonly child: Deno.ChildProcess;
  /** Why this upstream got less than the run's containment (its cgroup failed), if it did. */
  readonly degraded: string | undefined;
  readonly #route: SignalRoute;
  readonly #cgroup: Cgroup | undefined;
  readonly #tracker: Descendants | undefined;
  #reaping: Promise<void> | undefined;

  private constructor(
    child: Deno.ChildProcess,
    route: SignalRoute,
    parts: { cgroup?: Cgroup; tracker?: Descendants; degraded?: string | undefined },
  ) {
    this.child = child;
    this.#route = route;
    this.#cgroup = parts.cgroup;
    this.#tracker = parts.tracker;
    this.degraded = parts.degraded;
  }

  /**
   * Spawns `command` (which must be detached on Unix) contained as `support` allows. Errors of
   * `command.spawn()` propagate.
   */
  static spawn(command: Deno.Command, support: TreeSupport): UpstreamTree {
    const { containment, route } = support;
    let degraded: string | undefined;
    if (containment.kind === "cgroup") {
      let cgroup: Cgroup | undefined;
      try {
        cgroup = Cgroup.create(containment.parent, String(++UpstreamTree.#spawned));
        const child = cgroup.spawnInside(() => command.spawn());
        return new UpstreamTree(child, route, { cgroup });
      } catch (e) {
        cgroup?.removeSync();
        if (!(e instanceof CgroupError)) throw e;
        degraded = e.message;
      }
    }
    const child = command.spawn();
    if (containment.kind === "group") return new UpstreamTree(child, route, {});
    try {
      return new UpstreamTree(child, route, { tracker: new Descendants(child.pid), degraded });
    } catch (e) {
      const why = `cannot read the process table: ${message(e)}`;
      return new UpstreamTree(child, route, { degraded: degraded ?? why });
    }
  }

  /** SIGTERM to the upstream and every descendant this run can reach, once each. */
  terminate(): void {
    if (this.#cgroup !== undefined) return this.#cgroup.signalMembers("SIGTERM");
    if (this.#tracker !== undefined) return this.#tracker.signal("SIGTERM");
    if (!signalGroup(this.#route, this.child.pid, "SIGTERM")) this.#signalChild("SIGTERM");
  }

  /** SIGKILL to the upstream and every descendant this run can reach. */
  kill(): void {
    if (this.#cgroup !== undefined) this.#cgroup.kill();
    else if (this.#tracker !== undefined) this.#tracker.killAll();
    else signalGroup(this.#route, this.child.pid, "SIGKILL");
    // Needs no permission, whatever else could not be done.
    this.#signalChild("SIGKILL");
  }

  /**
   * Once the upstream has exited: kills whatever it left, stops tracking, and removes its cgroup.
   * Resolves when that is done (never rejects); the killing itself happens before this returns.
   */
  reap(): Promise<void> {
    this.#reaping ??= (async () => {
      try {
        this.#tracker?.killAll();
        if (this.#cgroup !== undefined) await this.#cgroup.remove();
        else if (this.#tracker === undefined) {
          signalGroup(this.#route, this.child.pid, "SIGKILL");
          // A group's SIGKILL lands asynchronously: wait (briefly) until its members are gone, as
          // the cgroup path waits for its cgroup to empty, so that "ended" means ended.
          const until = Date.now() + 1000;
          for (
            let wait = 5;
            groupAlive(this.#route, this.child.pid) && Date.now() < until;
            wait *= 2
          ) {
            await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 100)));
          }
        }
      } catch {
        // Best effort: what could be killed was.
      }
    })();
    return this.#reaping;
  }

  /**
   * When the upstream exits, by itself or not: gives what it left `graceMs` to exit too (a
   * grandchild may still be writing the last answer), then reaps. This is what ends an HTTP
   * session's leftovers, whose reader waits for every writer of the pipe to be gone.
   */
  reapAfterExit(graceMs: number): Promise<void> {
    return this.child.status.then(() => this.#settle(graceMs), () => {}).then(() => this.reap());
  }

  /** Resolves when nothing of the tree is left but the upstream, or after `ms`. */
  async #settle(ms: number): Promise<void> {
    const until = Date.now() + ms;
    for (let wait = 5; this.#leftovers() && Date.now() < until; wait = Math.min(wait * 2, 200)) {
      if (this.#reaping !== undefined) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, until - Date.now())));
    }
  }

  /** True while some process of the tree other than the (exited) upstream may be alive. */
  #leftovers(): boolean {
    if (this.#cgroup !== undefined) return this.#cgroup.populated();
    if (this.#tracker !== undefined) {
      try {
        this.#tracker.scan();
      } catch {
        return false;
      }
      return this.#tracker.size > 0;
    }
    return groupAlive(this.#route, this.child.pid);
  }

  /**
   * For when the process is exiting and nothing can be awaited: kills all and removes the cgroup,
   * blocking up to a second for the killed to be gone (a caller may not have awaited the reap).
   */
  abandon(): void {
    this.kill();
    this.#cgroup?.removeSync(1000);
  }

  #signalChild(signal: "SIGTERM" | "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch {
      // It has exited.
    }
  }
}
