import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { isAlive, listProcStats, parseProcStat, readProcStat } from "./proc_stat.ts";

const linux = Deno.build.os === "linux";

Deno.test("a command name holding spaces and parentheses does not shift the fields", () => {
  const text =
    "4242 (evil) 1 2 3 (x) R 17 4242 4000 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n";
  assertEquals(parseProcStat(text), {
    pid: 4242,
    state: "R",
    ppid: 17,
    pgrp: 4242,
    session: 4000,
    start: 987654,
  });
});

Deno.test("text that is not a stat line is refused", () => {
  assertEquals(parseProcStat(""), undefined);
  assertEquals(parseProcStat("12 (short) S 1 2"), undefined);
  assertEquals(parseProcStat("x (a) S 1 2 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5"), undefined);
});

Deno.test({
  name: "this process is in the table, alive, under its parent",
  ignore: !linux,
  fn: () => {
    const self = readProcStat(Deno.pid);
    assert(self !== undefined);
    assertEquals(self.ppid, Deno.ppid);
    assert(isAlive(Deno.pid, self.start));
    assert(!isAlive(Deno.pid, self.start + 1), "another start time is another process");
    assert(listProcStats().some((p) => p.pid === Deno.pid && p.start === self.start));
  },
});

Deno.test({
  name: "a process that has exited and been reaped is not alive",
  ignore: !linux,
  fn: async () => {
    const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
    const stat = readProcStat(child.pid);
    assert(stat !== undefined && isAlive(child.pid, stat.start));
    child.kill("SIGKILL");
    await child.status;
    assert(!isAlive(child.pid, stat.start));
  },
});
