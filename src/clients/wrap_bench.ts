/**
 * wrap and unwrap of a large `~/.claude.json` (4.5 MB of project history, 41 servers): the file is
 * parsed once and each entry is checked on its own text, so the time follows the file's size, not
 * its size times its servers. Run: `deno bench src/clients/wrap_bench.ts`.
 *
 * @module
 */
import { parseJsonc } from "./jsonc.ts";
import { applyEdits } from "./edit.ts";
import { unwrapDocument, wrapDocument } from "./wrap.ts";

const projects: Record<string, unknown> = {};
for (let p = 0; p < 40; p++) {
  projects[`/home/me/src/p${p}`] = {
    history: Array.from({ length: 400 }, (_, i) => ({ display: "x".repeat(200) + i })),
    mcpServers: { [`s${p}`]: { command: "npx", args: ["-y", `server-${p}`] } },
  };
}
const TEXT = JSON.stringify({ mcpServers: { top: { command: "x" } }, projects }, null, 2);
const OPTIONS = {
  clientId: "claude-code",
  sharedConfig: "/home/me/.config/mcp-audit/config.yaml",
  launcher: () => ({ command: "/usr/local/bin/mcp-audit", args: [] }),
};
const WRAPPED = (() => {
  const doc = parseJsonc(TEXT);
  return applyEdits(doc.text, wrapDocument(doc, OPTIONS).edits);
})();

Deno.bench("wrap a 4.5 MB ~/.claude.json with 41 servers (parse, wrap, check)", () => {
  const doc = parseJsonc(TEXT);
  wrapDocument(doc, OPTIONS);
});

Deno.bench("unwrap a 4.5 MB ~/.claude.json with 41 wrapped servers (parse, unwrap)", () => {
  const doc = parseJsonc(WRAPPED);
  unwrapDocument(doc);
});
