import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import type { Config } from "../config/config.ts";
import { loadConfig } from "../config/load.ts";
import { Logger } from "../log.ts";
import type { DashboardServices, Info } from "../dashboard/api.ts";
import { StaticFiles } from "../dashboard/static_files.ts";
import { ListenError } from "../transport/http/serve.ts";
import { serveDashboard } from "./dashboard_serve.ts";

const TOKEN = "serve-test-token-91ab";
const INFO: Info = {
  version: "0.1.0",
  storage: "jsonl",
  log: "audit.jsonl",
  auth: true,
  timezone: "UTC",
  live: false,
};

/** Services answering `info` alone: what the listener's tests need. */
function infoOnly(): DashboardServices {
  const no = (): never => {
    throw new Error("not used by this test");
  };
  return {
    info: () => INFO,
    records: no,
    record: no,
    exchanges: no,
    exchange: no,
    stats: no,
    sessions: no,
    verify: no,
    pins: no,
    goEntries: no,
    goStats: no,
    stream: no,
    close: () => {},
  };
}

function config(dashboard: Partial<Config["dashboard"]> = {}): Config {
  const base = loadConfig({ env: {}, flags: new Map(), upstreamArgv: [] }).config;
  return { ...base, dashboard: { ...base.dashboard, port: 0, ...dashboard } };
}

async function pageFiles(): Promise<{ files: StaticFiles } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-serve-" });
  await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><title>console</title>");
  const files = await StaticFiles.load(pathToFileURL(`${dir}/`));
  return {
    files,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One request over a fresh connection, written as given (for `Host` and methods fetch refuses). */
async function raw(port: number, head: string): Promise<{ status: number; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = new TextEncoder().encode(`${head}\r\nConnection: close\r\n\r\n`);
    let at = 0;
    while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((a, c) => new Uint8Array([...a, ...c]), new Uint8Array()),
    );
    return {
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]),
      head: text.split("\r\n\r\n")[0]!,
    };
  } finally {
    conn.close();
  }
}

Deno.test("the dashboard listens on its own port, says where, and serves through the real listener", async () => {
  await using p = await pageFiles();
  const lines: string[] = [];
  const logger = new Logger("info", (l) => lines.push(l));
  const stop = new AbortController();
  const listener = await serveDashboard(
    config({ auth: { token: TOKEN } }),
    infoOnly(),
    logger,
    stop.signal,
    { files: p.files },
  );
  try {
    const port = listener.addr.port;
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "dashboard listening");
    assert.equal(line?.address, `http://127.0.0.1:${port}`);
    const base = `http://127.0.0.1:${port}`;
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    assert.equal(await page.text(), "<!doctype html><title>console</title>");
    const info = await fetch(`${base}/api/v1/info`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.deepEqual(await info.json(), INFO);
    const refused = await fetch(`${base}/api/v1/info`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="mcp-audit-dashboard"');
    await refused.body?.cancel();
    // Failures are counted by the address the listener saw: this test's loopback connections.
    for (let i = 0; i < 9; i++) await (await fetch(`${base}/api/v1/info`)).body?.cancel();
    const throttled = await fetch(`${base}/api/v1/info`);
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.headers.get("retry-after")) > 0);
    await throttled.body?.cancel();
    assert.equal((await raw(port, "GET / HTTP/1.1\r\nHost: evil.example")).status, 403);
    const trace = await raw(port, "TRACE / HTTP/1.1\r\nHost: 127.0.0.1");
    assert.equal(trace.status, 405);
    assert.match(trace.head, /\r\nallow: GET, HEAD/i);
    const post = await raw(
      port,
      "POST /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        `Authorization: Bearer ${TOKEN}\r\nContent-Length: 0`,
    );
    assert.equal(post.status, 405);
    assert.ok(!lines.some((l) => l.includes(TOKEN)), "the token is never logged");
  } finally {
    stop.abort();
    await listener.finished;
  }
});

Deno.test("a taken port is a ListenError saying to set dashboard.port or use --no-dashboard", async () => {
  await using p = await pageFiles();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const logger = new Logger("error", () => {});
  const stop = new AbortController();
  await assert.rejects(
    serveDashboard(config({ port: taken.addr.port }), infoOnly(), logger, stop.signal, {
      files: p.files,
    }),
    (e: unknown) =>
      e instanceof ListenError && e.message.startsWith("dashboard: cannot listen on") &&
      e.message.includes("dashboard.port") && e.message.includes("--no-dashboard"),
  );
  stop.abort();
});

Deno.test("bound beyond loopback without a token: a warning that whoever reaches it reads the log; any Host served", async () => {
  await using p = await pageFiles();
  const lines: string[] = [];
  const logger = new Logger("info", (l) => lines.push(l));
  const stop = new AbortController();
  const listener = await serveDashboard(
    config({ bind_address: "0.0.0.0" }),
    infoOnly(),
    logger,
    stop.signal,
    { files: p.files },
  );
  try {
    assert.ok(lines.some((l) => l.includes("without dashboard.auth.token")), lines.join("\n"));
    const port = listener.addr.port;
    assert.equal((await raw(port, "GET / HTTP/1.1\r\nHost: dash.example.com")).status, 200);
  } finally {
    stop.abort();
    await listener.finished;
  }
});
