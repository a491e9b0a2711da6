/**
 * The dashboard's HTTP app: the page and its assets, the Go tool's API (`/api/entries`,
 * `/api/stats`) kept as scripts know it, and the console's own read-only API under `/api/v1/`
 * (see `api.ts` for the shapes). Every request passes, in this order:
 *
 * 1. the security headers, set on whatever the answer turns out to be (CSP without inline script
 *    or eval, no framing, no sniffing, no referrer; `no-store` on all but the assets);
 * 2. the Host and Origin check against DNS rebinding and cross-site reads: a request target that
 *    is not a path (absolute-form, `*`) is refused (400); bound to loopback, only a loopback
 *    `Host` or the bound address (403); an `Origin` other than the page's own (`http://<Host>`)
 *    or one configured is refused (403) — a browser sends one on cross-origin reads, and the page
 *    itself needs none; under `/api/`, a browser's `Sec-Fetch-Site: cross-site` or `same-site`
 *    other than a navigation is refused (403) too, which also covers the no-cors reads that carry
 *    no `Origin` (`<script src>`, `<img>`): their answer would be blocked, but not their cost;
 * 3. the token, on every `/api/` path when one is configured (the page and its assets hold no
 *    data and must load to ask for it);
 * 4. the route: `GET` (and `HEAD`, the same without a body); another method on a route is 405
 *    with `Allow: GET, HEAD`; an unknown path 404. There is no write endpoint of any kind.
 *
 * Reads of the log (all but info, the chain status, pins and the stream, which has its own cap)
 * pass a {@link ReadGate}: at most {@link MAX_READS} at once, {@link MAX_WAITING} waiting, the
 * rest 503 with `Retry-After`. A JSONL log has no index: a selective filter reads until it fills
 * its page, so one request may read the whole log, and many at once must not.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { Logger } from "../log.ts";
import { hostOf } from "../net/listener_hosts.ts";
import { QueryError } from "../audit/storage/query.ts";
import { BadRequestError, type DashboardServices } from "./api.ts";
import { AUTH_CHALLENGE, type TokenAuth } from "./auth.ts";
import { TooManyStreamsError } from "./feed.ts";
import { goJson } from "./go_compat.ts";
import { assetResponse, indexResponse, type StaticFiles } from "./static_files.ts";

/**
 * What the listener tells the app of a request (the shape of the HTTP transport's `RequestInfo`,
 * written here so that the dashboard does not depend on a transport).
 */
export interface ListenerInfo {
  remote?: string | undefined;
  target?: string | undefined;
}

type Env = { Bindings: ListenerInfo };

/** What the app needs besides the services. */
export interface DashboardAppOptions {
  logger: Logger;
  /** The page's files, read at start. */
  files: StaticFiles;
  /**
   * Host names (lower case, IPv6 in brackets, no port) a request's `Host` must name; undefined:
   * any (see `listenerHosts`).
   */
  allowedHosts?: ReadonlySet<string> | undefined;
  /** Origins (`scheme://host[:port]`) allowed besides the page's own. */
  allowedOrigins?: ReadonlySet<string> | undefined;
  /** The token check; null or undefined: no token configured, the API is open. */
  auth?: TokenAuth | null | undefined;
}

/** The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; " +
  "style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
  "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The headers every answer carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
};

const ALLOW = "GET, HEAD";
const TEXT = "text/plain; charset=utf-8";
const JSON_TYPE = "application/json";
/** How often at most a refusal of one sort is logged (a page may try again and again). */
const REFUSAL_LOG_MS = 10_000;
/** Seconds a client refused a stream (too many open) waits before it tries again. */
const STREAM_RETRY_AFTER_S = 5;
const SEQ = /^\d{1,15}$/;
/** Log reads answered at once; the next ones wait. */
export const MAX_READS = 4;
/** Log reads waiting at most; the next ones are 503. */
export const MAX_WAITING = 32;
/** Seconds a client refused a read (too many under way) waits before it tries again. */
const READ_RETRY_AFTER_S = 1;

/** Why a read was not started: too many are under way and waiting. */
export class TooManyReadsError extends Error {
  override name = "TooManyReadsError";
}

/**
 * At most `max` reads run at once, `waiting` more wait in order; a waiter whose client left is
 * dropped from the queue.
 *
 * @example
 * ```ts
 * import { ReadGate } from "./app.ts";
 * const gate = new ReadGate(4, 32);
 * const n = await gate.run(new AbortController().signal, () => Promise.resolve(1));
 * ```
 */
export class ReadGate {
  #running = 0;
  readonly #queue: { go: () => void }[] = [];
  constructor(readonly max: number, readonly waiting: number) {}

  /** Reads under way. */
  get running(): number {
    return this.#running;
  }

  /**
   * `read()` once a place is free.
   * @throws {TooManyReadsError} when `waiting` reads wait already
   * @throws the signal's reason when it aborts while waiting
   */
  async run<T>(signal: AbortSignal, read: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) {
      if (this.#queue.length >= this.waiting) {
        throw new TooManyReadsError(`${this.max} reads of the log are under way; try again`);
      }
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const entry = {
          go: () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          const at = this.#queue.indexOf(entry);
          if (at !== -1) this.#queue.splice(at, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.#queue.push(entry);
      });
    } else {
      this.#running++;
    }
    try {
      return await read();
    } finally {
      // The place passes to the next waiter, or is freed.
      const next = this.#queue.shift();
      if (next !== undefined) next.go();
      else this.#running--;
    }
  }
}

function text(body: string, status: number, headers: Record<string, string> = {}): Response {
  return new Response(`${body}\n`, { status, headers: { "Content-Type": TEXT, ...headers } });
}

function json(value: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "Content-Type": JSON_TYPE, ...headers },
  });
}

function isApi(path: string): boolean {
  return path === "/api" || path.startsWith("/api/");
}

/** The Go tool's endpoints, whose errors are its plain-text ones rather than JSON. */
function isGoApi(path: string): boolean {
  return path === "/api/entries" || path === "/api/stats";
}

/** An error answer in the form the path's clients read: JSON under `/api/` (but Go's), text elsewhere. */
function refusal(
  path: string,
  message: string,
  status: number,
  headers: Record<string, string> = {},
): Response {
  return isApi(path) && !isGoApi(path)
    ? json({ error: message }, status, headers)
    : text(message, status, headers);
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Logs the first of a sort of refusal, then one line a 10 s at most with how many were not. */
class RefusalLog {
  #last = -Infinity;
  #missed = 0;
  constructor(readonly logger: Logger, readonly msg: string) {}

  note(fields: Record<string, string | number>): void {
    const now = performance.now();
    if (now - this.#last < REFUSAL_LOG_MS) {
      this.#missed++;
      return;
    }
    this.logger.warn(this.msg, { ...fields, not_logged_since_last: this.#missed });
    this.#last = now;
    this.#missed = 0;
  }
}

/**
 * A `Last-Event-ID` or `after` value: a seq (a whole number), null when not given.
 * @throws {BadRequestError} when it is given and is not one
 */
function streamCursor(lastEventId: string | undefined, after: string | undefined): number | null {
  const given = lastEventId !== undefined && lastEventId.trim() !== ""
    ? { name: "Last-Event-ID", value: lastEventId.trim() }
    : after !== undefined && after !== ""
    ? { name: "after", value: after }
    : null;
  if (given === null) return null;
  if (!SEQ.test(given.value)) {
    throw new BadRequestError(`${given.name}: expected a seq (a whole number)`);
  }
  return Number(given.value);
}

function fullFlag(value: string | undefined): boolean {
  if (value === undefined || value === "" || value === "0" || value === "false") return false;
  if (value === "1" || value === "true") return true;
  throw new BadRequestError("full: expected 1 or 0");
}

/**
 * The dashboard's app over `services`.
 *
 * @example
 * ```ts ignore
 * const app = createDashboardApp(services, { logger, files: await StaticFiles.load() });
 * const res = await app.request("/api/v1/info");
 * ```
 */
export function createDashboardApp(
  services: DashboardServices,
  options: DashboardAppOptions,
): Hono<Env> {
  const { logger, files } = options;
  const app = new Hono<Env>();
  const hosts = options.allowedHosts;
  const origins = options.allowedOrigins ?? new Set<string>();
  const auth = options.auth ?? null;
  const hostRefusals = new RefusalLog(logger, "the dashboard refused a request for another host");
  const originRefusals = new RefusalLog(
    logger,
    "the dashboard refused a request from another origin",
  );
  const authRefusals = new RefusalLog(
    logger,
    "the dashboard refused requests after too many failed tokens",
  );

  app.use("*", async function securityHeaders(c, next) {
    await next();
    const headers = c.res.headers;
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
  });

  app.use("*", async function hostOriginGuard(c, next) {
    // The listener makes the URL from a target that is a path; any other form would be read
    // as "/" — refused rather than served as something it does not name.
    const target = c.env?.target;
    if (target !== undefined && !target.startsWith("/")) {
      return text("the request target must be a path", 400);
    }
    // Neither the Host nor the Origin is logged: they are the client's text.
    const header = c.req.header("host");
    const host = header === undefined ? null : hostOf(header);
    if (hosts !== undefined && (host === null || !hosts.has(host))) {
      const status = host === null ? 400 : 403;
      hostRefusals.note({ status, allowed: [...hosts].join(", ") });
      return text(
        host === null
          ? "missing or malformed Host header"
          : "host not allowed: the dashboard is bound to a loopback address",
        status,
      );
    }
    const origin = c.req.header("origin");
    if (origin !== undefined) {
      const own = header === undefined ? null : `http://${header.toLowerCase()}`;
      if (origin.toLowerCase() !== own && !origins.has(origin)) {
        originRefusals.note({ status: 403 });
        return text("origin not allowed", 403);
      }
    }
    const site = c.req.header("sec-fetch-site");
    if (
      (site === "cross-site" || site === "same-site") && isApi(c.req.path) &&
      c.req.header("sec-fetch-mode") !== "navigate"
    ) {
      originRefusals.note({ status: 403 });
      return refusal(c.req.path, "cross-site request not allowed", 403);
    }
    return await next();
  });

  if (auth !== null) {
    app.use("*", async function dashboardAuth(c, next) {
      const path = c.req.path;
      if (!isApi(path)) return await next();
      const remote = c.env?.remote ?? "unknown";
      const outcome = await auth.check(c.req.header("authorization"), remote);
      switch (outcome.kind) {
        case "pass":
          return await next();
        case "unauthorized":
          return refusal(path, "unauthorized", 401, { "WWW-Authenticate": AUTH_CHALLENGE });
        case "throttled":
          if (outcome.firstThrottled) authRefusals.note({ remote, status: 429 });
          return refusal(path, "too many authentication attempts", 429, {
            "Retry-After": String(outcome.retryAfterSeconds),
          });
        default: {
          const never: never = outcome;
          throw new Error(`unknown outcome ${JSON.stringify(never)}`);
        }
      }
    });
  }

  const head = (c: Context<Env>): boolean => c.req.method === "HEAD";
  const gate = new ReadGate(MAX_READS, MAX_WAITING);
  const busy = (path: string) =>
    refusal(path, "too many reads of the log under way", 503, {
      "Retry-After": String(READ_RETRY_AFTER_S),
    });
  /** A read of the log, through the gate. */
  const gated = <T>(compute: (c: Context<Env>) => T | Promise<T>) => (c: Context<Env>) =>
    gate.run(c.req.raw.signal, async () => await compute(c));

  /** `GET` (and `HEAD`) on `path`; any other method there is 405. */
  const route = (path: string, handler: (c: Context<Env>) => Response | Promise<Response>) => {
    app.get(path, handler);
    app.all(path, function methodNotAllowed(c) {
      return refusal(c.req.path, "method not allowed", 405, { Allow: ALLOW });
    });
  };

  /** A v1 answer: the value as JSON, a caller's fault 400, a missing thing 404, a failure 500. */
  const v1 = (
    what: string,
    compute: (c: Context<Env>) => unknown,
  ) =>
  async (c: Context<Env>): Promise<Response> => {
    try {
      const value = await compute(c);
      if (value === undefined) return json({ error: `no such ${what}` }, 404);
      return json(value);
    } catch (e) {
      if (e instanceof BadRequestError || e instanceof QueryError) {
        return json({ error: e.message }, 400);
      }
      if (e instanceof TooManyReadsError) return busy(c.req.path);
      if (c.req.raw.signal.aborted) return json({ error: "client gone" }, 499);
      logger.error(`the dashboard could not answer: ${what}`, { error: errorText(e) });
      return json({ error: "internal error" }, 500);
    }
  };

  const params = (c: Context<Env>): URLSearchParams => new URL(c.req.url).searchParams;

  route("/", (c) => indexResponse(files, head(c)));
  route("/assets/*", (c) => {
    const path = c.req.path.slice("/assets/".length);
    return assetResponse(files, path, c.req.header("if-none-match"), head(c)) ??
      text("not found", 404);
  });

  // The Go tool's API: its bodies (goJson), its 400 texts, its 500 lines.
  const go =
    (what: string, failure: string, compute: (c: Context<Env>) => Promise<unknown>) =>
    async (c: Context<Env>): Promise<Response> => {
      try {
        return new Response(goJson(await compute(c)), {
          status: 200,
          headers: { "Content-Type": JSON_TYPE },
        });
      } catch (e) {
        if (e instanceof BadRequestError || e instanceof QueryError) return text(e.message, 400);
        if (e instanceof TooManyReadsError) return busy(c.req.path);
        if (c.req.raw.signal.aborted) return text("client gone", 499);
        logger.error(`the dashboard could not answer: ${what}`, { error: errorText(e) });
        return text(failure, 500);
      }
    };
  route(
    "/api/entries",
    go("entries", "failed to query entries", gated((c) => services.goEntries(params(c)))),
  );
  route("/api/stats", go("stats", "failed to query stats", gated(() => services.goStats())));
  route("/api/verify", v1("chain status", () => services.verify()));

  route("/api/v1/info", v1("info", () => services.info()));
  route("/api/v1/records", v1("records", gated((c) => services.records(params(c)))));
  route(
    "/api/v1/records/:seq",
    v1(
      "record",
      gated(async (c) => {
        const seq = c.req.param("seq") ?? "";
        if (!SEQ.test(seq) || Number(seq) < 1) {
          throw new BadRequestError("seq: expected a whole number from 1");
        }
        return (await services.record(Number(seq))) ?? undefined;
      }),
    ),
  );
  route("/api/v1/exchanges", v1("exchanges", gated((c) => services.exchanges(params(c)))));
  route(
    "/api/v1/exchanges/:key",
    v1(
      "exchange",
      gated(async (c) => (await services.exchange(c.req.param("key") ?? "")) ?? undefined),
    ),
  );
  route("/api/v1/stats", v1("stats", gated((c) => services.stats(params(c)))));
  route("/api/v1/sessions", v1("sessions", gated((c) => services.sessions(params(c)))));
  route("/api/v1/verify", v1("chain status", () => services.verify()));
  route("/api/v1/pins", v1("pins", () => services.pins()));
  route("/api/v1/stream", function eventStream(c) {
    let after: number | null;
    let full: boolean;
    try {
      after = streamCursor(c.req.header("last-event-id"), c.req.query("after"));
      full = fullFlag(c.req.query("full"));
    } catch (e) {
      if (e instanceof BadRequestError) return json({ error: e.message }, 400);
      throw e;
    }
    const headers = {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-store",
      "X-Accel-Buffering": "no",
    };
    // A HEAD gets the headers; no stream is opened for it.
    if (head(c)) return new Response(null, { status: 200, headers });
    let body: ReadableStream<Uint8Array>;
    try {
      body = services.stream(after, full, c.req.raw.signal);
    } catch (e) {
      if (e instanceof TooManyStreamsError) {
        return json({ error: e.message }, 503, { "Retry-After": String(STREAM_RETRY_AFTER_S) });
      }
      if (e instanceof BadRequestError || e instanceof QueryError) {
        return json({ error: e.message }, 400);
      }
      logger.error("the dashboard could not open an event stream", { error: errorText(e) });
      return json({ error: "internal error" }, 500);
    }
    return new Response(body, { status: 200, headers });
  });

  // Whatever no route took: 404, in the form of the path's clients.
  app.all("*", function notFound(c) {
    return refusal(c.req.path, "not found", 404);
  });
  app.onError(function dashboardError(err, c) {
    logger.error("the dashboard could not answer a request", {
      error: errorText(err),
      method: c.req.method,
    });
    return refusal(c.req.path, "internal error", 500);
  });
  return app;
}
