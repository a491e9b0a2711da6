/**
 * The client the conformance suite launches in client mode: an SDK `Client` over
 * `StreamableHTTPClientTransport` that does what the scenario named in `MCP_CONFORMANCE_SCENARIO`
 * expects, against the server URL the suite appends as the last argument.
 *
 * usage: deno run -A --config deno.json tests/conformance/client.ts [--via-proxy] URL
 *
 * With `--via-proxy` it starts mcp-audit in front of URL (`main.ts --transport http --upstream URL
 * --port 0`), waits for its `proxy listening` line, and talks to the proxy instead, at the
 * upstream's path; the proxy is stopped (SIGTERM, then awaited) before this program ends. The
 * proxy's audit log and stderr go to `$CONFORMANCE_AUDIT_DIR/<scenario>/` when that is set (so a
 * test can read them), else to a temporary directory removed at the end.
 *
 * Exit codes: 0 done; 1 the scenario failed on the client side; 3 the proxy could not be started
 * (its stderr is printed).
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { auditEnv } from "../helpers.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
/** The HMAC secret the proxy signs with (a test value, not a credential). */
export const AUDIT_SECRET = "conformance-0b1d6f2e9a8c4b7d5e3f1a2c9b8d7e6f";
const PROXY_START_MS = 30_000;

/** A running proxy. */
interface Proxy {
  url: URL;
  stop(): Promise<void>;
}

/** Reads lines from a stream until one matches, or the stream ends (undefined). */
async function firstMatch(
  lines: AsyncIterator<string>,
  re: RegExp,
  seen: string[],
): Promise<RegExpMatchArray | undefined> {
  while (true) {
    const next = await lines.next();
    if (next.done) return undefined;
    seen.push(next.value);
    const m = next.value.match(re);
    if (m) return m;
  }
}

async function* splitLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
  if (pending !== "") yield pending;
}

/** Starts mcp-audit in front of `upstream` (on a free port by default); resolves once it listens. */
export async function startProxy(upstream: URL, dir: string, port = 0): Promise<Proxy> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      CONFIG,
      MAIN,
      "--transport",
      "http",
      "--upstream",
      upstream.href,
      "--port",
      String(port),
    ],
    cwd: dir,
    // The backend under test (TEST_STORAGE), as for every proxy the end-to-end tests start.
    env: { AUDIT_SECRET, ...auditEnv(`${dir}/audit.jsonl`) },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = await Deno.open(`${dir}/proxy.stderr`, { write: true, create: true, append: true });
  const [toLog, toScan] = child.stderr.tee();
  const logged = toLog.pipeTo(log.writable).catch(() => {});
  const lines = splitLines(toScan);
  const seen: string[] = [];
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, PROXY_START_MS);
  const m = await firstMatch(lines, /"proxy listening","address":"([^"]+)"/, seen);
  clearTimeout(timer);
  // Keep reading so the proxy never blocks on a full stderr pipe.
  const drained = (async () => {
    for await (const _ of lines) { /* logged by the tee */ }
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await drained;
    await logged;
  };
  if (m === undefined) {
    await stop();
    const status = await child.status;
    throw new ProxyStartError(status.code, seen.join("\n"));
  }
  const url = new URL(m[1]!);
  url.pathname = upstream.pathname;
  url.search = upstream.search;
  return { url, stop };
}

/** The proxy ended before it listened. */
export class ProxyStartError extends Error {
  constructor(readonly code: number, readonly stderr: string) {
    super(`mcp-audit exited with code ${code} before listening:\n${stderr}`);
  }
}

/** What each client scenario needs the client to do once connected. */
async function act(scenario: string, client: Client): Promise<void> {
  switch (scenario) {
    case "initialize":
      return;
    case "tools_call": {
      const { tools } = await client.listTools();
      if (!tools.some((t: { name: string }) => t.name === "add_numbers")) {
        throw new Error("no add_numbers tool");
      }
      const result = await client.callTool({ name: "add_numbers", arguments: { a: 5, b: 3 } });
      console.log(`add_numbers: ${JSON.stringify(result.content)}`);
      return;
    }
    case "sse-retry": {
      // The server closes this call's stream after a priming event with `retry: 500`; the result
      // only arrives once the transport has waited that long and resumed with Last-Event-ID.
      const result = await client.callTool({ name: "test_reconnection", arguments: {} });
      console.log(`test_reconnection: ${JSON.stringify(result.content)}`);
      return;
    }
    default:
      await client.listTools();
  }
}

async function main(args: string[]): Promise<number> {
  const viaProxy = args.includes("--via-proxy");
  const target = args.filter((a) => a !== "--via-proxy").at(-1);
  const scenario = Deno.env.get("MCP_CONFORMANCE_SCENARIO") ?? "";
  if (target === undefined) {
    console.error("usage: client.ts [--via-proxy] URL");
    return 1;
  }
  const upstream = new URL(target);
  let proxy: Proxy | undefined;
  let tempDir: string | undefined;
  const onSignal = () => {
    void proxy?.stop().finally(() => Deno.exit(143));
    if (!proxy) Deno.exit(143);
  };
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    let url = upstream;
    if (viaProxy) {
      const base = Deno.env.get("CONFORMANCE_AUDIT_DIR");
      let dir: string;
      if (base !== undefined) {
        dir = `${base}/${scenario.replaceAll("/", "_") || "unnamed"}`;
        await Deno.mkdir(dir, { recursive: true });
      } else {
        dir = tempDir = await Deno.makeTempDir({ prefix: "mcp-audit-conformance-client-" });
      }
      try {
        proxy = await startProxy(upstream, dir);
      } catch (e) {
        console.error(String((e as Error).message));
        return 3;
      }
      url = proxy.url;
      console.log(`via mcp-audit at ${url.href} -> ${upstream.href}`);
    }
    const client = new Client({ name: "mcp-audit-conformance-client", version: "1.0.0" }, {
      capabilities: {},
    });
    const transport = new StreamableHTTPClientTransport(url);
    transport.onerror = (e: Error) => console.error(`transport: ${e.message}`);
    await client.connect(transport);
    console.log(`connected (${scenario || "no scenario"})`);
    await act(scenario, client);
    await client.close();
    return 0;
  } catch (e) {
    console.error(`client failed: ${(e as Error).stack ?? e}`);
    return 1;
  } finally {
    await proxy?.stop();
    if (tempDir !== undefined) await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
