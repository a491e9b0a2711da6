import assert from "node:assert/strict";
import { mayRetry, retryAfterMs, withRetries } from "./retry.ts";
import { classifyLine } from "../../jsonrpc/message.ts";

const msgs = (text: string) => classifyLine(new TextEncoder().encode(text)).messages;

Deno.test("only safe reads may be retried; tools/call and initialize never", () => {
  assert.equal(mayRetry("GET", []), true);
  assert.equal(mayRetry("POST", msgs('{"jsonrpc":"2.0","id":1,"method":"tools/list"}')), true);
  assert.equal(
    mayRetry("POST", msgs('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}')),
    false,
  );
  assert.equal(
    mayRetry("POST", msgs('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')),
    false,
  );
  assert.equal(
    mayRetry(
      "POST",
      msgs(
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call"}]',
      ),
    ),
    false,
  );
  assert.equal(
    mayRetry("POST", msgs('{"jsonrpc":"2.0","method":"notifications/initialized"}')),
    false,
  );
  assert.equal(mayRetry("DELETE", []), false);
});

Deno.test("Retry-After is read as seconds or as a date", () => {
  assert.equal(retryAfterMs("2", 0), 2000);
  assert.equal(retryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
  assert.equal(retryAfterMs("soon", 0), undefined);
  assert.equal(retryAfterMs(null, 0), undefined);
});

Deno.test("503 and 429 answers are retried with backoff until one succeeds, Retry-After honoured", async () => {
  let calls = 0;
  const answers = [
    new Response("busy", { status: 503 }),
    new Response("slow down", { status: 429, headers: { "retry-after": "0" } }),
    new Response("ok", { status: 200 }),
  ];
  const delays: number[] = [];
  const res = await withRetries(
    () => Promise.resolve(answers[calls++]!),
    { maxRetries: 3, initialIntervalMs: 5, maxIntervalMs: 50 },
    new AbortController().signal,
    (_reason, ms) => delays.push(ms),
  );
  assert.equal(await res.text(), "ok");
  assert.equal(calls, 3);
  assert.deepEqual(delays, [5, 0]);
});

Deno.test("retries stop at max_retries and the last answer is returned; other statuses are not retried", async () => {
  let calls = 0;
  const res = await withRetries(
    () => {
      calls++;
      return Promise.resolve(new Response(null, { status: 503 }));
    },
    { maxRetries: 2, initialIntervalMs: 1, maxIntervalMs: 2 },
    new AbortController().signal,
    () => {},
  );
  assert.equal(res.status, 503);
  assert.equal(calls, 3);
  let once = 0;
  const notFound = await withRetries(
    () => {
      once++;
      return Promise.resolve(new Response(null, { status: 500 }));
    },
    { maxRetries: 5, initialIntervalMs: 1, maxIntervalMs: 2 },
    new AbortController().signal,
    () => {},
  );
  assert.equal(notFound.status, 500);
  assert.equal(once, 1);
});

Deno.test("a refused connection is retried, then its error is thrown", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const reasons: string[] = [];
  await assert.rejects(withRetries(
    () => fetch(`http://127.0.0.1:${port}/mcp`),
    { maxRetries: 2, initialIntervalMs: 1, maxIntervalMs: 2 },
    new AbortController().signal,
    (reason) => reasons.push(reason),
  ));
  assert.deepEqual(reasons, ["network", "network"]);
});
