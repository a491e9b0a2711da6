import assert from "node:assert/strict";
import {
  ConnectionWatch,
  type Stall,
  sweepInterval,
  type WatchedSocket,
} from "./connection_watch.ts";

/** A connection whose counters the test moves by hand. */
class FakeSocket implements WatchedSocket {
  bytesRead = 0;
  bytesWritten = 0;
  writableLength = 0;
  destroyed = false;
  #onClose: (() => void)[] = [];
  once(_event: "close", listener: () => void): this {
    this.#onClose.push(listener);
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    for (const l of this.#onClose.splice(0)) l();
    return this;
  }
}

function setup(readTimeoutMs: number, writeTimeoutMs: number) {
  let now = 0;
  const stalls: Stall[] = [];
  const watch = new ConnectionWatch({
    readTimeoutMs,
    writeTimeoutMs,
    onStall: (stall) => stalls.push(stall),
    now: () => now,
  });
  const advance = (ms: number): void => {
    now += ms;
    watch.sweep();
  };
  return { watch, stalls, advance };
}

Deno.test("read_timeout bounds each gap of a request body, never its whole length", () => {
  const { watch, stalls, advance } = setup(1000, 0);
  const socket = new FakeSocket();
  watch.track(socket);
  watch.reading(socket, true);
  // Ten times the deadline in total, but a byte in every gap: the body goes on.
  for (let i = 0; i < 10; i++) {
    advance(900);
    socket.bytesRead += 1;
  }
  // The last byte is seen at this sweep; the gap is counted from it.
  advance(900);
  advance(999);
  assert.equal(socket.destroyed, false);
  advance(1);
  assert.equal(socket.destroyed, true, "a gap as long as the deadline closes the connection");
  assert.deepEqual(stalls, ["read"]);
  assert.equal(watch.size, 0);
});

Deno.test("a connection not expecting a body is not cut for sending nothing", () => {
  const { watch, stalls, advance } = setup(1000, 1000);
  const socket = new FakeSocket();
  watch.track(socket);
  for (let i = 0; i < 10; i++) advance(1000);
  assert.equal(socket.destroyed, false);
  assert.deepEqual(stalls, []);
});

Deno.test("write_timeout bounds a client that takes nothing while bytes wait, never a quiet stream", () => {
  const { watch, stalls, advance } = setup(0, 1000);
  const socket = new FakeSocket();
  watch.track(socket);
  // A stream with nothing to send for ten deadlines stays open.
  for (let i = 0; i < 10; i++) advance(1000);
  assert.equal(socket.destroyed, false);
  // Bytes wait and the client takes some in every gap: still open.
  socket.bytesWritten = 100_000;
  socket.writableLength = 90_000;
  for (let i = 0; i < 5; i++) {
    advance(900);
    socket.writableLength -= 10_000;
  }
  advance(900);
  advance(999);
  assert.equal(socket.destroyed, false);
  advance(1);
  assert.equal(socket.destroyed, true);
  assert.deepEqual(stalls, ["write"]);
});

Deno.test("the watch counts open connections until they close", () => {
  const { watch } = setup(1000, 1000);
  const a = new FakeSocket();
  const b = new FakeSocket();
  watch.track(a);
  watch.track(b);
  assert.equal(watch.size, 2);
  a.destroy();
  assert.equal(watch.size, 1);
});

Deno.test("the sweep runs at a quarter of the shortest deadline, between 10 ms and 1 s", () => {
  assert.equal(sweepInterval(30_000, 10_000), 1000);
  assert.equal(sweepInterval(400, 0), 100);
  assert.equal(sweepInterval(20), 10);
  assert.equal(sweepInterval(0, 0), 1000);
});
