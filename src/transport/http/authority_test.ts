import assert from "node:assert/strict";
import { AuthorityError, parseAuthority, parseOrigin } from "./authority.ts";

Deno.test("a Host is one host and an optional port: names, IPv4 and bracketed IPv6", () => {
  assert.deepEqual(parseAuthority("LocalHost"), { host: "localhost", port: null });
  assert.deepEqual(parseAuthority("localhost:8080"), { host: "localhost", port: 8080 });
  assert.deepEqual(parseAuthority("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseAuthority("[::1]"), { host: "[::1]", port: null });
  assert.deepEqual(parseAuthority("[::1]:65535"), { host: "[::1]", port: 65535 });
  assert.deepEqual(parseAuthority("[::FFFF:10.0.0.1]"), { host: "[::ffff:10.0.0.1]", port: null });
  assert.deepEqual(parseAuthority("[1:2:3:4:5:6:7:8]").host, "[1:2:3:4:5:6:7:8]");
  assert.deepEqual(parseAuthority("mcp_internal.example-1.com").host, "mcp_internal.example-1.com");
});

Deno.test("every malformed Host is refused with a reason, never repaired", () => {
  const malformed = [
    "[::1]evil.com",
    "[::1]:80evil",
    "[::1",
    "::1",
    "[::1]]",
    "[1:2:3:4:5:6:7:8:9]",
    "[1::2::3]",
    "[::1%25eth0]",
    "[v1.x]",
    "[localhost]",
    "a b",
    " localhost",
    "localhost\t",
    "host:port:extra",
    "host:99999",
    "host:65536",
    "host:",
    "host:-1",
    "host:+80",
    "host:0x50",
    "",
    "lé.example",
    "xn--l-9fa.example\u00a0",
    "user@localhost",
    "user:pw@localhost:80",
    "localhost.",
    ".localhost",
    "local..host",
    "localhost%2e",
    "%6cocalhost",
    "a,b",
    "localhost, evil.com",
    "127.1",
    "127.0.0.01",
    "256.0.0.1",
    "a.0x7f",
    "-localhost",
    "localhost-",
    "local!host",
    "local/host",
    "local?host",
    "local#host",
    "local\\host",
    "a".repeat(64) + ".com",
  ];
  for (const host of malformed) {
    assert.throws(() => parseAuthority(host), AuthorityError, JSON.stringify(host));
  }
});

Deno.test("an Origin is scheme://host[:port] with nothing after", () => {
  assert.deepEqual(parseOrigin("http://localhost:3000"), {
    scheme: "http",
    host: "localhost",
    port: 3000,
  });
  assert.deepEqual(parseOrigin("https://[::1]").host, "[::1]");
  for (
    const origin of [
      "http://[::1]evil.com",
      "http://localhost/",
      "http://localhost/path",
      "http://localhost?x",
      "http://user@localhost",
      "http://a b",
      "localhost",
      "http:/localhost",
      "//localhost",
      "http://",
      "http://localhost:99999",
      "1http://localhost",
    ]
  ) {
    assert.throws(() => parseOrigin(origin), AuthorityError, origin);
  }
});
