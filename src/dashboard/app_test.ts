import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import type { AuditRecord } from "../audit/record.ts";
import { QueryError } from "../audit/storage/query.ts";
import { Logger } from "../log.ts";
import { listenerHosts } from "../net/listener_hosts.ts";
import {
  BadRequestError,
  type ChainStatus,
  type DashboardServices,
  type GoEntry,
  type GoStats,
  type Info,
} from "./api.ts";
import {
  CONTENT_SECURITY_POLICY,
  createDashboardApp,
  type DashboardAppOptions,
  MAX_READS,
  MAX_WAITING,
  ReadGate,
  TooManyReadsError,
} from "./app.ts";
import { TokenAuth } from "./auth.ts";
import { TooManyStreamsError } from "./feed.ts";
import { goJson } from "./go_compat.ts";
import { StaticFiles } from "./static_files.ts";

const TOKEN = "app-test-token-5d1e";
const HOST = { host: "127.0.0.1:9090" };
const encoder = new TextEncoder();

const INFO: Info = {
  version: "0.1.0",
  storage: "jsonl",
  log: "audit.jsonl",
  auth: false,
  timezone: "UTC",
  live: true,
};

const CHAIN: ChainStatus = {
  state: "intact",
  records: 3,
  last_seq: 3,
  problems: 0,
  first_problem: null,
  signatures_checked: true,
  checked_at: "2026-06-10T22:00:00.000Z",
  note: null,
  command: "mcp-audit verify audit.jsonl",
};

const ENTRY: GoEntry = {
  id: "01J0000000000000000000000",
  timestamp: "2026-06-10T22:00:00.5Z",
  direction: "server→client",
  transport: "stdio",
  method: "tools/call",
  request_id: "1",
  tool_name: "<img src=x onerror=alert(1)>&",
  duration_ms: 3,
  client_id: "c",
  server_id: "s",
  signature: "",
};

/** What a stream call was given. */
interface StreamCall {
  after: number | null;
  full: boolean;
  signal: AbortSignal;
}

/**
 * The services interface answered from fixed values, with a failure to throw per method: an
 * implementation of our own interface, so that the routing, errors and headers are tested
 * without a log.
 */
class FixedServices implements DashboardServices {
  fail = new Map<string, unknown>();
  streams: StreamCall[] = [];
  params: URLSearchParams[] = [];

  #check(name: string): void {
    if (this.fail.has(name)) throw this.fail.get(name);
  }
  info(): Info {
    this.#check("info");
    return INFO;
  }
  /** While set, reads of records wait for it. */
  hold: Promise<void> | null = null;
  async records(params: URLSearchParams) {
    this.#check("records");
    this.params.push(params);
    if (this.hold !== null) await this.hold;
    return { items: [], older: null, newer: null };
  }
  record(seq: number): Promise<AuditRecord | null> {
    this.#check("record");
    return Promise.resolve(seq === 7 ? ({ seq: 7 } as unknown as AuditRecord) : null);
  }
  exchanges(params: URLSearchParams) {
    this.#check("exchanges");
    this.params.push(params);
    return Promise.resolve({ items: [], older: null, newer: null });
  }
  exchange(key: string) {
    this.#check("exchange");
    return Promise.resolve(
      key === "k:1"
        ? ({ key } as unknown as Awaited<ReturnType<DashboardServices["exchange"]>>)
        : null,
    );
  }
  stats(params: URLSearchParams) {
    this.#check("stats");
    this.params.push(params);
    return Promise.resolve(
      { calls: 0 } as unknown as Awaited<ReturnType<DashboardServices["stats"]>>,
    );
  }
  sessions(_params: URLSearchParams) {
    this.#check("sessions");
    return Promise.resolve({ items: [], older: null });
  }
  verify(): ChainStatus {
    this.#check("verify");
    return CHAIN;
  }
  pins() {
    this.#check("pins");
    return Promise.resolve({ path: null, pins: [], pending: [], error: null });
  }
  goEntries(params: URLSearchParams): Promise<GoEntry[]> {
    this.#check("goEntries");
    if (params.get("limit") === "x") throw new BadRequestError("dashboard: invalid limit");
    return Promise.resolve([ENTRY]);
  }
  goStats(): Promise<GoStats> {
    this.#check("goStats");
    return Promise.resolve({
      total_today: 2,
      error_rate: 0.5,
      top_tools: [{ name: "echo", count: 2 }],
    });
  }
  stream(after: number | null, full: boolean, signal: AbortSignal): ReadableStream<Uint8Array> {
    this.#check("stream");
    this.streams.push({ after, full, signal });
    return new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode("retry: 2000\n\n"));
        controller.close();
      },
    });
  }
  close(): void {}
}

/** The page files of a temporary directory, and a logger keeping its lines. */
async function setup(
  options: Partial<DashboardAppOptions> = {},
): Promise<
  {
    app: ReturnType<typeof createDashboardApp>;
    services: FixedServices;
    lines: string[];
  } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-app-" });
  await Deno.mkdir(`${dir}/js`);
  await Deno.writeTextFile(`${dir}/index.html`, "<!doctype html><title>console</title>");
  await Deno.writeTextFile(`${dir}/js/app.js`, "export {};\n");
  const files = await StaticFiles.load(pathToFileURL(`${dir}/`));
  const lines: string[] = [];
  const logger = new Logger("debug", (l) => lines.push(l));
  const services = new FixedServices();
  const app = createDashboardApp(services, {
    logger,
    files,
    allowedHosts: listenerHosts("127.0.0.1"),
    ...options,
  });
  return {
    app,
    services,
    lines,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type App = ReturnType<typeof createDashboardApp>;

function get(
  app: App,
  path: string,
  headers: Record<string, string> = {},
  init: RequestInit = {},
  remote = "10.1.1.1",
): Promise<Response> {
  return Promise.resolve(
    app.request(path, { ...init, headers: { ...HOST, ...headers } }, { remote }),
  );
}

function assertSecurityHeaders(res: Response, where: string): void {
  assert.equal(res.headers.get("content-security-policy"), CONTENT_SECURITY_POLICY, where);
  assert.ok(!/unsafe/.test(CONTENT_SECURITY_POLICY));
  assert.equal(res.headers.get("x-content-type-options"), "nosniff", where);
  assert.equal(res.headers.get("referrer-policy"), "no-referrer", where);
  assert.equal(res.headers.get("x-frame-options"), "DENY", where);
  assert.equal(res.headers.get("cross-origin-opener-policy"), "same-origin", where);
  assert.equal(res.headers.get("cross-origin-resource-policy"), "same-origin", where);
  assert.equal(
    res.headers.get("permissions-policy"),
    "camera=(), microphone=(), geolocation=()",
    where,
  );
}

Deno.test("every answer carries the security headers; all but assets are no-store", async () => {
  await using s = await setup();
  const cases: [string, number, string][] = [
    ["/", 200, "no-store"],
    ["/assets/js/app.js", 200, "no-cache"],
    ["/api/v1/info", 200, "no-store"],
    ["/api/entries", 200, "no-store"],
    ["/api/v1/stream", 200, "no-store"],
    ["/api/v1/nope", 404, "no-store"],
    ["/nope", 404, "no-store"],
    ["/assets/missing.js", 404, "no-store"],
    ["/api/v1/records/x", 400, "no-store"],
  ];
  for (const [path, status, cache] of cases) {
    const res = await get(s.app, path);
    await res.body?.cancel();
    assert.equal(res.status, status, path);
    assertSecurityHeaders(res, path);
    assert.equal(res.headers.get("cache-control"), cache, path);
  }
  s.services.fail.set("info", new Error("disk on fire"));
  const failed = await get(s.app, "/api/v1/info");
  assert.equal(failed.status, 500);
  assertSecurityHeaders(failed, "a 500");
  assert.deepEqual(await failed.json(), { error: "internal error" });
  const refused = await get(s.app, "/", { host: "evil.example" });
  assert.equal(refused.status, 403);
  assertSecurityHeaders(refused, "a 403");
});

Deno.test("unknown paths are 404: JSON under /api/, text elsewhere; other methods on a route are 405 with Allow", async () => {
  await using s = await setup();
  const api = await get(s.app, "/api/v1/nothing");
  assert.equal(api.status, 404);
  assert.match(api.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await api.json(), { error: "not found" });
  const page = await get(s.app, "/admin");
  assert.equal(page.status, 404);
  assert.match(page.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await page.text(), "not found\n");
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    for (
      const path of ["/", "/assets/js/app.js", "/api/entries", "/api/v1/records", "/api/v1/stream"]
    ) {
      const res = await get(s.app, path, {}, { method });
      await res.body?.cancel();
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), "GET, HEAD", `${method} ${path}`);
    }
  }
  assert.equal(s.services.streams.length, 0, "no stream was opened for another method");
});

Deno.test("HEAD answers as GET without a body, and opens no stream", async () => {
  await using s = await setup();
  for (const path of ["/", "/assets/js/app.js", "/api/v1/info", "/api/entries", "/api/v1/stream"]) {
    const res = await get(s.app, path, {}, { method: "HEAD" });
    assert.equal(res.status, 200, path);
    assert.equal(res.body, null, path);
    assertSecurityHeaders(res, path);
  }
  assert.equal(s.services.streams.length, 0);
});

Deno.test("bound to loopback: a foreign Host is 403, a missing or malformed one 400; bound elsewhere any Host", async () => {
  await using s = await setup();
  for (const host of ["localhost:9090", "127.0.0.1", "[::1]:9090", "LOCALHOST"]) {
    assert.equal((await get(s.app, "/api/v1/info", { host })).status, 200, host);
  }
  for (const host of ["evil.example", "127.0.0.1.nip.io:9090", "10.0.0.1"]) {
    const res = await get(s.app, "/api/v1/info", { host });
    assert.equal(res.status, 403, host);
    assert.match(await res.text(), /host not allowed/);
  }
  assert.equal((await get(s.app, "/", { host: "a b" })).status, 400);
  assert.equal((await s.app.request("/", {}, { remote: "x" })).status, 400, "no Host at all");
  const logged = s.lines.filter((l) => l.includes("refused a request for another host"));
  assert.equal(logged.length, 1, "refusals are logged once a 10 s");
  assert.ok(!logged[0]!.includes("evil"), "the client's Host is not logged");

  await using open = await setup({ allowedHosts: undefined });
  assert.equal((await get(open.app, "/api/v1/info", { host: "dash.example.com" })).status, 200);
});

Deno.test("an Origin other than the page's own (or one allowed) is 403", async () => {
  await using s = await setup({ allowedOrigins: new Set(["https://console.example"]) });
  assert.equal((await get(s.app, "/api/v1/info", { origin: "http://127.0.0.1:9090" })).status, 200);
  assert.equal(
    (await get(s.app, "/api/v1/info", { origin: "https://console.example" })).status,
    200,
  );
  for (
    const origin of [
      "http://evil.example",
      "http://127.0.0.1:9091",
      "https://127.0.0.1:9090",
      "null",
      "http://localhost:9090",
    ]
  ) {
    const res = await get(s.app, "/api/v1/info", { origin });
    assert.equal(res.status, 403, origin);
    assert.equal(await res.text(), "origin not allowed\n");
  }
  const page = await get(s.app, "/", { origin: "http://evil.example" });
  assert.equal(page.status, 403, "the page too");
});

Deno.test("no token configured: the API is open", async () => {
  await using s = await setup();
  assert.equal((await get(s.app, "/api/v1/verify")).status, 200);
});

Deno.test("with a token: every /api/ path needs it (401 + WWW-Authenticate), the page and assets do not", async () => {
  await using s = await setup({ auth: new TokenAuth(TOKEN, { maxFailures: 1000 }) });
  const paths = [
    "/api/entries",
    "/api/stats",
    "/api/verify",
    "/api/v1/info",
    "/api/v1/records",
    "/api/v1/records/7",
    "/api/v1/exchanges",
    "/api/v1/exchanges/k:1",
    "/api/v1/stats",
    "/api/v1/verify",
    "/api/v1/pins",
    "/api/v1/sessions",
    "/api/v1/stream",
    "/api/v1/unknown",
    "/api",
  ];
  for (const path of paths) {
    for (const authorization of [undefined, "Bearer wrong", `Basic ${TOKEN}`, TOKEN]) {
      const res = await get(s.app, path, authorization === undefined ? {} : { authorization });
      assert.equal(res.status, 401, `${path} ${authorization}`);
      assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="mcp-audit-dashboard"');
      assertSecurityHeaders(res, path);
      const body = await res.text();
      assert.ok(!body.includes(TOKEN));
      assert.ok(body === "unauthorized\n" || body === '{"error":"unauthorized"}', body);
    }
    const ok = await get(s.app, path, { authorization: `bearer ${TOKEN}` });
    await ok.body?.cancel();
    assert.equal(ok.status, path.includes("unknown") || path === "/api" ? 404 : 200, path);
  }
  assert.equal(await (await get(s.app, "/api/entries")).text(), "unauthorized\n", "Go's text");
  assert.equal((await get(s.app, "/")).status, 200, "the page is public");
  assert.equal((await get(s.app, "/assets/js/app.js")).status, 200, "its assets too");
  assert.equal(s.services.streams.length, 1, "only the authorized stream was opened");
  assert.ok(!s.lines.some((l) => l.includes(TOKEN)), "the token is never logged");
});

Deno.test("the 11th failure from an address in a minute is 429 with Retry-After; others and the right token are not held", async () => {
  let now = 0;
  await using s = await setup({ auth: new TokenAuth(TOKEN, { now: () => now }) });
  for (let i = 1; i <= 10; i++) {
    assert.equal((await get(s.app, "/api/v1/info", {}, {}, "10.0.0.9")).status, 401, `#${i}`);
  }
  now = 15_000;
  const throttled = await get(s.app, "/api/v1/info", { authorization: "Bearer x" }, {}, "10.0.0.9");
  assert.equal(throttled.status, 429);
  assert.equal(throttled.headers.get("retry-after"), "45");
  assert.equal(throttled.headers.get("www-authenticate"), null);
  assert.deepEqual(await throttled.json(), { error: "too many authentication attempts" });
  const go = await get(s.app, "/api/stats", {}, {}, "10.0.0.9");
  assert.equal(go.status, 429);
  assert.equal(await go.text(), "too many authentication attempts\n");
  assert.equal(
    (await get(s.app, "/api/v1/info", {}, {}, "10.0.0.10")).status,
    401,
    "another address",
  );
  const right = await get(
    s.app,
    "/api/v1/info",
    { authorization: `Bearer ${TOKEN}` },
    {},
    "10.0.0.9",
  );
  assert.equal(right.status, 200, "the right token passes while throttled");
  assert.equal(
    (await get(s.app, "/api/v1/info", {}, {}, "10.0.0.9")).status,
    401,
    "and reset the count",
  );
  assert.equal(s.lines.filter((l) => l.includes("too many failed tokens")).length, 1);
});

Deno.test("Go API: bodies are goJson, a bad parameter is Go's 400 text, a failure Go's 500 line (logged)", async () => {
  await using s = await setup();
  const entries = await get(s.app, "/api/entries?limit=5");
  assert.equal(entries.status, 200);
  assert.equal(entries.headers.get("content-type"), "application/json");
  assert.equal(await entries.text(), goJson([ENTRY]));
  const stats = await get(s.app, "/api/stats");
  assert.equal(await stats.text(), goJson(await s.services.goStats()));
  const bad = await get(s.app, "/api/entries?limit=x");
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await bad.text(), "dashboard: invalid limit\n");
  s.services.fail.set("goEntries", new Error("EIO: disk gone"));
  s.services.fail.set("goStats", new Error("EIO: disk gone"));
  const failed = await get(s.app, "/api/entries");
  assert.equal(failed.status, 500);
  assert.equal(await failed.text(), "failed to query entries\n");
  assert.equal(await (await get(s.app, "/api/stats")).text(), "failed to query stats\n");
  assert.equal(s.lines.filter((l) => l.includes("EIO: disk gone")).length, 2);
  const verify = await get(s.app, "/api/verify");
  assert.deepEqual(await verify.json(), CHAIN);
});

Deno.test("v1 API: JSON answers, the query string handed over, 400 for a bad request, 404 for a missing record, 500 without internals", async () => {
  await using s = await setup();
  assert.deepEqual(await (await get(s.app, "/api/v1/info")).json(), INFO);
  assert.deepEqual(await (await get(s.app, "/api/v1/records/7")).json(), { seq: 7 });
  assert.deepEqual(await (await get(s.app, "/api/v1/exchanges/k%3A1")).json(), { key: "k:1" });
  await get(s.app, "/api/v1/records?method=tools%2Fcall&q=abc&before=x");
  const given = s.services.params.at(-1);
  assert.equal(given?.get("method"), "tools/call");
  assert.equal(given?.get("before"), "x");
  for (const path of ["/api/v1/records/8", "/api/v1/exchanges/other"]) {
    const res = await get(s.app, path);
    assert.equal(res.status, 404, path);
    assert.ok("error" in await res.json());
  }
  for (const path of ["/api/v1/records/0", "/api/v1/records/-1", "/api/v1/records/1e3"]) {
    assert.equal((await get(s.app, path)).status, 400, path);
  }
  s.services.fail.set("records", new QueryError("q: at least three characters"));
  const q = await get(s.app, "/api/v1/records?q=ab");
  assert.equal(q.status, 400);
  assert.deepEqual(await q.json(), { error: "q: at least three characters" });
  s.services.fail.set("stats", new BadRequestError("bucket: too small"));
  assert.deepEqual(await (await get(s.app, "/api/v1/stats")).json(), {
    error: "bucket: too small",
  });
  s.services.fail.set("sessions", new TypeError("secret internal detail"));
  const failed = await get(s.app, "/api/v1/sessions");
  assert.equal(failed.status, 500);
  const body = await failed.text();
  assert.ok(!body.includes("secret internal detail"), body);
  assert.ok(s.lines.some((l) => l.includes("secret internal detail")), "but it is logged");
});

Deno.test("stream: Last-Event-ID before ?after=, full=1, the event-stream headers, the request's signal; bad cursors 400; too many streams 503", async () => {
  await using s = await setup();
  const res = await get(s.app, "/api/v1/stream?after=3&full=1", { "last-event-id": "12" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("x-accel-buffering"), "no");
  assert.equal(await res.text(), "retry: 2000\n\n");
  assert.deepEqual(s.services.streams.map((c) => [c.after, c.full]), [[12, true]]);
  await (await get(s.app, "/api/v1/stream?after=3")).body?.cancel();
  await (await get(s.app, "/api/v1/stream")).body?.cancel();
  assert.deepEqual(s.services.streams.map((c) => [c.after, c.full]), [[12, true], [3, false], [
    null,
    false,
  ]]);
  const abort = new AbortController();
  await (await get(s.app, "/api/v1/stream", {}, { signal: abort.signal })).body?.cancel();
  abort.abort();
  assert.ok(s.services.streams.at(-1)?.signal.aborted, "the stream ends with the request");
  for (
    const [path, headers] of [
      ["/api/v1/stream?after=x", {}],
      ["/api/v1/stream?after=-1", {}],
      ["/api/v1/stream", { "last-event-id": "abc" }],
      ["/api/v1/stream?full=yes", {}],
    ] as const
  ) {
    const bad = await get(s.app, path, headers);
    assert.equal(bad.status, 400, path);
    assert.ok("error" in await bad.json());
  }
  s.services.fail.set("stream", new TooManyStreamsError("too many event streams open"));
  const busy = await get(s.app, "/api/v1/stream");
  assert.equal(busy.status, 503);
  assert.ok(Number(busy.headers.get("retry-after")) > 0);
  assert.deepEqual(await busy.json(), { error: "too many event streams open" });
});

Deno.test("payloads are JSON text, never markup: a tool name full of tags stays escaped in Go's encoding", async () => {
  await using s = await setup();
  const body = await (await get(s.app, "/api/entries")).text();
  assert.ok(!body.includes("<img"), body);
  assert.ok(body.includes("\\u003cimg"), body);
});

Deno.test("a request target that is not a path (absolute-form, *) is 400, not served as the page", async () => {
  await using s = await setup();
  for (const target of ["http://evil.example/api/v1/info", "*", "http://127.0.0.1:9090/"]) {
    const res = await s.app.request("/", { headers: HOST }, { remote: "10.1.1.1", target });
    assert.equal(res.status, 400, target);
    assert.equal(await res.text(), "the request target must be a path\n");
    assertSecurityHeaders(res, target);
  }
  const res = await s.app.request("/", { headers: HOST }, { remote: "10.1.1.1", target: "/" });
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("under /api/, a browser's cross-site or same-site read is 403 (no Origin needed); a navigation and the page are not", async () => {
  await using s = await setup();
  for (const site of ["cross-site", "same-site"]) {
    for (const path of ["/api/v1/records", "/api/entries", "/api/v1/stream"]) {
      const res = await get(s.app, path, { "sec-fetch-site": site, "sec-fetch-mode": "no-cors" });
      assert.equal(res.status, 403, `${site} ${path}`);
      assertSecurityHeaders(res, path);
      await res.body?.cancel();
    }
  }
  assert.equal(s.services.params.length, 0, "nothing was read");
  for (
    const [path, headers] of [
      ["/api/v1/records", { "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors" }],
      ["/api/v1/records", { "sec-fetch-site": "none", "sec-fetch-mode": "navigate" }],
      ["/api/v1/records", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" }],
      ["/", { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" }],
    ] as const
  ) {
    const res = await get(s.app, path, headers);
    assert.equal(res.status, 200, `${path} ${JSON.stringify(headers)}`);
    await res.body?.cancel();
  }
});

Deno.test("ReadGate: at most max at once, then waiting in order, then refused; a waiter whose client left leaves the queue", async () => {
  const gate = new ReadGate(2, 1);
  const releases: (() => void)[] = [];
  const order: number[] = [];
  const read = (n: number) => () =>
    new Promise<number>((resolve) => releases.push(() => resolve(n))).then((v) => {
      order.push(v);
      return v;
    });
  const never = new AbortController().signal;
  const a = gate.run(never, read(1));
  const b = gate.run(never, read(2));
  const c = gate.run(never, read(3));
  await assert.rejects(gate.run(never, read(4)), TooManyReadsError);
  assert.equal(gate.running, 2);
  releases[0]!();
  assert.equal(await a, 1);
  releases[1]!();
  assert.equal(await b, 2);
  // The waiter took the freed place.
  assert.equal(releases.length, 3);
  releases[2]!();
  assert.equal(await c, 3);
  assert.equal(gate.running, 0);

  const left = new AbortController();
  const d = gate.run(never, read(5));
  const e = gate.run(never, read(6));
  const gone = gate.run(left.signal, read(7));
  left.abort(new Error("client gone"));
  await assert.rejects(gone, /client gone/);
  const f = gate.run(never, read(8));
  releases[3]!();
  releases[4]!();
  await Promise.all([d, e]);
  releases[5]!();
  assert.equal(await f, 8);
  assert.deepEqual(order, [1, 2, 3, 5, 6, 8]);
  assert.equal(gate.running, 0);
});

Deno.test(`reads of the log beyond ${MAX_READS} running and ${MAX_WAITING} waiting are 503 with Retry-After; the rest are answered`, async () => {
  await using s = await setup();
  let release = () => {};
  s.services.hold = new Promise<void>((r) => release = r);
  const pending: Promise<Response>[] = [];
  for (let i = 0; i < MAX_READS + MAX_WAITING; i++) pending.push(get(s.app, "/api/v1/records"));
  // The reads that run have begun before the next request is refused.
  for (let i = 0; i < 10_000 && s.services.params.length < MAX_READS; i++) {
    await Promise.resolve();
  }
  const refused = await get(s.app, "/api/v1/records");
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  assertSecurityHeaders(refused, "503");
  assert.deepEqual(await refused.json(), { error: "too many reads of the log under way" });
  assert.equal(s.services.params.length, MAX_READS, "only the running reads started");
  // What is not a read of the log is answered meanwhile.
  assert.equal((await get(s.app, "/api/v1/info")).status, 200);
  release();
  const answers = await Promise.all(pending);
  assert.deepEqual(new Set(answers.map((r) => r.status)), new Set([200]));
  for (const r of answers) await r.body?.cancel();
  assert.equal(s.services.params.length, MAX_READS + MAX_WAITING);
});
