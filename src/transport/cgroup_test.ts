import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Cgroup, ownCgroupDir, probeCgroups } from "./cgroup.ts";
import {
  ALL_KINDS,
  ESCAPING_UPSTREAM,
  findPython,
  killRecorded,
  living,
  READY,
  runningKinds,
  show,
  survivors,
} from "../../tests/fixtures/escaping_records.ts";

function probe(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    return probeCgroups();
  } catch {
    return undefined;
  }
}
const parent = probe();
const python = await findPython();

/** The cgroup path of `pid` as /proc shows it ("/" for the root). */
function cgroupOf(pid: number): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cgroup`).split("\n").find((l) => l.startsWith("0::"))
      ?.slice(3);
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "an upstream born in its cgroup takes every descendant along, and one write ends them all",
  ignore: parent === undefined || python === undefined,
  fn: async () => {
    const ours = cgroupOf(Deno.pid);
    const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-cgroup-" });
    const pidfile = `${dir}/pids`;
    const cgroup = Cgroup.create(parent!, "test");
    const name = cgroup.dir.slice(cgroup.dir.lastIndexOf("/"));
    let child: Deno.ChildProcess | undefined;
    try {
      child = cgroup.spawnInside(() =>
        new Deno.Command(python!, {
          args: [ESCAPING_UPSTREAM, pidfile, ALL_KINDS.join(","), "--stay"],
          detached: true,
          stdin: "piped",
          stdout: "null",
          stderr: "piped",
        }).spawn()
      );
      assertEquals(cgroupOf(Deno.pid), ours, "this process is back where it was");
      assert(!cgroup.holdsUs);
      assert(cgroupOf(child.pid)?.endsWith(name), "the upstream is born in the cgroup");
      const said = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      for (let text = ""; !text.includes(READY);) {
        const { value, done } = await said.read();
        if (done) throw new Error(`the fixture ended before it was ready: ${text}`);
        text += value;
      }
      said.releaseLock();
      child.stderr.cancel().catch(() => {});
      assertEquals(await runningKinds(pidfile, ALL_KINDS), [...ALL_KINDS].sort());
      for (const r of living(pidfile)) {
        const where = cgroupOf(r.pid);
        // The hopper may have moved on since it was listed.
        if (where !== undefined) assert(where.endsWith(name), `${r.kind} ${r.pid} is in ${where}`);
      }
      assert(cgroup.populated());
      assert(await cgroup.remove(), "the cgroup is removed once empty");
      assertEquals(show(await survivors(pidfile, 5000)), []);
      assertEquals((await child.status).signal, "SIGKILL");
      assert(!exists(cgroup.dir));
    } finally {
      await killRecorded(pidfile);
      if (child !== undefined) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already ended.
        }
        await child.status;
        await child.stdin.close().catch(() => {});
      }
      cgroup.removeSync();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a spawn that fails inside the cgroup leaves this process where it was",
  ignore: parent === undefined,
  fn: () => {
    const ours = cgroupOf(Deno.pid);
    const cgroup = Cgroup.create(parent!, "failing");
    try {
      let thrown: unknown;
      try {
        cgroup.spawnInside(() => new Deno.Command("/nonexistent/upstream").spawn());
      } catch (e) {
        thrown = e;
      }
      assert(thrown instanceof Deno.errors.NotFound, String(thrown));
      assertEquals(cgroupOf(Deno.pid), ours);
      assertEquals(cgroup.members(), []);
    } finally {
      assert(cgroup.removeSync());
    }
  },
});

Deno.test({
  name: "a cgroup another mcp-audit left empty is swept; a busy one is kept",
  ignore: parent === undefined,
  fn: async () => {
    // A pid that no process has: one of an exited child.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const stale = `${parent}/mcp-audit.${gone.pid}.1`;
    Deno.mkdirSync(stale);
    Deno.mkdirSync(`${stale}/mcp-audit.1.1`);
    const busy = `${parent}/mcp-audit.${gone.pid}.2`;
    Deno.mkdirSync(busy);
    const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      Deno.writeTextFileSync(`${busy}/cgroup.procs`, String(sleeper.pid));
      assertEquals(probeCgroups(), ownCgroupDir());
      assert(!exists(stale), "the empty one, and the one inside it, are removed");
      assert(exists(busy), "the populated one is kept");
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
      for (let i = 0; exists(busy) && i < 100; i++) {
        try {
          Deno.removeSync(busy);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      try {
        Deno.removeSync(`${stale}/mcp-audit.1.1`);
        Deno.removeSync(stale);
      } catch {
        // Removed by the sweep.
      }
    }
  },
});
