/**
 * The request target of an HTTP request to the proxy (RFC 9112 §3.2), read strictly. The path is
 * placed under the upstream's own origin later, so it must mean the same thing to every reader
 * after us: nothing a URL parser, a router or the upstream's framework could take for another
 * host (`//h`, `\`), another folder (`..`, `%2e%2e`, `%2f`) or a second round of decoding (`%25`).
 * MCP clients send plain paths; the rest is refused rather than repaired.
 *
 * @module
 */
import { type Authority, AuthorityError, parseAuthority } from "./authority.ts";

/** The longest request target taken: longer ones are refused with 414. */
export const MAX_TARGET_LENGTH = 8192;

/** A request target the proxy forwards. */
export interface RequestTarget {
  /** Starts with one `/`; no dot segments, backslashes or encoded dots, slashes or percents. */
  path: string;
  /** `""`, or the query with its leading `?`. */
  query: string;
  /** The authority of an absolute-form target (`GET http://host/path`), else null. */
  authority: Authority | null;
}

/** A request target the proxy refuses, with the status to answer. */
export class TargetError extends Error {
  override name = "TargetError";
  /** 414 for a target that is too long, else 400. */
  readonly status: 400 | 414;

  constructor(message: string, status: 400 | 414 = 400) {
    super(message);
    this.status = status;
  }
}

/** RFC 3986 `pchar` and `/`: what a path may hold, percent-escapes included. */
const PATH = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;
/** Escapes of `.`, `/`, `\`, `%` and NUL: a later decoding would make them mean something else. */
const CONFUSING_ESCAPE = /%(?:2e|2f|5c|25|00)/i;
/** The query may hold any printable ASCII but `#`. */
const QUERY = /^[\x21-\x22\x24-\x7e]*$/;
const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;

/**
 * Checks a path for everything that could take it outside the folder or origin it is placed in.
 * @throws {TargetError} naming what is wrong
 */
function checkPath(path: string): void {
  if (!path.startsWith("/")) throw new TargetError("the path does not start with /");
  if (path.startsWith("//")) {
    throw new TargetError("the path starts with //, which reads as another host");
  }
  if (path.includes("\\")) throw new TargetError("the path holds a backslash");
  if (!PATH.test(path)) throw new TargetError("the path holds a character a path cannot hold");
  if (CONFUSING_ESCAPE.test(path)) {
    throw new TargetError("the path holds an escaped dot, slash, backslash, percent sign or NUL");
  }
  for (const segment of path.split("/")) {
    if (segment === "." || segment === "..") {
      throw new TargetError("the path holds a . or .. segment");
    }
  }
}

function splitQuery(rest: string): { path: string; query: string } {
  const at = rest.indexOf("?");
  const path = at === -1 ? rest : rest.slice(0, at);
  const query = at === -1 ? "" : rest.slice(at);
  if (!QUERY.test(query)) throw new TargetError("the query holds a character a query cannot hold");
  return { path, query };
}

/**
 * Reads a request target as the client sent it: origin-form (`/path?query`), or absolute-form
 * (`http://host/path`, which a client only sends to a forwarding proxy) with its authority for the
 * caller to compare with `Host`. Asterisk-form (`*`) and authority-form (`host:port`, CONNECT) are
 * refused: the proxy forwards requests to one endpoint, and tunnels nothing.
 * @throws {TargetError} naming what is wrong
 *
 * @example
 * ```ts
 * parseTarget("/mcp?x=1"); // { path: "/mcp", query: "?x=1", authority: null }
 * parseTarget("//evil:81/x"); // throws TargetError
 * ```
 */
export function parseTarget(raw: string): RequestTarget {
  if (raw.length > MAX_TARGET_LENGTH) {
    throw new TargetError(`the request target is longer than ${MAX_TARGET_LENGTH} characters`, 414);
  }
  if (raw.startsWith("/")) {
    const { path, query } = splitQuery(raw);
    checkPath(path);
    return { path, query, authority: null };
  }
  const m = ABSOLUTE.exec(raw);
  if (m === null) {
    throw new TargetError(
      raw === "*" ? "asterisk-form (*) is not forwarded" : "the request target is not a path",
    );
  }
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "http" && scheme !== "https") {
    throw new TargetError(`an absolute request target with scheme ${scheme} is not forwarded`);
  }
  let authority: Authority;
  try {
    authority = parseAuthority(m[2]!);
  } catch (e) {
    if (e instanceof AuthorityError) {
      throw new TargetError(`the request target's authority is malformed: ${e.message}`);
    }
    throw e;
  }
  if (authority.port === null) authority.port = scheme === "https" ? 443 : 80;
  const { path, query } = splitQuery(m[3] === "" ? "/" : m[3]!);
  checkPath(path);
  return { path, query, authority };
}
