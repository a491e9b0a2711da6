/**
 * The metrics listener's app: `GET` (and `HEAD`) on the metrics path, in the format the scraper
 * asks for, gzipped when it accepts that. Other methods get 405, other paths 404. A collection
 * that fails is a 500 with one line, and logged.
 *
 * @module
 */
import { Hono } from "hono";
import type { Logger } from "../log.ts";
import { acceptsGzip } from "./exposition.ts";
import type { Metrics } from "./metrics.ts";

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
): Hono<{ Bindings: ListenerInfo }> {
  const app = new Hono<{ Bindings: ListenerInfo }>();
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
