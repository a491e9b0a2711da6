import assert from "node:assert/strict";
import { watchFile } from "./watch.ts";

/** Resolves on the next call of the watcher's callback. */
function changes(path: string, signal: AbortSignal): () => Promise<void> {
  let wake: (() => void) | undefined;
  watchFile(path, signal, () => wake?.(), 10);
  return () => new Promise<void>((resolve) => (wake = resolve));
}

Deno.test("watchFile sees a file written in place, replaced by rename, and removed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-audit-watch-" });
  const stop = new AbortController();
  // The watcher's timer does not hold the process open; this one does, while the test waits.
  const alive = setInterval(() => {}, 60_000);
  try {
    const path = `${dir}/config.yaml`;
    await Deno.writeTextFile(path, "a: 1\n");
    const next = changes(path, stop.signal);

    let seen = next();
    await Deno.writeTextFile(path, "a: 22\n");
    await seen;

    seen = next();
    await Deno.writeTextFile(`${dir}/config.yaml.tmp`, "a: 3\n");
    await Deno.rename(`${dir}/config.yaml.tmp`, path);
    await seen;

    seen = next();
    await Deno.remove(path);
    await seen;
    assert.ok(true);
  } finally {
    clearInterval(alive);
    stop.abort();
    await Deno.remove(dir, { recursive: true });
  }
});
