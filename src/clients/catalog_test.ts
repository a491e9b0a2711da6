import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  CatalogError,
  CLIENT_NAMES,
  clientFiles,
  clientOfPath,
  isAbsolutePath,
  isClientName,
  joinPath,
  type Platform,
  remoteUrlKey,
  serversKey,
} from "./catalog.ts";

const linux: Platform = { os: "linux", env: { HOME: "/home/me" }, cwd: "/work" };
const mac: Platform = { os: "darwin", env: { HOME: "/Users/me" }, cwd: "/Users/me/src" };
const windows: Platform = {
  os: "windows",
  env: { USERPROFILE: "C:\\Users\\me", APPDATA: "C:\\Users\\me\\AppData\\Roaming" },
  cwd: "C:\\src",
};

Deno.test("each client's user-level file, per OS", () => {
  const table: Record<string, [string, string, string]> = {
    "claude-desktop": [
      "/home/me/.config/Claude/claude_desktop_config.json",
      "/Users/me/Library/Application Support/Claude/claude_desktop_config.json",
      "C:\\Users\\me\\AppData\\Roaming\\Claude\\claude_desktop_config.json",
    ],
    "claude-code": [
      "/home/me/.claude.json",
      "/Users/me/.claude.json",
      "C:\\Users\\me\\.claude.json",
    ],
    cursor: [
      "/home/me/.cursor/mcp.json",
      "/Users/me/.cursor/mcp.json",
      "C:\\Users\\me\\.cursor\\mcp.json",
    ],
    vscode: [
      "/home/me/.config/Code/User/mcp.json",
      "/Users/me/Library/Application Support/Code/User/mcp.json",
      "C:\\Users\\me\\AppData\\Roaming\\Code\\User\\mcp.json",
    ],
    windsurf: [
      "/home/me/.codeium/windsurf/mcp_config.json",
      "/Users/me/.codeium/windsurf/mcp_config.json",
      "C:\\Users\\me\\.codeium\\windsurf\\mcp_config.json",
    ],
  };
  for (const client of CLIENT_NAMES) {
    assertEquals(
      [clientFiles(client, linux), clientFiles(client, mac), clientFiles(client, windows)],
      table[client]!.map((p) => [p]),
      client,
    );
  }
});

Deno.test("XDG_CONFIG_HOME moves the Linux files of Claude Desktop and VS Code", () => {
  const xdg: Platform = { ...linux, env: { HOME: "/home/me", XDG_CONFIG_HOME: "/cfg" } };
  assertEquals(clientFiles("claude-desktop", xdg), ["/cfg/Claude/claude_desktop_config.json"]);
  assertEquals(clientFiles("vscode", xdg), ["/cfg/Code/User/mcp.json"]);
  assertEquals(clientFiles("cursor", xdg), ["/home/me/.cursor/mcp.json"]);
});

Deno.test("project files, relative to the working directory; clients without one say so", () => {
  assertEquals(clientFiles("claude-code", linux, "app"), ["/work/app/.mcp.json"]);
  assertEquals(clientFiles("cursor", linux, "/p"), ["/p/.cursor/mcp.json"]);
  assertEquals(clientFiles("vscode", windows, "app"), ["C:\\src\\app\\.vscode\\mcp.json"]);
  throws(() => clientFiles("windsurf", linux, "."), CatalogError);
  throws(() => clientFiles("claude-desktop", linux, "."), CatalogError);
});

Deno.test("no HOME (or APPDATA on Windows) is an error naming the variable", () => {
  const bare: Platform = { os: "linux", env: {}, cwd: "/" };
  throws(() => clientFiles("cursor", bare), /HOME is not set/);
  throws(
    () => clientFiles("vscode", { ...windows, env: { USERPROFILE: "C:\\u" } }),
    /APPDATA is not set/,
  );
});

Deno.test("names, keys and the client a file's path points to", () => {
  assertEquals(isClientName("cursor"), true);
  assertEquals(isClientName("emacs"), false);
  assertEquals(serversKey("vscode"), "servers");
  assertEquals(serversKey("cursor"), "mcpServers");
  assertEquals(remoteUrlKey("windsurf"), "serverUrl");
  assertEquals(remoteUrlKey("claude-code"), "url");
  assertEquals(clientOfPath("/a/.vscode/mcp.json"), "vscode");
  assertEquals(clientOfPath("/a/.cursor/mcp.json"), "cursor");
  assertEquals(clientOfPath("C:\\x\\.mcp.json"), "claude-code");
  assertEquals(clientOfPath("/h/.codeium/windsurf/mcp_config.json"), "windsurf");
  assertEquals(clientOfPath("/h/Claude/claude_desktop_config.json"), "claude-desktop");
  assertEquals(clientOfPath("/tmp/servers.json"), undefined);
  assertEquals(joinPath("windows", "C:\\", "a"), "C:\\a");
  assertEquals(isAbsolutePath("windows", "C:/a"), true);
  assertEquals(isAbsolutePath("linux", "./a"), false);
});
