/**
 * Strict reading of a URI authority as the `Host` header and `Origin` carry it (RFC 3986 §3.2.2,
 * RFC 9110 §7.2): a host and an optional port, nothing else. What a lenient reader would repair
 * (a second colon, text after `]`, user information, a trailing dot) is refused instead, since two
 * readers that repair it differently disagree about which host a request is for.
 *
 * @module
 */

/** A host and port, as read from a `Host` header or an origin. */
export interface Authority {
  /** Lower-case; an IPv6 address keeps its brackets (`[::1]`). */
  host: string;
  /** The port, when one was given. */
  port: number | null;
}

/** An authority that is not one host and an optional port. */
export class AuthorityError extends Error {
  override name = "AuthorityError";
}

/** Printable ASCII without space: anything else never belongs in an authority. */
const PRINTABLE = /^[\x21-\x7e]+$/;
/** One DNS label: letters, digits, `-` and `_` (some private names use it). */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** A last label a WHATWG URL reader takes for (part of) an IPv4 address. */
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|\d+)$/;
const DEC_OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$/;
const HEX16 = /^[0-9a-f]{1,4}$/;

function isIpv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((p) => DEC_OCTET.test(p));
}

/** RFC 4291 §2.2 text forms, without a zone (a browser never sends one in `Host`). */
function isIpv6(text: string): boolean {
  let body = text;
  let needed = 8;
  const lastColon = body.lastIndexOf(":");
  if (lastColon === -1) return false;
  // A dotted IPv4 address at the end stands for the last two groups.
  const tail = body.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!isIpv4(tail)) return false;
    body = body.slice(0, lastColon + 1);
    if (!body.endsWith("::")) body = body.slice(0, -1);
    needed = 6;
  }
  const groups = (s: string): string[] => s === "" ? [] : s.split(":");
  const halves = body.split("::");
  if (halves.length > 2) return false;
  if (halves.length === 1) {
    const all = groups(body);
    return all.length === needed && all.every((g) => HEX16.test(g));
  }
  const [left, right] = [groups(halves[0]!), groups(halves[1]!)];
  // `::` stands for at least one group of zeros.
  return [...left, ...right].every((g) => HEX16.test(g)) && left.length + right.length < needed;
}

function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new AuthorityError(`port "${text}" is not a number`);
  const port = Number(text);
  if (port > 65535) throw new AuthorityError(`port ${port} is above 65535`);
  return port;
}

/**
 * Reads `host[:port]`: an IPv6 address in brackets, a dotted IPv4 address, or a DNS name (letters,
 * digits, `-`, `_`; labels of 1 to 63 characters; no empty label, so no trailing dot), and a port
 * from 0 to 65535. Stricter than RFC 3986's reg-name, which also admits percent-encoding and
 * sub-delimiters that no DNS name holds.
 * @throws {AuthorityError} naming what is wrong
 *
 * @example
 * ```ts
 * parseAuthority("LocalHost:8080"); // { host: "localhost", port: 8080 }
 * parseAuthority("[::1]evil.com"); // throws AuthorityError
 * ```
 */
export function parseAuthority(text: string): Authority {
  if (text === "") throw new AuthorityError("it is empty");
  if (!PRINTABLE.test(text)) {
    throw new AuthorityError("it holds a space, a control character or a non-ASCII character");
  }
  if (text.includes("@")) throw new AuthorityError("user information is not allowed");
  if (text.includes(",")) throw new AuthorityError("it holds more than one value");
  if (text.includes("%")) throw new AuthorityError("percent-encoding is not allowed");
  const lower = text.toLowerCase();
  let host: string;
  let rest: string;
  if (lower.startsWith("[")) {
    const close = lower.indexOf("]");
    if (close === -1) throw new AuthorityError("an IPv6 address lacks its closing bracket");
    host = lower.slice(0, close + 1);
    rest = lower.slice(close + 1);
    if (!isIpv6(host.slice(1, -1))) {
      throw new AuthorityError(`${host} is not an IPv6 address`);
    }
    if (rest !== "" && !rest.startsWith(":")) {
      throw new AuthorityError("text follows the IPv6 address");
    }
  } else {
    const colon = lower.indexOf(":");
    host = colon === -1 ? lower : lower.slice(0, colon);
    rest = colon === -1 ? "" : lower.slice(colon);
    if (rest.indexOf(":", 1) !== -1) throw new AuthorityError("it holds more than one colon");
    checkName(host);
  }
  return { host, port: rest === "" ? null : parsePort(rest.slice(1)) };
}

function checkName(host: string): void {
  if (host === "") throw new AuthorityError("the host is empty");
  if (host.length > 253) throw new AuthorityError("the host name is longer than 253 characters");
  const labels = host.split(".");
  if (labels.some((l) => l === "")) {
    throw new AuthorityError(`"${host}" has an empty label (a leading, trailing or double dot)`);
  }
  if (!labels.every((l) => LABEL.test(l))) {
    throw new AuthorityError(`"${host}" is not a DNS name or an IPv4 address`);
  }
  // `127.1` or `a.0x7f` would be read as an address by some and as a name by others.
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!) && !isIpv4(host)) {
    throw new AuthorityError(`"${host}" is neither a dotted IPv4 address nor a DNS name`);
  }
}

/** An origin as a browser sends it: `scheme://host[:port]`, nothing after. */
export interface Origin extends Authority {
  /** Lower-case. */
  scheme: string;
}

/**
 * Reads an `Origin` header value (RFC 6454 §7): a scheme, `://` and an authority as
 * {@link parseAuthority} reads it, with no path, query or user information.
 * @throws {AuthorityError} naming what is wrong
 *
 * @example
 * ```ts
 * parseOrigin("http://localhost:3000"); // { scheme: "http", host: "localhost", port: 3000 }
 * ```
 */
export function parseOrigin(text: string): Origin {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)$/.exec(text);
  if (m === null) throw new AuthorityError("it is not scheme://host[:port]");
  return { scheme: m[1]!.toLowerCase(), ...parseAuthority(m[2]!) };
}
