/**
 * mcp-audit: the composition root. Reads the command line and configuration, builds the audit
 * log and the transport, wires signals to one AbortController, and turns outcomes into exit codes.
 *
 * @module
 */
import { AuditLog, ChainError } from "./src/audit/chain.ts";
import { ulidFactory } from "./src/audit/ids.ts";
import { EventMethod } from "./src/audit/record.ts";
import {
  defaultKeyId,
  ed25519Signer,
  hmacSigner,
  KeyError,
  type Signer,
} from "./src/audit/signing.ts";
import { StorageError } from "./src/audit/storage/errors.ts";
import {
  asyncOptions,
  checkpointOptions,
  openQuery,
  openStore,
  storePath,
} from "./src/audit/storage/open.ts";
import type { KeyRing } from "./src/audit/key_file.ts";
import { createPublicKey } from "node:crypto";
import { writerIdentity } from "./src/audit/writer_identity.ts";
import { HELP, parseCommand } from "./src/cli/args.ts";
import { UsageError } from "./src/cli/errors.ts";
import type { Config } from "./src/config/config.ts";
import type { DashboardServices } from "./src/dashboard/api.ts";
import type { StaticFiles } from "./src/dashboard/static_files.ts";
import { ConfigError, loadConfig, type Loaded, loadYamlParser } from "./src/config/load.ts";
import type { JsonObject } from "./src/jsonrpc/json.ts";
import { type Logger, stderrLogger } from "./src/log.ts";
import { Exchange, type ExchangeDeps } from "./src/pipeline/exchange.ts";
import { buildSettings, configDigest, liveSettings, pinsPath } from "./src/pipeline/settings.ts";
import type { Listener, ServeLimits } from "./src/transport/http/serve.ts";
import type { UpstreamFetch, UpstreamTls } from "./src/transport/http/upstream_tls.ts";
import { CommandLineError, splitCommandLine, upstreamEnv } from "./src/transport/command_line.ts";
import { runStdio } from "./src/transport/stdio.ts";
import { Telemetry, TelemetryStartError } from "./src/telemetry/telemetry.ts";
import { ProxyStats } from "./src/telemetry/proxy_stats.ts";
import type { RequestInfo } from "./src/transport/http/host_origin_guard.ts";
import { VERSION, versionLine } from "./src/version.ts";
import { watchFile } from "./src/config/watch.ts";
import { readConfigFile } from "./src/config/read_file.ts";
import { Reloader, type ReloadTrigger } from "./src/pipeline/reload.ts";

// Statically imported above: what a stdio proxy needs, and nothing else, since a client starts
// every wrapped server when it starts and waits for each. What only some configurations or
// commands use (the HTTP transports, TLS, the listeners, the dashboard, the subcommands) is
// imported where it is first needed.

/** How long the upstream gets after its stdin closes, and again after SIGTERM. */
const UPSTREAM_GRACE_MS = 3000;
/** Most HTTP sessions correlated at once; the least recently used beyond it are forgotten. */
const MAX_HTTP_SESSIONS = 10_000;
/** Most sessions (each an upstream process) when serving a stdio server over HTTP. */
const BRIDGE_MAX_SESSIONS = 64;
/** A bridged session with no request for this long is ended, and its process with it. */
const BRIDGE_SESSION_IDLE_MS = 30 * 60_000;

/** What one scraper may hold of the metrics listener (the Go tool: a 10 s header timeout). */
const METRICS_LIMITS: ServeLimits = {
  maxHeaderBytes: 16 * 1024,
  readHeaderTimeoutMs: 10_000,
  readTimeoutMs: 10_000,
  writeTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxConnections: 64,
};

const encoder = new TextEncoder();
function printOut(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}
function printErr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** The listeners' module, once a listener has been asked for (a stdio run may bind none). */
let listeners: typeof import("./src/transport/http/serve.ts") | undefined;
async function loadListeners(): Promise<typeof import("./src/transport/http/serve.ts")> {
  return listeners ??= await import("./src/transport/http/serve.ts");
}
/** A port that is taken or cannot be bound: only possible once a listener was asked for. */
function isListenError(e: unknown): e is Error {
  return listeners !== undefined && e instanceof listeners.ListenError;
}

function makeSigner(config: Config, logger: Logger): Signer | null {
  const a = config.audit;
  const keyId = a.key_id === "" ? undefined : a.key_id;
  if (!a.sign) {
    logger.warn(
      "audit.sign is false: records are NOT signed and edits to the log cannot be detected by signature",
    );
    return null;
  }
  if (a.signing.private_key_file !== "") {
    let pem: string;
    try {
      pem = Deno.readTextFileSync(a.signing.private_key_file);
    } catch (e) {
      throw new ConfigError(
        "audit.signing.private_key_file",
        `cannot read: ${(e as Error).message}`,
      );
    }
    try {
      return ed25519Signer(pem, keyId);
    } catch (e) {
      if (e instanceof KeyError) throw new ConfigError("audit.signing.private_key_file", e.message);
      throw e;
    }
  }
  if (a.secret === "") {
    logger.warn(
      "NO SIGNING KEY: set AUDIT_SECRET (or audit.signing.private_key_file); records are written unsigned (sig: null)",
    );
    return null;
  }
  return hmacSigner(a.secret, keyId ?? defaultKeyId(a.secret));
}

function upstreamArgv(config: Config): string[] {
  if (config.proxy.upstream_argv.length > 0) return config.proxy.upstream_argv;
  if (config.proxy.upstream.trim() === "") {
    throw new ConfigError(
      "proxy.upstream",
      'is required: give --upstream "CMD ARGS" or the command after --',
    );
  }
  try {
    return splitCommandLine(config.proxy.upstream, Deno.build.os === "windows");
  } catch (e) {
    if (e instanceof CommandLineError) throw new ConfigError("proxy.upstream", e.message);
    throw e;
  }
}

/** What both transports share: the open log, the signals, and how the run ends. */
interface Run {
  config: Config;
  log: AuditLog;
  logger: Logger;
  newId: () => string;
  shutdown: AbortSignal;
  /** Called before bytes go out: records first. */
  beforeWrite: () => void;
  /** Reaches an HTTP upstream, with the configured TLS settings. */
  upstreamFetch: UpstreamFetch;
  exchangeDeps: ExchangeDeps;
  /** What the transports count for the metrics. */
  stats: ProxyStats;
}

/** How a run ended, for `audit/stop` and the exit code. */
interface Ending {
  exitCode: 0 | 1;
  reason: string;
  details: JsonObject;
}

function isUrl(upstream: string): boolean {
  return /^https?:\/\//i.test(upstream.trim());
}

/** An exchange for a session the proxy itself names. */
function ownSession(run: Run, session: string | null, upstream: URL | null = null): Exchange {
  const exchange = new Exchange(run.exchangeDeps, session, upstream?.href ?? null);
  exchange.vouch();
  return exchange;
}

async function runStdioProxy(run: Run, session: string, argv: string[]): Promise<Ending> {
  const exchange = ownSession(run, session);
  const outcome = await runStdio({
    argv,
    env: upstreamEnv(Deno.env.toObject()),
    client: { readable: Deno.stdin.readable, writable: Deno.stdout.writable },
    exchange,
    beforeWrite: run.beforeWrite,
    maxMessageBytes: run.config.proxy.max_message_bytes,
    logger: run.logger,
    signal: run.shutdown,
    graceMs: UPSTREAM_GRACE_MS,
    stats: run.stats,
  });
  return {
    exitCode: outcome.exitCode,
    reason: outcome.reason,
    details: {
      upstream_exit: outcome.upstream === null
        ? null
        : { code: outcome.upstream.code, signal: outcome.upstream.signal },
      pending: exchange.pendingSummary(),
    },
  };
}

async function runStdioToHttpBridge(run: Run, session: string, upstream: URL): Promise<Ending> {
  const { runStdioToHttp } = await import("./src/transport/stdio_to_http.ts");
  const exchange = ownSession(run, session, upstream);
  const outcome = await runStdioToHttp({
    upstream,
    fetch: run.upstreamFetch,
    client: { readable: Deno.stdin.readable, writable: Deno.stdout.writable },
    exchange,
    beforeWrite: run.beforeWrite,
    maxMessageBytes: run.config.proxy.max_message_bytes,
    upstreamTimeoutMs: run.config.proxy.upstream_timeout_ms,
    logger: run.logger,
    signal: run.shutdown,
  });
  return { ...outcome, details: { upstream: upstream.href, pending: exchange.pendingSummary() } };
}

/** Host names our listener answers to: loopback, the bound address, and the configured ones. */
function allowedHosts(run: Run): Set<string> {
  const p = run.config.proxy;
  const loopback = ["localhost", "127.0.0.1", "[::1]", "::1"];
  const bound = ["0.0.0.0", "::", ""].includes(p.bind_address)
    ? []
    : [p.bind_address.toLowerCase()];
  if (bound.length === 0 && p.http.allowed_hosts.length === 0) {
    run.logger.warn(
      "listening on all interfaces with no proxy.http.allowed_hosts: only loopback host names are accepted",
    );
  }
  return new Set([...loopback, ...bound, ...p.http.allowed_hosts.map((h) => h.toLowerCase())]);
}

async function runHttpToStdioBridge(run: Run, argv: string[]): Promise<Ending> {
  const p = run.config.proxy;
  const [{ StdioSessions }, { listen, serveLimits }] = await Promise.all([
    import("./src/transport/http/stdio_sessions.ts"),
    loadListeners(),
  ]);
  const sessions = new StdioSessions({
    argv,
    env: upstreamEnv(Deno.env.toObject()),
    newExchange: (session) => ownSession(run, session === "" ? null : session),
    newSessionId: run.newId,
    beforeWrite: run.beforeWrite,
    maxMessageBytes: p.max_message_bytes,
    maxSessions: BRIDGE_MAX_SESSIONS,
    idleMs: BRIDGE_SESSION_IDLE_MS,
    graceMs: UPSTREAM_GRACE_MS,
    logger: run.logger,
    allowedHosts: allowedHosts(run),
    allowedOrigins: new Set(p.http.allowed_origins),
    stats: run.stats,
  });
  run.stats.sessionsOpen = () => sessions.open;
  const listener = await listen(sessions.app(), {
    hostname: p.bind_address,
    port: p.port,
    signal: run.shutdown,
    logger: run.logger,
    name: "proxy",
    limits: serveLimits(p.http),
  });
  await listener.finished;
  const pending = sessions.exchanges().flatMap((e) => e.pendingSummary()).slice(0, 100);
  await sessions.close();
  return { exitCode: 0, reason: "shutdown signal", details: { pending } };
}

async function runHttpProxy(run: Run, upstream: URL): Promise<Ending> {
  const { config, logger } = run;
  const p = config.proxy;
  const [{ SessionRegistry }, { createProxyApp }, { listen, serveLimits }] = await Promise.all([
    import("./src/transport/http/sessions.ts"),
    import("./src/transport/http/proxy_app.ts"),
    loadListeners(),
  ]);
  const sessions = new SessionRegistry(
    (session) => new Exchange(run.exchangeDeps, session, upstream.href),
    MAX_HTTP_SESSIONS,
    (evicted) =>
      logger.warn("too many sessions; forgetting the least recently used", {
        session: evicted.session,
      }),
  );
  const app = createProxyApp({
    upstream,
    fetch: run.upstreamFetch,
    sessions,
    logger,
    maxMessageBytes: p.max_message_bytes,
    maxRequestBodyBytes: p.http.max_request_body_bytes === 0
      ? p.max_message_bytes
      : Math.min(p.http.max_request_body_bytes, p.max_message_bytes),
    upstreamTimeoutMs: p.upstream_timeout_ms,
    forwardHeaders: new Set(p.forward_headers.map((h) => h.toLowerCase())),
    allowedHosts: allowedHosts(run),
    allowedOrigins: new Set(p.http.allowed_origins),
    beforeWrite: run.beforeWrite,
    retry: {
      maxRetries: p.retry.max_retries,
      initialIntervalMs: p.retry.initial_interval_ms,
      maxIntervalMs: p.retry.max_interval_ms,
    },
    stats: run.stats,
  });
  run.stats.sessionsOpen = () => sessions.open;
  const listener = await listen(app, {
    hostname: p.bind_address,
    port: p.port,
    signal: run.shutdown,
    logger,
    name: "proxy",
    limits: serveLimits(p.http),
    // The proxy's app reads the client's leaving from its bindings, not from the Request.
    requestSignal: false,
  });
  await listener.finished;
  return {
    exitCode: 0,
    reason: "shutdown signal",
    details: { pending: sessions.all().flatMap((e) => e.pendingSummary()).slice(0, 100) },
  };
}

/** Serves the metrics on their own listener until `signal` aborts. */
async function serveMetrics(
  config: Config,
  metrics: Telemetry,
  logger: Logger,
  signal: AbortSignal,
): Promise<Listener> {
  const m = config.metrics;
  const [{ Hono }, { createMetricsApp, metricsHosts }, { listen, ListenError }] = await Promise
    .all([import("hono"), import("./src/telemetry/metrics_app.ts"), loadListeners()]);
  const app = new Hono<{ Bindings: RequestInfo }>();
  // Bound to loopback, only loopback names (DNS rebinding); bound for a network, any name.
  const allowedHosts = metricsHosts(m.bind_address);
  app.route("/", createMetricsApp(metrics, m.path, logger, { allowedHosts }));
  try {
    return await listen(app, {
      hostname: m.bind_address,
      port: m.port,
      signal,
      logger,
      name: "metrics",
      limits: METRICS_LIMITS,
      // Fixed here, not set by any key: a refusal's log line must not send the operator to one.
      limitName: () => "the metrics listener's limit",
      allow: "GET, HEAD",
    });
  } catch (e) {
    if (!(e instanceof ListenError)) throw e;
    throw new ListenError(
      `metrics: ${e.message} (each proxy needs its own metrics.port, or 0 for any free one, ` +
        `or --no-metrics)`,
    );
  }
}

/**
 * The keys the dashboard's chain status checks signatures with: the proxy's own (an Ed25519
 * signer's public half), or null when records are not signed.
 */
async function verifyKeys(config: Config): Promise<KeyRing | null> {
  const a = config.audit;
  if (!a.sign) return null;
  const { ed25519Entry, hmacEntry, KeyRing } = await import("./src/audit/key_file.ts");
  const keyId = a.key_id === "" ? undefined : a.key_id;
  if (a.signing.private_key_file !== "") {
    const pem = Deno.readTextFileSync(a.signing.private_key_file);
    const spki = createPublicKey(pem).export({ type: "spki", format: "pem" }).toString();
    return new KeyRing([ed25519Entry(spki, keyId, "audit.signing.private_key_file")]);
  }
  return a.secret === "" ? null : new KeyRing([hmacEntry(a.secret, keyId, "audit.secret")]);
}

/** The dashboard page's files; one that cannot be read is a configuration problem. */
async function pageFiles(): Promise<StaticFiles> {
  const { StaticFiles, StaticFilesError } = await import("./src/dashboard/static_files.ts");
  try {
    return await StaticFiles.load();
  } catch (e) {
    if (e instanceof StaticFilesError) throw new ConfigError("dashboard.enabled", e.message);
    throw e;
  }
}

/**
 * The dashboard: its services read the log through the query API, woken by the log's observer
 * (never on the way of a message); its listener is bound before any traffic.
 */
async function startDashboard(
  config: Config,
  files: StaticFiles,
  log: AuditLog,
  logger: Logger,
  signal: AbortSignal,
): Promise<{ services: DashboardServices; listener: Listener }> {
  const [{ createDashboardServices }, { serveDashboard }, keys] = await Promise.all([
    import("./src/dashboard/services.ts"),
    import("./src/cli/dashboard_serve.ts"),
    verifyKeys(config),
    loadListeners(),
  ]);
  const services = createDashboardServices({
    path: storePath(config.audit),
    storage: config.audit.storage,
    live: true,
    authEnabled: config.dashboard.auth.token.trim() !== "",
    timeZone: config.dashboard.timezone,
    pinsPath: config.pinning.enabled ? pinsPath(config) : null,
    keys,
    logger,
  });
  const stopWaking = log.observe(() => services.feed.wake());
  try {
    const listener = await serveDashboard(config, services, logger, signal, { files });
    return { services, listener };
  } catch (e) {
    stopWaking();
    services.close();
    throw e;
  }
}

/**
 * The metrics and the OpenTelemetry export, in a worker of their own when either is on: their
 * work (and loading their libraries) is then never paid by the thread that forwards messages.
 */
async function startTelemetry(
  config: Config,
  logger: Logger,
  log: () => AuditLog | undefined,
  stats: ProxyStats,
  upstream: string | null,
): Promise<Telemetry | undefined> {
  if (!config.metrics.enabled && !config.otel.enabled) return undefined;
  try {
    return await Telemetry.start({
      logLevel: logger.level,
      metrics: config.metrics.enabled
        ? {
          toolLabels: config.metrics.tool_labels,
          maxToolLabels: config.metrics.max_tool_labels,
          includeProcess: config.metrics.include_process_metrics,
          includeRuntime: config.metrics.include_go_metrics,
          backend: config.audit.storage,
          otelQueueCapacity: config.otel.enabled ? config.otel.queue_size : 0,
        }
        : null,
      otel: config.otel.enabled
        ? { config: config.otel, version: VERSION, storage: config.audit.storage, upstream }
        : null,
    }, {
      log: () => {
        const l = log();
        return {
          queued: l?.queued ?? 0,
          queueCapacity: l?.queueCapacity ?? 0,
          backpressure: l?.backpressure ?? 0,
        };
      },
      stats,
    }, logger);
  } catch (e) {
    if (e instanceof TelemetryStartError) {
      const key = e.key ?? (config.metrics.enabled ? "metrics.enabled" : "otel.enabled");
      throw new ConfigError(key, e.problem);
    }
    throw e;
  }
}

/**
 * Starts loading the modules of the listeners `config` asks for, so that they load while the
 * telemetry worker starts; each is imported again (and then found loaded) where it is used, and
 * an import that fails fails there.
 */
function preloadListeners(config: Config): void {
  const loading: Promise<unknown>[] = [];
  if (config.metrics.enabled) {
    loading.push(import("hono"), import("./src/telemetry/metrics_app.ts"), loadListeners());
  }
  if (config.dashboard.enabled) {
    loading.push(
      import("./src/dashboard/services.ts"),
      import("./src/cli/dashboard_serve.ts"),
      import("./src/audit/key_file.ts"),
      loadListeners(),
    );
  }
  Promise.allSettled(loading);
}

/** How to load the configuration again, for reloads. */
interface Reloading {
  load: () => Loaded;
  /** The configuration file read, if any: watched for changes. */
  file: string | undefined;
  /**
   * Loads what a reload needs and a start without a file did not (the YAML parser); once only.
   * Awaited by every reload, and started in the background once the first answer went back.
   */
  prepare: () => Promise<void>;
}

/** Reloads on SIGHUP and when the configuration file changes, until the returned stop is called. */
function startReloading(
  reloader: Reloader,
  reloading: Reloading,
  logger: Logger,
): () => void {
  const stop = new AbortController();
  const safely = (trigger: ReloadTrigger) => async () => {
    // A parser that did not load fails the reload as a bad file does: rejected, settings kept.
    await reloading.prepare().catch(() => {});
    if (stop.signal.aborted) return; // the run ended meanwhile: its log is closed
    try {
      reloader.reload(trigger);
    } catch (e) {
      logger.error("configuration reload failed", { error: (e as Error).message });
    }
  };
  const onHup = safely("signal");
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", onHup);
  if (reloading.file !== undefined) watchFile(reloading.file, stop.signal, safely("file"));
  return () => {
    stop.abort();
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", onHup);
  };
}

async function runProxy(loaded: Loaded, logger: Logger, reloading: Reloading): Promise<number> {
  const { config } = loaded;
  for (const w of loaded.warnings) logger.warn(w);
  // Generic names such as PROXY_PORT may have been set for another program: say which took effect.
  if (loaded.goEnv.length > 0) {
    logger.info("the Go tool's environment variables in force", { names: loaded.goEnv.join(",") });
  }
  if (loaded.emptyEnv.length > 0) {
    logger.info("empty environment variables ignored (an empty variable is not set)", {
      names: loaded.emptyEnv.join(","),
    });
  }
  const http = config.proxy.transport === "http";
  const upstreamIsUrl = isUrl(config.proxy.upstream) && config.proxy.upstream_argv.length === 0;
  let upstreamUrl: URL | undefined;
  if (upstreamIsUrl) {
    try {
      upstreamUrl = new URL(config.proxy.upstream.trim());
    } catch {
      throw new ConfigError("proxy.upstream", `not a valid URL: ${config.proxy.upstream}`);
    }
  }
  const argv = upstreamIsUrl ? [] : upstreamArgv(config);
  let tls: UpstreamTls | undefined;
  if (upstreamIsUrl) {
    const { upstreamTls, UpstreamTlsError } = await import("./src/transport/http/upstream_tls.ts");
    try {
      tls = await upstreamTls(config.proxy.tls, {
        warn: (msg, fields) => logger.warn(msg, fields),
      });
    } catch (e) {
      if (e instanceof UpstreamTlsError) throw new ConfigError(e.key, e.problem);
      throw e;
    }
  }
  await using _tls = tls;
  const stats = new ProxyStats();
  // The metrics read the log's queue when scraped; nothing is scraped before the log exists.
  const opened: { log?: AuditLog } = {};
  // With OpenTelemetry on, the telemetry worker loads its libraries on a thread of its own while
  // this one reads the page's files and loads the listeners' modules, and its start is awaited (a
  // refused setting is exit 2, after the page's errors and before the log is opened). With metrics
  // alone the worker is created once there is something to send it, after the first message, and
  // one that then fails is logged as one failing mid-run (see Telemetry.start).
  const starting = startTelemetry(
    config,
    logger,
    () => opened.log,
    stats,
    upstreamIsUrl ? config.proxy.upstream.trim() : null,
  );
  starting.catch(() => {}); // awaited below
  preloadListeners(config);
  let dashboardFiles: StaticFiles | undefined;
  try {
    // The page's files are read before anything starts: a permission or packaging problem is one
    // line and exit 2, not a run that opens the log and stops.
    dashboardFiles = config.dashboard.enabled ? await pageFiles() : undefined;
  } catch (e) {
    await starting.then((t) => t?.shutdown(), () => {});
    throw e;
  }
  const telemetry = await starting;
  const settingsDeps = { mono: () => performance.now(), now: () => new Date() };
  const built = buildSettings(config, settingsDeps);
  const live = liveSettings(built);
  const signer = makeSigner(config, logger);
  const newUlid = ulidFactory();
  const store = openStore(config.audit, { signer, logger });
  const batching = asyncOptions(config.audit);
  const transport = http ? "http" : "stdio";
  const shutdown = new AbortController();
  let storeFailure: StorageError | undefined;
  const log = new AuditLog({
    store,
    signer,
    now: Date.now,
    newId: (now) => newUlid(now),
    clientId: config.proxy.client_id,
    serverId: config.proxy.server_id,
    transport,
    ...(batching === undefined ? {} : { async: batching }),
    checkpoint: checkpointOptions(config.audit),
    // Records that can no longer be stored end the run: nothing passes unrecorded.
    onFailure: (e) => {
      storeFailure = e;
      shutdown.abort();
    },
    logger,
  });
  opened.log = log;
  // Telemetry sees each stored batch after it is stored, never on the way of a message.
  if (telemetry !== undefined) {
    log.observe((batch) => telemetry.records(batch));
    log.observeWrites((reports) => telemetry.writes(reports));
  }
  const session = http ? null : newUlid();
  log.event(EventMethod.Start, {
    version: VERSION,
    writer: writerIdentity(),
    pid: Deno.pid,
    transport,
    upstream: upstreamIsUrl ? config.proxy.upstream : argv,
    storage: store.backend,
    durability: config.audit.durability,
    async: config.audit.async.enabled,
    signing: signer === null ? null : { scheme: signer.scheme, key_id: signer.keyId },
    config_digest: configDigest(loaded.effective),
    policy_digest: built.policyDigest,
  }, session);
  log.sync();
  logger.info("audit log open", {
    storage: store.backend,
    path: storePath(config.audit),
    seq: log.seq,
    signing: signer?.scheme ?? "off",
  });

  const onSignal = (): void => {
    logger.info("shutdown signal received");
    shutdown.abort();
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);

  const reloader = new Reloader({
    load: reloading.load,
    loaded,
    built,
    live,
    settingsDeps,
    log,
    logger,
    sync: () => log.sync(),
    session,
  });
  const stopReloading = startReloading(reloader, reloading, logger);
  // The YAML parser, when no file was read at start: loaded for a reload once the first answer
  // went back to the client, off the way of the first message (a reload before that waits for it).
  if (reloading.file === undefined) {
    const stopWatching = log.observe((batch) => {
      if (!batch.some((stored) => stored.record.direction === "server_to_client")) return;
      stopWatching();
      reloading.prepare().catch((e) =>
        logger.warn("the YAML parser did not load; a reload will try again", {
          error: e instanceof Error ? e.message : String(e),
        })
      );
    });
  }

  const run: Run = {
    config,
    log,
    logger,
    newId: () => newUlid(),
    shutdown: shutdown.signal,
    // Records first, then the bytes they describe (async: once the queue is full).
    beforeWrite: () => log.beforeForward(),
    upstreamFetch: tls?.fetch ?? ((input, init) => fetch(input, init)),
    exchangeDeps: {
      log,
      transport,
      live,
      mono: () => performance.now(),
      maxMessageBytes: config.proxy.max_message_bytes,
      maxJsonDepth: config.proxy.max_json_depth,
      logger,
    },
    stats,
  };
  const stopTelemetry = new AbortController();
  let metricsListener: Listener | undefined;
  const stopDashboard = new AbortController();
  let dashboard: { services: DashboardServices; listener: Listener } | undefined;
  let ending: Ending;
  try {
    // Bound before any traffic: a port that is taken ends the run before the upstream starts.
    if (telemetry !== undefined && config.metrics.enabled) {
      metricsListener = await serveMetrics(config, telemetry, logger, stopTelemetry.signal);
    }
    if (dashboardFiles !== undefined) {
      dashboard = await startDashboard(config, dashboardFiles, log, logger, stopDashboard.signal);
    }
    ending = upstreamUrl !== undefined
      ? http
        ? await runHttpProxy(run, upstreamUrl)
        : await runStdioToHttpBridge(run, session ?? newUlid(), upstreamUrl)
      : http
      ? await runHttpToStdioBridge(run, argv)
      : await runStdioProxy(run, session ?? newUlid(), argv);
  } catch (e) {
    // Whatever ended the run, what is queued is stored and the log is closed with audit/stop.
    const why = e instanceof Error ? e.message : String(e);
    const listening = isListenError(e);
    logger.error(listening ? why : "fatal error", { error: why });
    ending = {
      exitCode: 1,
      reason: listening ? why : `fatal error: ${why}`,
      details: {},
    };
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    stopReloading();
  }
  if (storeFailure !== undefined) {
    ending = {
      exitCode: 1,
      reason: `the audit log cannot be written: ${storeFailure.message}`,
      details: { queued_records: log.queued },
    };
  }
  let exitCode = ending.exitCode;
  try {
    log.stop({ reason: ending.reason, exit_code: ending.exitCode, ...ending.details }, session);
  } catch (e) {
    logger.error("cannot write audit/stop", { error: (e as Error).message, queued: log.queued });
    exitCode = 1;
  } finally {
    try {
      log.close();
    } catch (e) {
      logger.error("cannot close the audit log", { error: (e as Error).message });
      exitCode = 1;
    }
  }
  // The dashboard's streams end first (an open stream would hold its listener), then the listener.
  dashboard?.services.close();
  stopDashboard.abort();
  await dashboard?.listener.finished;
  // The log is closed and its last records handed to the observers: export them, then stop.
  stopTelemetry.abort();
  await metricsListener?.finished;
  await telemetry?.shutdown();
  logger.info("stopped", { reason: ending.reason, exit_code: exitCode, last_seq: log.seq });
  return exitCode;
}

async function main(argv: string[]): Promise<number> {
  try {
    const command = parseCommand(argv);
    switch (command.kind) {
      case "help":
        printOut(HELP);
        return 0;
      case "version":
        printOut(versionLine());
        return 0;
      case "verify": {
        const { verifyCommand } = await import("./src/cli/verify_command.ts");
        return await verifyCommand(command.args, {
          env: Deno.env.toObject(),
          out: printOut,
          progress: Deno.stderr.isTerminal()
            ? (t) => Deno.stderr.writeSync(encoder.encode(t))
            : undefined,
        });
      }
      case "keygen": {
        const { keygenCommand } = await import("./src/cli/keygen_command.ts");
        return keygenCommand(command.args, printOut);
      }
      case "dashboard": {
        // Its configuration file is read with the parser loaded here, not synchronously there.
        const [{ dashboardCommand }] = await Promise.all([
          import("./src/cli/dashboard_command.ts"),
          loadYamlParser(),
        ]);
        return await dashboardCommand(command.args, {
          env: Deno.env.toObject(),
          out: printOut,
          err: printErr,
        });
      }
      case "pins": {
        const [{ pinsCommand }] = await Promise.all([
          import("./src/cli/pins_command.ts"),
          loadYamlParser(),
        ]);
        return pinsCommand(command.args, {
          out: printOut,
          env: Deno.env.toObject(),
          readConfig: (path) => {
            const { config } = loadConfig({
              file: readConfigFile(path, stderrLogger("warn")),
              env: Deno.env.toObject(),
              flags: new Map(),
              upstreamArgv: [],
            });
            return { pinsPath: pinsPath(config), serverId: config.proxy.server_id };
          },
        });
      }
      case "export": {
        const { exportCommand } = await import("./src/cli/export_command.ts");
        // Ctrl-C ends the export with a partial --output file removed, never left looking whole.
        const stop = new AbortController();
        const onInterrupt = (): void => stop.abort();
        Deno.addSignalListener("SIGINT", onInterrupt);
        try {
          return await exportCommand(command.args, {
            openQuery,
            stdout: Deno.stdout.writable,
            out: printOut,
            err: printErr,
            progress: Deno.stderr.isTerminal()
              ? (t) => Deno.stderr.writeSync(encoder.encode(t))
              : undefined,
            signal: stop.signal,
          });
        } finally {
          Deno.removeSignalListener("SIGINT", onInterrupt);
        }
      }
      case "wrap":
      case "unwrap": {
        // The shared configuration it writes or reads is YAML: the parser first.
        const [{ wrapCommand }, { fileURLToPath }] = await Promise.all([
          import("./src/cli/wrap_command.ts"),
          import("node:url"),
          loadYamlParser(),
        ]);
        return await wrapCommand(command.kind, command.args, {
          env: Deno.env.toObject(),
          os: Deno.build.os,
          cwd: Deno.cwd(),
          launcher: {
            execPath: Deno.execPath(),
            mainPath: fileURLToPath(import.meta.url),
          },
          out: printOut,
          err: printErr,
        });
      }
      case "doctor": {
        const [{ doctorCommand }] = await Promise.all([
          import("./src/cli/doctor_command.ts"),
          loadYamlParser(),
        ]);
        const stop = new AbortController();
        const onInterrupt = (): void => stop.abort();
        Deno.addSignalListener("SIGINT", onInterrupt);
        try {
          return await doctorCommand(command.args, {
            env: Deno.env.toObject(),
            out: printOut,
            err: printErr,
            color: Deno.stdout.isTerminal(),
            signal: stop.signal,
          });
        } finally {
          Deno.removeSignalListener("SIGINT", onInterrupt);
        }
      }
      case "proxy": {
        const log = stderrLogger(command.logLevel);
        const env = Deno.env.toObject();
        const load = (read: { path: string; text: string } | undefined): Loaded =>
          loadConfig({
            file: read,
            env,
            flags: command.flags,
            upstreamArgv: command.upstreamArgv,
          });
        const first = readConfigFile(command.configPath, log);
        // Loading the YAML parser costs 15–30 ms: a run without a file does it after its start.
        let parser: Promise<void> | undefined;
        const prepare = (): Promise<void> =>
          parser ??= loadYamlParser().catch((e) => {
            parser = undefined; // the next reload tries again
            throw e;
          });
        if (first !== undefined) await prepare();
        const loaded = load(first);
        // A reload must not fail open: a file that is gone or empty (an editor truncates before
        // it writes) would otherwise mean every default, the policy off among them.
        const reload = (): Loaded => {
          const read = readConfigFile(first?.path ?? command.configPath, log);
          if (first !== undefined && (read === undefined || read.text.trim() === "")) {
            throw new ConfigError(first.path, "is missing or empty; keeping the settings in force");
          }
          const next = load(read);
          if (first !== undefined && loaded.fromFile.length > 0 && next.fromFile.length === 0) {
            throw new ConfigError(
              first.path,
              "sets no keys now (a comment, an empty map, a half-written file?); keeping the settings in force — restart to go back to the defaults",
            );
          }
          return next;
        };
        return await runProxy(loaded, log, { load: reload, file: first?.path, prepare });
      }
      default: {
        const never: never = command;
        throw new Error(`unknown command ${JSON.stringify(never)}`);
      }
    }
  } catch (e) {
    if (e instanceof UsageError) {
      printErr(`mcp-audit: ${e.message} (see --help)`);
      return 2;
    }
    if (e instanceof ConfigError) {
      printErr(`mcp-audit: config: ${e.message}`);
      return 2;
    }
    if (e instanceof StorageError || e instanceof ChainError) {
      printErr(`mcp-audit: audit log: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
