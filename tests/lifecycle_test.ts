/**
 * How a stdio session ends: shutdown signals, an upstream that crashes, and one that will not
 * exit. Each answers pending requests, records everything, exits with the right code and leaves
 * no process behind, with all permissions and with the README's narrow ones.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { auditEnv, type AuditRecord, readLog } from "./helpers.ts";
import { drainLines, splitLines } from "./lines.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = Deno.execPath();
const SECRET = "lifecycle-test-secret-0123456789abcdef";

interface Run {
  proxy: Deno.ChildProcess;
  dir: string;
  log: string;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  lines: AsyncIterator<string>;
  stderrLines: AsyncIterator<string>;
}

/**
 * Starts the proxy in front of `stubborn_upstream.ts MODE`, or of `upstream` when given. `permissions`
 * are the proxy's Deno flags (all by default); `{dir}` in them is the run's directory.
 */
function start(mode: string, permissions = ["-A"], upstream?: string[]): Run {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-lifecycle-" });
  const log = `${dir}/audit.jsonl`;
  const proxy = new Deno.Command(deno, {
    args: [
      "run",
      ...permissions.map((p) => p.replaceAll("{dir}", dir)),
      `${root}main.ts`,
      "--",
      // The directory, an argument the fixture ignores, marks its processes as this run's.
      ...(upstream ?? [deno, "run", "-A", `${root}tests/fixtures/stubborn_upstream.ts`, mode, dir]),
    ],
    env: { AUDIT_SECRET: SECRET, ...auditEnv(log) },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return {
    proxy,
    dir,
    log,
    writer: proxy.stdin.getWriter(),
    lines: splitLines(proxy.stdout)[Symbol.asyncIterator](),
    stderrLines: splitLines(proxy.stderr)[Symbol.asyncIterator](),
  };
}

/** Reads stderr up to a line containing `text`; returns everything read. */
async function stderrUntil(run: Run, text: string): Promise<string[]> {
  const seen: string[] = [];
  while (true) {
    const next = await run.stderrLines.next();
    if (next.done) {
      throw new Error(`stderr ended before ${JSON.stringify(text)}: ${seen.join("\n")}`);
    }
    seen.push(next.value);
    if (next.value.includes(text)) return seen;
  }
}

async function records(log: string): Promise<AuditRecord[]> {
  return (await readLog(log)).records;
}

async function verify(log: string): Promise<number> {
  const out = await new Deno.Command(deno, {
    args: ["run", "-A", `${root}main.ts`, "verify", log],
    env: { AUDIT_SECRET: SECRET },
    stdout: "null",
  }).output();
  return out.code;
}

/** This run's live processes (other runs of these tests may be going on at the same time). */
function leftovers(dir: string): string[] {
  const ps = new Deno.Command("ps", { args: ["-eo", "pid,stat,args"], stdout: "piped" })
    .outputSync();
  return new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.includes(dir) && !/^\s*\d+\s+Z/.test(l)
  );
}

const request = (id: number): Uint8Array =>
  new TextEncoder().encode(
    JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "slow" } }) + "\n",
  );

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test({
    name: `${signal} answers the pending request with -32603, writes audit/stop and exits 0`,
    ignore: Deno.build.os === "windows",
    fn: async () => {
      const run = start("silent");
      try {
        await stderrUntil(run, "ready");
        await run.writer.write(request(7));
        // Recorded before forwarded: once the upstream has it, so has the log.
        await stderrUntil(run, "received");
        run.proxy.kill(signal);
        const answer = await run.lines.next();
        const reply = JSON.parse(answer.value as string);
        assertEquals(reply.id, 7);
        assertEquals(reply.error.code, -32603);
        assertEquals(reply.error.data.reason, "proxy shutting down");
        const status = await run.proxy.status;
        await drainLines(run.stderrLines);
        assertEquals(status.code, 0);
        const recs = await records(run.log);
        const last = recs.at(-1)!;
        assertEquals(last.method, "audit/stop");
        assertEquals((last.params as { reason: string }).reason, "shutdown signal");
        const error = recs.find((r) => r.kind === "error");
        assertEquals(error?.jsonrpc_id, 7);
        assertEquals(error?.method, "tools/call");
        assertEquals(await verify(run.log), 0);
        assertEquals(leftovers(run.dir), []);
      } finally {
        await run.writer.close().catch(() => {});
        Deno.removeSync(run.dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "an upstream that crashes answers the pending request with -32603 and the proxy exits 1",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const run = start("crash");
    try {
      await stderrUntil(run, "ready");
      await run.writer.write(request(1));
      const reply = JSON.parse((await run.lines.next()).value as string);
      assertEquals(reply.id, 1);
      assertEquals(reply.error.code, -32603);
      assertEquals(reply.error.data.reason, "upstream exited with code 3");
      const status = await run.proxy.status;
      const logs = await drainLines(run.stderrLines);
      assertEquals(status.code, 1);
      assert(logs.some((l) => l.includes("upstream exited with code 3")), logs.join("\n"));
      const stop = (await records(run.log)).at(-1)!;
      assertEquals(stop.method, "audit/stop");
      assertEquals((stop.params as { upstream_exit: unknown }).upstream_exit, {
        code: 3,
        signal: null,
      });
      assertEquals(await verify(run.log), 0);
      assertEquals(leftovers(run.dir), []);
    } finally {
      await run.writer.close().catch(() => {});
      Deno.removeSync(run.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "an upstream that ignores stdin EOF and SIGTERM is killed, and nothing is left behind",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const run = start("stubborn");
    try {
      await stderrUntil(run, "ready");
      await run.writer.close();
      const logs = await stderrUntil(run, "sending SIGKILL");
      assert(logs.some((l) => l.includes("sending SIGTERM")), logs.join("\n"));
      const status = await run.proxy.status;
      await drainLines(run.stderrLines);
      assertEquals(status.code, 0);
      const stop = (await records(run.log)).at(-1)!;
      assertEquals((stop.params as { upstream_exit: unknown }).upstream_exit, {
        code: 137,
        signal: "SIGKILL",
      });
      assertEquals(leftovers(run.dir), []);
    } finally {
      Deno.removeSync(run.dir, { recursive: true });
    }
  },
});

/** The README's Claude Desktop flags, with `deno` (and more) where it names `npx`. */
function readmePermissions(...run: string[]): string[] {
  return [
    // The checkout too: the README's folder holds both (the telemetry worker is read from it).
    `--allow-read={dir},${root}`,
    "--allow-write={dir}",
    "--allow-env",
    `--allow-run=${[deno, ...run].join(",")}`,
    "--allow-net=127.0.0.1",
  ];
}

/** Waits (up to 10 s) for the proxy's exit; kills it and fails if it hangs. */
async function exited(run: Run): Promise<Deno.CommandStatus> {
  const timer = setTimeout(() => run.proxy.kill("SIGKILL"), 10_000);
  try {
    const status = await run.proxy.status;
    assert(status.signal !== "SIGKILL", "the proxy hung after the session ended");
    return status;
  } finally {
    clearTimeout(timer);
  }
}

/** The proxy's log lines that have `field`. */
function logLinesWith(logs: string[], field: string): Record<string, unknown>[] {
  return logs.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return typeof v === "object" && v !== null && field in v ? [v] : [];
    } catch {
      return [];
    }
  });
}

Deno.test({
  name:
    "with the README's permission flags, an upstream that ignores stdin EOF and SIGTERM is still killed",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    // Deno.kill needs --allow-run without a list: each signal used to fail silently, and the
    // proxy waited for the upstream for ever.
    const run = start("stubborn", readmePermissions());
    let upstream: number | undefined;
    try {
      // The containment line comes when the upstream starts, before it is ready.
      const early = await stderrUntil(run, "ready");
      upstream = upstreamPid(early);
      await run.writer.close();
      const logs = [...early, ...await stderrUntil(run, "sending SIGKILL")];
      const status = await exited(run);
      logs.push(...await drainLines(run.stderrLines));
      assertEquals(status.code, 0);
      const stop = (await records(run.log)).at(-1)!;
      assertEquals((stop.params as { upstream_exit: unknown }).upstream_exit, {
        code: 137,
        signal: "SIGKILL",
      });
      assertEquals(leftovers(run.dir), []);
      // One warning says what cannot be done without more permissions.
      const told = logLinesWith(logs, "containment");
      assertEquals(told.length, 1, logs.join("\n"));
      assertEquals(told[0]!.level, "warn");
      if (Deno.build.os === "linux") assertEquals(told[0]!.containment, "group");
      assert(String(told[0]!.signals).includes("--allow-run"), JSON.stringify(told[0]));
    } finally {
      await stop(run);
      // A proxy that hung leaves its upstream behind.
      if (upstream !== undefined) killGroup(upstream);
      Deno.removeSync(run.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "with kill named in --allow-run, what the upstream leaves in its process group is ended with it",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const marker = `sidecar-${crypto.randomUUID()}`;
    const run = start("", readmePermissions("kill"), [
      deno,
      "run",
      "-A",
      `${root}tests/fixtures/npx_like_wrapper.ts`,
      "--sidecar",
      marker,
      "--",
      deno,
      "run",
      `${root}tests/fixtures/echo_upstream.ts`,
    ]);
    try {
      const early = await stderrUntil(run, "npx_like_wrapper: child pid");
      assertEquals(sidecars(marker).length, 1, "the sidecar runs before the session ends");
      await run.writer.close();
      const status = await exited(run);
      const logs = [...early, ...await drainLines(run.stderrLines)];
      assertEquals(status.code, 0, logs.join("\n"));
      assertEquals(sidecars(marker), [], "the sidecar is ended with the wrapper's group");
      const told = logLinesWith(logs, "containment");
      assertEquals(told.length, 1, logs.join("\n"));
      assertEquals(told[0]!.signals, undefined, "the group can be signalled");
    } finally {
      for (const line of sidecars(marker)) Deno.kill(Number(line.trim().split(" ")[0]), "SIGKILL");
      await stop(run);
      Deno.removeSync(run.dir, { recursive: true });
    }
  },
});

/** The upstream's pid, from the proxy's "upstream started" line among `logs`. */
function upstreamPid(logs: string[]): number | undefined {
  const pid = logLinesWith(logs, "pid").find((l) => l.msg === "upstream started")?.pid;
  return typeof pid === "number" ? pid : undefined;
}

/** SIGKILL to a process group that may be gone. */
function killGroup(pgid: number): void {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch {
    // Gone.
  }
}

/** Kills the proxy if it is still running, and waits for it. */
async function stop(run: Run): Promise<void> {
  try {
    run.proxy.kill("SIGKILL");
  } catch {
    // It has exited.
  }
  await run.proxy.status;
}

/** The live sidecar processes (`linger.ts MARKER`) in the process table. */
function sidecars(marker: string): string[] {
  const ps = new Deno.Command("ps", { args: ["-eo", "pid,stat,args"], stdout: "piped" })
    .outputSync();
  return new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.includes(`linger.ts ${marker}`) && !/^\s*\d+\s+Z/.test(l)
  );
}
