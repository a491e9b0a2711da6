/**
 * The upstream's whole tree ends with the session, whatever its descendants do to leave the
 * upstream's process group: a new session, a group of their own, a double fork whose middle
 * process exits, a daemon with its stdio closed, ignoring SIGTERM, or forking away faster than
 * anyone can scan. Each way a session ends is tried over stdio (the client closes its input, the
 * proxy gets SIGTERM, the upstream exits by itself) and over the HTTP bridge (DELETE, SIGTERM).
 *
 * The fixture's descendants record their pid and start time; a test waits for each to be gone
 * (the start time tells a recorded process from a later one given the same pid), and kills any
 * that are left, whatever the outcome.
 */
import { probeTreeSupport } from "../src/transport/process_tree.ts";
import {
  ALL_KINDS,
  ESCAPING_UPSTREAM,
  findPython,
  killRecorded,
  READY,
  runningKinds,
  show,
  survivors,
  TRACKABLE_KINDS,
} from "./fixtures/escaping_records.ts";
import {
  assert,
  assertEquals,
  assertNoStrays,
  deadline,
  ProxyProcess,
  raceAbort,
  strays,
  tempDir,
} from "./helpers.ts";

const support = Deno.build.os === "linux" ? probeTreeSupport() : undefined;
const containment = support?.containment;
const KINDS: readonly string[] = containment?.kind === "cgroup"
  ? ALL_KINDS
  : containment?.kind === "tracked"
  ? TRACKABLE_KINDS
  : [];
const python = await findPython();
const ignore = python === undefined || KINDS.length === 0;

/** Checks that every kind has a live descendant, so that "all gone" later means something. */
async function assertAllStarted(pidfile: string, upstream?: number): Promise<void> {
  assertEquals(
    await runningKinds(pidfile, KINDS, upstream),
    [...KINDS].sort(),
    "every kind of descendant is running",
  );
}

/** Kills whatever the test left, the marked processes included. */
function cleanup(pidfile: string, marker: string): Promise<void> {
  return killRecorded(pidfile, async () => (await strays(marker)).map((p) => p.pid));
}

/** The cgroups a proxy made that are still there (none once it has exited). */
function cgroupsLeft(proxyPid: number): string[] {
  if (containment?.kind !== "cgroup") return [];
  return [...Deno.readDirSync(containment.parent)].map((e) => e.name).filter((name) =>
    name.startsWith(`mcp-audit.${proxyPid}.`)
  );
}

function escaping(pidfile: string, ...flags: string[]): string[] {
  return [python!, ESCAPING_UPSTREAM, pidfile, KINDS.join(","), ...flags];
}

function readyCount(proxy: ProxyProcess): number {
  return proxy.stderr.lines.filter((l) => l.includes(READY)).length;
}

/** Runs one stdio session with the fixture, ends it with `end`, and checks nothing is left. */
async function stdioSession(
  label: string,
  flags: string[],
  end: (proxy: ProxyProcess) => Promise<void>,
): Promise<void> {
  await using dir = await tempDir(`tree-${label}`);
  const pidfile = `${dir.path}/pids`;
  try {
    await using proxy = new ProxyProcess({ cwd: dir.path, upstream: escaping(pidfile, ...flags) });
    await proxy.stderr.waitFor(() => readyCount(proxy) === 1, "the descendants", deadline(30_000));
    await assertAllStarted(pidfile);
    await end(proxy);
    const status = await raceAbort(
      proxy.status,
      deadline(30_000),
      "the proxy to exit",
      () => proxy.stderr.text().slice(-3000),
    );
    assertEquals(show(await survivors(pidfile, 10_000)), [], "descendants left after the session");
    assertEquals(status.code, 0, proxy.stderr.text().slice(-3000));
    assertEquals(cgroupsLeft(proxy.pid), [], "the proxy removed the cgroups it made");
    await assertNoStrays(dir.path);
  } finally {
    await cleanup(pidfile, dir.path);
  }
}

Deno.test({
  name: "stdio: descendants that left the process group end when the client closes its input",
  ignore,
  fn: () => stdioSession("eof", [], (proxy) => proxy.closeInput()),
});

Deno.test({
  name: "stdio: SIGTERM to the proxy ends an upstream that ignores SIGTERM and all it started",
  ignore,
  fn: () =>
    stdioSession("sigterm", ["--stay", "--ignore-term"], (proxy) => {
      proxy.child.kill("SIGTERM");
      return Promise.resolve();
    }),
});

Deno.test({
  name: "stdio: an upstream that exits by itself leaves nothing behind",
  ignore,
  fn: () => stdioSession("exit", ["--exit-when-ready"], () => Promise.resolve()),
});

/** Opens an HTTP session (one upstream) and returns its id and the upstream's pid. */
async function openSession(
  proxy: ProxyProcess,
  endpoint: string,
): Promise<{ id: string; upstream: number }> {
  const before = readyCount(proxy);
  const res = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "process-tree-test", version: "1.0.0" },
      },
    }),
    signal: deadline(30_000),
  });
  await res.text();
  assertEquals(res.status, 200);
  const id = res.headers.get("mcp-session-id");
  assert(id !== null, "the bridge names the session");
  await proxy.stderr.waitFor(
    () => readyCount(proxy) > before,
    "the session's descendants",
    deadline(30_000),
  );
  const started = proxy.logLines().find((l) =>
    l.msg === "session upstream started" && l.session === id
  );
  assert(typeof started?.pid === "number", "the session's upstream pid is logged");
  return { id, upstream: started.pid };
}

Deno.test({
  name: "HTTP bridge: DELETE ends the session's whole tree, and SIGTERM ends the others'",
  ignore,
  fn: async () => {
    await using dir = await tempDir("tree-http");
    const pidfile = `${dir.path}/pids`;
    try {
      await using proxy = new ProxyProcess({
        cwd: dir.path,
        upstream: escaping(pidfile),
        flags: ["--transport", "http", "--port", "0"],
      });
      await proxy.stderr.waitFor(
        () => proxy.logLines().some((l) => l.msg === "proxy listening"),
        "the proxy to listen",
        deadline(30_000),
      );
      const address = proxy.logLines().find((l) => l.msg === "proxy listening")?.address;
      assert(typeof address === "string", "the listening line names the address");
      const endpoint = `${new URL(address).origin}/mcp`;
      const a = await openSession(proxy, endpoint);
      const b = await openSession(proxy, endpoint);
      await assertAllStarted(pidfile, a.upstream);
      await assertAllStarted(pidfile, b.upstream);

      const deleted = await fetch(endpoint, {
        method: "DELETE",
        headers: { "mcp-session-id": a.id },
        signal: deadline(30_000),
      });
      await deleted.body?.cancel();
      assert(deleted.ok, `DELETE answered ${deleted.status}`);
      assertEquals(show(await survivors(pidfile, 10_000, a.upstream)), [], "after DELETE");
      await assertAllStarted(pidfile, b.upstream);

      proxy.child.kill("SIGTERM");
      const status = await raceAbort(
        proxy.status,
        deadline(30_000),
        "the proxy to exit",
        () => proxy.stderr.text().slice(-3000),
      );
      assertEquals(show(await survivors(pidfile, 10_000)), [], "after SIGTERM");
      assertEquals(status.code, 0);
      assertEquals(cgroupsLeft(proxy.pid), [], "the proxy removed the cgroups it made");
      await assertNoStrays(dir.path);
    } finally {
      await cleanup(pidfile, dir.path);
    }
  },
});
