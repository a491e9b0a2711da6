/**
 * Notices changes to the configuration file by looking at it twice a second. Looking beats
 * filesystem events here: a save that renames a new file over the old one, a Kubernetes ConfigMap
 * that swaps a symbolic link, and an editor that writes in place all change what `stat` says of
 * the path; and events for the file's directory would wake the proxy for every write of an audit
 * log kept beside it.
 *
 * @module
 */

/** What `stat` says of a file, as far as a change goes. */
function fingerprint(path: string): string {
  try {
    const s = Deno.statSync(path);
    return `${s.mtime?.getTime() ?? 0}:${s.size}:${s.ino ?? 0}:${s.dev}`;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "missing" : `error:${(e as Error).name}`;
  }
}

/**
 * Calls `onChange` when the file at `path` changes (content, replacement or removal), looking
 * every `intervalMs`, until `signal` aborts. A change seen mid-write is seen again when the write
 * ends, so the last call always follows the last change.
 *
 * @example
 * ```ts
 * import { watchFile } from "./watch.ts";
 *
 * const stop = new AbortController();
 * watchFile("config.yaml", stop.signal, () => console.log("config.yaml changed"));
 * stop.abort();
 * ```
 */
export function watchFile(
  path: string,
  signal: AbortSignal,
  onChange: () => void,
  intervalMs = 500,
): void {
  if (signal.aborted) return;
  let last = fingerprint(path);
  const timer = setInterval(() => {
    const now = fingerprint(path);
    if (now === last) return;
    last = now;
    onChange();
  }, intervalMs);
  // The timer must not keep a finished proxy alive.
  Deno.unrefTimer(timer);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
