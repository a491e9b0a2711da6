/**
 * Host, request-target and Origin checks for our own listeners. The upstream sees the `Host` we
 * send, so its own DNS-rebinding protection no longer covers the client's request: we check
 * instead. A malformed value is a 400 (the request is not one we can read); a well-formed one we do
 * not serve is a 403.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { type Authority, AuthorityError, parseAuthority, parseOrigin } from "./authority.ts";
import { parseTarget, type RequestTarget, TargetError } from "./request_target.ts";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** What the listener knows of a request beyond the `Request` itself. */
export interface RequestInfo {
  /** The client's address. */
  remote?: string | undefined;
  /** The request target exactly as the client sent it (`/path?query`, or absolute-form). */
  target?: string | undefined;
  /**
   * Aborts when the client goes before its answer is written: the `Request`'s own signal, or,
   * where the listener builds requests without one (they cost less), the only one.
   */
  closed?: AbortSignal | undefined;
}

/** The target as sent, or (in-process tests without a listener) the path and query of the URL. */
export function rawTarget(env: RequestInfo | undefined, url: string): string {
  if (env?.target !== undefined) return env.target;
  const at = url.indexOf("/", url.indexOf("//") + 2);
  return at === -1 ? "/" : url.slice(at);
}

/**
 * A configured host in the form the parser gives a `Host` (lower case, IPv6 in brackets, no port):
 * `::1` and `[::1]` are the same host, and `example.com:443` names `example.com`.
 */
function hostName(configured: string): string {
  for (const text of [configured, `[${configured}]`]) {
    try {
      return parseAuthority(text).host;
    } catch {
      // Not in this form.
    }
  }
  return configured.toLowerCase();
}

function badRequest(message: string): HTTPException {
  return new HTTPException(400, { message });
}

function samePort(a: Authority, b: Authority): boolean {
  return (a.port ?? 80) === (b.port ?? 80);
}

/** Most distinct accepted `Host`, `Origin` or target values remembered; then forgotten at once. */
const REMEMBERED = 256;

/**
 * The checks of {@link hostOriginGuard} as a plain object, with what depends only on the
 * configuration worked out once: the allowed host names, and the values already accepted (a
 * client sends the same `Host`, `Origin` and path with every request, so each is parsed once).
 * Only accepted values are remembered, so the order of the checks and every refusal stay as they
 * are read fresh.
 */
export class HostOriginCheck {
  #allowed: ReadonlySet<string>;
  #origins: ReadonlySet<string>;
  #hosts = new Map<string, Authority>();
  #acceptedOrigins = new Set<string>();
  #targets = new Map<string, RequestTarget>();

  constructor(hosts: ReadonlySet<string>, origins: ReadonlySet<string>) {
    this.#allowed = new Set([...hosts].map(hostName));
    this.#origins = origins;
  }

  /**
   * Checks a request's `Host`, target and `Origin`, in the order of {@link hostOriginGuard}.
   * @returns the request target, read
   * @throws {HTTPException} 400, 403 or 414 naming what is refused
   */
  check(headers: Headers, target: string): RequestTarget {
    const host = this.#host(headers.get("host"));
    const read = this.#target(target);
    const named = read.authority;
    if (named !== null && (named.host !== host.host || !samePort(named, host))) {
      throw badRequest("the request target names another host than the Host header");
    }
    this.#origin(headers.get("origin"));
    return read;
  }

  #host(hostHeader: string | null): Authority {
    if (hostHeader === null) throw badRequest("missing Host header");
    const known = this.#hosts.get(hostHeader);
    if (known !== undefined) return known;
    let host: Authority;
    try {
      host = parseAuthority(hostHeader);
    } catch (e) {
      if (e instanceof AuthorityError) throw badRequest(`malformed Host header: ${e.message}`);
      throw e;
    }
    if (!this.#allowed.has(host.host)) {
      throw new HTTPException(403, { message: "host not allowed" });
    }
    remember(this.#hosts, hostHeader, host);
    return host;
  }

  #target(raw: string): RequestTarget {
    const known = this.#targets.get(raw);
    if (known !== undefined) return known;
    let target: RequestTarget;
    try {
      target = parseTarget(raw);
    } catch (e) {
      if (e instanceof TargetError) {
        throw new HTTPException(e.status, { message: `request target refused: ${e.message}` });
      }
      throw e;
    }
    remember(this.#targets, raw, target);
    return target;
  }

  #origin(origin: string | null): void {
    if (origin === null || this.#acceptedOrigins.has(origin)) return;
    if (origin === "null") throw new HTTPException(403, { message: "origin not allowed" });
    let parsed;
    try {
      parsed = parseOrigin(origin);
    } catch (e) {
      if (e instanceof AuthorityError) throw badRequest(`malformed Origin header: ${e.message}`);
      throw e;
    }
    if (!this.#origins.has(origin) && !LOOPBACK.has(parsed.host)) {
      throw new HTTPException(403, { message: "origin not allowed" });
    }
    if (this.#acceptedOrigins.size >= REMEMBERED) this.#acceptedOrigins.clear();
    this.#acceptedOrigins.add(origin);
  }
}

function remember<T>(map: Map<string, T>, key: string, value: T): void {
  if (map.size >= REMEMBERED) map.clear();
  map.set(key, value);
}

/**
 * Refuses, in this order: a missing, repeated or malformed `Host` (400); a host name not in
 * `hosts` (403); a request target that is not a plain path, or an absolute-form target naming
 * another authority than `Host` (400); a malformed `Origin` (400); a browser request whose
 * `Origin` is `null`, or neither loopback nor in `origins` (403). Requests without an `Origin`
 * (non-browser clients) pass. Refusals are thrown as `HTTPException`s for the app's one `onError`.
 */
export function hostOriginGuard(
  hosts: ReadonlySet<string>,
  origins: ReadonlySet<string>,
): MiddlewareHandler<{ Bindings: RequestInfo }> {
  const checks = new HostOriginCheck(hosts, origins);
  return async function hostOriginGuard(c, next) {
    checks.check(c.req.raw.headers, rawTarget(c.env, c.req.raw.url));
    await next();
  };
}
