/**
 * Reading a child process's output line by line, for tests that wait on what it says.
 */

/** The text lines of a byte stream, as they complete. */
export async function* splitLines(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
  if (pending !== "") yield pending;
}

/** Reads lines until one matches `re`; returns the match. */
export async function lineMatching(
  lines: AsyncIterator<string>,
  re: RegExp,
): Promise<RegExpMatchArray> {
  const seen: string[] = [];
  while (true) {
    const next = await lines.next();
    if (next.done) throw new Error(`the stream ended before ${re}:\n${seen.join("\n")}`);
    seen.push(next.value);
    const m = next.value.match(re);
    if (m) return m;
  }
}

/** Reads the rest of the lines (until the process closes the stream). */
export async function drainLines(lines: AsyncIterator<string>): Promise<string[]> {
  const rest: string[] = [];
  while (true) {
    const next = await lines.next();
    if (next.done) return rest;
    rest.push(next.value);
  }
}

/** The address in the proxy's "proxy listening" log line. */
export const LISTENING = /"proxy listening","address":"([^"]+)"/;
