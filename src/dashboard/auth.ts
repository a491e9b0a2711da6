/**
 * The dashboard's bearer token and its failure throttle, with the Go tool's numbers
 * (go-contract §2.4): `Authorization: Bearer <token>` (the scheme in any case) is compared in
 * constant time; failures are counted per remote address in a fixed 60 s window opened by the
 * first one; the 1st to 10th are answered 401, the 11th and later in the window 429 with the
 * seconds left; a valid token resets the address's count and always passes; at most 4,096
 * addresses are tracked (expired windows dropped first, then the oldest evicted).
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
    const token = bearerToken(authorization);
    // A malformed header costs the same digest as a wrong token.
    const given = await digest(token ?? "");
    if (token !== null && digestsEqual(given, await this.#expected)) {
      this.#windows.delete(remote);
      return { kind: "pass" };
    }
    return this.#fail(remote);
  }

  #fail(remote: string): AuthOutcome {
    const now = this.#now();
    let window = this.#windows.get(remote);
    if (window !== undefined && now - window.start >= this.#windowMs) {
      this.#windows.delete(remote);
      window = undefined;
    }
    if (window === undefined) {
      this.#makeRoom(now);
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

  /** Drops expired windows, then the oldest, until one more address fits. */
  #makeRoom(now: number): void {
    if (this.#windows.size < this.#maxTracked) return;
    for (const [address, w] of this.#windows) {
      // In the order opened: the first one still running ends the expired ones.
      if (now - w.start < this.#windowMs) break;
      this.#windows.delete(address);
    }
    while (this.#windows.size >= this.#maxTracked) {
      const oldest = this.#windows.keys().next();
      if (oldest.done) break;
      this.#windows.delete(oldest.value);
    }
  }
}
