/**
 * The dashboard attacked: the real listener (`serveDashboard`, in this process) over a real log
 * written through the chain, probed with raw HTTP for auth bypasses, Host and target tricks,
 * headers on every kind of answer, stream cursors and reads that must stay bounded; and a real
 * proxy that must stop promptly with streams open, and refuse a taken dashboard port.
 *
 * The listener tests read one JSONL log in this process: the backend makes no difference to the
 * HTTP layer (the storage tests cover both), so they skip the sqlite pass.
 *
 * @module
 */
import type { AuditLog } from "../src/audit/chain.ts";
import { EventMethod } from "../src/audit/record.ts";
import { loadConfig } from "../src/config/load.ts";
import { Logger } from "../src/log.ts";
import { serveDashboard } from "../src/cli/dashboard_serve.ts";
import { createDashboardServices } from "../src/dashboard/services.ts";
import { callFields, chainWriter, resultFields } from "../src/dashboard/testdata/test_log.ts";
import {
  assert,
  assertEquals,
  auditEnv,
  deadline,
  DENO_JSON,
  EVERYTHING,
  MAIN,
  readLog,
  SECRET as PROXY_SECRET,
  STORAGE,
  tempDir,
} from "./helpers.ts";
import { cleanEnv, rawHttp, type RawResponse } from "./http_helpers.ts";
import { DashboardProxy, LOG_NAME, SseReader } from "./dashboard_helpers.ts";

const SECRET = "attack-test-secret-6c1f";
const TOKEN = "attack-test-token-93ab";
const skipSqlite = STORAGE === "sqlite";

/** A JSONL log of `calls` tool calls with their answers, written through the real chain. */
function writeLog(dir: string, calls: number, tool = "echo"): { path: string; log: AuditLog } {
  const path = `${dir}/audit.jsonl`;
  const { log } = chainWriter(path, "jsonl", { secret: SECRET });
  log.event(EventMethod.Start, { version: "test" }, "s1");
  for (let id = 1; id <= calls; id++) {
    log.append(callFields(id, tool, { n: id }));
    log.append(resultFields(id, tool, `ok ${id}`, 1));
  }
  log.sync();
  return { path, log };
}

interface Served extends AsyncDisposable {
  port: number;
  origin: string;
  lines: string[];
  /** A raw request: the target as given, `Host: 127.0.0.1:PORT` unless `host` is given. */
  get(target: string, headers?: Record<string, string>, method?: string): Promise<RawResponse>;
}

async function serve(
  options: { calls?: number; token?: string; bind?: string } = {},
): Promise<Served> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-attack-" });
  const { path, log } = writeLog(dir, options.calls ?? 5);
  const lines: string[] = [];
  const logger = new Logger("debug", (line) => lines.push(line));
  const env: Record<string, string> = {
    MCP_AUDIT_AUDIT_PATH: path,
    MCP_AUDIT_DASHBOARD_PORT: "0",
    MCP_AUDIT_DASHBOARD_BIND_ADDRESS: options.bind ?? "127.0.0.1",
  };
  if (options.token !== undefined) env.MCP_AUDIT_DASHBOARD_AUTH_TOKEN = options.token;
  const { config } = loadConfig({ env, flags: new Map(), upstreamArgv: [] });
  const services = createDashboardServices({
    path,
    storage: "jsonl",
    live: false,
    authEnabled: options.token !== undefined,
    timeZone: "UTC",
    pinsPath: null,
    keys: null,
    logger,
  });
  const stop = new AbortController();
  const listener = await serveDashboard(config, services, logger, stop.signal);
  const port = listener.addr.port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    lines,
    get(target, headers = {}, method = "GET") {
      const head = [`${method} ${target} HTTP/1.1`];
      if (!("host" in headers)) head.push(`Host: 127.0.0.1:${port}`);
      for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
      return rawHttp(port, head.join("\r\n"), undefined, deadline(10_000));
    },
    async [Symbol.asyncDispose]() {
      stop.abort();
      await listener.finished;
      services.close();
      log.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const decoder = new TextDecoder();
const AUTH = { authorization: `Bearer ${TOKEN}` };

function textOf(r: RawResponse): string {
  return decoder.decode(r.body);
}

function header(r: RawResponse, name: string): string | null {
  return r.headers.find(([k]) => k === name)?.[1] ?? null;
}

/** The headers every answer of the dashboard carries, whatever it is. */
function assertSecurityHeaders(r: RawResponse, where: string): void {
  const csp = header(r, "content-security-policy") ?? "";
  assert(csp.includes("default-src 'none'"), `${where}: CSP ${csp}`);
  assert(csp.includes("frame-ancestors 'none'"), `${where}: CSP ${csp}`);
  assert(!csp.includes("unsafe-"), `${where}: CSP ${csp}`);
  assertEquals(header(r, "x-content-type-options"), "nosniff", where);
  assertEquals(header(r, "referrer-policy"), "no-referrer", where);
}

Deno.test({
  name:
    "no path trick reaches the API without the token: dot segments, escapes and extra slashes are refused or are not the API, other forms of target 400",
  ignore: skipSqlite,
  fn: async () => {
    await using s = await serve({ token: TOKEN });
    // Read as /api/…: the token is asked for (401, or 429 once this address has failed 10 times).
    const asApi = [
      "/api/v1/../v1/info",
      "/%61pi/v1/info",
      "/api/v1/%69nfo",
      "/api/v1//info",
      "/api/v1/info/",
      "/./api/v1/info",
      "/assets/../api/v1/info",
      "/assets/%2e%2e/api/v1/info",
      "/assets/%2E%2E/api/entries",
      "/api/v1/info;x",
      "/api/v1/stream?after=0",
      "/api/stats?x=/../",
    ];
    for (const target of asApi) {
      for (const method of ["GET", "HEAD", "OPTIONS", "POST"]) {
        const r = await s.get(target, {}, method);
        assert([401, 429].includes(r.status), `${method} ${target}: ${r.status} ${textOf(r)}`);
        assertSecurityHeaders(r, `${method} ${target}`);
        assert(!textOf(r).includes("version"), `${method} ${target}: no data`);
      }
    }
    // Not the API at all: unknown paths (case and slashes matter; %2F is not a slash).
    for (const target of ["//api/v1/info", "/API/v1/info", "/api%2fv1/info", "/api%2Fentries"]) {
      const r = await s.get(target);
      assertEquals([r.status, textOf(r)], [404, "not found\n"], target);
      assertSecurityHeaders(r, target);
    }
    // A target that is not a path is not read as "/" (the page) nor as its path.
    for (const target of ["http://evil.example/api/v1/info", `http://127.0.0.1:${s.port}/`, "*"]) {
      const r = await s.get(target);
      assertEquals([r.status, textOf(r)], [400, "the request target must be a path\n"], target);
      assertSecurityHeaders(r, target);
    }
    // With the token, the tricks that name the API are the API; nothing else is.
    assertEquals((await s.get("/%61pi/v1/info", AUTH)).status, 200);
    assertEquals((await s.get("/api/v1/info/", AUTH)).status, 404);
    assertEquals((await s.get("//api/v1/info", AUTH)).status, 404);
    assert(!s.lines.some((l) => l.includes(TOKEN)), "the token is never logged");
  },
});

Deno.test({
  name:
    "bound to loopback, only loopback names and the bound address are served: other spellings of 127.0.0.1, rebound names, a missing Host are not; a cross-site read of /api/ is 403",
  ignore: skipSqlite,
  fn: async () => {
    await using s = await serve();
    for (const host of ["localhost", "LocalHost", "[::1]", "127.0.0.1"]) {
      const r = await s.get("/api/v1/info", { host: `${host}:${s.port}` });
      assertEquals(r.status, 200, host);
    }
    for (
      const host of [
        "127.0.0.1.evil.example",
        "localhost.",
        "attacker.example",
        "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:0:0:1]",
        "0x7f000001",
        "2130706433",
        "127.1",
      ]
    ) {
      const r = await s.get("/api/v1/info", { host });
      assertEquals(r.status, 403, host);
      assertSecurityHeaders(r, host);
    }
    for (const host of ["", "127.0.0.1:80:80", "a b", "[::1"]) {
      assertEquals((await s.get("/api/v1/info", { host })).status, 400, JSON.stringify(host));
    }
    const origin = await s.get("/api/v1/records", { origin: "null" });
    assertEquals(origin.status, 403);
    for (const site of ["cross-site", "same-site"]) {
      const r = await s.get("/api/entries", {
        "sec-fetch-site": site,
        "sec-fetch-mode": "no-cors",
      });
      assertEquals(r.status, 403, site);
      assertSecurityHeaders(r, site);
    }
    const own = await s.get("/api/v1/info", {
      "sec-fetch-site": "same-origin",
      "sec-fetch-mode": "cors",
      origin: s.origin,
    });
    assertEquals(own.status, 200);
  },
});

Deno.test({
  name:
    "every kind of answer carries the security headers: 200, 304, HEAD, the stream, 400, 404, 405, 401, 429",
  ignore: skipSqlite,
  fn: async () => {
    await using s = await serve({ token: TOKEN });
    const asset = await s.get("/assets/style.css");
    const etag = header(asset, "etag");
    assert(etag !== null, "an asset has an ETag");
    const cases: [string, Record<string, string>, string, number][] = [
      ["/", {}, "GET", 200],
      ["/assets/style.css", { "if-none-match": etag }, "GET", 304],
      ["/api/v1/info", AUTH, "HEAD", 200],
      ["/api/v1/stream", AUTH, "HEAD", 200],
      ["/api/v1/records?limit=0", AUTH, "GET", 400],
      ["/api/entries?limit=x", AUTH, "GET", 400],
      ["/api/v1/nothing", AUTH, "GET", 404],
      ["/nothing", {}, "GET", 404],
      ["/api/v1/records", AUTH, "DELETE", 405],
      ["/", {}, "PUT", 405],
    ];
    for (const [target, headers, method, status] of cases) {
      const r = await s.get(target, headers, method);
      assertEquals(r.status, status, `${method} ${target}: ${textOf(r)}`);
      assertSecurityHeaders(r, `${method} ${target}`);
      if (target.startsWith("/api/")) assertEquals(header(r, "cache-control"), "no-store", target);
    }
    for (let i = 1; i <= 11; i++) {
      const r = await s.get("/api/v1/info", { authorization: "Bearer wrong" });
      assertEquals(r.status, i <= 10 ? 401 : 429, `failure ${i}`);
      assertSecurityHeaders(r, `failure ${i}`);
    }
    // The right token passes while this address is throttled, as in Go.
    assertEquals((await s.get("/api/v1/info", AUTH)).status, 200);
    // An open stream's headers, read as it starts.
    await using stream = await SseReader.open(s.origin, "/api/v1/stream", AUTH);
    assertEquals(stream.response.status, 200);
    assertEquals(stream.response.headers.get("x-content-type-options"), "nosniff");
    assert(stream.response.headers.get("content-security-policy")?.includes("default-src 'none'"));
    assertEquals(stream.response.headers.get("cache-control"), "no-store");
  },
});

Deno.test({
  name:
    "Last-Event-ID is a seq in plain digits (spaces around allowed): negative, 1e3, hex, fractions, lists and 16 digits are 400; a good one resumes right after it",
  ignore: skipSqlite,
  fn: async () => {
    await using s = await serve({ calls: 3 });
    for (
      const id of ["-1", "1e3", "0x10", "3.0", "+3", "1,2", "9999999999999999", "3 4", "٣"]
    ) {
      const r = await s.get("/api/v1/stream", { "last-event-id": id }, "HEAD");
      assertEquals(r.status, 400, JSON.stringify(id));
      assertSecurityHeaders(r, id);
    }
    for (const after of ["-1", "1e3", "x"]) {
      assertEquals((await s.get(`/api/v1/stream?after=${after}`, {}, "HEAD")).status, 400, after);
    }
    // Records 1..7 are stored (start, then three calls and their answers): " 4 " resumes at 5.
    await using stream = await SseReader.open(s.origin, "/api/v1/stream", {
      "last-event-id": " 4 ",
    });
    assertEquals(stream.response.status, 200);
    const events = await stream.waitFor(
      (e) => e.filter((x) => x.event === "record").length >= 3,
      "records 5 to 7",
    );
    assertEquals(events.filter((e) => e.event === "record").map((e) => e.id), ["5", "6", "7"]);
  },
});

Deno.test({
  name:
    "reads stay bounded: a too large limit, buckets or q is 400; Go's limit=10000 matching nothing, and years in 500 buckets, answer",
  ignore: skipSqlite,
  fn: async () => {
    await using s = await serve({ calls: 20 });
    const bad = [
      "/api/v1/records?limit=1001",
      "/api/v1/exchanges?limit=100000",
      "/api/v1/sessions?limit=1001",
      "/api/v1/stats?buckets=501",
      "/api/v1/stats?from=10&to=5",
      "/api/v1/records?q=ab",
      `/api/v1/records?q=${"x".repeat(1025)}`,
      "/api/v1/records?before=1e3",
      "/api/v1/exchanges?after=-1",
      "/api/v1/records?from_seq=99999999999999999",
      "/api/entries?limit=99999999999999999999",
    ];
    for (const target of bad) {
      const r = await s.get(target);
      assertEquals(r.status, 400, `${target}: ${textOf(r)}`);
      assert(!textOf(r).includes("/tmp"), `${target}: no path in the answer`);
    }
    const none = await s.get("/api/entries?limit=10000&method=nothing/matches");
    assertEquals([none.status, textOf(none)], [200, "[]\n"]);
    const capped = JSON.parse(textOf(await s.get("/api/entries?limit=10000")));
    assert(Array.isArray(capped) && capped.length === 20, "every answered call, no more");
    const years = await s.get("/api/v1/stats?from=0&to=8640000000000000&buckets=500");
    assertEquals(years.status, 200);
    const stats = JSON.parse(textOf(years));
    assertEquals([stats.calls, stats.buckets.length, stats.partial], [20, 500, false]);
  },
});

Deno.test(
  "the proxy stops promptly with dashboard streams open, one never read, and writes audit/stop",
  async () => {
    await using dir = await tempDir("dashboard-attack-stop");
    await using proxy = await DashboardProxy.start({ cwd: dir.path });
    const client = await proxy.client();
    await client.callTool({ name: "echo", arguments: { message: "before the end" } });
    const readers: SseReader[] = [];
    for (let i = 0; i < 3; i++) {
      readers.push(await SseReader.open(proxy.origin, "/api/v1/stream?after=0"));
    }
    // A client that sends its request and never reads a byte of the answer.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await silent.write(
      new TextEncoder().encode(
        `GET /api/v1/stream?after=0&full=1 HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`,
      ),
    );
    await readers[0]!.waitFor((e) => e.some((x) => x.event === "record"), "a record");
    await client.close();
    const status = await proxy.finished(deadline(20_000));
    assertEquals(status.code, 0, proxy.stderr.text().slice(-2000));
    for (const r of readers) await r[Symbol.asyncDispose]();
    silent.close();
    const records = (await readLog(proxy.logPath)).records;
    assertEquals(records.at(-1)?.method, "audit/stop");
  },
);

Deno.test({
  name:
    "a taken dashboard port stops the proxy before its upstream with one line naming dashboard.port; --no-dashboard runs beside it",
  ignore: skipSqlite,
  fn: async () => {
    await using dir = await tempDir("dashboard-attack-port");
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = String(taken.addr.port);
    const run = (flags: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--config",
          DENO_JSON,
          MAIN,
          "--no-metrics",
          ...flags,
          "--",
          ...EVERYTHING,
        ],
        cwd: dir.path,
        env: {
          ...cleanEnv(),
          ...auditEnv(`${dir.path}/${LOG_NAME}`),
          AUDIT_SECRET: PROXY_SECRET,
          MCP_AUDIT_DASHBOARD_PORT: port,
        },
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
        signal: deadline(60_000),
      }).output();
    const refused = await run([]);
    const stderr = decoder.decode(refused.stderr);
    assert(refused.code !== 0, `a taken port fails the start: ${stderr.slice(-1000)}`);
    assert(/dashboard\.port/.test(stderr) && /--no-dashboard/.test(stderr), stderr.slice(-1000));
    const without = await run(["--no-dashboard"]);
    const said = decoder.decode(without.stderr);
    assertEquals(without.code, 0, said.slice(-1000));
    assert(!said.includes("dashboard listening"), "no dashboard listener");
  },
});
