import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Descendants } from "./descendants.ts";
import { readProcStat } from "./proc_stat.ts";
import {
  ESCAPING_UPSTREAM,
  findPython,
  killRecorded,
  living,
  READY,
  runningKinds,
  show,
  survivors,
  TRACKABLE_KINDS,
} from "../../tests/fixtures/escaping_records.ts";

const python = await findPython();

function canReadProc(): boolean {
  try {
    Deno.readTextFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
}
const ignore = Deno.build.os !== "linux" || python === undefined || !canReadProc();

/** Waits (up to 10 s) for `condition`. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts the fixture as the proxy would (detached: a session of its own) with a tracker on it,
 * runs `body`, and kills whatever is left afterwards.
 */
async function withTrackedUpstream(
  body: (up: { child: Deno.ChildProcess; tracker: Descendants; pidfile: string }) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-descendants-" });
  const pidfile = `${dir}/pids`;
  const child = new Deno.Command(python!, {
    args: [ESCAPING_UPSTREAM, pidfile, TRACKABLE_KINDS.join(","), "--stay"],
    detached: true,
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const tracker = new Descendants(child.pid);
  try {
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!said.includes(READY)) {
      const { value, done } = await stderr.read();
      if (done) throw new Error(`the fixture ended before it was ready: ${said}`);
      said += value;
    }
    stderr.releaseLock();
    child.stderr.cancel().catch(() => {});
    assertEquals(
      await runningKinds(pidfile, TRACKABLE_KINDS),
      [...TRACKABLE_KINDS].sort(),
      "every kind of descendant is running",
    );
    await body({ child, tracker, pidfile });
  } finally {
    tracker.stop();
    await killRecorded(pidfile);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await child.status;
    await child.stdin.close().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: "descendants in new sessions and groups, orphaned or not, are tracked and all killed",
  ignore,
  fn: () =>
    withTrackedUpstream(async ({ child, tracker, pidfile }) => {
      // The lingering one's parent exits 2 s after the fork; from then on only what an earlier
      // scan saw leads to it.
      const lingering = living(pidfile).find((r) => r.kind === "lingering");
      assert(lingering !== undefined);
      const parent = readProcStat(lingering.pid)?.ppid;
      await until(
        () => readProcStat(lingering.pid)?.ppid !== parent,
        "the lingering one's parent to exit",
      );
      tracker.killAll();
      assertEquals(show(await survivors(pidfile, 5000)), []);
      assertEquals((await child.status).signal, "SIGKILL");
      assertEquals(tracker.size, 0);
    }),
});

Deno.test({
  name: "SIGTERM reaches each tracked descendant; the one that ignores it is killed after",
  ignore,
  fn: () =>
    withTrackedUpstream(async ({ child, tracker, pidfile }) => {
      tracker.signal("SIGTERM");
      assertEquals((await child.status).signal, "SIGTERM");
      await until(
        () => living(pidfile).every((r) => r.kind === "stubborn"),
        "all but the stubborn one to end",
      );
      assertEquals(living(pidfile).map((r) => r.kind), ["stubborn"]);
      tracker.killAll();
      assertEquals(show(await survivors(pidfile, 5000)), []);
    }),
});

Deno.test({
  name: "the tracker never counts this process or processes older than the upstream",
  ignore,
  fn: () =>
    withTrackedUpstream(({ child, tracker }) => {
      tracker.scan();
      const pids = tracker.pids();
      assert(pids.includes(child.pid));
      assert(!pids.includes(Deno.pid));
      assert(!pids.includes(1));
      return Promise.resolve();
    }),
});
