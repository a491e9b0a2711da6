/**
 * Serves the dashboard on its own listener (`dashboard.bind_address:dashboard.port`), for the
 * proxy and for `mcp-audit dashboard` alike: the page's files read, the app built over the
 * services, the Host check chosen from the bind address, the token from `dashboard.auth.token`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Config } from "../config/config.ts";
import type { Logger } from "../log.ts";
import { isLoopback, listenerHosts } from "../net/listener_hosts.ts";
import type { DashboardServices } from "../dashboard/api.ts";
import { createDashboardApp } from "../dashboard/app.ts";
import { TokenAuth } from "../dashboard/auth.ts";
import { StaticFiles } from "../dashboard/static_files.ts";
import type { RequestInfo } from "../transport/http/host_origin_guard.ts";
import { listen, type Listener, ListenError, type ServeLimits } from "../transport/http/serve.ts";

/**
 * What one browser may hold of the dashboard listener: as the metrics listener's, but a client
 * may take its time over an event stream's bytes (a backgrounded tab is throttled), and a page
 * holds a few connections open at once (its stream and its fetches).
 */
export const DASHBOARD_LIMITS: ServeLimits = {
  maxHeaderBytes: 16 * 1024,
  readHeaderTimeoutMs: 10_000,
  readTimeoutMs: 10_000,
  writeTimeoutMs: 120_000,
  idleTimeoutMs: 60_000,
  maxConnections: 64,
};

/** What to serve besides the configuration. */
export interface ServeDashboardOptions {
  /** The page's files; read from `dashboard/` when not given. */
  files?: StaticFiles;
  /** Origins allowed besides the page's own (none by default). */
  allowedOrigins?: ReadonlySet<string>;
}

/**
 * Serves the dashboard until `signal` aborts.
 * @throws {StaticFilesError} when the page's files cannot be read (one line: what to allow)
 * @throws {ListenError} when the port is taken, saying to set `dashboard.port` or turn it off
 *
 * @example
 * ```ts ignore
 * const listener = await serveDashboard(config, services, logger, stop.signal);
 * await listener.finished;
 * ```
 */
export async function serveDashboard(
  config: Config,
  services: DashboardServices,
  logger: Logger,
  signal: AbortSignal,
  options: ServeDashboardOptions = {},
): Promise<Listener> {
  const d = config.dashboard;
  const files = options.files ?? await StaticFiles.load();
  const token = d.auth.token.trim();
  if (token === "" && !isLoopback(d.bind_address)) {
    logger.warn(
      "the dashboard listens beyond this machine without dashboard.auth.token: whoever reaches " +
        "it reads the audit log",
      { bind_address: d.bind_address },
    );
  }
  const app = new Hono<{ Bindings: RequestInfo }>();
  // Mounted, so that the listener's error mapping does not replace the dashboard's own.
  app.route(
    "/",
    createDashboardApp(services, {
      logger,
      files,
      // Bound to loopback, only loopback names (DNS rebinding); bound for a network, any name.
      allowedHosts: listenerHosts(d.bind_address),
      allowedOrigins: options.allowedOrigins ?? new Set(),
      auth: token === "" ? null : new TokenAuth(token),
    }),
  );
  try {
    return await listen(app, {
      hostname: d.bind_address,
      port: d.port,
      signal,
      logger,
      name: "dashboard",
      limits: DASHBOARD_LIMITS,
      // Fixed here, not set by any key: a refusal's log line must not send the operator to one.
      limitName: () => "the dashboard listener's limit",
      allow: "GET, HEAD",
    });
  } catch (e) {
    if (!(e instanceof ListenError)) throw e;
    throw new ListenError(
      `dashboard: ${e.message} (set dashboard.port to a free port, or 0 for any free one, ` +
        `or use --no-dashboard)`,
    );
  }
}
