/**
 * The metrics listener's app: `GET` (and `HEAD`) on the metrics path, in the format the scraper
 * asks for, gzipped when it accepts that. Other methods get 405, other paths 404. A collection
 * that fails is a 500 with one line, and logged.
 *
 * When the listener is bound to a loopback address, a request whose `Host` is not a loopback name
 * or that address is refused with 403 before anything is read: a web page that rebinds its own
 * name to 127.0.0.1 could otherwise read the metrics (tool names, client ids, process facts)
 * from the user's browser. Bound to another address the listener is meant to be reached from a
 * network, by names it cannot know (Prometheus in another container scrapes by service name), so
 * any `Host` is served.
 *
 * @module
 */
import { Hono } from "hono";
import type { Logger } from "../log.ts";
import { hostOf } from "../net/listener_hosts.ts";
import { acceptsGzip } from "./exposition.ts";
import type { Metrics } from "./metrics.ts";

// Kept under their old names for the callers of this module; they live in src/net now.
export { hostOf, listenerHosts as metricsHosts } from "../net/listener_hosts.ts";

/** What the app serves: the metrics, or whatever renders them (the telemetry worker's client). */
export type Scraper = Pick<Metrics, "scrape">;

/**
 * What the listener tells the app of a request (the shape of the HTTP transport's `RequestInfo`,
 * written here so that telemetry does not depend on a transport).
 */
export interface ListenerInfo {
  remote?: string | undefined;
  target?: string | undefined;
}

const ALLOW = "GET, HEAD";
const TEXT = { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" };
/** How often at most a refused `Host` is logged (a page may try again and again). */
const REFUSAL_LOG_MS = 10_000;

/** What the app does besides serving. */
export interface MetricsAppOptions {
  /**
   * Host names (lower case, IPv6 in brackets, no port) a request's `Host` must name; undefined:
   * any. See {@link metricsHosts}.
   */
  allowedHosts?: ReadonlySet<string> | undefined;
}

async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * The app serving `metrics` on `path`.
 *
 * @example
 * ```ts ignore
 * const app = createMetricsApp(metrics, "/metrics", logger);
 * const res = await app.request("/metrics", { headers: { accept: "text/plain" } });
 * ```
 */
export function createMetricsApp(
  metrics: Scraper,
  path: string,
  logger: Logger,
  options: MetricsAppOptions = {},
): Hono<{ Bindings: ListenerInfo }> {
  const app = new Hono<{ Bindings: ListenerInfo }>();
  const allowed = options.allowedHosts;
  if (allowed !== undefined) {
    let lastLogged = -Infinity;
    let notLogged = 0;
    app.use("*", async function metricsHostGuard(c, next) {
      const header = c.req.header("host");
      const host = header === undefined ? null : hostOf(header);
      if (host !== null && allowed.has(host)) return await next();
      const status = host === null ? 400 : 403;
      const now = performance.now();
      if (now - lastLogged >= REFUSAL_LOG_MS) {
        // The Host itself is not logged: it is the client's text.
        logger.warn("the metrics listener refused a request for another host", {
          status,
          allowed: [...allowed].join(", "),
          not_logged_since_last: notLogged,
        });
        lastLogged = now;
        notLogged = 0;
      } else {
        notLogged++;
      }
      return c.text(
        host === null
          ? "missing or malformed Host header\n"
          : "host not allowed: the metrics listener is bound to a loopback address\n",
        status,
        TEXT,
      );
    });
  }
  app.all(path, async function serveMetrics(c) {
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD") {
      return c.text("method not allowed\n", 405, { Allow: ALLOW });
    }
    let scraped: { body: string; contentType: string };
    try {
      scraped = await metrics.scrape(c.req.header("accept") ?? null);
    } catch (e) {
      logger.error("cannot collect metrics", { error: e instanceof Error ? e.message : String(e) });
      return c.text("cannot collect metrics\n", 500, { "Cache-Control": "no-store" });
    }
    const headers: Record<string, string> = {
      "Content-Type": scraped.contentType,
      "Cache-Control": "no-store",
      Vary: "Accept, Accept-Encoding",
    };
    let body: string | Uint8Array<ArrayBuffer> = scraped.body;
    if (acceptsGzip(c.req.header("accept-encoding") ?? null)) {
      body = await gzip(scraped.body);
      headers["Content-Encoding"] = "gzip";
    }
    // A HEAD answer carries the GET answer's headers without its body.
    return new Response(method === "HEAD" ? null : body, { status: 200, headers });
  });
  app.notFound((c) => c.text("not found\n", 404));
  return app;
}
