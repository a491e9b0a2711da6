import assert from "node:assert/strict";
import {
  classifyLine,
  classifyValue,
  decodeText,
  errorResponse,
  idKey,
  type Message,
} from "./message.ts";
import { isRawNumber, rawNumber } from "./json.ts";

const enc = new TextEncoder();
const one = (text: string | Uint8Array): Message => {
  const c = classifyLine(typeof text === "string" ? enc.encode(text) : text);
  assert.equal(c.batch, false);
  assert.equal(c.messages.length, 1);
  return c.messages[0]!;
};
const reason = (m: Message): string => {
  assert.equal(m.kind, "invalid");
  return m.kind === "invalid" ? m.reason : "";
};

Deno.test("classifyLine recognises a request with and without params", () => {
  assert.deepEqual(one('{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), {
    kind: "request",
    id: 1,
    method: "tools/list",
    params: undefined,
  });
  assert.deepEqual(one('{"jsonrpc":"2.0","id":"a","method":"m","params":[1,2]}'), {
    kind: "request",
    id: "a",
    method: "m",
    params: [1, 2],
  });
  assert.deepEqual(one('{"jsonrpc":"2.0","id":null,"method":"m","params":{}}'), {
    kind: "request",
    id: null,
    method: "m",
    params: {},
  });
});

Deno.test("classifyLine recognises a notification by its missing id", () => {
  assert.deepEqual(
    one('{"jsonrpc":"2.0","method":"notifications/initialized","params":{"x":1}}'),
    { kind: "notification", method: "notifications/initialized", params: { x: 1 } },
  );
});

Deno.test("classifyLine recognises responses, including a null result", () => {
  assert.deepEqual(one('{"jsonrpc":"2.0","id":7,"result":{"ok":true}}'), {
    kind: "response",
    id: 7,
    result: { ok: true },
  });
  assert.deepEqual(one('{"jsonrpc":"2.0","id":7,"result":null}'), {
    kind: "response",
    id: 7,
    result: null,
  });
});

Deno.test("classifyLine recognises error responses and keeps data", () => {
  assert.deepEqual(
    one('{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"nope","data":{"a":1}}}'),
    { kind: "error", id: "x", error: { code: -32601, message: "nope", data: { a: 1 } } },
  );
  assert.deepEqual(one('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}'), {
    kind: "error",
    id: null,
    error: { code: -32700, message: "parse" },
  });
});

Deno.test("classifyLine reports bad UTF-8, non-JSON and blank lines as invalid", () => {
  assert.equal(reason(one(new Uint8Array([0x7b, 0xff, 0x7d]))), "invalid UTF-8");
  assert.equal(reason(one(new Uint8Array([0xc3]))), "invalid UTF-8");
  assert.equal(reason(one("{not json")), "not JSON");
  assert.equal(reason(one("")), "blank line");
  assert.equal(reason(one(" \t ")), "blank line");
});

Deno.test("classifyLine reports messages that are not JSON-RPC 2.0 as invalid, keeping a good id", () => {
  const cases: [string, string, unknown][] = [
    ['{"jsonrpc":"1.0","id":3,"method":"m"}', 'jsonrpc is not "2.0"', 3],
    ['{"id":3,"method":"m"}', 'jsonrpc is not "2.0"', 3],
    ['{"jsonrpc":2.0,"id":3,"method":"m"}', 'jsonrpc is not "2.0"', 3],
    ['{"jsonrpc":"2.0","id":true,"method":"m"}', "id is not a string, number or null", undefined],
    [
      '{"jsonrpc":"2.0","id":{"a":1},"method":"m"}',
      "id is not a string, number or null",
      undefined,
    ],
    ['{"jsonrpc":"2.0","id":[1],"method":"m"}', "id is not a string, number or null", undefined],
    ['{"jsonrpc":"2.0","id":4,"method":5}', "method is not a string", 4],
    ['{"jsonrpc":"2.0","id":4,"method":"m","params":"x"}', "params is not an object or array", 4],
    ['{"jsonrpc":"2.0","id":4,"method":"m","params":null}', "params is not an object or array", 4],
    [
      '{"jsonrpc":"2.0","id":4,"result":1,"error":{"code":1,"message":"m"}}',
      "neither a request, a notification nor a response",
      4,
    ],
    ['{"jsonrpc":"2.0","result":1}', "neither a request, a notification nor a response", undefined],
    [
      '{"jsonrpc":"2.0","id":4,"error":{"code":"x","message":"m"}}',
      "error is not {code, message}",
      4,
    ],
    [
      '{"jsonrpc":"2.0","id":4,"error":{"code":1.5,"message":"m"}}',
      "error is not {code, message}",
      4,
    ],
    ['{"jsonrpc":"2.0","id":4}', "neither a request, a notification nor a response", 4],
    ["42", "not a JSON-RPC object", undefined],
    ['"x"', "not a JSON-RPC object", undefined],
    ["null", "not a JSON-RPC object", undefined],
  ];
  for (const [text, want, id] of cases) {
    const m = one(text);
    assert.equal(reason(m), want, text);
    assert.equal(m.kind === "invalid" ? m.id : "?", id, text);
  }
});

Deno.test("classifyLine classifies each member of a batch", () => {
  const c = classifyLine(
    enc.encode('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},5]'),
  );
  assert.equal(c.batch, true);
  assert.deepEqual(c.messages.map((m) => m.kind), ["request", "notification", "invalid"]);
});

Deno.test("classifyLine reports an empty batch as one invalid message", () => {
  const c = classifyLine(enc.encode(" [ ] "));
  assert.equal(c.batch, true);
  assert.deepEqual(c.messages, [{ kind: "invalid", reason: "empty batch", id: undefined }]);
});

Deno.test('classifyLine keeps the id\'s type: 1 and "1" stay different', () => {
  const a = one('{"jsonrpc":"2.0","id":1,"method":"m"}');
  const b = one('{"jsonrpc":"2.0","id":"1","method":"m"}');
  assert.ok(a.kind === "request" && b.kind === "request");
  assert.equal(a.id, 1);
  assert.equal(b.id, "1");
  assert.notEqual(idKey(a.id), idKey(b.id));
  assert.notEqual(idKey(null), idKey("null"));
  assert.equal(idKey(1), idKey(1.0));
});

Deno.test("classifyLine keeps a big-number id as its digits, and idKey tells neighbours apart", () => {
  const a = one('{"jsonrpc":"2.0","id":12345678901234567890,"method":"m"}');
  const b = one('{"jsonrpc":"2.0","id":12345678901234567891,"result":{}}');
  assert.ok(a.kind === "request" && b.kind === "response");
  assert.ok(isRawNumber(a.id));
  // As doubles these two ids are the same number.
  assert.equal(Number("12345678901234567890"), Number("12345678901234567891"));
  assert.notEqual(idKey(a.id), idKey(b.id));
  assert.equal(idKey(a.id), idKey(rawNumber("12345678901234567890")));
  assert.notEqual(idKey(a.id), idKey("12345678901234567890"));
  assert.equal(
    errorResponse(a.id, { code: -32600, message: "m" }),
    '{"jsonrpc":"2.0","id":12345678901234567890,"error":{"code":-32600,"message":"m"}}',
  );
});

Deno.test("classifyValue treats a raw number at the top level as not a JSON-RPC object", () => {
  assert.deepEqual(classifyValue(rawNumber("12345678901234567890")), {
    kind: "invalid",
    reason: "not a JSON-RPC object",
    id: undefined,
  });
});

Deno.test("errorResponse keeps the id's type", () => {
  assert.equal(
    errorResponse("1", {
      code: -32029,
      message: "rate limit exceeded",
      data: { retry_after_ms: 5 },
    }),
    '{"jsonrpc":"2.0","id":"1","error":{"code":-32029,"message":"rate limit exceeded","data":{"retry_after_ms":5}}}',
  );
  assert.equal(
    errorResponse(null, { code: -32700, message: "x" }),
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}',
  );
});

Deno.test("decodeText reads exactly what a UTF-8 decoder that throws on invalid bytes reads", () => {
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const expected = (bytes: Uint8Array): string | null => {
    try {
      return strict.decode(bytes);
    } catch {
      return null;
    }
  };
  // Valid sequences of every length, and the classic invalid ones: overlong forms, surrogates,
  // beyond U+10FFFF, lone continuation bytes, sequences cut short, bytes never used, a BOM.
  const pieces: number[][] = [
    [0x7b],
    [0x22],
    [0x61],
    [0x00],
    [0x7f],
    [0xc3, 0xa9],
    [0xe2, 0x82, 0xac],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xf4, 0x8f, 0xbf, 0xbf],
    [0xef, 0xbb, 0xbf],
    [0xed, 0x9f, 0xbf],
    [0xee, 0x80, 0x80],
    [0xc0, 0x80],
    [0xc1, 0xbf],
    [0xe0, 0x80, 0x80],
    [0xe0, 0x9f, 0xbf],
    [0xf0, 0x80, 0x80, 0x80],
    [0xed, 0xa0, 0x80],
    [0xed, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0x80],
    [0xbf],
    [0xc3],
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0xfe],
    [0xff],
  ];
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  let invalid = 0;
  for (let i = 0; i < 5000; i++) {
    const bytes: number[] = [];
    for (let n = Math.floor(next() * 8); n > 0; n--) {
      bytes.push(...pieces[Math.floor(next() * pieces.length)]!);
    }
    // As a view into a larger buffer too: the pumps pass subarrays.
    const whole = new Uint8Array([0xff, ...bytes, 0xc3]);
    for (const view of [new Uint8Array(bytes), whole.subarray(1, whole.length - 1)]) {
      const want = expected(view);
      assert.equal(decodeText(view), want, `bytes ${bytes.map((b) => b.toString(16))}`);
      if (want === null) invalid++;
    }
  }
  assert.ok(invalid > 1000 && invalid < 9000, `${invalid} invalid of 10000`);
});
