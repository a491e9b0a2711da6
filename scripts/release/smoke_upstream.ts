/**
 * A tiny MCP server over stdio for the release smoke test: `initialize`, `ping`, `tools/list` and
 * one tool, `echo`. It needs no permission and no package, so a runner with nothing but Deno runs
 * it. Its `tools/call` answer is written with spaces and an escaped character that a
 * re-serializing proxy would change, so the smoke test can check the bytes arrive as sent.
 *
 * @module
 */

/** The longest request line read; a longer one ends the server. */
const MAX_LINE = 1 << 20;

const encoder = new TextEncoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The answer line to one request line, or null for a notification.
 *
 * @example
 * ```ts
 * import { answer } from "./smoke_upstream.ts";
 * answer('{"jsonrpc":"2.0","id":1,"method":"ping"}'); // '{"jsonrpc":"2.0","id":1,"result":{}}'
 * ```
 */
export function answer(line: string): string | null {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}';
  }
  if (!isRecord(message) || typeof message.method !== "string") return null;
  if (!("id" in message)) return null;
  const id = JSON.stringify(message.id ?? null);
  const params = isRecord(message.params) ? message.params : {};
  switch (message.method) {
    case "initialize": {
      const version = typeof params.protocolVersion === "string"
        ? params.protocolVersion
        : "2025-06-18";
      return JSON.stringify({
        jsonrpc: "2.0",
        id: message.id ?? null,
        result: {
          protocolVersion: version,
          capabilities: { tools: {} },
          serverInfo: { name: "smoke-upstream", version: "1.0.0" },
        },
      });
    }
    case "ping":
      return `{"jsonrpc":"2.0","id":${id},"result":{}}`;
    case "tools/list":
      return JSON.stringify({
        jsonrpc: "2.0",
        id: message.id ?? null,
        result: {
          tools: [{
            name: "echo",
            description: "Answers with its text",
            inputSchema: {
              type: "object",
              properties: { text: { type: "string" } },
              required: ["text"],
            },
          }],
        },
      });
    case "tools/call": {
      const args = isRecord(params.arguments) ? params.arguments : {};
      const text = typeof args.text === "string" ? args.text : "";
      return `{"jsonrpc":"2.0", "id":${id}, "result":{"content":[{"type":"text","text":${
        JSON.stringify(text)
      }}], "note":"caf\\u00e9"}}`;
    }
    default:
      return `{"jsonrpc":"2.0","id":${id},"error":{"code":-32601,"message":"method not found"}}`;
  }
}

async function writeAll(bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await Deno.stdout.write(bytes.subarray(done));
}

async function serve(): Promise<void> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let pending = "";
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) return;
    pending += decoder.decode(buffer.subarray(0, n), { stream: true });
    let end;
    while ((end = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, end).replace(/\r$/, "");
      pending = pending.slice(end + 1);
      const out = line.trim() === "" ? null : answer(line);
      if (out !== null) await writeAll(encoder.encode(out + "\n"));
    }
    if (pending.length > MAX_LINE) {
      throw new Error(`a request line is longer than ${MAX_LINE} bytes`);
    }
  }
}

if (import.meta.main) await serve();
