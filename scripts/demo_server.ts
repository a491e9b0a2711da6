/**
 * A small MCP server for the demo: a calculator tool, a tool that takes a secret argument (to
 * show redaction), and a tool that reports progress.
 *
 * @module
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const server = new Server({ name: "mcp-audit-demo", version: "1.0.0" }, {
  capabilities: { tools: {} },
});

server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [
    {
      name: "add",
      description: "Adds two numbers",
      inputSchema: {
        type: "object",
        properties: { a: { type: "number" }, b: { type: "number" } },
        required: ["a", "b"],
      },
    },
    {
      name: "fetch_report",
      description: "Fetches a report from an internal service with an API token",
      inputSchema: {
        type: "object",
        properties: { report: { type: "string" }, api_token: { type: "string" } },
        required: ["report", "api_token"],
      },
    },
    {
      name: "slow_count",
      description: "Counts to n, reporting progress",
      inputSchema: { type: "object", properties: { n: { type: "number" } }, required: ["n"] },
    },
  ],
}));

/** The parts of a tools/call request and its handler context that this server uses. */
interface ToolCall {
  params: {
    name: string;
    arguments?: Record<string, unknown>;
    _meta?: { progressToken?: string | number };
  };
}
interface CallContext {
  sendNotification(
    n: { method: "notifications/progress"; params: Record<string, unknown> },
  ): Promise<void>;
}

server.setRequestHandler(CallToolRequestSchema, async (request: ToolCall, extra: CallContext) => {
  const args = request.params.arguments ?? {};
  switch (request.params.name) {
    case "add":
      return { content: [{ type: "text", text: String(Number(args.a) + Number(args.b)) }] };
    case "fetch_report":
      return {
        content: [{ type: "text", text: `report ${String(args.report)}: 3 incidents` }],
        structuredContent: { incidents: 3, session_token: "s3ss10n-t0k3n-from-upstream" },
      };
    case "slow_count": {
      const n = Math.min(Number(args.n) || 3, 10);
      const token = request.params._meta?.progressToken;
      for (let i = 1; i <= n; i++) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken: token, progress: i, total: n },
          });
        }
      }
      return { content: [{ type: "text", text: `counted to ${n}` }] };
    }
    default:
      return {
        content: [{ type: "text", text: `unknown tool ${request.params.name}` }],
        isError: true,
      };
  }
});

await server.connect(new StdioServerTransport());
