import assert from "node:assert/strict";
import { CommandLineError, splitCommandLine, upstreamEnv } from "./command_line.ts";

Deno.test("splitCommandLine splits at unquoted white space of any kind and length", () => {
  assert.deepEqual(splitCommandLine("npx @modelcontextprotocol/server-filesystem /tmp"), [
    "npx",
    "@modelcontextprotocol/server-filesystem",
    "/tmp",
  ]);
  assert.deepEqual(splitCommandLine("  a \t b\n\nc  "), ["a", "b", "c"]);
  assert.deepEqual(splitCommandLine(""), []);
  assert.deepEqual(splitCommandLine("   "), []);
});

Deno.test("splitCommandLine keeps quoted text together, quotes removed", () => {
  assert.deepEqual(splitCommandLine(`npx -y "@scope/pkg" '/tmp/my dir'`), [
    "npx",
    "-y",
    "@scope/pkg",
    "/tmp/my dir",
  ]);
  assert.deepEqual(splitCommandLine(`a"b c"d 'e'"f"`), ["ab cd", "ef"]);
  assert.deepEqual(splitCommandLine(`"" ''`), ["", ""]);
  assert.deepEqual(splitCommandLine(`say "it's" 'a "b"'`), ["say", "it's", 'a "b"']);
});

Deno.test("splitCommandLine reads backslash escapes as a POSIX shell does", () => {
  assert.deepEqual(splitCommandLine(String.raw`a\ b c\"d \\`), ["a b", 'c"d', "\\"]);
  assert.deepEqual(splitCommandLine(String.raw`"a\"b" "c\\d" "e\nf" "\$x"`), [
    'a"b',
    "c\\d",
    "e\\nf",
    "\\$x",
  ]);
  assert.deepEqual(splitCommandLine(String.raw`'a\b' 'c\'`), ["a\\b", "c\\"]);
  assert.deepEqual(splitCommandLine("end\\"), ["end\\"]);
});

Deno.test("splitCommandLine refuses an unterminated quote", () => {
  assert.throws(() => splitCommandLine(`npx "pkg`), CommandLineError);
  assert.throws(() => splitCommandLine(`npx 'pkg`), CommandLineError);
  assert.throws(() => splitCommandLine(String.raw`npx "pkg\"`), CommandLineError);
});

Deno.test("splitCommandLine in Windows mode keeps backslashes in paths", () => {
  assert.deepEqual(
    splitCommandLine(String.raw`npx @modelcontextprotocol/server-filesystem C:\Temp`, true),
    ["npx", "@modelcontextprotocol/server-filesystem", "C:\\Temp"],
  );
  assert.deepEqual(splitCommandLine(String.raw`C:\a\\b\ c`, true), ["C:\\a\\\\b\\", "c"]);
  assert.deepEqual(
    splitCommandLine(String.raw`"C:\Program Files\node\node.exe" server.js`, true),
    ["C:\\Program Files\\node\\node.exe", "server.js"],
  );
  assert.deepEqual(splitCommandLine(String.raw`say \"hi\"`, true), ["say", '"hi"']);
});

Deno.test("splitCommandLine in Windows mode keeps a UNC path's double backslash inside quotes", () => {
  // The module's rule: on Windows a backslash is literal unless it precedes a quote.
  assert.deepEqual(
    splitCommandLine(String.raw`node "\\server\share\mcp.js"`, true),
    ["node", String.raw`\\server\share\mcp.js`],
  );
});

Deno.test("upstreamEnv drops AUDIT_SECRET, DASHBOARD_AUTH_TOKEN and every MCP_AUDIT_ variable", () => {
  const env = {
    PATH: "/usr/bin",
    HOME: "/home/u",
    AUDIT_SECRET: "s",
    DASHBOARD_AUTH_TOKEN: "the Go tool's name for dashboard.auth.token",
    PROXY_PORT: "kept: too generic to take away",
    MCP_AUDIT_SIGNING_SECRET: "s2",
    MCP_AUDIT_DASHBOARD_AUTH_TOKEN: "t",
    MCP_AUDIT_PROXY_PORT: "1",
    AUDIT_SECRET_HINT: "kept: not ours",
    GITHUB_TOKEN: "kept: the upstream may need it",
  };
  assert.deepEqual(upstreamEnv(env), {
    PATH: "/usr/bin",
    HOME: "/home/u",
    PROXY_PORT: "kept: too generic to take away",
    AUDIT_SECRET_HINT: "kept: not ours",
    GITHUB_TOKEN: "kept: the upstream may need it",
  });
  assert.equal(env.AUDIT_SECRET, "s", "the input is not modified");
});
