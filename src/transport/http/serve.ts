/**
 * The HTTP proxy's listener: Hono on `Deno.serve`, until a signal ends it.
 *
 * @module
 */
import type { Hono } from "hono";
import type { Logger } from "../../log.ts";
import type { ProxyBindings } from "./proxy_app.ts";

/** Raised when the listen address cannot be bound. */
export class ListenError extends Error {
  override name = "ListenError";
}

/** A running listener. */
export interface Listener {
  /** The bound address (the port is the real one when 0 was asked for). */
  addr: Deno.NetAddr;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

/**
 * Serves `app` on `hostname:port` until `signal` aborts; connections in flight are then closed.
 * @throws {ListenError} when the address cannot be bound
 */
export function listen(
  app: Hono<{ Bindings: ProxyBindings }>,
  opts: { hostname: string; port: number; signal: AbortSignal; logger: Logger; name: string },
): Listener {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      {
        hostname: opts.hostname,
        port: opts.port,
        signal: opts.signal,
        onListen: () => {},
      },
      (req, info) => app.fetch(req, { remote: info.remoteAddr.hostname }),
    );
  } catch (e) {
    throw new ListenError(
      `cannot listen on ${opts.hostname}:${opts.port}: ${(e as Error).message}`,
    );
  }
  opts.logger.info(`${opts.name} listening`, {
    address: `http://${
      server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname
    }:${server.addr.port}`,
  });
  return { addr: server.addr, finished: server.finished };
}
