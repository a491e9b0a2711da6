/**
 * When the audit log cannot be written, the proxy forwards nothing it has not recorded, stops,
 * and exits 1. The disk filling up is simulated with a file size limit (RLIMIT_FSIZE).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { auditEnv, cleanEnv, readLog, STORAGE } from "./helpers.ts";

const root = new URL("..", import.meta.url).pathname;
/**
 * The file size limit in KiB, reached mid-session. SQLite needs room for its schema first (64 KiB
 * refuses it at start), and its write-ahead log grows by whole pages each commit, up to 4 MiB
 * before a checkpoint: 1 MiB fills after a few dozen round trips.
 */
const LIMIT_KIB = STORAGE === "sqlite" ? 1024 : 64;

Deno.test({
  name: "a failing audit log stops forwarding: every delivered response has a complete record",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-failclosed-" });
    try {
      const log = `${dir}/audit.jsonl`;
      const deno = Deno.execPath();
      // Ignore SIGXFSZ so that a write past the limit fails with EFBIG instead of killing us.
      const script = `trap '' XFSZ; ulimit -f ${LIMIT_KIB}; exec "$0" run -A "$1" -- "$0" run "$2"`;
      const env = cleanEnv();
      const proxy = new Deno.Command("bash", {
        args: ["-c", script, deno, `${root}main.ts`, `${root}tests/fixtures/echo_upstream.ts`],
        env: {
          ...env,
          AUDIT_SECRET: "fail-closed-test-secret-0123456789",
          ...auditEnv(log),
        },
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Read from the start: a proxy whose stderr pipe is full stops.
      const stderrText = new Response(proxy.stderr).text();
      const w = proxy.stdin.getWriter();
      const pad = "x".repeat(300);
      const delivered: number[] = [];
      const lines = proxy.stdout.pipeThrough(new TextDecoderStream()).values();
      let buffered = "";
      // Groups of 20 requests, each group answered before the next: the log fills up mid-session.
      outer: for (let group = 0; group < 40; group++) {
        const batch = Array.from(
          { length: 20 },
          (_, i) =>
            JSON.stringify({
              jsonrpc: "2.0",
              id: group * 20 + i + 1,
              method: "ping",
              params: { pad },
            }) + "\n",
        );
        try {
          await w.write(new TextEncoder().encode(batch.join("")));
        } catch {
          break;
        }
        let answered = 0;
        while (answered < 20) {
          const next = await lines.next();
          if (next.done) break outer;
          buffered += next.value;
          const parts = buffered.split("\n");
          buffered = parts.pop() ?? "";
          for (const p of parts) {
            delivered.push(JSON.parse(p).id as number);
            answered++;
          }
        }
      }
      await w.close().catch(() => {});
      for await (const _ of lines) { /* drain */ }
      const status = await proxy.status;
      const stderr = await stderrText;
      assertEquals(status.code, 1, stderr);
      assert(stderr.includes("fail closed"), stderr);
      assert(delivered.length > 0 && delivered.length < 800, `delivered ${delivered.length}`);
      // Lines that are not records (one cut short by the failed write) are not counted.
      const { records } = await readLog(log);
      const recordedResponses = new Set(
        records.filter((r) => r.kind === "response").map((r) => r.jsonrpc_id),
      );
      const recordedRequests = new Set(
        records.filter((r) => r.kind === "request").map((r) => r.jsonrpc_id),
      );
      for (const id of delivered) {
        assert(recordedRequests.has(id), `request ${id} reached the upstream without a record`);
        assert(recordedResponses.has(id), `response ${id} reached the client without a record`);
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
