/**
 * Structured log lines on stderr. stdout belongs to the protocol in stdio mode.
 *
 * @module
 */

/** Log levels, in order. */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Extra fields of a log line. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** Writes one JSON object a line. */
export class Logger {
  #level: Level;
  #min: number;
  #write: (line: string) => void;
  #now: () => number;

  constructor(level: Level, write: (line: string) => void, now: () => number = Date.now) {
    this.#level = level;
    this.#min = ORDER[level];
    this.#write = write;
    this.#now = now;
  }

  /** Changes the least level written. */
  setLevel(level: Level): void {
    this.#level = level;
    this.#min = ORDER[level];
  }

  /** The least level written. */
  get level(): Level {
    return this.#level;
  }

  log(level: Level, msg: string, fields: LogFields = {}): void {
    if (ORDER[level] < this.#min) return;
    this.#write(
      JSON.stringify({ ts: new Date(this.#now()).toISOString(), level, msg, ...fields }) + "\n",
    );
  }
  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }
}

const encoder = new TextEncoder();

/** A logger writing synchronously to the process's stderr. */
export function stderrLogger(level: Level): Logger {
  return new Logger(level, (line) => {
    const bytes = encoder.encode(line);
    let at = 0;
    while (at < bytes.length) at += Deno.stderr.writeSync(bytes.subarray(at));
  });
}
