/**
 * Host and Origin checks for our own listeners. The upstream sees the `Host` we send, so its own
 * DNS-rebinding protection no longer covers the client's request: we check instead.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

function hostname(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const colon = h.lastIndexOf(":");
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * Refuses requests for a host name not in `hosts` (403), and browser requests whose `Origin` is
 * neither loopback nor in `origins` (403). Requests without an `Origin` (non-browser clients) pass.
 */
export function hostOriginGuard(
  hosts: ReadonlySet<string>,
  origins: ReadonlySet<string>,
): MiddlewareHandler {
  return async function hostOriginGuard(c, next) {
    const host = c.req.header("host");
    if (host === undefined || !hosts.has(hostname(host))) {
      return c.text("host not allowed\n", 403);
    }
    const origin = c.req.header("origin");
    if (origin !== undefined && origin !== "null") {
      let allowed = origins.has(origin);
      try {
        allowed ||= LOOPBACK.has(new URL(origin).hostname.toLowerCase());
      } catch {
        allowed = false;
      }
      if (!allowed) return c.text("origin not allowed\n", 403);
    } else if (origin === "null") {
      return c.text("origin not allowed\n", 403);
    }
    await next();
    return undefined;
  };
}
