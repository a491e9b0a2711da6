/**
 * What the dashboard's end-to-end tests share: a real proxy (`deno run main.ts`) in front of a
 * stdio upstream (server-everything by default) with its dashboard on a free port, driven by the
 * real MCP SDK client; the standalone `mcp-audit dashboard --log PATH --port 0`; and reading the
 * dashboard's Server-Sent Events as they arrive.
 *
 * Nothing here sleeps: every wait is for an event (the `dashboard listening` line, bytes of a
 * stream, a process exit), with an `AbortSignal` only as a safety net.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  assert,
  auditEnv,
  Collector,
  deadline,
  DENO_JSON,
  EVERYTHING,
  exitAndStderr,
  killChild,
  MAIN,
  releaseStderr,
  SECRET,
  STORAGE,
  WireTransport,
} from "./helpers.ts";
import { cleanEnv, type ParsedEvent, parseSse } from "./http_helpers.ts";
import { parseJson } from "../src/jsonrpc/json.ts";
import { listenAddress } from "./telemetry_helpers.ts";

/** The log's file name in a test's directory, by the backend under test. */
export const LOG_NAME = STORAGE === "sqlite" ? "audit.db" : "audit.jsonl";

/** The environment variable a dashboard's token is given in (never a flag: argv is public). */
export const TOKEN_ENV = "MCP_AUDIT_DASHBOARD_AUTH_TOKEN";

/** How long a process gets to print its listening line. */
const START_MS = 60_000;

/** The options both processes share. */
interface Common {
  /** Working directory; also the marker for processes left behind. */
  cwd: string;
  /** `dashboard.auth.token`, given in {@link TOKEN_ENV}; none when undefined. */
  token?: string;
  /** `AUDIT_SECRET`: the proxy signs with it, the standalone dashboard verifies with it. */
  secret?: string | null;
  /** More environment variables (`MCP_AUDIT_*` keys). */
  env?: Record<string, string>;
}

/** How to start a proxy with its dashboard. */
export interface DashboardProxyOptions extends Common {
  /** The upstream argv (after `--`); server-everything over stdio by default. */
  upstream?: readonly string[];
  /** Proxy flags before `--` (`--no-metrics` is always given). */
  flags?: readonly string[];
  /** The log's path; `cwd/`{@link LOG_NAME} by default. */
  logPath?: string;
}

function environment(common: Common, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...cleanEnv(), ...extra, ...common.env };
  const secret = common.secret === undefined ? SECRET : common.secret;
  if (secret !== null) env.AUDIT_SECRET = secret;
  if (common.token !== undefined) env[TOKEN_ENV] = common.token;
  return env;
}

/** A child process with its stderr collected and a dashboard address read from it. */
abstract class DashboardChild implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: Collector;
  readonly status: Promise<Deno.CommandStatus>;
  /** `http://127.0.0.1:PORT`, once {@link listening} resolved. */
  origin = "";
  #exited = false;

  constructor(args: string[], cwd: string, env: Record<string, string>, stdin: "piped" | "null") {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", DENO_JSON, MAIN, ...args],
      cwd,
      env,
      clearEnv: true,
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stderr = new Collector(this.child.stderr);
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The dashboard's port. */
  get port(): number {
    return Number(new URL(this.origin).port);
  }

  /** Waits for the `dashboard listening` line and keeps its address. */
  async listening(signal: AbortSignal = deadline(START_MS)): Promise<void> {
    this.origin = await listenAddress(this.stderr, "dashboard listening", signal);
  }

  /** `fetch` of a path of the dashboard. */
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(new URL(path, this.origin), { signal: deadline(30_000), ...init });
  }

  /** `fetch` with `Authorization: Bearer TOKEN`. */
  fetchWith(token: string, path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    return this.fetch(path, { ...init, headers });
  }

  /** Waits for the process to exit and for its stderr to end. */
  finished(signal: AbortSignal = deadline(30_000)): Promise<Deno.CommandStatus> {
    return exitAndStderr(this.status, this.stderr, signal, "the process");
  }

  /** Sends `signal` (SIGTERM by default) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.child.kill(signal);
    return await this.finished();
  }

  protected async disposeChild(): Promise<void> {
    await killChild(this.child, this.#exited, this.status);
    await this.child.stdout.cancel().catch(() => {});
    await releaseStderr(this.child, this.stderr);
  }

  abstract [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A stdio proxy (`deno run main.ts --no-metrics -- UPSTREAM`) with its dashboard on a free port
 * (`MCP_AUDIT_DASHBOARD_PORT=0`), started and listening.
 */
export class DashboardProxy extends DashboardChild {
  readonly logPath: string;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #transport: WireTransport | undefined;
  #client: Client | undefined;
  #inputClosed = false;

  private constructor(opts: DashboardProxyOptions) {
    const logPath = opts.logPath ?? `${opts.cwd}/${LOG_NAME}`;
    super(
      ["--no-metrics", ...(opts.flags ?? []), "--", ...(opts.upstream ?? EVERYTHING)],
      opts.cwd,
      environment(opts, auditEnv(logPath)),
      "piped",
    );
    this.logPath = logPath;
    this.#stdin = this.child.stdin.getWriter();
  }

  /** Starts the proxy and waits for its dashboard to listen. */
  static async start(opts: DashboardProxyOptions): Promise<DashboardProxy> {
    const proxy = new DashboardProxy(opts);
    try {
      await proxy.listening();
    } catch (e) {
      await proxy[Symbol.asyncDispose]();
      throw e;
    }
    return proxy;
  }

  /** The proxy's stdio as an MCP SDK transport, keeping the lines sent and received. */
  transport(): WireTransport {
    if (this.#transport !== undefined) throw new Error("the transport is already taken");
    this.#transport = new WireTransport(this.child.stdout, this.#stdin, () => this.closeInput());
    return this.#transport;
  }

  /** The real MCP SDK client, connected through the proxy (once; later calls return it). */
  async client(name = "dashboard-e2e"): Promise<Client> {
    if (this.#client !== undefined) return this.#client;
    const client = new Client({ name, version: "1.0.0" });
    await client.connect(this.transport());
    this.#client = client;
    return client;
  }

  /** Ends the proxy's stdin: the client is done, and the proxy stops. */
  async closeInput(): Promise<void> {
    if (this.#inputClosed) return;
    this.#inputClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeInput();
    this.#stdin.releaseLock();
    if (this.#transport === undefined) await this.child.stdout.cancel().catch(() => {});
    await this.disposeChild();
  }
}

/** How to start `mcp-audit dashboard`. */
export interface StandaloneOptions extends Common {
  /** The log to serve (`--log`). */
  logPath: string;
  /** More arguments (`--public-key FILE`, `--config FILE`, …); `--port 0` is always given. */
  args?: readonly string[];
}

/** `deno run main.ts dashboard --log PATH --port 0`, serving a log read-only. */
export class StandaloneDashboard extends DashboardChild {
  readonly logPath: string;

  private constructor(opts: StandaloneOptions) {
    super(
      ["dashboard", "--log", opts.logPath, "--port", "0", ...(opts.args ?? [])],
      opts.cwd,
      environment(opts, {}),
      "null",
    );
    this.logPath = opts.logPath;
  }

  /** Starts the dashboard and waits for it to listen. */
  static async start(opts: StandaloneOptions): Promise<StandaloneDashboard> {
    const dashboard = new StandaloneDashboard(opts);
    try {
      await dashboard.listening();
    } catch (e) {
      await dashboard[Symbol.asyncDispose]();
      throw e;
    }
    return dashboard;
  }

  /** Starts the command without waiting for it to listen (for the commands that must fail). */
  static spawn(opts: StandaloneOptions): StandaloneDashboard {
    return new StandaloneDashboard(opts);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.disposeChild();
  }
}

/**
 * Reads a Server-Sent Events response as it arrives. `events()` parses what has arrived (a
 * trailing incomplete event left out); `waitFor` resolves once they satisfy a condition.
 */
export class SseReader implements AsyncDisposable {
  readonly response: Response;
  readonly #bytes: Collector;
  readonly #abort: AbortController;

  private constructor(response: Response, abort: AbortController) {
    assert(response.body !== null, "an event stream has a body");
    this.response = response;
    this.#abort = abort;
    this.#bytes = new Collector(response.body, { lines: false });
  }

  /**
   * Opens `GET path` on `origin` as an event stream, with `headers` (`Authorization`,
   * `Last-Event-ID`). The stream is read until disposed.
   */
  static async open(
    origin: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<SseReader> {
    const abort = new AbortController();
    const response = await fetch(new URL(path, origin), {
      headers: { accept: "text/event-stream", ...headers },
      signal: abort.signal,
    });
    return new SseReader(response, abort);
  }

  /** The events that have arrived. */
  events(): ParsedEvent[] {
    return parseSse(this.#bytes.bytes());
  }

  /** The `record` events' data, parsed, in the order they arrived. */
  records(): unknown[] {
    return this.events().filter((e) => e.event === "record" && e.data !== null).map((e) =>
      parseJson(e.data ?? "null")
    );
  }

  /** Resolves once `condition` holds for the events that have arrived. */
  async waitFor(
    condition: (events: ParsedEvent[]) => boolean,
    what: string,
    signal: AbortSignal = deadline(30_000),
  ): Promise<ParsedEvent[]> {
    await this.#bytes.waitFor(() => condition(this.events()), what, signal);
    return this.events();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#abort.abort();
    await this.#bytes.done;
  }
}
