/**
 * Token-bucket rate limits, one bucket per caller and tool (for `tools/call`) or per caller and
 * method (for methods with a limit of their own). The caller is whatever identity the pipeline
 * passes — the session, or the client's identity — so two clients of one HTTP proxy get separate
 * budgets, unlike the Go tool's single `client_id` from configuration.
 *
 * ## Go compatibility
 * As in the Go tool (`golang.org/x/time/rate`): a bucket holds `burst` tokens, `burst` defaults to
 * `requests_per_minute`, a new bucket starts full, tokens come back at `requests_per_minute / 60`
 * per second, and only `tools/call` is limited unless a method has a limit of its own. A call
 * without a tool name is counted under the tool `unknown`.
 *
 * ## Bounded memory
 * A bucket that has refilled to full is indistinguishable from a new one, so it is dropped: every
 * `check` looks at the least recently used buckets and drops those that are full by now, and
 * {@linkcode RateLimiter.sweep} drops them all. On top of that the number of buckets is capped
 * (`max_buckets`); past the cap the least recently used bucket is dropped even if not full, which
 * gives that caller a fresh budget — the price of bounded memory when more than `max_buckets`
 * callers are active within one refill period.
 *
 * The clock is injected and monotonic (milliseconds); the limiter never reads the time itself.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limiter.ts";
 *
 * let now = 0;
 * const limiter = new RateLimiter({ requests_per_minute: 60 }, () => now);
 * for (let i = 0; i < 60; i++) limiter.check("session-1", "tools/call", "read_file");
 * limiter.check("session-1", "tools/call", "read_file"); // { allowed: false, retryAfterMs: 1000, … }
 * now += 1000;
 * limiter.check("session-1", "tools/call", "read_file"); // { allowed: true }
 * ```
 *
 * @module
 */
import { compileNamePattern, type NameMatcher } from "./pattern.ts";
import { GuardrailConfigError } from "./policy.ts";

/** A limit as configured; absent fields take the defaults. */
export interface RateLimitInput {
  readonly requests_per_minute?: number | undefined;
  /** Most calls at once after idling; 0 or absent means `requests_per_minute` (Go's default). */
  readonly burst?: number | undefined;
}

/** Settings, as in `config.yaml` under `middleware.rate_limit.`. */
export interface RateLimiterOptions extends RateLimitInput {
  /** Limits for tools, by exact name or `*` pattern; an exact name wins, then the first pattern. */
  readonly tools?: Readonly<Record<string, RateLimitInput>> | undefined;
  /** Limits for methods, by exact name or `*` pattern; `tools/call` here sets every tool's default. */
  readonly methods?: Readonly<Record<string, RateLimitInput>> | undefined;
  /** Most buckets kept at once (default {@linkcode DEFAULT_MAX_BUCKETS}). */
  readonly max_buckets?: number | undefined;
}

/** A limit in effect. */
export interface RateLimit {
  readonly requests_per_minute: number;
  readonly burst: number;
}

/** The outcome of one call. */
export type RateOutcome =
  | { readonly allowed: true }
  | {
    readonly allowed: false;
    /** Milliseconds until a token is back (at least 1). */
    readonly retryAfterMs: number;
    /** The limit that refused, for the record's reason. */
    readonly limit: RateLimit;
  };

/** Go's default rate. */
export const DEFAULT_REQUESTS_PER_MINUTE = 60;
/** Default cap on the number of buckets. */
export const DEFAULT_MAX_BUCKETS = 10_000;

const KEY = "middleware.rate_limit";
const TOOLS_CALL = "tools/call";
const ALLOWED: RateOutcome = { allowed: true };
/** Buckets count tokens in 1/60000ths, so a rate per minute refills a whole number per ms. */
const UNIT = 60_000;
/** Least recently used buckets looked at for idleness on every call. */
const IDLE_PROBES = 2;

interface Limit extends RateLimit {
  /** Capacity in units. */
  readonly capacity: number;
}

interface Bucket {
  units: number;
  at: number;
  readonly limit: Limit;
}

interface Overrides {
  readonly exact: ReadonlyMap<string, Limit>;
  readonly patterns: readonly { match: NameMatcher; limit: Limit }[];
}

function positiveInt(key: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new GuardrailConfigError(
      key,
      `must be an integer of at least ${min}, got ${String(value)}`,
    );
  }
  return value;
}

function limitOf(key: string, input: RateLimitInput, fallbackRpm: number): Limit {
  if (typeof input !== "object" || input === null) {
    throw new GuardrailConfigError(key, "must be a map with requests_per_minute and burst");
  }
  for (const name of Object.keys(input)) {
    if (name !== "requests_per_minute" && name !== "burst") {
      throw new GuardrailConfigError(
        `${key}.${name}`,
        "unknown key (known: requests_per_minute, burst)",
      );
    }
  }
  const rpm = input.requests_per_minute === undefined
    ? fallbackRpm
    : positiveInt(`${key}.requests_per_minute`, input.requests_per_minute, 1);
  const burstIn = input.burst === undefined ? 0 : positiveInt(`${key}.burst`, input.burst, 0);
  const burst = burstIn === 0 ? rpm : burstIn;
  return { requests_per_minute: rpm, burst, capacity: burst * UNIT };
}

function overridesOf(
  key: string,
  table: Readonly<Record<string, RateLimitInput>> | undefined,
  fallbackRpm: number,
): Overrides {
  const exact = new Map<string, Limit>();
  const patterns: { match: NameMatcher; limit: Limit }[] = [];
  if (table === undefined) return { exact, patterns };
  if (typeof table !== "object" || table === null || Array.isArray(table)) {
    throw new GuardrailConfigError(key, "must be a map of names to limits");
  }
  for (const [name, input] of Object.entries(table)) {
    const limit = limitOf(`${key}.${name}`, input, fallbackRpm);
    if (name.includes("*")) patterns.push({ match: compileNamePattern(name), limit });
    else exact.set(name, limit);
  }
  return { exact, patterns };
}

function lookup(o: Overrides, name: string): Limit | undefined {
  const exact = o.exact.get(name);
  if (exact !== undefined) return exact;
  for (const p of o.patterns) if (p.match(name)) return p.limit;
  return undefined;
}

/** Per-caller token buckets. */
export class RateLimiter {
  readonly #now: () => number;
  readonly #default: Limit;
  readonly #tools: Overrides;
  readonly #methods: Overrides;
  readonly #maxBuckets: number;
  /** Insertion order is recency: the first entries are the least recently used. */
  readonly #buckets = new Map<string, Bucket>();
  /** The key last used, which is the last in `#buckets` while it is there. */
  #newest: string | undefined;
  /**
   * The last call's caller, method and tool, with its bucket key and limit: a caller's calls come
   * in runs of one tool, and a run needs neither a new key nor a new lookup.
   */
  #lastCaller = "";
  #lastMethod = "";
  #lastTool: string | null | undefined = undefined;
  #lastKey = "";
  #lastLimit: Limit | undefined = undefined;

  /**
   * @param options the limits
   * @param now a monotonic clock in milliseconds
   * @throws {GuardrailConfigError} naming the key at fault
   */
  constructor(options: RateLimiterOptions, now: () => number) {
    const rpm = options.requests_per_minute === undefined
      ? DEFAULT_REQUESTS_PER_MINUTE
      : positiveInt(`${KEY}.requests_per_minute`, options.requests_per_minute, 1);
    this.#default = limitOf(KEY, { requests_per_minute: rpm, burst: options.burst }, rpm);
    // An override without requests_per_minute inherits the top-level rate.
    this.#tools = overridesOf(`${KEY}.tools`, options.tools, rpm);
    this.#methods = overridesOf(`${KEY}.methods`, options.methods, rpm);
    this.#maxBuckets = options.max_buckets === undefined
      ? DEFAULT_MAX_BUCKETS
      : positiveInt(`${KEY}.max_buckets`, options.max_buckets, 1);
    this.#now = now;
  }

  /** Number of buckets held. */
  get size(): number {
    return this.#buckets.size;
  }

  /** The limit that applies to a call, or undefined when the call is not limited. */
  limitFor(method: string, toolName?: string | null): RateLimit | undefined {
    const limit = this.#limit(method, toolName);
    return limit === undefined ? undefined : publicLimit(limit);
  }

  #limit(method: string, toolName?: string | null): Limit | undefined {
    if (method === TOOLS_CALL) {
      return lookup(this.#tools, toolName || "unknown") ?? lookup(this.#methods, method) ??
        this.#default;
    }
    return lookup(this.#methods, method);
  }

  /**
   * Takes a token from the caller's bucket for this tool (for `tools/call`) or method.
   * @param caller the session or client identity
   */
  check(caller: string, method: string, toolName?: string | null): RateOutcome {
    if (
      caller !== this.#lastCaller || method !== this.#lastMethod || toolName !== this.#lastTool ||
      this.#lastKey === ""
    ) {
      this.#lastLimit = this.#limit(method, toolName);
      this.#lastKey = bucketKey(caller, method, toolName);
      this.#lastCaller = caller;
      this.#lastMethod = method;
      this.#lastTool = toolName;
    }
    const limit = this.#lastLimit;
    if (limit === undefined) return ALLOWED;
    const key = this.#lastKey;
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxBuckets) this.#evictOldest();
      bucket = { units: limit.capacity, at: now, limit };
      this.#buckets.set(key, bucket);
    } else {
      refill(bucket, now);
      // Moved to the end, the most recently used, unless it is there already.
      if (key !== this.#newest) {
        this.#buckets.delete(key);
        this.#buckets.set(key, bucket);
      }
    }
    this.#newest = key;
    let outcome: RateOutcome = ALLOWED;
    if (bucket.units >= UNIT) {
      bucket.units -= UNIT;
    } else {
      const retryAfterMs = Math.max(
        1,
        Math.ceil((UNIT - bucket.units) / limit.requests_per_minute),
      );
      outcome = { allowed: false, retryAfterMs, limit: publicLimit(limit) };
    }
    this.#dropIdle(now);
    return outcome;
  }

  /**
   * Gives back the token a call took, when the call was refused after all (its batch was): up to
   * the bucket's capacity, and nothing when the bucket is gone.
   */
  refund(caller: string, method: string, toolName?: string | null): void {
    const bucket = this.#buckets.get(bucketKey(caller, method, toolName));
    if (bucket !== undefined) bucket.units = Math.min(bucket.limit.capacity, bucket.units + UNIT);
  }

  /** Drops every bucket that has refilled to full. Returns how many were dropped. */
  sweep(): number {
    const now = this.#now();
    let dropped = 0;
    for (const [key, bucket] of this.#buckets) {
      if (isFull(bucket, now)) {
        this.#buckets.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  #dropIdle(now: number): void {
    let probes = IDLE_PROBES;
    for (const [key, bucket] of this.#buckets) {
      if (probes-- === 0 || !isFull(bucket, now)) return;
      this.#buckets.delete(key);
    }
  }

  #evictOldest(): void {
    for (const key of this.#buckets.keys()) {
      this.#buckets.delete(key);
      return;
    }
  }
}

/** A bucket's key. Length-prefixed, so no caller or tool name can forge another's key. */
function bucketKey(caller: string, method: string, toolName?: string | null): string {
  const scope = method === TOOLS_CALL ? `${TOOLS_CALL}\u0000${toolName || "unknown"}` : method;
  return `${caller.length}:${caller}${scope}`;
}

function refill(bucket: Bucket, now: number): void {
  const elapsed = Math.max(0, now - bucket.at);
  bucket.units = Math.min(
    bucket.limit.capacity,
    bucket.units + elapsed * bucket.limit.requests_per_minute,
  );
  bucket.at = Math.max(bucket.at, now);
}

function isFull(bucket: Bucket, now: number): boolean {
  const elapsed = Math.max(0, now - bucket.at);
  return bucket.units + elapsed * bucket.limit.requests_per_minute >= bucket.limit.capacity;
}

function publicLimit(limit: Limit): RateLimit {
  return { requests_per_minute: limit.requests_per_minute, burst: limit.burst };
}
