/**
 * The MCP clients `mcp-audit wrap` knows: where each keeps its server list, under which key, and
 * how its remote entries name their URL. Locations come from an injected platform (OS, `HOME`,
 * `APPDATA`, `XDG_CONFIG_HOME`, the working directory), never from the process itself.
 *
 * What each client documents (read 2026-12):
 * - **Claude Desktop**: `claude_desktop_config.json`, `mcpServers` of `{command, args, env}`; in
 *   `~/Library/Application Support/Claude/` on macOS and `%APPDATA%\Claude\` on Windows (as the
 *   server vendors' guides give it, e.g. https://playwright.dev/mcp/clients/claude-desktop and
 *   https://www.anaconda.com/docs/cli-reference/anaconda-mcp/commands/claude-desktop-path). Linux
 *   builds are unofficial; they use `~/.config/Claude/` (`$XDG_CONFIG_HOME/Claude/`). No project
 *   file.
 * - **Claude Code** (https://code.claude.com/docs/en/mcp): project scope `.mcp.json` at the
 *   project root, `mcpServers`; user and local scopes both in `~/.claude.json`, at its top
 *   (`mcpServers`) and under `projects.<absolute path>.mcpServers`. Stdio entries
 *   `{type?: "stdio", command, args, env}`, remote `{type: "http" | "sse", url, headers}`.
 * - **Cursor** (https://cursor.com/docs/mcp): `~/.cursor/mcp.json` for every project,
 *   `.cursor/mcp.json` in a project; `mcpServers`; stdio `{command, args, env}`, remote
 *   `{url, headers}` (an optional `type`); `${env:NAME}`, `${userHome}`, `${workspaceFolder}`
 *   are filled in by Cursor.
 * - **VS Code** (https://code.visualstudio.com/docs/copilot/reference/mcp-configuration):
 *   `.vscode/mcp.json` in a workspace, or `mcp.json` in the user profile (`MCP: Open User
 *   Configuration`; the profile folder is `Code/User/` under the OS's application data:
 *   `~/Library/Application Support/` on macOS, `%APPDATA%` on Windows, `$XDG_CONFIG_HOME` or
 *   `~/.config` on Linux). JSON with comments; the key is `servers`, beside an `inputs` list;
 *   stdio `{type: "stdio", command, args, env, envFile}`, remote `{type: "http" | "sse", url,
 *   headers}`.
 * - **Windsurf** (https://docs.windsurf.com/windsurf/cascade/mcp: stdio, Streamable HTTP and SSE
 *   servers in the raw `mcp_config.json`): `~/.codeium/windsurf/mcp_config.json`, `mcpServers`;
 *   stdio `{command, args, env}`, remote `{serverUrl, headers}` (the `~/.codeium/mcp_config.json`
 *   of its docs' plugin pages is the JetBrains plugin's). No project file.
 *
 * @example
 * ```ts
 * import { clientFiles } from "./catalog.ts";
 *
 * clientFiles("cursor", { os: "linux", env: { HOME: "/home/me" }, cwd: "/work" });
 * // ["/home/me/.cursor/mcp.json"]
 * ```
 *
 * @module
 */

/** The clients, by the name `--client` takes. */
export const CLIENT_NAMES = [
  "claude-desktop",
  "claude-code",
  "cursor",
  "vscode",
  "windsurf",
] as const;

/** A client's name. */
export type ClientName = typeof CLIENT_NAMES[number];

/** Where the files are looked for: the OS, the environment and the working directory. */
export interface Platform {
  os: typeof Deno.build.os;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

/** A client that is unknown, has no file of the asked kind, or whose home cannot be found. */
export class CatalogError extends Error {
  override name = "CatalogError";
}

/** True when `name` is one of {@link CLIENT_NAMES}. */
export function isClientName(name: string): name is ClientName {
  return (CLIENT_NAMES as readonly string[]).includes(name);
}

/** The key a client keeps its servers under. */
export function serversKey(client: ClientName): "servers" | "mcpServers" {
  return client === "vscode" ? "servers" : "mcpServers";
}

/** The member a client's remote entries give their URL in. */
export function remoteUrlKey(client: string): "url" | "serverUrl" {
  return client === "windsurf" ? "serverUrl" : "url";
}

function separator(os: Platform["os"]): string {
  return os === "windows" ? "\\" : "/";
}

/** `parts` joined with the OS's separator, without doubling one already at a part's end. */
export function joinPath(os: Platform["os"], ...parts: string[]): string {
  const sep = separator(os);
  let out = "";
  for (const part of parts) {
    if (out === "") out = part;
    else out = /[\\/]$/.test(out) ? out + part : out + sep + part;
  }
  return out;
}

/** True when `path` is absolute on `os`. */
export function isAbsolutePath(os: Platform["os"], path: string): boolean {
  if (os === "windows") return /^[A-Za-z]:[\\/]/.test(path) || /^[\\/]{2}/.test(path);
  return path.startsWith("/");
}

/** `path` made absolute against the working directory. */
export function absolutePath(platform: Platform, path: string): string {
  return isAbsolutePath(platform.os, path) ? path : joinPath(platform.os, platform.cwd, path);
}

function variable(platform: Platform, name: string): string | undefined {
  const value = platform.env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** The user's home folder: `HOME`, else `USERPROFILE` on Windows. */
export function homeDir(platform: Platform): string {
  const home = variable(platform, "HOME") ??
    (platform.os === "windows" ? variable(platform, "USERPROFILE") : undefined);
  if (home === undefined) throw new CatalogError("HOME is not set: cannot find the user's files");
  return home;
}

/** `%APPDATA%` on Windows (the roaming application data folder). */
function appData(platform: Platform): string {
  const value = variable(platform, "APPDATA");
  if (value === undefined) {
    throw new CatalogError("APPDATA is not set: cannot find the user's files");
  }
  return value;
}

/** `$XDG_CONFIG_HOME`, else `~/.config`. */
export function xdgConfigHome(platform: Platform): string {
  return variable(platform, "XDG_CONFIG_HOME") ??
    joinPath(platform.os, homeDir(platform), ".config");
}

/** The folder applications keep their settings in, as Electron apps (Claude, VS Code) see it. */
function appSettingsDir(platform: Platform): string {
  switch (platform.os) {
    case "darwin":
      return joinPath(platform.os, homeDir(platform), "Library", "Application Support");
    case "windows":
      return appData(platform);
    default:
      return xdgConfigHome(platform);
  }
}

/**
 * The user-level file(s) of `client` (`project` undefined) or its file in the project folder
 * `project` (made absolute against the working directory).
 * @throws {CatalogError} when the client has no project file, or the home cannot be found
 */
export function clientFiles(
  client: ClientName,
  platform: Platform,
  project?: string,
): string[] {
  const os = platform.os;
  if (project !== undefined) {
    const dir = absolutePath(platform, project);
    switch (client) {
      case "claude-code":
        return [joinPath(os, dir, ".mcp.json")];
      case "cursor":
        return [joinPath(os, dir, ".cursor", "mcp.json")];
      case "vscode":
        return [joinPath(os, dir, ".vscode", "mcp.json")];
      case "claude-desktop":
      case "windsurf":
        throw new CatalogError(
          `${client} has no project file; run without --project to wrap its user-level file`,
        );
      default:
        return unknownClient(client);
    }
  }
  switch (client) {
    case "claude-desktop":
      return [joinPath(os, appSettingsDir(platform), "Claude", "claude_desktop_config.json")];
    case "claude-code":
      return [joinPath(os, homeDir(platform), ".claude.json")];
    case "cursor":
      return [joinPath(os, homeDir(platform), ".cursor", "mcp.json")];
    case "vscode":
      return [joinPath(os, appSettingsDir(platform), "Code", "User", "mcp.json")];
    case "windsurf":
      return [joinPath(os, homeDir(platform), ".codeium", "windsurf", "mcp_config.json")];
    default:
      return unknownClient(client);
  }
}

function unknownClient(client: never): never {
  throw new CatalogError(`unknown client ${JSON.stringify(client)}`);
}

/**
 * The client a file most likely belongs to, from its name and folder, for `--file`: used as the
 * `--client-id` of its wrapped servers. Undefined when the name says nothing.
 */
export function clientOfPath(path: string): ClientName | undefined {
  const parts = path.split(/[\\/]/);
  const name = parts.at(-1) ?? "";
  const folder = parts.at(-2) ?? "";
  if (name === "claude_desktop_config.json") return "claude-desktop";
  if (name === ".claude.json" || name === ".mcp.json") return "claude-code";
  if (name === "mcp_config.json" && folder === "windsurf") return "windsurf";
  if (name === "mcp.json" && folder === ".cursor") return "cursor";
  if (name === "mcp.json" && (folder === ".vscode" || folder === "User")) return "vscode";
  return undefined;
}
