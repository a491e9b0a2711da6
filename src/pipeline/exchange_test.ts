import assert from "node:assert/strict";
import { Exchange, type ExchangeDeps, type LiveSettings, type Side } from "./exchange.ts";
import type { ViolationCode } from "../jsonrpc/framing.ts";
import { Guard, type GuardParts } from "../guardrails/guard.ts";
import { compilePolicy } from "../guardrails/policy.ts";
import { RateLimiter } from "../guardrails/rate_limiter.ts";
import { KeyRedactor } from "../audit/redact.ts";
import { ValueRedactor } from "../audit/detectors.ts";
import { AuditLog, sha256Hex } from "../audit/chain.ts";
import { JsonlStore } from "../audit/storage/jsonl.ts";
import { testAuditLog } from "../audit/testdata/test_audit_log.ts";
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
    const log = testAuditLog(path, "stdio");
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
  live: LiveSettings = { guard: null, redactors: [] },
  deps: Partial<ExchangeDeps> = {},
): void {
  const dir = Deno.makeTempDirSync({ prefix: "mcp-audit-exchange-" });
  try {
    const path = `${dir}/audit.jsonl`;
    let n = 0;
    let t = 0;
    const log = new AuditLog({
      store: new JsonlStore(path, { durability: "none" }),
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
      live,
      mono: () => (t += 5),
      maxMessageBytes: 1 << 20,
      logger: new Logger("error", () => {}),
      ...deps,
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

function guarded(over: Partial<GuardParts>): LiveSettings {
  return {
    guard: new Guard({
      policy: null,
      denyAs: "error",
      filterTools: true,
      limiter: null,
      limiterKey: "caller",
      pins: null,
      pinMode: "warn",
      clientId: "c",
      serverId: "s",
      ...over,
    }),
    redactors: [],
  };
}

const dec = new TextDecoder();
const DENY_RM = compilePolicy([{ action: "deny", tool_name: "rm", reason: "no" }]);

Deno.test("a refused request is not forwarded: the proxy answers it and records both", () => {
  withExchange((exchange, records) => {
    const line = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"rm"}}';
    const out = exchange.receive("client", lineFrame(line));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.to, "client");
    assert.deepEqual(JSON.parse(dec.decode(out[0]!.bytes)), {
      jsonrpc: "2.0",
      id: 3,
      error: {
        code: -32030,
        message: "policy denied",
        data: { action: "deny", reason: "no", rule_index: 0 },
      },
    });
    assert.equal(exchange.hasPending(), false, "nothing waits for the server");
    const [request, answer] = records();
    assert.deepEqual(request!.decision, { action: "deny", rule: 0, reason: "no" });
    assert.equal(answer!.kind, "error");
    assert.equal(answer!.method, "tools/call");
    assert.equal(answer!.tool_name, "rm");
  }, guarded({ policy: DENY_RM }));
});

Deno.test("a batch holding a refused request is refused whole, every request answered", () => {
  withExchange((exchange, records) => {
    const batch = "[" + [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}}',
      '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}',
      '{"jsonrpc":"2.0","method":"notifications/progress","params":{}}',
    ].join(",") + "]";
    const passage = exchange.pass("client", enc.encode(batch));
    assert.equal(passage.forward, null);
    assert.equal(passage.batch, true);
    assert.equal(passage.replies.length, 1, "a batch is answered with one array");
    const answers = JSON.parse(dec.decode(passage.replies[0]!.bytes));
    assert.deepEqual(
      answers.map((a: { id: number; error: { code: number } }) => [a.id, a.error.code]),
      [[1, -32030], [2, -32030]],
    );
    assert.match(answers[0].error.data.reason, /batch/);
    assert.equal(answers[1].error.data.reason, "no");
    const rows = records();
    assert.deepEqual(rows.map((r) => r.kind), [
      "request",
      "request",
      "notification",
      "error",
      "error",
    ]);
  }, guarded({ policy: DENY_RM }));
});

Deno.test("a filtered tools/list answer is recorded as sent, with the hidden tools and the original digest", () => {
  withExchange((exchange, records) => {
    exchange.pass("client", enc.encode('{"jsonrpc":"2.0","id":9,"method":"tools/list"}'));
    const answer = enc.encode(
      '{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"ls"},{"name":"rm"}],"n":12345678901234567890}}',
    );
    const passage = exchange.pass("server", answer);
    assert.notEqual(passage.forward, answer);
    const sent = dec.decode(passage.forward!);
    assert.equal(
      sent,
      '{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"ls"}],"n":12345678901234567890}}',
      "other members and big numbers survive",
    );
    const record = records()[1]!;
    assert.equal(record.wire_sha256, sha256Hex(passage.forward!));
    assert.deepEqual(record.result, { tools: [{ name: "ls" }], n: 12345678901234567890 });
    assert.deepEqual(record.decision, {
      action: "filter",
      rule: null,
      reason: "1 of the server's tools hidden from this client",
      hidden: [{ name: "rm", reason: "refused by policy" }],
      upstream_sha256: sha256Hex(answer),
    });
  }, guarded({ policy: DENY_RM }));
});

Deno.test("key and value redaction both apply to the audit copy, paths listed once", () => {
  const live: LiveSettings = {
    guard: null,
    redactors: [new KeyRedactor(["token"]), new ValueRedactor({ detectors: ["email"] })],
  };
  withExchange((exchange, records) => {
    const content = enc.encode(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mail","arguments":{"to":"ana@example.com","token":"t-1"}}}',
    );
    const passage = exchange.pass("client", content);
    assert.equal(passage.forward, content, "the wire is untouched");
    const record = records()[0]!;
    assert.deepEqual(record.params, {
      name: "mail",
      arguments: { to: "[REDACTED:email]", token: "[REDACTED]" },
    });
    assert.deepEqual(record.redacted, ["params.arguments.token", "params.arguments.to"]);
  }, live);
});

const bytes = (text: string) => enc.encode(text);
const answersOf = (p: { replies: { bytes: Uint8Array }[] }) =>
  p.replies.map((r) => JSON.parse(dec.decode(r.bytes)));

Deno.test("with a policy on, a message that cannot be read is answered by the proxy, never forwarded", () => {
  withExchange((exchange, records) => {
    const line = new Uint8Array([
      ...bytes(
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"rm","_meta":{"x":"',
      ),
      0xff,
      ...bytes('"}}}'),
    ]);
    const passage = exchange.pass("client", line);
    assert.equal(passage.forward, null);
    const [answer] = answersOf(passage);
    assert.equal(answer.error.code, -32600);
    assert.equal(answer.id, 4, "the id is read from the bytes, so the client hears its answer");
    assert.match(answer.error.data.reason, /invalid UTF-8/);
    const [record] = records();
    assert.equal(record!.kind, "invalid");
    assert.equal((record!.decision as { action: string }).action, "deny");
  }, guarded({ policy: DENY_RM }));
});

Deno.test("with a policy on, member names that differ only in case are refused, at any depth", () => {
  withExchange((exchange) => {
    for (
      const text of [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","Name":"rm"}}',
        '{"jsonrpc":"2.0","id":2,"method":"ping","Method":"tools/call","params":{"name":"rm"}}',
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ls","arguments":{"path":"/tmp","PATH":"/etc"}}}',
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"Name":"rm"}}',
        '{"jsonrpc":"2.0","id":6,"method":"tools/call","Params":{"name":"rm"}}',
      ]
    ) {
      const passage = exchange.pass("client", bytes(text));
      assert.equal(passage.forward, null, text);
      assert.match(answersOf(passage)[0].error.data.reason, /differ only in case/);
    }
    const fine = bytes('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ls"}}');
    assert.equal(exchange.pass("client", fine).forward, fine);
  }, guarded({ policy: DENY_RM }));
});

Deno.test("a tools/call sent as a notification is judged too, and dropped when refused", () => {
  withExchange((exchange, records) => {
    const passage = exchange.pass(
      "client",
      bytes('{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm"}}'),
    );
    assert.equal(passage.forward, null);
    assert.equal(passage.replies.length, 0, "a notification gets no answer");
    const [record] = records();
    assert.equal(record!.kind, "notification");
    assert.deepEqual(record!.decision, { action: "deny", rule: 0, reason: "no" });
    const progress = bytes('{"jsonrpc":"2.0","method":"notifications/progress","params":{}}');
    assert.equal(exchange.pass("client", progress).forward, progress);
  }, guarded({ policy: DENY_RM }));
});

Deno.test("with only the rate limit on, an unreadable message is refused unread and spends no budget", () => {
  withExchange((exchange, records) => {
    for (const junk of ["not json at all", "still not json"]) {
      const passage = exchange.pass("client", bytes(junk));
      assert.equal(passage.forward, null, junk);
      assert.equal(passage.violation?.code, "not_json", junk);
    }
    const call = bytes('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}}');
    assert.equal(exchange.pass("client", call).forward, call, "the budget is still whole");
    assert.equal(records()[0]!.decision, null, "no guardrail judges content: none decided");
  }, guarded({ limiter: new RateLimiter({ requests_per_minute: 1 }, () => 0) }));
});

Deno.test("a tools/list answer whose id is the request's number as text is still filtered", () => {
  withExchange((exchange, records) => {
    exchange.pass("client", bytes('{"jsonrpc":"2.0","id":2,"method":"tools/list"}'));
    const passage = exchange.pass(
      "server",
      bytes('{"jsonrpc":"2.0","id":"2","result":{"tools":[{"name":"ls"},{"name":"rm"}]}}'),
    );
    assert.equal(
      dec.decode(passage.forward!),
      '{"jsonrpc":"2.0","id":"2","result":{"tools":[{"name":"ls"}]}}',
    );
    assert.equal(records()[1]!.method, "tools/list");
    assert.equal(exchange.hasPending(), false);
  }, guarded({ policy: DENY_RM }));
});

Deno.test("a client's answer inside a refused batch leaves the server's request waiting", () => {
  withExchange((exchange) => {
    exchange.pass(
      "server",
      bytes('{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}'),
    );
    const passage = exchange.pass(
      "client",
      bytes(
        '[{"jsonrpc":"2.0","id":"s1","result":{}},{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"rm"}}]',
      ),
    );
    assert.equal(passage.forward, null);
    assert.ok(exchange.isPending("server", "s1"), "the server still waits, and the log says so");
  }, guarded({ policy: DENY_RM }));
});

Deno.test("a server's error message is redacted in the record like its data", () => {
  const live: LiveSettings = { guard: null, redactors: [new ValueRedactor({})] };
  withExchange((exchange, records) => {
    exchange.pass("client", bytes('{"jsonrpc":"2.0","id":1,"method":"ping"}'));
    exchange.pass(
      "server",
      bytes('{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"bad mail ana@example.com"}}'),
    );
    const error = records()[1]!.error as { message: string };
    assert.equal(error.message, "bad mail [REDACTED:email]");
    assert.deepEqual(records()[1]!.redacted, ["error.message"]);
  }, live);
});

Deno.test("the record's tool_name is the tool the guardrails judged, tool_name included", () => {
  withExchange((exchange, records) => {
    exchange.pass(
      "client",
      bytes('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"tool_name":"rm"}}'),
    );
    assert.equal(records()[0]!.tool_name, "rm");
  }, guarded({ policy: DENY_RM }));
});

Deno.test("only a session the proxy or server vouched for gets a rate budget of its own", () => {
  withExchange((exchange) => {
    const call = (id: number) =>
      exchange.pass(
        "client",
        bytes(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo"}}`),
      ).forward !== null;
    exchange.session = "claimed-by-the-client";
    assert.equal(call(1), true, "the shared client_id bucket's one token");
    exchange.session = "another-claim";
    assert.equal(call(2), false, "a new claimed session is the same shared bucket");
    exchange.vouch();
    assert.equal(call(3), true, "a vouched session has its own bucket");
    assert.equal(call(4), false);
  }, guarded({ limiter: new RateLimiter({ requests_per_minute: 1 }, () => 0) }));
});

// The wire rules (src/jsonrpc/framing.ts): what not every MCP SDK reads as the message the proxy
// reads is recorded, answered where an id can be found, and never forwarded, in every mode.

/** The line: one ping to a `\n` reader, a ping and a delete_file call to Python's. */
const SMUGGLED = '{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":\r' +
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}' +
  "\r}}";

for (
  const [mode, live] of [
    ["guardrails off", { guard: null, redactors: [] }],
    ["a policy on", guarded({ policy: DENY_RM })],
  ] as const
) {
  Deno.test(`with ${mode}, a line holding a bare \\r is refused: recorded invalid, answered -32600 for its id, not forwarded`, () => {
    withExchange((exchange, records) => {
      const out = exchange.receive("client", lineFrame(SMUGGLED));
      assert.equal(out.length, 1, "only the proxy's answer goes out");
      assert.equal(out[0]!.to, "client");
      const answer = JSON.parse(dec.decode(out[0]!.bytes));
      assert.equal(answer.id, 2);
      assert.equal(answer.error.code, -32600);
      assert.equal(answer.error.data.violation, "carriage_return");
      const [record, reply] = records();
      assert.equal(record!.kind, "invalid");
      assert.equal(record!.direction, "client_to_server");
      assert.equal(record!.jsonrpc_id, 2);
      assert.equal(record!.wire_sha256, sha256Hex(enc.encode(SMUGGLED)));
      assert.deepEqual((record!.error as { data: unknown }).data, {
        violation: "carriage_return",
        reason: "a \\r inside the line, which some MCP SDKs read as a line end",
        forwarded: false,
      });
      assert.equal(record!.method, null, "no method is claimed for it");
      assert.equal(
        (record!.decision as { action?: string } | null)?.action,
        live.guard === null ? undefined : "deny",
      );
      assert.equal(reply!.kind, "error");
      assert.equal(reply!.direction, "server_to_client");
      assert.equal(exchange.hasPending(), false, "nothing waits: the ping was never sent");
    }, live);
  });
}

Deno.test("a server's unreadable answer to a pending request is answered to the client in its place", () => {
  withExchange((exchange, records) => {
    const call = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ls"}}';
    assert.equal(exchange.receive("client", lineFrame(call)).length, 1);
    const bad = '{"jsonrpc":"2.0","id":9,"result":{"content":[]}}\r{"jsonrpc":"2.0","id":10}';
    const out = exchange.receive("server", lineFrame(bad));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.to, "client", "the client that waits hears the error");
    const answer = JSON.parse(dec.decode(out[0]!.bytes));
    assert.deepEqual([answer.id, answer.error.code], [9, -32600]);
    assert.equal(exchange.hasPending(), false);
    const rows = records();
    assert.deepEqual(rows.map((r) => [r.kind, r.direction]), [
      ["request", "client_to_server"],
      ["invalid", "server_to_client"],
      ["error", "server_to_client"],
    ]);
    assert.equal(rows[2]!.method, "tools/call", "the proxy's answer names the request it ends");
  });
});

Deno.test("a client's unreadable answer to a server request is answered to the server in its place", () => {
  withExchange((exchange) => {
    exchange.receive(
      "server",
      lineFrame('{"jsonrpc":"2.0","id":"s1","method":"roots/list"}'),
    );
    const out = exchange.receive("client", lineFrame('{"jsonrpc":"2.0","id":"s1","result":NaN}'));
    assert.deepEqual(out.map((o) => o.to), ["server"]);
    assert.equal(JSON.parse(dec.decode(out[0]!.bytes)).id, "s1");
    assert.equal(exchange.isPending("server", "s1"), false);
  });
});

Deno.test("a refused message whose id cannot be found: a client's is answered with id null, unless blank or an answer; a server's never", () => {
  withExchange((exchange, records) => {
    const cases: [Side, string, ViolationCode, number][] = [
      ["client", "", "blank", 0],
      ["client", "   ", "blank", 0],
      [
        "client",
        '{"jsonrpc":"2.0","id":5,"result":{},"error":{"code":1,"message":"m"}}',
        "not_jsonrpc",
        0,
      ],
      ["client", "not json at all", "not_json", 1],
      ["client", '{"jsonrpc":"2.0","method":"notifications/x"} ', "trailing_whitespace", 1],
      [
        "client",
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"1.0","id":2,"method":"ping"}]',
        "not_jsonrpc",
        1,
      ],
      ["server", "debug: a server printing to stdout", "not_json", 0],
      ["server", '{"jsonrpc":"2.0","method":"notifications/x"} ', "trailing_whitespace", 0],
    ];
    for (const [from, text, code, answers] of cases) {
      const p = exchange.passLine(from, enc.encode(text));
      assert.deepEqual([p.forward, p.violation?.code], [null, code], text);
      assert.equal(p.replies.length, answers, text);
      for (const reply of p.replies) {
        assert.equal(reply.to, from);
        const answer = JSON.parse(dec.decode(reply.bytes));
        assert.deepEqual([answer.id, answer.error.code], [null, -32600], text);
      }
    }
    const invalid = records().filter((r) => r.kind === "invalid");
    assert.equal(invalid.length, cases.length, "each is recorded once");
  });
});

Deno.test('JSON without "jsonrpc", which the Java SDK reads as a call, is refused and its id answered', () => {
  withExchange((exchange, records) => {
    const p = exchange.pass(
      "client",
      bytes('{"id":3,"method":"tools/call","params":{"name":"delete_file"}}'),
    );
    assert.equal(p.forward, null);
    assert.equal(answersOf(p)[0].id, 3);
    assert.equal(records()[0]!.jsonrpc_id, 3);
  });
});

Deno.test("an HTTP body may hold line breaks between tokens; a stdio line may not, nor end without one", () => {
  withExchange((exchange) => {
    const body = bytes('{"jsonrpc":"2.0",\r\n "id":1,\r\n "method":"ping"}\r\n');
    assert.equal(exchange.pass("client", body).forward, body);
    assert.equal(exchange.passLine("client", body).violation?.code, "carriage_return");
    const ping = bytes('{"jsonrpc":"2.0","id":2,"method":"ping"}');
    assert.equal(exchange.passLine("client", ping, false).violation?.code, "unterminated");
    assert.equal(exchange.passLine("client", ping).forward, ping);
  });
});

Deno.test("nesting past maxJsonDepth is refused before any parse; exactly the limit passes byte-exact", () => {
  withExchange(
    (exchange, records) => {
      // Depth 1 is the message object, 2 params, 3 the arguments object, then the arrays.
      const nested = (arrays: number) =>
        bytes(
          '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{"a":' +
            "[".repeat(arrays) + "]".repeat(arrays) + "}}}",
        );
      const exact = nested(997);
      assert.equal(exchange.pass("client", exact).forward, exact);
      for (const arrays of [998, 5000, 100_000]) {
        const p = exchange.pass("client", nested(arrays));
        assert.equal(p.forward, null, `${arrays}`);
        const answer = answersOf(p)[0];
        assert.deepEqual([answer.id, answer.error.code], [4, -32600]);
        assert.equal(answer.error.data.max_json_depth, 1000);
      }
      const rows = records();
      assert.deepEqual(rows.map((r) => r.kind), [
        "request",
        "invalid",
        "error",
        "invalid",
        "error",
        "invalid",
        "error",
      ]);
      assert.equal(
        (rows[1]!.error as { data: { violation: string } }).data.violation,
        "max_json_depth",
      );
    },
    undefined,
    { maxJsonDepth: 1000 },
  );
});

Deno.test("a refused answer from an HTTP upstream comes back as forward: the proxy's -32600 for the request, sent on in its place", () => {
  withExchange((exchange, records) => {
    exchange.pass("client", bytes('{"jsonrpc":"2.0","id":"a","method":"tools/list"}'));
    const p = exchange.pass("server", bytes('{"jsonrpc":"2.0","id":"a","result":{"n":NaN}}'));
    assert.equal(p.violation?.code, "not_json");
    assert.deepEqual(p.replies, [], "nothing goes back to the server");
    const answer = JSON.parse(dec.decode(p.forward!));
    assert.deepEqual([answer.id, answer.error.code], ["a", -32600]);
    const sent = records().at(-1)!;
    assert.equal(sent.wire_sha256, sha256Hex(p.forward!), "the record hashes what is sent on");
    assert.equal(sent.method, "tools/list");
  });
});
