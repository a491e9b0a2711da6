/**
 * How a stdio session ends: shutdown signals, an upstream that crashes, and one that will not
 * exit. Each answers pending requests, records everything, exits with the right code and leaves
 * no process behind.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
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

function start(mode: string): Run {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-lifecycle-" });
  const log = `${dir}/audit.jsonl`;
  const proxy = new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      `${root}main.ts`,
      "--",
      deno,
      "run",
      "-A",
      `${root}tests/fixtures/stubborn_upstream.ts`,
      mode,
    ],
    env: { AUDIT_SECRET: SECRET, MCP_AUDIT_AUDIT_PATH: log },
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

function records(log: string): Record<string, unknown>[] {
  return Deno.readTextFileSync(log).trimEnd().split("\n").map((l) => JSON.parse(l));
}

async function verify(log: string): Promise<number> {
  const out = await new Deno.Command(deno, {
    args: ["run", "-A", `${root}main.ts`, "verify", log],
    env: { AUDIT_SECRET: SECRET },
    stdout: "null",
  }).output();
  return out.code;
}

function leftovers(dir: string): string[] {
  const ps = new Deno.Command("ps", { args: ["-eo", "pid,args"], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(ps.stdout).split("\n").filter((l) =>
    l.includes("stubborn_upstream.ts") || l.includes(dir)
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
        const recs = records(run.log);
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
      const stop = records(run.log).at(-1)!;
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
      const stop = records(run.log).at(-1)!;
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
