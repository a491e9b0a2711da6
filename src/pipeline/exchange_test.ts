import assert from "node:assert/strict";
import { Exchange } from "./exchange.ts";
import { AuditLog } from "../audit/chain.ts";
import { JsonlStore } from "../audit/storage/jsonl.ts";
import { hmacSigner } from "../audit/signing.ts";
import { Logger } from "../log.ts";
import type { Frame } from "../streams/line_splitter.ts";

const enc = new TextEncoder();

function lineFrame(text: string): Extract<Frame, { kind: "line" }> {
  const bytes = enc.encode(text + "\n");
  return { kind: "line", bytes, contentLength: bytes.length - 1, terminated: true };
}

Deno.test("Exchange forwards and records a message whose number is beyond the double range", () => {
  // 1e400 is valid JSON; a client may send it in tool arguments. It must neither stop the pump
  // (an exception from receive ends the stdio read loop) nor go unrecorded.
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-exchange-" });
  try {
    const path = `${dir}/audit.jsonl`;
    let n = 0;
    const log = new AuditLog({
      store: new JsonlStore(path, false),
      signer: hmacSigner("0123456789abcdef0123456789abcdef"),
      now: () => Date.UTC(2026, 0, 1),
      newId: () => "01JD" + String(++n).padStart(22, "0"),
      clientId: "c",
      serverId: "s",
      transport: "stdio",
    });
    const logs: string[] = [];
    const exchange = new Exchange({
      log,
      transport: "stdio",
      live: { guard: null, redactors: [] },
      mono: () => 0,
      maxMessageBytes: 1 << 20,
      logger: new Logger("debug", (line) => logs.push(line)),
    }, "session-1");
    const text =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calc","arguments":{"x":1e400}}}';
    const frame = lineFrame(text);
    let out: ReturnType<Exchange["receive"]> = [];
    assert.doesNotThrow(() => {
      out = exchange.receive("client", frame);
    });
    assert.equal(out.length, 1);
    assert.equal(out[0]!.to, "server");
    assert.equal(out[0]!.bytes, frame.bytes, "the original bytes are forwarded");
    log.close();
    const stored = Deno.readTextFileSync(path).trim().split("\n");
    assert.equal(stored.length, 1);
    assert.ok(stored[0]!.includes('"method":"tools/call"'));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function withExchange(
  fn: (exchange: Exchange, records: () => Record<string, unknown>[]) => void,
): void {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-exchange-" });
  try {
    const path = `${dir}/audit.jsonl`;
    let n = 0;
    let t = 0;
    const log = new AuditLog({
      store: new JsonlStore(path, false),
      signer: null,
      now: () => Date.UTC(2026, 0, 1),
      newId: () => "01JD" + String(++n).padStart(22, "0"),
      clientId: "c",
      serverId: "s",
      transport: "http",
    });
    const exchange = new Exchange({
      log,
      transport: "http",
      live: { guard: null, redactors: [] },
      mono: () => (t += 5),
      maxMessageBytes: 1 << 20,
      logger: new Logger("error", () => {}),
    }, null);
    fn(exchange, () => {
      log.flush();
      return Deno.readTextFileSync(path).trim().split("\n").map((l) => JSON.parse(l));
    });
    log.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("client info sent per request in _meta (the stateless revision) is recorded", () => {
  withExchange((exchange, records) => {
    exchange.pass(
      "client",
      enc.encode(
        '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"agent","version":"2"}}}}',
      ),
    );
    assert.deepEqual(records()[0]!.client_info, { name: "agent", version: "2" });
  });
});

Deno.test("server-to-client requests correlate with the client's answers, ids keeping their type", () => {
  withExchange((exchange, records) => {
    exchange.pass(
      "server",
      enc.encode('{"jsonrpc":"2.0","id":"1","method":"sampling/createMessage","params":{}}'),
    );
    exchange.pass("client", enc.encode('{"jsonrpc":"2.0","id":1,"result":{}}'));
    exchange.pass(
      "client",
      enc.encode('{"jsonrpc":"2.0","id":"1","result":{"role":"assistant"}}'),
    );
    const [, numeric, answer] = records();
    assert.equal(numeric!.method, null, 'id 1 does not answer request "1"');
    assert.equal(answer!.method, "sampling/createMessage");
    assert.equal(answer!.direction, "client_to_server");
    assert.equal(answer!.duration_ms, 10);
  });
});

Deno.test("undeliverable answers are recorded once, with no wire hash, and end the wait", () => {
  withExchange((exchange, records) => {
    exchange.pass(
      "client",
      enc.encode('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}'),
    );
    assert.equal(exchange.hasPending(), true);
    exchange.undeliverable([7, 8], "the client disconnected mid-stream");
    assert.equal(exchange.hasPending(), false);
    const rows = records();
    assert.equal(rows.length, 2);
    const end = rows[1]!;
    assert.equal(end.kind, "error");
    assert.equal(end.wire_sha256, null);
    assert.equal(end.tool_name, "x");
    assert.deepEqual((end.error as { data: unknown }).data, {
      reason: "the client disconnected mid-stream",
      delivered: false,
    });
  });
});
