/**
 * Transparency: the proxy forwards exactly the bytes it receives, both ways, whatever the chunk
 * boundaries, line endings or content; a message over `proxy.max_message_bytes` is not forwarded
 * and gets SPEC §4 handling without ending the session.
 *
 * The client side is this test, writing to the proxy's stdin in seeded random chunks (replay a
 * failure with E2E_SEED=N); the upstream is `fixtures/recording_upstream.ts`, which records every
 * byte it reads and writes.
 *
 * @module
 */
import {
  assert,
  assertBytesEqual,
  assertEquals,
  assertNoStrays,
  type AuditRecord,
  type Collector,
  concatBytes,
  deadline,
  type Json,
  pick,
  ProxyProcess,
  readLog,
  recordingUpstream,
  seededRandom,
  sha256Hex,
  tempDir,
  utf8,
  verifyLog,
} from "./helpers.ts";

const MiB = 1024 * 1024;
const SEED = Number(Deno.env.get("E2E_SEED") ?? "20261125");
const decoder = new TextDecoder();

/** Bytes to send, with the places where a write must end. */
class WireScript {
  #parts: Uint8Array[] = [];
  length = 0;
  /** A write ends here, and the next waits until a line the client reads passes the test. */
  readonly syncs = new Map<number, { what: string; test: (line: string) => boolean }>();
  /** A write ends here. */
  readonly cuts = new Set<number>();

  /** Appends bytes; returns their offset. */
  add(bytes: Uint8Array | string): number {
    const b = typeof bytes === "string" ? utf8(bytes) : bytes;
    const at = this.length;
    this.#parts.push(b);
    this.length += b.length;
    return at;
  }

  /**
   * Appends a ping and then `line`, split at `splitAt` (relative to the line) so that the second
   * part is written only after the ping's answer is back: the proxy has certainly read the first
   * part on its own by then.
   */
  addSplit(pingId: number, line: Uint8Array | string, splitAt: number): number {
    this.add(ping(pingId));
    const at = this.add(line);
    this.syncs.set(at + splitAt, {
      what: `the answer to ping ${pingId}`,
      test: (l) => isAnswer(l, pingId),
    });
    return at;
  }

  /** Appends `line`, to be written only once the client has read a line passing `test`. */
  addAfter(what: string, test: (line: string) => boolean, line: Uint8Array | string): number {
    this.syncs.set(this.length, { what, test });
    return this.add(line);
  }

  bytes(): Uint8Array {
    return concatBytes(this.#parts);
  }
}

function ping(id: number): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"ping"}\n`;
}

function isAnswer(line: string, id: number | string): boolean {
  return line.startsWith(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},`);
}

/**
 * A message line whose content (terminator excluded) is exactly `size` bytes: `prefix`, padding
 * with a three-byte "€" in it, `suffix`. Returns the line and the offset of the "€".
 */
function sizedLine(
  prefix: string,
  suffix: string,
  size: number,
  terminator: string,
): { line: Uint8Array; euro: number; prefixLength: number } {
  const head = utf8(prefix);
  const tail = utf8(suffix + terminator);
  const line = new Uint8Array(size + utf8(terminator).length);
  line.set(head, 0);
  line.fill(0x61, head.length, size - utf8(suffix).length);
  const euro = head.length + Math.floor((size - head.length) / 2);
  line.set(utf8("€"), euro);
  line.set(tail, size - utf8(suffix).length);
  return { line, euro, prefixLength: head.length };
}

/** Offsets of the bytes inside multi-byte UTF-8 characters (continuation bytes) of `bytes`. */
function insideCharacters(bytes: Uint8Array, base: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) if ((bytes[i]! & 0xc0) === 0x80) out.push(base + i);
  return out;
}

/** Writes `script` in chunks: random log-uniform sizes plus every required cut and sync point. */
async function writeChunked(
  proxy: ProxyProcess,
  out: Collector,
  script: WireScript,
  random: () => number,
  signal: AbortSignal,
  end: { close: boolean },
): Promise<number> {
  const bytes = script.bytes();
  const cuts = new Set<number>([...script.cuts, ...script.syncs.keys()]);
  for (let at = 0; at < bytes.length;) {
    at += Math.max(1, Math.floor(2 ** (random() * 21)));
    cuts.add(at);
  }
  const ends = [...cuts].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b);
  // A sync point at offset 0 waits before the first write.
  const first = script.syncs.get(0);
  if (first !== undefined) await out.waitFor((c) => c.lines.some(first.test), first.what, signal);
  ends.push(bytes.length);
  let from = 0;
  for (const to of ends) {
    await proxy.write(bytes.slice(from, to));
    const sync = script.syncs.get(to);
    if (sync !== undefined) {
      await out.waitFor((c) => c.lines.some(sync.test), sync.what, signal);
    }
    from = to;
  }
  if (end.close) await proxy.closeInput();
  return ends.length;
}

/** Lines of a byte stream: content without `\n` or `\r\n`, the last one possibly unterminated. */
function wireLines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    const nl = bytes.indexOf(0x0a, start);
    if (nl === -1) {
      out.push(bytes.subarray(start));
      break;
    }
    const end = nl > start && bytes[nl - 1] === 0x0d ? nl - 1 : nl;
    out.push(bytes.subarray(start, end));
    start = nl + 1;
  }
  return out;
}

/** How many messages a line holds: the members of a batch array, else one. */
function messagesIn(content: Uint8Array): number {
  try {
    const v: unknown = JSON.parse(decoder.decode(content));
    return Array.isArray(v) && v.length > 0 ? v.length : 1;
  } catch {
    return 1;
  }
}

/**
 * One record per message that reached the other side, with the hash of the line it came in:
 * the records of `direction` that have a wire hash are exactly the messages of `delivered`.
 * Blank lines are left out: whether an empty line is a message is not for these tests to fix.
 */
async function assertRecordedAsDelivered(
  records: readonly AuditRecord[],
  direction: AuditRecord["direction"],
  delivered: Uint8Array,
): Promise<void> {
  const blank = await sha256Hex("");
  const expected = new Map<string, number>();
  for (const content of wireLines(delivered)) {
    if (decoder.decode(content).trim() === "") continue;
    const hash = await sha256Hex(content);
    expected.set(hash, (expected.get(hash) ?? 0) + messagesIn(content));
  }
  const actual = new Map<string, number>();
  for (const r of pick(records, { direction })) {
    if (r.wire_sha256 === null || r.wire_sha256 === blank) continue;
    actual.set(r.wire_sha256, (actual.get(r.wire_sha256) ?? 0) + 1);
  }
  const sort = (m: Map<string, number>) => [...m.entries()].sort(([a], [b]) => a < b ? -1 : 1);
  assertEquals(sort(actual), sort(expected), `${direction}: one record per delivered message`);
}

function field(value: Json | undefined, ...path: string[]): Json | undefined {
  let v = value;
  for (const key of path) {
    v = typeof v === "object" && v !== null && !Array.isArray(v) ? v[key] : undefined;
  }
  return v;
}

// Lines that are not one JSON-RPC message (non-JSON, blank, a last line without a newline) are
// refused unread since the framing fix: tests/framing_smuggling_test.ts covers them.
// In every durability mode: the fsyncs' timing must never change what crosses or what is recorded.
for (const durability of ["batch", "none", "entry"] as const) {
  Deno.test(
    `bytes cross unchanged both ways: random chunks, CRLF, split characters, batches, 16 MiB (durability ${durability})`,
    () => bytesCrossUnchanged(durability),
  );
}

async function bytesCrossUnchanged(durability: "none" | "batch" | "entry"): Promise<void> {
  await using dir = await tempDir(`transparency-${durability}`);
  const signal = deadline(120_000);
  const random = seededRandom(SEED);

  // What the client sends.
  const client = new WireScript();
  const initialize = utf8(
    `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",` +
      `"capabilities":{},"clientInfo":{"name":"raw-e2e","version":"0"}}}\r\n`,
  );
  client.addSplit(901, initialize, initialize.length - 1); // between "\r" and "\n"
  client.add(`{"jsonrpc":"2.0","method":"notifications/initialized"}\n`);
  const multi = utf8(
    `{"jsonrpc":"2.0","id":"ü-2","method":"tools/call","params":{"name":"echo",` +
      `"arguments":{"text":"naïve café — 日本語 😀👍🏽 𝄞"}}}\n`,
  );
  const emoji = decoder.decode(multi).indexOf("😀");
  const emojiByte = utf8(decoder.decode(multi).slice(0, emoji)).length;
  const multiAt = client.addSplit(902, multi, emojiByte + 2); // inside the four bytes of 😀
  for (const c of insideCharacters(multi, multiAt)) if (random() < 0.5) client.cuts.add(c);
  client.add(`{"jsonrpc":"2.0","id":3,"method":"x","params":{"big":12345678901234567890}}\r\n`);
  client.add(`{"jsonrpc":"2.0","id":12345678901234567891,"method":"x/big-id"}\n`);
  client.add(
    `[{"jsonrpc":"2.0","id":4,"method":"ping"},` +
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}]\n`,
  );
  client.add(`{"jsonrpc":"2.0","id":5,"result":{"roots":[]}}\n`);
  const big = sizedLine(
    `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"upload","arguments":{"data":"`,
    `"}}}`,
    16 * MiB,
    "\r\n",
  );
  client.addSplit(903, big.line, big.euro + 1); // inside the "€", 8 MiB into the message
  client.add(ping(7));
  client.add(`{"jsonrpc":"2.0","method":"notifications/tail"}\n`);

  // What the upstream sends, concurrently, line by line in random chunks. It starts before any
  // request arrives, so its answers use ids the client never sent (answers to unknown requests
  // must pass too), and the client's requests 1, "ü-2", 3, 4 and 6 stay unanswered: at the end the
  // proxy owes each an error (SPEC §4), after everything the upstream wrote.
  const server = new WireScript();
  server.add(
    `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"starting ✓"}}\r\n`,
  );
  server.add(
    `{"jsonrpc":"2.0","id":101,"result":{"protocolVersion":"2025-06-18","capabilities":{},` +
      `"serverInfo":{"name":"script","version":"1"}}}\n`,
  );
  server.add(`{"jsonrpc":"2.0","id":5,"method":"roots/list"}\n`);
  server.add(
    `[{"jsonrpc":"2.0","id":"ü-102","result":{"content":[{"type":"text","text":"日本語 😀"}]}},` +
      `{"jsonrpc":"2.0","id":103,"error":{"code":-32601,"message":"Method not found",` +
      `"data":{"token":"srv-e2e-secret","max_tokens":1}}}]\n`,
  );
  server.add(
    sizedLine(
      `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///big","blob":"`,
      `"}}`,
      16 * MiB,
      "\n",
    ).line,
  );
  server.add(`{"jsonrpc":"2.0","id":106,"result":{"content":[]}}\r\n`);
  await Deno.writeFile(`${dir.path}/script.bin`, server.bytes());

  const sent = client.bytes();
  let received: Uint8Array;
  let exitCode: number;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: recordingUpstream(
        dir.path,
        "",
        "--script",
        `${dir.path}/script.bin`,
        "--seed",
        `${SEED}`,
        "--announce",
      ),
      env: { MCP_AUDIT_AUDIT_DURABILITY: durability },
    });
    const out = proxy.stdout();
    const writes = await writeChunked(proxy, out, client, random, signal, { close: false });
    assert(writes > 50, `the input went in many writes (${writes})`);
    // The upstream's last script line and last answer are through before its input ends, so that
    // it has nothing left to write then: the proxy gives an upstream only a grace period to exit
    // after its stdin closes, and a slow machine must not turn that into lost bytes.
    await out.waitFor(
      (c) => c.lines.some((l) => isAnswer(l, 106)) && c.lines.some((l) => isAnswer(l, 7)),
      "the upstream's answer 106 and the answer to ping 7",
      signal,
    );
    await proxy.closeInput();
    // Its input ends once it has read all the proxy forwarded; what that was is compared below.
    await proxy.stderr.waitFor(
      (c) => c.lines.some((l) => l.startsWith("recording_upstream: end of input after ")),
      "the upstream to read to the end of its input",
      signal,
    );
    exitCode = (await proxy.finished(signal)).code;
    await out.done;
    received = out.bytes();
  }
  await assertNoStrays(dir.path);
  assertEquals(exitCode, 0, "the proxy exits 0");

  const upstreamGot = await Deno.readFile(`${dir.path}/in.bin`);
  const upstreamSent = await Deno.readFile(`${dir.path}/out.bin`);
  assertBytesEqual(
    upstreamGot,
    sent,
    `the upstream received exactly what the client sent (seed ${SEED})`,
  );
  assertBytesEqual(
    received.subarray(0, upstreamSent.length),
    upstreamSent,
    `the client received exactly what the upstream sent (seed ${SEED})`,
  );
  const owed = decoder.decode(received.subarray(upstreamSent.length)).split("\n");
  assertEquals(owed.pop(), "", "the proxy's own answers end with a newline");
  const owedIds = owed.map((line) => {
    const v = JSON.parse(line);
    assertEquals(v.jsonrpc, "2.0");
    assertEquals(v.error?.code, -32603, `an unanswered request gets -32603: ${line}`);
    assertEquals(typeof v.error?.data?.reason, "string", `with data.reason: ${line}`);
    // The id as written, so that an id beyond 2^53 is compared by its digits.
    return /"id":("(?:[^"\\]|\\.)*"|[-\d]+)/.exec(line)?.[1];
  });
  assertEquals(
    owedIds.sort(),
    ["1", '"ü-2"', "3", "4", "6", "12345678901234567891"].sort(),
    "every request left unanswered, and only those, gets an error after the upstream's output",
  );
  assert(upstreamSent.length > 16 * MiB, "the upstream's 16 MiB message was sent");

  const log = await readLog(`${dir.path}/audit.jsonl`);
  const records = log.records;
  const start = records.find((r) => r.method === "audit/start");
  assertEquals(field(start?.params, "durability"), durability, "the proxy ran in that mode");
  await assertRecordedAsDelivered(records, "client_to_server", upstreamGot);
  await assertRecordedAsDelivered(records, "server_to_client", received);
  const bigRecord = records.find((r) => r.jsonrpc_id === 6 && r.kind === "request")!;
  assert(bigRecord !== undefined, "the 16 MiB request is recorded as a request");
  assertEquals(bigRecord.wire_sha256, await sha256Hex(big.line.subarray(0, 16 * MiB)));
  const stored = field(bigRecord.params, "arguments", "data");
  assert(typeof stored === "string", "the 16 MiB argument is stored");
  assertEquals(
    utf8(stored).length,
    big.line.length - 2 - big.prefixLength - 4,
    "the stored copy holds the whole 16 MiB argument",
  );
  assertEquals(
    pick(records, { kind: "invalid" }).filter((r) =>
      field(r.error ?? null, "data", "limit_bytes") !== undefined
    ),
    [],
    "nothing was treated as oversized",
  );
  const text = decoder.decode(log.bytes);
  assert(text.includes(`"big":12345678901234567890`), "integers beyond 2^53 keep their digits");
  assert(
    text.includes(`"jsonrpc_id":12345678901234567891,`),
    "an id beyond 2^53 is stored with its digits and type",
  );
  assertEquals(
    field(
      records.find((r) => r.jsonrpc_id === "ü-2" && r.kind === "request")?.params,
      "arguments",
      "text",
    ),
    "naïve café — 日本語 😀👍🏽 𝄞",
    "split characters are stored whole",
  );
  assertEquals(pick(records, { kind: "invalid" }), [], "every line was one message");
  const batch = records.filter((r) =>
    r.direction === "client_to_server" &&
    (r.jsonrpc_id === 4 || r.method === "notifications/cancelled")
  );
  assertEquals(
    batch.map((r) => r.kind),
    ["request", "notification"],
    "a batch is recorded per member",
  );
  assertEquals(batch[0]!.wire_sha256, batch[1]!.wire_sha256, "batch members share the line's hash");

  // error.data is redacted in the stored copy too, while the wire kept the value (compared above).
  const withData = records.find((r) => r.kind === "error" && r.jsonrpc_id === 103);
  assertEquals(withData?.error?.data, { token: "[REDACTED]", max_tokens: 1 });
  assertEquals(withData?.redacted, ["error.data.token"]);
  assert(!text.includes("srv-e2e-secret"), "the secret is not in the log");

  const v = await verifyLog(`${dir.path}/audit.jsonl`);
  assertEquals(v.code, 0, v.stdout);
}

Deno.test("an oversized message is not forwarded: the sender gets -32600 with limit_bytes and the session goes on", async () => {
  await using dir = await tempDir("oversized");
  const signal = deadline(60_000);
  const random = seededRandom(SEED + 1);
  const limit = 4096;
  const pad = (n: number) => "p".repeat(n);

  const client = new WireScript();
  client.add(ping(1));
  const dropped: Uint8Array[] = [];
  const drop = (line: string) => {
    dropped.push(utf8(line));
    client.add(line);
  };
  // A request: its id leads the line.
  drop(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"pad":"${pad(5000)}"}}\n`);
  // Exactly at the limit (content bytes, CRLF excluded): passes.
  const exactHead = `{"jsonrpc":"2.0","id":3,"method":"ping","params":{"pad":"`;
  const exact = `${exactHead}${pad(limit - exactHead.length - 3)}"}}`;
  assertEquals(utf8(exact).length, limit);
  client.add(exact + "\r\n");
  // One byte over: dropped.
  const overHead = `{"jsonrpc":"2.0","id":4,"method":"echo/over","params":{"pad":"`;
  drop(`${overHead}${pad(limit - overHead.length - 2)}"}}\n`);
  // A notification: no id to answer, dropped silently.
  drop(`{"jsonrpc":"2.0","method":"notifications/huge","params":{"pad":"${pad(6000)}"}}\n`);
  // The id as the last member.
  drop(`{"jsonrpc":"2.0","method":"tools/call","params":{"pad":"${pad(5000)}"},"id":"tail-5"}\n`);
  // An oversized answer to the upstream's request "srv-1": the upstream gets the error instead.
  client.addAfter(
    "the upstream's request srv-1",
    (l) => l.startsWith(`{"jsonrpc":"2.0","id":"srv-1","method"`),
    "",
  );
  drop(`{"jsonrpc":"2.0","id":"srv-1","result":{"pad":"${pad(5000)}"}}\n`);
  // The upstream answers this one with a 5000-byte result: the client gets the error instead.
  client.add(`{"jsonrpc":"2.0","id":6,"method":"big","params":{"size":5000}}\n`);
  // And this one with exactly the limit: it passes.
  client.add(`{"jsonrpc":"2.0","id":7,"method":"big","params":{"size":${limit}}}\n`);
  client.add(ping(8));

  // The upstream's own traffic: a request the client answers (too large, above), and an oversized
  // request of its own, which the proxy must refuse back to the upstream.
  const server = new WireScript();
  server.add(`{"jsonrpc":"2.0","id":"srv-1","method":"sampling/createMessage","params":{}}\n`);
  server.add(
    `{"jsonrpc":"2.0","id":"srv-2","method":"elicitation/create","params":{"pad":"${
      pad(5000)
    }"}}\n`,
  );
  await Deno.writeFile(`${dir.path}/script.bin`, server.bytes());

  let received: Uint8Array;
  let exitCode: number;
  {
    await using proxy = new ProxyProcess({
      cwd: dir.path,
      upstream: recordingUpstream(
        dir.path,
        "",
        "--script",
        `${dir.path}/script.bin`,
        "--announce",
      ),
      env: { MCP_AUDIT_PROXY_MAX_MESSAGE_BYTES: String(limit) },
    });
    const out = proxy.stdout();
    await writeChunked(proxy, out, client, random, signal, { close: false });
    // Each side's output is awaited for itself: the proxy's own errors and the upstream's answers
    // come from different places, and nothing orders what the client reads against what the
    // upstream reads.
    const ids: (number | string)[] = [1, 2, 3, 4, "tail-5", 6, 7, 8];
    await out.waitFor(
      (c) => ids.every((id) => c.lines.some((l) => isAnswer(l, id))),
      `an answer for each of the ids ${ids.join(", ")}`,
      signal,
    );
    for (const id of ["srv-1", "srv-2"]) {
      await proxy.stderr.waitFor(
        (c) => c.lines.includes(`recording_upstream: answer to "${id}": error -32600`),
        `the upstream to read the error for its request ${id}`,
        signal,
      );
    }
    await proxy.closeInput();
    exitCode = (await proxy.finished(signal)).code;
    await out.done;
    received = out.bytes();
  }
  await assertNoStrays(dir.path);
  assertEquals(exitCode, 0, "the proxy exits 0");

  // Upstream side: the proxy's errors for its two requests, and otherwise everything the client
  // sent but the dropped lines, byte for byte.
  const sent = client.bytes();
  let expectedUpstream = decoder.decode(sent);
  for (const d of dropped) expectedUpstream = expectedUpstream.replace(decoder.decode(d), "");
  const upstreamGot = await Deno.readFile(`${dir.path}/in.bin`);
  const toUpstream = decoder.decode(upstreamGot).split("\n");
  assertEquals(toUpstream.pop(), "", "the upstream's input ends with a newline");
  const refused = toUpstream.filter((l) => l.includes(`"code":-32600`));
  assertEquals(
    refused.map((l) => JSON.parse(l).id).sort(),
    ["srv-1", "srv-2"],
    "the upstream's requests whose messages were too large get -32600",
  );
  for (const l of refused) assertEquals(JSON.parse(l).error?.data?.limit_bytes, limit, l);
  assertBytesEqual(
    utf8(toUpstream.filter((l) => !refused.includes(l)).map((l) => l + "\n").join("")),
    utf8(expectedUpstream),
    "the upstream got all but the oversized lines",
  );

  // Client side: the proxy's own errors, and otherwise exactly what the upstream sent minus its
  // oversized answer.
  const lines = decoder.decode(received).split("\n");
  assertEquals(lines.pop(), "", "the client's input ends with a newline");
  const errors: { id: Json; error: { code: number; message: string; data?: Json } }[] = [];
  const passed: string[] = [];
  for (const line of lines) {
    const v = JSON.parse(line);
    if (v.error?.code === -32600) errors.push(v);
    else passed.push(line);
  }
  assertEquals(
    errors.map((e) => e.id).sort(),
    [2, 4, 6, "tail-5"].sort(),
    "ids answered with -32600",
  );
  for (const e of errors) {
    assertEquals(
      field(e.error as Json, "data", "limit_bytes"),
      limit,
      `limit_bytes for id ${e.id}`,
    );
    assert(typeof e.error.message === "string" && e.error.message !== "");
  }
  const upstreamSent = decoder.decode(await Deno.readFile(`${dir.path}/out.bin`)).split("\n");
  assertEquals(upstreamSent.pop(), "");
  const oversizedAnswer = upstreamSent.filter((l) => utf8(l).length > limit);
  assertEquals(
    oversizedAnswer.length,
    2,
    "the upstream did send its oversized request and its 5000-byte answer",
  );
  assertEquals(
    passed,
    upstreamSent.filter((l) => utf8(l).length <= limit),
    "everything else the upstream sent reached the client unchanged",
  );
  assert(
    passed.some((l) => isAnswer(l, 7) && utf8(l).length === limit),
    "a message at the limit passes",
  );
  assert(passed.some((l) => isAnswer(l, 8)), "the session goes on after the oversized messages");

  // The log: each dropped message audited as invalid with its size, each error audited.
  const log = await readLog(`${dir.path}/audit.jsonl`);
  const records = log.records;
  const tooLarge = pick(records, { kind: "invalid" }).filter((r) =>
    field(r.error ?? null, "data", "limit_bytes") === limit
  );
  const row = (r: AuditRecord) => JSON.stringify([r.direction, r.jsonrpc_id, r.error?.code]);
  assertEquals(
    tooLarge.map(row).sort(),
    [
      ["client_to_server", 2, -32600],
      ["client_to_server", 4, -32600],
      ["client_to_server", null, -32600],
      ["client_to_server", "tail-5", -32600],
      ["client_to_server", "srv-1", -32600],
      ["server_to_client", 6, -32600],
      ["server_to_client", "srv-2", -32600],
    ].map((r) => JSON.stringify(r)).sort(),
    "every dropped message is audited",
  );
  const answered = pick(records, { kind: "error" }).filter((r) => r.error?.code === -32600);
  assertEquals(
    answered.map(row).sort(),
    [
      // The proxy's answers, recorded as coming from the side that should have answered.
      ["server_to_client", 2, -32600],
      ["server_to_client", 4, -32600],
      ["server_to_client", "tail-5", -32600],
      ["server_to_client", 6, -32600],
      ["client_to_server", "srv-1", -32600],
      ["client_to_server", "srv-2", -32600],
    ].map((r) => JSON.stringify(r)).sort(),
    "every error the proxy sent is audited",
  );
  assertEquals(answered.find((r) => r.jsonrpc_id === 6)?.method, "big", "the error answers `big`");
  assertEquals(
    answered.find((r) => r.jsonrpc_id === "srv-1")?.method,
    "sampling/createMessage",
    "the error answers the upstream's sampling request",
  );
  await assertRecordedAsDelivered(records, "client_to_server", upstreamGot);
  await assertRecordedAsDelivered(records, "server_to_client", received);

  const v = await verifyLog(`${dir.path}/audit.jsonl`);
  assertEquals(v.code, 0, v.stdout);
});
