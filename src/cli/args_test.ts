import assert from "node:assert/strict";
import { type Command, HELP, parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { wrappedArgs } from "../clients/wrapped_argv.ts";

function proxy(argv: string[]): Extract<Command, { kind: "proxy" }> {
  const c = parseCommand(argv);
  assert.equal(c.kind, "proxy");
  return c as Extract<Command, { kind: "proxy" }>;
}

Deno.test("parseCommand maps each proxy flag to its config key", () => {
  const c = proxy([
    "--transport",
    "http",
    "--upstream",
    "http://localhost:8080",
    "--port",
    "8443",
    "--upstream-timeout",
    "1500",
    "--storage",
    "sqlite",
    "--no-dashboard",
    "--no-metrics",
    "--config",
    "/etc/mcp-audit.yaml",
    "--log-level",
    "debug",
  ]);
  assert.deepEqual(
    Object.fromEntries(c.flags),
    {
      "proxy.transport": { flag: "--transport", value: "http" },
      "proxy.upstream": { flag: "--upstream", value: "http://localhost:8080" },
      "proxy.port": { flag: "--port", value: 8443 },
      "proxy.upstream_timeout_ms": { flag: "--upstream-timeout", value: 1500 },
      "audit.storage": { flag: "--storage", value: "sqlite" },
      "dashboard.enabled": { flag: "--no-dashboard", value: false },
      "metrics.enabled": { flag: "--no-metrics", value: false },
    },
  );
  assert.equal(c.configPath, "/etc/mcp-audit.yaml");
  assert.equal(c.logLevel, "debug");
  assert.deepEqual(c.upstreamArgv, []);
});

Deno.test("parseCommand with no arguments runs the proxy with defaults", () => {
  const c = proxy([]);
  assert.equal(c.flags.size, 0);
  assert.equal(c.configPath, undefined);
  assert.equal(c.logLevel, "info");
  assert.deepEqual(c.upstreamArgv, []);
});

Deno.test("parseCommand accepts --flag=value", () => {
  const c = proxy(["--port=9000", "--transport=http", "--upstream=npx pkg /tmp"]);
  assert.equal(c.flags.get("proxy.port")?.value, 9000);
  assert.equal(c.flags.get("proxy.upstream")?.value, "npx pkg /tmp");
});

Deno.test("parseCommand takes everything after the first -- as the upstream argv", () => {
  const c = proxy(["--port", "1", "--", "npx", "-y", "pkg", "--port", "2", "--", "x"]);
  assert.deepEqual(c.upstreamArgv, ["npx", "-y", "pkg", "--port", "2", "--", "x"]);
  assert.equal(c.flags.get("proxy.port")?.value, 1);
  assert.equal(c.flags.has("proxy.upstream"), false);
});

Deno.test("parseCommand refuses --upstream together with an argv after --", () => {
  assert.throws(() => parseCommand(["--upstream", "a", "--", "b"]), UsageError);
});

Deno.test("parseCommand refuses a -- with nothing after it", () => {
  assert.throws(() => parseCommand(["--"]), UsageError);
  assert.throws(() => parseCommand(["--port", "1", "--"]), UsageError);
});

Deno.test("parseCommand refuses a bad --log-level, naming the flag", () => {
  assert.throws(() => parseCommand(["--log-level", "verbose"]), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.ok(e.message.startsWith("--log-level"), e.message);
    return true;
  });
  for (const level of ["debug", "info", "warn", "error"]) {
    assert.equal(proxy(["--log-level", level]).logLevel, level);
  }
});

Deno.test("parseCommand refuses unknown flags, positionals and missing values", () => {
  assert.throws(() => parseCommand(["--prot", "1"]), UsageError);
  assert.throws(() => parseCommand(["npx"]), UsageError);
  assert.throws(() => parseCommand(["--port"]), UsageError);
  assert.throws(() => parseCommand(["--no-dashboard=yes"]), UsageError);
});

Deno.test("parseCommand leaves a non-numeric --port for the config check to reject by flag", () => {
  const c = proxy(["--port", "80a"]);
  assert.deepEqual(c.flags.get("proxy.port"), { flag: "--port", value: "80a" });
  assert.throws(
    () => loadConfig({ env: {}, flags: c.flags, upstreamArgv: [] }),
    (e: unknown) => e instanceof ConfigError && e.key === "--port",
  );
  const t = proxy(["--upstream-timeout=-5"]);
  assert.throws(
    () => loadConfig({ env: {}, flags: t.flags, upstreamArgv: [] }),
    (e: unknown) => e instanceof ConfigError && e.key === "--upstream-timeout",
  );
});

Deno.test("parseCommand recognises help, version and the subcommands", () => {
  assert.deepEqual(parseCommand(["--help"]), { kind: "help" });
  assert.deepEqual(parseCommand(["-h"]), { kind: "help" });
  assert.deepEqual(parseCommand(["--version"]), { kind: "version" });
  assert.deepEqual(parseCommand(["-v"]), { kind: "version" });
  assert.deepEqual(parseCommand(["verify", "--public-key", "k.pem", "audit.jsonl"]), {
    kind: "verify",
    args: ["--public-key", "k.pem", "audit.jsonl"],
  });
  assert.deepEqual(parseCommand(["export", "a.jsonl"]), { kind: "export", args: ["a.jsonl"] });
  assert.deepEqual(parseCommand(["keygen"]), { kind: "keygen", args: [] });
  assert.deepEqual(parseCommand(["pins", "approve", "--all"]), {
    kind: "pins",
    args: ["approve", "--all"],
  });
});

Deno.test("--help gives verify's flags and every exit code it uses", () => {
  const verify = HELP.slice(HELP.indexOf("mcp-audit verify"), HELP.indexOf("mcp-audit export"));
  for (const flag of ["--public-key FILE", "--anchor FILE", "--no-signatures"]) {
    assert.ok(verify.includes(flag), `verify's usage names ${flag}`);
  }
  assert.match(
    verify.replace(/\s+/g, " "),
    /exit 0 intact and signed, 1 problems, 2 unreadable or no key, 3 chain intact but --no-signatures/,
  );
});

Deno.test("parseCommand reads every Go flag spelling: -flag value, -flag=value, --flag value, --flag=value", () => {
  for (
    const argv of [
      ["-transport", "http", "-upstream", "http://127.0.0.1:8080", "-port", "4423"],
      ["-transport=http", "-upstream=http://127.0.0.1:8080", "-port=4423"],
      ["--transport", "http", "--upstream", "http://127.0.0.1:8080", "--port", "4423"],
      ["--transport=http", "--upstream=http://127.0.0.1:8080", "--port=4423"],
    ]
  ) {
    const c = proxy(argv);
    assert.equal(c.flags.get("proxy.transport")?.value, "http", argv.join(" "));
    assert.equal(c.flags.get("proxy.upstream")?.value, "http://127.0.0.1:8080");
    assert.equal(c.flags.get("proxy.port")?.value, 4423);
  }
  const c = proxy([
    "-upstream-timeout",
    "1500",
    "-storage=sqlite",
    "-config",
    "cfg.json",
    "-log-level=warn",
    "-no-dashboard",
    "-no-metrics",
  ]);
  assert.equal(c.flags.get("proxy.upstream_timeout_ms")?.value, 1500);
  assert.deepEqual(c.flags.get("audit.storage"), { flag: "-storage", value: "sqlite" });
  assert.deepEqual(c.flags.get("dashboard.enabled"), { flag: "-no-dashboard", value: false });
  assert.deepEqual(c.flags.get("metrics.enabled"), { flag: "-no-metrics", value: false });
  assert.equal(c.configPath, "cfg.json");
  assert.equal(c.logLevel, "warn");
});

Deno.test("parseCommand reads a Go boolean's =true|false: =false leaves the config key alone", () => {
  for (const on of ["true", "1", "t", "T", "TRUE", "True"]) {
    assert.equal(proxy([`-no-dashboard=${on}`]).flags.get("dashboard.enabled")?.value, false, on);
  }
  for (const off of ["false", "0", "f", "F", "FALSE", "False"]) {
    assert.equal(proxy([`--no-metrics=${off}`]).flags.has("metrics.enabled"), false, off);
  }
  // The last spelling wins, as in Go.
  assert.equal(
    proxy(["-no-dashboard", "-no-dashboard=false"]).flags.has("dashboard.enabled"),
    false,
  );
  assert.throws(() => parseCommand(["-no-dashboard=yes"]), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^-no-dashboard: must be true or false, got "yes"/);
    return true;
  });
  // A boolean takes no next word: "false" here is a stray argument, refused.
  assert.throws(() => parseCommand(["-no-dashboard", "false"]), UsageError);
});

Deno.test("parseCommand takes the next word as a flag's value, as Go does, even if it starts with -", () => {
  assert.equal(proxy(["-upstream", "-x"]).flags.get("proxy.upstream")?.value, "-x");
  // Go's rule: the word after a value flag is its value even when it is "--" (a server `wrap`
  // names "--"); the separator is the first -- in a flag's place.
  const c = proxy(["--server-id", "--", "-client-id", "--", "--", "npx", "--", "x"]);
  assert.equal(c.flags.get("proxy.server_id")?.value, "--");
  assert.equal(c.flags.get("proxy.client_id")?.value, "--");
  assert.deepEqual(c.upstreamArgv, ["npx", "--", "x"]);
  assert.equal(
    proxy(["--no-metrics", "--", "--server-id", "x"]).flags.has("proxy.server_id"),
    false,
  );
  assert.equal(proxy(["--server-id=--", "--", "npx"]).flags.get("proxy.server_id")?.value, "--");
  assert.throws(() => parseCommand(["-client-id", "--", "npx"]), /unexpected argument "npx"/);
  assert.deepEqual(proxy(["-client-id", "--"]).upstreamArgv, []);
  assert.throws(() => parseCommand(["-client-id"]), /flag needs a value: -client-id/);
});

Deno.test("parseCommand keeps -- and the short -h/-v beside the Go spellings", () => {
  const c = proxy(["-transport", "stdio", "--", "npx", "-y", "pkg", "-port", "2"]);
  assert.deepEqual(c.upstreamArgv, ["npx", "-y", "pkg", "-port", "2"]);
  assert.equal(c.flags.has("proxy.port"), false);
  for (const argv of [["-h"], ["-help"], ["--help"], ["-port", "1", "-help"]]) {
    assert.deepEqual(parseCommand(argv), { kind: "help" }, argv.join(" "));
  }
  for (const argv of [["-v"], ["-version"], ["--version"], ["--version=true"], ["version"]]) {
    assert.deepEqual(parseCommand(argv), { kind: "version" }, argv.join(" "));
  }
  assert.equal(proxy(["--version=false"]).kind, "proxy");
  for (const bad of [["---port", "1"], ["--v"], ["-"], ["-=x"], ["-prot", "1"], ["version", "x"]]) {
    assert.throws(() => parseCommand(bad), UsageError, bad.join(" "));
  }
});

Deno.test("parseCommand maps --server-id and --client-id to proxy.server_id and proxy.client_id", () => {
  const c = proxy(["--server-id", "github", "-client-id=cursor"]);
  assert.deepEqual(c.flags.get("proxy.server_id"), { flag: "--server-id", value: "github" });
  assert.deepEqual(c.flags.get("proxy.client_id"), { flag: "-client-id", value: "cursor" });
});

Deno.test("parseCommand gives wrap, unwrap and doctor their arguments; --help names them", () => {
  assert.deepEqual(parseCommand(["wrap", "--client", "cursor", "--dry-run"]), {
    kind: "wrap",
    args: ["--client", "cursor", "--dry-run"],
  });
  assert.deepEqual(parseCommand(["unwrap", "--file", "x.json"]), {
    kind: "unwrap",
    args: ["--file", "x.json"],
  });
  assert.deepEqual(parseCommand(["doctor", "--", "npx", "pkg"]), {
    kind: "doctor",
    args: ["--", "npx", "pkg"],
  });
  for (
    const line of [
      "mcp-audit wrap (--client NAME [--project DIR] | --file PATH) [--config PATH] [--only SERVER]... [--dry-run]",
      "mcp-audit unwrap (--client NAME [--project DIR] | --file PATH) [--only SERVER]... [--dry-run]",
      "mcp-audit doctor [--json] [--timeout MS] [--client NAME]... [--file PATH]... [proxy flags]",
      "--server-id ID",
      "--client-id ID",
    ]
  ) {
    assert.ok(HELP.includes(line), line);
  }
});

Deno.test("the argv wrap writes parses as the proxy's: a server named --, and the empty-args mark, which is --no-metrics", () => {
  const named = proxy(
    wrappedArgs([], "--", "--", "/cfg", { kind: "stdio", argv: ["npx", "--", "x"] }),
  );
  assert.equal(named.flags.get("proxy.server_id")?.value, "--");
  assert.equal(named.flags.get("proxy.client_id")?.value, "--");
  assert.equal(named.configPath, "/cfg");
  assert.deepEqual(named.upstreamArgv, ["npx", "--", "x"]);
  const empty = proxy(wrappedArgs([], "s", "c", "/cfg", { kind: "stdio", argv: ["/srv"] }, true));
  assert.equal(empty.flags.get("metrics.enabled")?.value, false);
  assert.equal(empty.flags.get("dashboard.enabled")?.value, false);
  assert.deepEqual(empty.upstreamArgv, ["/srv"]);
});
