import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  classifyArgv,
  EMPTY_ARGS_MARK,
  isOurLauncher,
  parseWrapped,
  wrappedArgs,
} from "./wrapped_argv.ts";

const FLAGS = ["run", "--allow-read=/c", "--allow-env", "--allow-run=npx,kill", "/src/main.ts"];
const stdio = (argv: string[]) => ({ kind: "stdio" as const, argv });

Deno.test("our launcher: the mcp-audit binary with no launcher args, or deno run with permission flags only and a main.ts", () => {
  for (const command of ["/usr/local/bin/mcp-audit", "C:\\Tools\\MCP-AUDIT.EXE", "mcp-audit"]) {
    assertEquals(isOurLauncher(command, []), true, command);
    assertEquals(isOurLauncher(command, FLAGS), false, command);
  }
  assertEquals(isOurLauncher("/usr/bin/deno", FLAGS), true);
  assertEquals(isOurLauncher("C:\\deno\\deno.exe", ["run", "C:\\src\\main.ts"]), true);
  assertEquals(isOurLauncher("/usr/bin/deno", []), false);
  for (
    const bad of [
      ["run", "-A", "/src/main.ts"],
      ["run", "--allow-all", "/src/main.ts"],
      ["run", "--allow-all=x", "/src/main.ts"],
      ["run", "x", "/src/main.ts"],
      ["run", "/src/evilmain.ts"],
      ["eval", "/src/main.ts"],
    ]
  ) {
    assertEquals(isOurLauncher("/usr/bin/deno", bad), false, bad.join(" "));
  }
  for (const other of ["/tmp/evil", "python3", "/opt/mcp-audit-helper", ""]) {
    assertEquals(isOurLauncher(other, []), false, other);
  }
  // The very command this run writes is ours, whatever its name (a renamed binary).
  assertEquals(isOurLauncher("/opt/audit-proxy", [], "/opt/audit-proxy"), true);
  assertEquals(isOurLauncher("/usr/bin/deno", [], "/usr/bin/deno"), false);
});

Deno.test("parseWrapped with the entry's command refuses another program carrying our arguments", () => {
  const args = wrappedArgs([], "s", "c", "/cfg", stdio(["npx", "srv"]));
  assertEquals(parseWrapped(args)?.serverId, "s");
  assertEquals(parseWrapped(args, "/usr/local/bin/mcp-audit")?.upstream, stdio(["npx", "srv"]));
  assertEquals(parseWrapped(args, "/tmp/evil"), undefined);
  const fromSource = wrappedArgs(FLAGS, "s", "c", "/cfg", { kind: "remote", url: "http://h" });
  assertEquals(parseWrapped(fromSource, "/usr/bin/deno")?.launcherArgs, FLAGS);
  assertEquals(parseWrapped(fromSource, "/usr/bin/python3"), undefined);
  assertEquals(
    parseWrapped(["run", "x", "main.ts", ...args.slice(0, 8), "--upstream", "u"]),
    undefined,
  );
});

Deno.test("an empty args list is marked with --no-metrics=true in place of --no-metrics", () => {
  const args = wrappedArgs([], "s", "c", "/cfg", stdio(["/opt/server"]), true);
  assertEquals(args[7], EMPTY_ARGS_MARK);
  assertEquals(parseWrapped(args)?.emptyArgs, true);
  assertEquals(parseWrapped(wrappedArgs([], "s", "c", "/cfg", stdio(["x"])))?.emptyArgs, false);
  assertEquals(
    parseWrapped(wrappedArgs([], "--", "--", "/c", stdio(["a", "--"])))?.upstream,
    stdio(["a", "--"]),
  );
});

Deno.test("classifyArgv: wrapped, edited since wrapped, mcp-audit set up by hand, or someone else's", () => {
  const bin = "/usr/local/bin/mcp-audit";
  const args = wrappedArgs([], "fs", "c", "/cfg", stdio(["npx", "srv"]));
  assertEquals(classifyArgv(bin, args).kind, "wrapped");
  const edited = [
    args.filter((a) => a !== "--no-metrics"),
    [...args.slice(0, 8), "--log-level", "debug", ...args.slice(8)],
    ["--client-id", "c", "--server-id", "fs", ...args.slice(4)],
    ["--server-id=fs", "--", "npx"],
    ["--server-id", "fs", "--upstream=http://h"],
  ];
  for (const a of edited) assertEquals(classifyArgv(bin, a).kind, "edited", a.join(" "));
  assertEquals(classifyArgv("/usr/bin/deno", [...FLAGS, ...edited[0]!]).kind, "edited");
  assertEquals(classifyArgv(bin, ["--config", "/c", "--", "npx"]).kind, "by hand");
  assertEquals(classifyArgv(bin, undefined).kind, "by hand");
  // A Deno server of the user's own, or a look-alike with -A: someone else's, wrapped around.
  assertEquals(classifyArgv("/usr/bin/deno", ["run", "--allow-net", "/srv/main.ts"]).kind, "other");
  assertEquals(classifyArgv("/usr/bin/deno", ["run", "-A", "/src/main.ts", ...args]).kind, "other");
  assertEquals(classifyArgv("/tmp/evil", args).kind, "other");
  // --server-id's value is never the separator it looks for.
  assertEquals(classifyArgv(bin, ["--server-id", "--"]).kind, "by hand");
});
