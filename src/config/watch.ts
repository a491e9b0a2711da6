/**
 * Watches the configuration file for changes. Editors save by writing in place or by renaming a
 * new file over the old one, so the file's directory is watched and events are matched by name;
 * a burst of events from one save becomes one call.
 *
 * @module
 */

/** Calls `onChange` after the file at `path` changes, until `signal` aborts. */
export function watchFile(
  path: string,
  signal: AbortSignal,
  onChange: () => void,
  settleMs = 50,
): Promise<void> {
  const absolute = absolutePath(path);
  const cut = Math.max(absolute.lastIndexOf("/"), absolute.lastIndexOf("\\"));
  const dir = absolute.slice(0, cut + 1) || ".";
  const name = absolute.slice(cut + 1);
  const watcher = Deno.watchFs(dir, { recursive: false });
  const stop = (): void => watcher.close();
  signal.addEventListener("abort", stop, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (async () => {
    try {
      for await (const event of watcher) {
        if (!event.paths.some((p) => p.endsWith(name) && baseName(p) === name)) continue;
        clearTimeout(timer);
        timer = setTimeout(onChange, settleMs);
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  })();
}

function baseName(p: string): string {
  return p.slice(Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\")) + 1);
}

function absolutePath(path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return path;
  return `${Deno.cwd()}/${path}`;
}
