/**
 * The one mapping from a thrown error to what an HTTP client of the proxy sees. A refusal
 * (`HTTPException`) becomes its status and one line of text; anything else is a 500 with no detail:
 * a stack trace or an internal message on the wire tells an attacker how the proxy is built.
 *
 * @module
 */
import type { ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "../../log.ts";
import { rawTarget, type RequestInfo } from "./host_origin_guard.ts";

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

/** A short, loggable form of a request target (a refused one may be long or odd). */
function shown(target: string): string {
  return target.length > 200 ? `${target.slice(0, 200)}…` : target;
}

/**
 * Builds the `onError` handler of a Hono app: every refusal and failure is logged (the log is where
 * a refused request is seen), and the client gets a status and a line without internals.
 *
 * @example
 * ```ts
 * app.onError(httpErrorHandler(logger));
 * ```
 */
export function httpErrorHandler(logger: Logger): ErrorHandler<{ Bindings: RequestInfo }> {
  return function httpError(err, c) {
    const path = rawTarget(c.env, c.req.raw.url);
    if (err instanceof HTTPException && err.status < 500) {
      logger.warn("request refused", {
        status: err.status,
        reason: err.message,
        method: c.req.method,
        path: shown(path),
      });
      return new Response(`${err.message}\n`, { status: err.status, headers: TEXT });
    }
    logger.error("request failed inside the proxy", {
      error: `${err.name}: ${err.message}`,
      method: c.req.method,
      path: shown(path),
    });
    logger.debug("stack of the failure", { stack: err.stack ?? null });
    return new Response("internal error\n", { status: 500, headers: TEXT });
  };
}
