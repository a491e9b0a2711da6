/**
 * The dashboard's bearer token and its failure throttle, with the Go tool's numbers
 * (go-contract §2.4): `Authorization: Bearer <token>` (the scheme in any case) is compared in
 * constant time; failures are counted per remote address in a fixed 60 s window opened by the
 * first one; the 1st to 10th are answered 401, the 11th and later in the window 429 with the
 * seconds left; a valid token resets the address's count and always passes; at most 4,096
 * addresses are tracked.
 *
 * Two departures from Go, both against guessing from many addresses: an IPv6 client is counted by
 * its /64 (one host commonly holds a whole /64, so counting each address would give it 2^64
 * counts), an IPv4-mapped address as its IPv4 one; and when 4,096 windows are all still running,
 * a failure from a new address is refused 429 at once instead of evicting another address's
 * window (which let 4,097 addresses in rotation guess without end). A right token still passes.
 *
 * The address is the listener's view of the peer, never a header the client writes
 * (`X-Forwarded-For`): behind a reverse proxy every client shares the proxy's count, which errs
 * on the side of refusing.
 *
 * Nothing here ever logs or returns the token or the header carrying it.
 *
 * @module
 */

/** The `WWW-Authenticate` value of a 401. */
export const AUTH_CHALLENGE = 'Bearer realm="mcp-audit-dashboard"';

/** Failures answered 401 within a window; the next ones are 429. */
export const MAX_FAILURES = 10;
/** The fixed window a first failure opens. */
export const FAILURE_WINDOW_MS = 60_000;
/** Most addresses whose failures are counted at once. */
export const MAX_TRACKED = 4096;

/** What a request's credentials earn it. */
export type AuthOutcome =
  | { kind: "pass" }
  /** A missing or wrong token, within the failures allowed. */
  | { kind: "unauthorized" }
  /** Too many failures from this address: try again in `retryAfterSeconds`. */
  | { kind: "throttled"; retryAfterSeconds: number; firstThrottled: boolean };

/** How the throttle counts (the defaults are the Go tool's). */
export interface TokenAuthOptions {
  /** A monotonic clock in milliseconds; `performance.now` by default. */
  now?: () => number;
  maxFailures?: number;
  windowMs?: number;
  maxTracked?: number;
}

interface Window {
  start: number;
  failures: number;
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/**
 * Whether two SHA-256 digests are equal, looking at every byte whatever they hold: comparing
 * digests rather than the texts means neither the length nor a common prefix of the token shows
 * in the time taken.
 */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < 32; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * The token from an `Authorization` value: `<scheme> <token>` with the scheme `Bearer` in any
 * case, spaces before the token ignored, a token with no whitespace in it; null otherwise.
 */
export function bearerToken(header: string | null | undefined): string | null {
  if (header === null || header === undefined) return null;
  const space = header.indexOf(" ");
  if (space === -1) return null;
  if (header.slice(0, space).toLowerCase() !== "bearer") return null;
  const token = header.slice(space + 1).replace(/^[ \t]+/, "");
  if (token === "" || /\s/.test(token)) return null;
  return token;
}

/**
 * Whom failures are counted for: an IPv4 address as it is (an IPv4-mapped IPv6 one too), an IPv6
 * address by its /64 prefix, anything else as it is.
 *
 * @example
 * ```ts
 * import { principalOf } from "./auth.ts";
 * principalOf("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 * principalOf("::ffff:10.0.0.1"); // "10.0.0.1"
 * ```
 */
export function principalOf(remote: string): string {
  const address = remote.replace(/%.*$/, "").toLowerCase();
  if (!address.includes(":")) return address;
  const g = ipv6Groups(address);
  if (g === null) return address;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join(".");
  }
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (`::` and a trailing IPv4 part read), or null. */
function ipv6Groups(address: string): number[] | null {
  let text = address;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    if (Math.max(a, b, c, d) > 255) return null;
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${
      ((c << 8) | d).toString(16)
    }`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const part = (h: string): number[] | null => {
    if (h === "") return [];
    const out: number[] = [];
    for (const x of h.split(":")) {
      if (!/^[0-9a-f]{1,4}$/.test(x)) return null;
      out.push(parseInt(x, 16));
    }
    return out;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * Checks a request's `Authorization` header against the configured token.
 *
 * @example
 * ```ts
 * import { TokenAuth } from "./auth.ts";
 * const auth = new TokenAuth("s3cret-token");
 * await auth.check("Bearer s3cret-token", "127.0.0.1"); // { kind: "pass" }
 * await auth.check(null, "127.0.0.1"); // { kind: "unauthorized" }
 * ```
 */
export class TokenAuth {
  readonly #expected: Promise<Uint8Array>;
  readonly #now: () => number;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  /** By address; kept in the order their windows opened (a new window is re-inserted). */
  readonly #windows = new Map<string, Window>();

  /** @param token the configured token (not empty) */
  constructor(token: string, options: TokenAuthOptions = {}) {
    if (token === "") throw new RangeError("an empty token would let anyone in");
    this.#expected = digest(token);
    this.#now = options.now ?? (() => performance.now());
    this.#maxFailures = options.maxFailures ?? MAX_FAILURES;
    this.#windowMs = options.windowMs ?? FAILURE_WINDOW_MS;
    this.#maxTracked = options.maxTracked ?? MAX_TRACKED;
  }

  /** Addresses whose failures are counted now. */
  get tracked(): number {
    return this.#windows.size;
  }

  /** The outcome for a request from `remote` carrying `authorization`. */
  async check(authorization: string | null | undefined, remote: string): Promise<AuthOutcome> {
    const principal = principalOf(remote);
    const token = bearerToken(authorization);
    // A malformed header costs the same digest as a wrong token.
    const given = await digest(token ?? "");
    if (token !== null && digestsEqual(given, await this.#expected)) {
      this.#windows.delete(principal);
      return { kind: "pass" };
    }
    return this.#fail(principal);
  }

  #fail(remote: string): AuthOutcome {
    const now = this.#now();
    let window = this.#windows.get(remote);
    if (window !== undefined && now - window.start >= this.#windowMs) {
      this.#windows.delete(remote);
      window = undefined;
    }
    if (window === undefined) {
      const wait = this.#makeRoom(now);
      if (wait !== null) {
        // Every window is still running: a new address is not let in to evict one of them.
        // Logged as a first refusal (the app logs those at most once per 10 s).
        return { kind: "throttled", retryAfterSeconds: wait, firstThrottled: true };
      }
      window = { start: now, failures: 0 };
      this.#windows.set(remote, window);
    }
    window.failures++;
    if (window.failures <= this.#maxFailures) return { kind: "unauthorized" };
    const left = window.start + this.#windowMs - now;
    return {
      kind: "throttled",
      retryAfterSeconds: Math.max(1, Math.ceil(left / 1000)),
      firstThrottled: window.failures === this.#maxFailures + 1,
    };
  }

  /**
   * Drops expired windows until one more address fits; null when it fits, else the seconds until
   * the oldest window ends.
   */
  #makeRoom(now: number): number | null {
    if (this.#windows.size < this.#maxTracked) return null;
    for (const [address, w] of this.#windows) {
      // In the order opened: the first one still running ends the expired ones.
      if (now - w.start < this.#windowMs) {
        if (this.#windows.size < this.#maxTracked) return null;
        return Math.max(1, Math.ceil((w.start + this.#windowMs - now) / 1000));
      }
      this.#windows.delete(address);
    }
    return null;
  }
}
