/**
 * The open connections of a listener, and the two deadlines `node:http` does not keep: a request
 * body that stops arriving (`proxy.http.read_timeout`) and a client that stops reading what it is
 * sent (`proxy.http.write_timeout`). One sweep over the connections checks both, rather than a timer
 * per request or per chunk: a connection costs one entry, a request one field set and cleared.
 *
 * Both deadlines measure a gap without progress, never a total: a body may take as long as it
 * likes while bytes keep coming, and a stream may stay open for hours while it sends nothing (a
 * connection with nothing waiting to be written is not behind).
 *
 * @module
 */
/** What the watch reads of a connection (a `node:net` Socket has all of it). */
export interface WatchedSocket {
  /** Bytes received so far. */
  readonly bytesRead: number;
  /** Bytes handed to the connection so far, whether or not sent yet. */
  readonly bytesWritten: number;
  /** Bytes handed to the connection and not yet taken by the system. */
  readonly writableLength: number;
  once(event: "close", listener: () => void): unknown;
  destroy(): unknown;
}

/** Which deadline a connection missed. */
export type Stall = "read" | "write";

/** What the watch needs. */
export interface ConnectionWatchOptions {
  /** Longest gap in a request body's bytes, in ms; 0 is off. */
  readTimeoutMs: number;
  /** Longest time with bytes waiting to be written and none taken by the client, in ms; 0 is off. */
  writeTimeoutMs: number;
  /** Told of each connection that missed a deadline, after it has been destroyed. */
  onStall: (stall: Stall, socket: WatchedSocket) => void;
  /** Monotonic milliseconds. */
  now?: () => number;
}

interface Watched {
  /** A request body is still expected on this connection. */
  reading: boolean;
  /** An answer is being made or written on this connection. */
  answering: boolean;
  /** `bytesRead` when last seen to move, and when. */
  read: number;
  readSince: number;
  /** Bytes the client has taken (written minus still queued) when last seen to move, and when. */
  written: number;
  writeSince: number;
}

/**
 * The sweep interval for a deadline: a quarter of it, so that a connection is closed between the
 * deadline and 1.25 times it, but not more often than every 10 ms nor less than every second.
 */
export function sweepInterval(...deadlinesMs: number[]): number {
  const on = deadlinesMs.filter((d) => d > 0);
  if (on.length === 0) return 1000;
  return Math.min(1000, Math.max(10, Math.floor(Math.min(...on) / 4)));
}

/**
 * Tracks every open connection of a listener; its size is the number open.
 *
 * @example
 * ```ts
 * const watch = new ConnectionWatch({ readTimeoutMs: 30_000, writeTimeoutMs: 30_000, onStall });
 * server.on("connection", (socket) => watch.track(socket));
 * ```
 */
export class ConnectionWatch {
  #open = new Map<WatchedSocket, Watched>();
  #opts: ConnectionWatchOptions;
  #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: ConnectionWatchOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Connections open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Starts watching `socket` until it closes. */
  track(socket: WatchedSocket): void {
    const now = this.#now();
    this.#open.set(socket, {
      reading: false,
      answering: false,
      read: socket.bytesRead,
      readSince: now,
      written: 0,
      writeSince: now,
    });
    socket.once("close", () => this.#open.delete(socket));
  }

  /** Whether a request body is expected on `socket` (set when one starts, cleared when it ends). */
  reading(socket: WatchedSocket, expected: boolean): void {
    const w = this.#open.get(socket);
    if (w === undefined) return;
    w.reading = expected;
    w.read = socket.bytesRead;
    w.readSince = this.#now();
  }

  /** Whether an answer is being made or written on `socket` (set when a request starts). */
  answering(socket: WatchedSocket, answering: boolean): void {
    const w = this.#open.get(socket);
    if (w !== undefined) w.answering = answering;
  }

  /** Whether an answer is under way on `socket`: a parse error then must not write into it. */
  isAnswering(socket: WatchedSocket): boolean {
    return this.#open.get(socket)?.answering ?? false;
  }

  /** Checks every connection once; called by the timer, and by tests. */
  sweep(): void {
    const { readTimeoutMs, writeTimeoutMs } = this.#opts;
    const now = this.#now();
    for (const [socket, w] of this.#open) {
      const read = socket.bytesRead;
      if (!w.reading || read !== w.read) {
        w.read = read;
        w.readSince = now;
      } else if (readTimeoutMs > 0 && now - w.readSince >= readTimeoutMs) {
        this.#stall("read", socket);
        continue;
      }
      const queued = socket.writableLength;
      const taken = socket.bytesWritten - queued;
      if (queued === 0 || taken !== w.written) {
        w.written = taken;
        w.writeSince = now;
      } else if (writeTimeoutMs > 0 && now - w.writeSince >= writeTimeoutMs) {
        this.#stall("write", socket);
      }
    }
  }

  #stall(stall: Stall, socket: WatchedSocket): void {
    this.#open.delete(socket);
    socket.destroy();
    this.#opts.onStall(stall, socket);
  }

  /** Sweeps every `intervalMs` until {@link stop}; the timer does not keep the process alive. */
  start(intervalMs: number): void {
    if (this.#timer !== undefined) return;
    if (this.#opts.readTimeoutMs === 0 && this.#opts.writeTimeoutMs === 0) return;
    const timer = setInterval(() => this.sweep(), intervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
