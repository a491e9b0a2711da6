/**
 * Which `Host` a listener of our own (metrics, dashboard) answers, against DNS rebinding: a page
 * that rebinds its own name to 127.0.0.1 makes the user's browser send that name as `Host`, so a
 * listener bound to a loopback address serves only loopback names and its own address. Bound to
 * another address it is meant to be reached from a network by names it cannot know, and serves any.
 *
 * A leaf: it knows nothing of HTTP frameworks, so that neither app imports the other.
 *
 * @module
 */

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];

/**
 * Whether `address` (a bind address or host name, IPv6 with or without brackets) is loopback.
 *
 * @example
 * ```ts
 * import { isLoopback } from "./listener_hosts.ts";
 * isLoopback("127.0.0.2"); // true
 * isLoopback("0.0.0.0"); // false
 * ```
 */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase();
  return a === "localhost" || a === "::1" || a === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/**
 * The host names a listener bound to `bindAddress` answers: for a loopback address, the loopback
 * names and the address itself; for any other (all interfaces included), undefined — any `Host`.
 *
 * @example
 * ```ts
 * import { listenerHosts } from "./listener_hosts.ts";
 * listenerHosts("127.0.0.1"); // Set { "localhost", "127.0.0.1", "[::1]" }
 * listenerHosts("0.0.0.0"); // undefined
 * ```
 */
export function listenerHosts(bindAddress: string): ReadonlySet<string> | undefined {
  if (!isLoopback(bindAddress)) return undefined;
  const bound = bindAddress.toLowerCase();
  return new Set([
    ...LOOPBACK_NAMES,
    bound.includes(":") && !bound.startsWith("[") ? `[${bound}]` : bound,
  ]);
}

/**
 * The host of a `Host` header (lower case, IPv6 kept in brackets, the port dropped), or null when
 * it is not one host and an optional port.
 *
 * @example
 * ```ts
 * import { hostOf } from "./listener_hosts.ts";
 * hostOf("LocalHost:9090"); // "localhost"
 * hostOf("[::1]:80"); // "[::1]"
 * hostOf("a b"); // null
 * ```
 */
export function hostOf(header: string): string | null {
  const h = header.toLowerCase();
  let host: string;
  let rest: string;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end === -1) return null;
    host = h.slice(0, end + 1);
    rest = h.slice(end + 1);
    if (!/^\[[0-9a-f:.]+\]$/.test(host)) return null;
  } else {
    const colon = h.indexOf(":");
    host = colon === -1 ? h : h.slice(0, colon);
    rest = colon === -1 ? "" : h.slice(colon);
    if (!/^[a-z0-9_.-]+$/.test(host)) return null;
  }
  return rest === "" || /^:\d{1,5}$/.test(rest) ? host : null;
}
