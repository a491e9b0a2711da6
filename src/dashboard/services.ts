/**
 * The dashboard's services composed over one log: one read-only query for every read model, the
 * live feed (woken by the log's observer in the proxy, by its poll timer otherwise) handing each
 * new batch to the chain status, and the chain's first pass started at once. Window stats and the
 * Go stats are kept 2 s per distinct query string, so that a page open in several tabs, or a
 * script polling, does not count the same records again for each request.
 *
 * @module
 */
import { basename } from "node:path";
import type { KeyRing } from "../audit/key_file.ts";
import type { AuditRecord } from "../audit/record.ts";
import { openQuery } from "../audit/storage/open.ts";
import type { Logger } from "../log.ts";
import { VERSION } from "../version.ts";
import type {
  ChainStatus,
  DashboardServices,
  ExchangeDetail,
  ExchangesPage,
  GoEntry,
  GoStats,
  Info,
  PinsView,
  RecordsPage,
  SessionsPage,
  WindowStats,
} from "./api.ts";
import { ChainStatusTracker } from "./chain_status.ts";
import { exchangeDetail, exchangesPage } from "./exchanges.ts";
import { RecordFeed } from "./feed.ts";
import { goEntries, goStats } from "./go_compat.ts";
import { readPinsView } from "./pins_view.ts";
import { recordAt, recordsPage } from "./records_view.ts";
import { sessionsPage } from "./sessions.ts";
import { windowStats } from "./window_stats.ts";

/** How long a stats answer is reused for the same query string. */
export const STATS_CACHE_MS = 2000;
/** Most distinct query strings whose stats are kept. */
export const STATS_CACHE_ENTRIES = 32;

/** What the services read, and how. */
export interface DashboardServicesOptions {
  /** The log: a JSONL log's active file, or a SQLite database. */
  path: string;
  storage: "jsonl" | "sqlite";
  /** True when a proxy in this process writes the log. */
  live: boolean;
  /** True when a token is configured (the page then asks for it). */
  authEnabled: boolean;
  /** The IANA zone "today" is counted in. */
  timeZone: string;
  /** The pins file, or null when pinning is off. */
  pinsPath: string | null;
  /** The keys the chain status checks signatures with; null: the structure alone. */
  keys: KeyRing | null;
  logger: Logger;
  now?: () => Date;
  /** How often the feed looks for records other processes stored (milliseconds). */
  pollMs?: number;
}

/**
 * Answers computed at most once per `ttlMs` for each key; a failed answer is not kept. At most
 * `max` keys: the oldest goes first.
 */
export class AnswerCache<T> {
  readonly #entries = new Map<string, { at: number; value: Promise<T> }>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(ttlMs: number, max: number, now: () => number) {
    this.#ttlMs = ttlMs;
    this.#max = max;
    this.#now = now;
  }

  /** Keys held. */
  get size(): number {
    return this.#entries.size;
  }

  /** The answer for `key`: the kept one while fresh, else `compute()`'s, kept. */
  get(key: string, compute: () => Promise<T>): Promise<T> {
    const now = this.#now();
    const kept = this.#entries.get(key);
    if (kept !== undefined && now - kept.at < this.#ttlMs) return kept.value;
    this.#entries.delete(key);
    for (const [k, e] of this.#entries) {
      if (this.#entries.size < this.#max && now - e.at < this.#ttlMs) break;
      // In the order kept: the oldest first, expired or the one over the bound.
      this.#entries.delete(k);
    }
    const value = compute();
    const entry = { at: now, value };
    this.#entries.set(key, entry);
    value.catch(() => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    return value;
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** The parameters `/api/v1/stats` reads (the filter's and `buckets`); others it ignores. */
const STATS_PARAMS = [
  "buckets",
  "client",
  "decision",
  "direction",
  "errors",
  "from",
  "from_seq",
  "kind",
  "method",
  "q",
  "server",
  "session",
  "to",
  "to_seq",
  "tool",
] as const;

/**
 * The question a stats query string asks, as one key: the parameters read, each its first value
 * (as they are read), in one order. Parameters that are ignored, or repeated, make no new key:
 * otherwise `?x=1`, `?x=2`… would each count the window again.
 */
export function statsKey(params: URLSearchParams): string {
  const key = new URLSearchParams();
  for (const name of STATS_PARAMS) {
    const v = params.get(name);
    if (v !== null && v !== "") key.set(name, v);
  }
  return key.toString();
}

/**
 * Opens the log read-only and composes the services. The caller wakes `feed` after each stored
 * batch when a log writer is in the process, and calls `close()` at the end.
 *
 * @example
 * ```ts ignore
 * const services = createDashboardServices({ path, storage: "jsonl", live: true, ... });
 * log.observe(() => services.feed.wake());
 * ```
 */
export function createDashboardServices(
  options: DashboardServicesOptions,
): DashboardServices & { feed: RecordFeed } {
  const { logger } = options;
  const now = options.now ?? (() => new Date());
  const query = openQuery(options.path);
  let feed: RecordFeed | undefined;
  let chain: ChainStatusTracker;
  try {
    feed = new RecordFeed(query, {
      logger,
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    });
    chain = new ChainStatusTracker({ path: options.path, keys: options.keys, logger, now });
  } catch (e) {
    // Nothing is left running or open by a start that failed half way.
    feed?.close();
    query.close();
    throw e;
  }
  // The whole log is checked only once someone asks for the chain's status: a proxy whose
  // dashboard nobody opens never reads its log back.
  let stopFollowing = (): void => {};
  let checking = false;
  const chainStatus = (): ChainStatus => {
    if (!checking && !closed) {
      checking = true;
      stopFollowing = feed.onRecords((records) => chain.follow(records));
      chain.start();
    }
    return chain.status();
  };
  const clock = () => now().getTime();
  const windows = new AnswerCache<WindowStats>(STATS_CACHE_MS, STATS_CACHE_ENTRIES, clock);
  const go = new AnswerCache<GoStats>(STATS_CACHE_MS, 1, clock);
  const info: Info = {
    version: VERSION,
    storage: options.storage,
    log: basename(options.path),
    auth: options.authEnabled,
    timezone: options.timeZone,
    live: options.live,
  };
  let closed = false;
  return {
    feed,
    info: (): Info => info,
    records: (params: URLSearchParams): Promise<RecordsPage> => recordsPage(query, params),
    record: (seq: number): Promise<AuditRecord | null> => recordAt(query, seq),
    exchanges: (params: URLSearchParams): Promise<ExchangesPage> => exchangesPage(query, params),
    exchange: (key: string): Promise<ExchangeDetail | null> => exchangeDetail(query, key),
    stats: (params: URLSearchParams): Promise<WindowStats> =>
      windows.get(statsKey(params), () => windowStats(query, params, now())),
    sessions: (params: URLSearchParams): Promise<SessionsPage> => sessionsPage(query, params),
    verify: chainStatus,
    pins: (): Promise<PinsView> => readPinsView(options.pinsPath),
    goEntries: (params: URLSearchParams): Promise<GoEntry[]> => goEntries(query, params),
    goStats: (): Promise<GoStats> => go.get("", () => goStats(query, now(), options.timeZone)),
    stream: (after: number | null, full: boolean, signal: AbortSignal) =>
      feed.stream(after, full, signal),
    close(): void {
      if (closed) return;
      closed = true;
      stopFollowing();
      windows.clear();
      go.clear();
      feed.close();
      chain.close();
      query.close();
    },
  };
}
