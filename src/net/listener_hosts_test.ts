import assert from "node:assert/strict";
import { hostOf, isLoopback, listenerHosts } from "./listener_hosts.ts";

Deno.test("isLoopback: 127/8, ::1 and localhost are loopback; all interfaces and others are not", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "LOCALHOST"]) {
    assert.ok(isLoopback(a), a);
  }
  for (const a of ["0.0.0.0", "::", "", "10.0.0.1", "128.0.0.1", "127.0.0.1.nip.io"]) {
    assert.ok(!isLoopback(a), a);
  }
});

Deno.test("listenerHosts: a loopback bind answers loopback names and its own address, any other bind any Host", () => {
  assert.deepEqual(
    listenerHosts("127.0.0.2"),
    new Set(["localhost", "127.0.0.1", "[::1]", "127.0.0.2"]),
  );
  assert.deepEqual(listenerHosts("::1"), new Set(["localhost", "127.0.0.1", "[::1]"]));
  assert.equal(listenerHosts("0.0.0.0"), undefined);
  assert.equal(listenerHosts("192.168.1.5"), undefined);
});

Deno.test("hostOf: lower-cases, drops the port, keeps IPv6 brackets, refuses what is not one host", () => {
  assert.equal(hostOf("LocalHost:9090"), "localhost");
  assert.equal(hostOf("127.0.0.1"), "127.0.0.1");
  assert.equal(hostOf("[::1]:80"), "[::1]");
  for (const bad of ["", "a b", "host:", "host:x", "[::1", "[zz]", "a@b", "h:1:2", "host:123456"]) {
    assert.equal(hostOf(bad), null, JSON.stringify(bad));
  }
});
