/**
 * A Streamable HTTP MCP server that offers everything the server scenarios of
 * `@modelcontextprotocol/conformance` 0.1.16 call: the `test_*` tools, the `test://` resources and
 * template, the `test_*` prompts, completion, logging, subscriptions, server-to-client sampling and
 * elicitation on the request's own stream, resumable SSE (an event store, priming events, a `retry`
 * field) and DNS-rebinding protection. Built on the SDK's low-level `Server`, so every schema goes
 * out exactly as written here (the JSON Schema 2020-12 scenario checks that `$schema`, `$defs` and
 * `additionalProperties` survive).
 *
 * usage: deno run -A --config deno.json tests/conformance/fixture_server.ts [--port N] [--host H]
 *
 * Serves `/mcp`. Prints one line `fixture_server listening on http://H:PORT/mcp` on stdout once it
 * accepts connections (`--port 0`, the default, picks a free port). SIGTERM or SIGINT ends it.
 *
 * @module
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  type EventId,
  type EventStore,
  type StreamId,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  type CompleteRequest,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  type GetPromptRequest,
  GetPromptRequestSchema,
  type GetPromptResult,
  type InitializeRequest,
  isInitializeRequest,
  type JSONRPCMessage,
  LATEST_PROTOCOL_VERSION,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  type ReadResourceRequest,
  ReadResourceRequestSchema,
  type ReadResourceResult,
  type ServerNotification,
  type ServerRequest,
  type SubscribeRequest,
  SubscribeRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Tool,
  type UnsubscribeRequest,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

/** 1×1 red PNG. */
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/** A 44-byte WAV header with two bytes of silence. */
const WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
/** The `retry` (ms) sent in priming events, so a client whose stream is closed knows when to resume. */
const RETRY_MS = 500;
/** Gap between the notifications of the logging and progress tools, as the scenarios describe. */
const STEP_MS = 20;

function parseArgs(args: string[]): { port: number; host: string } {
  let port = 0;
  let host = "127.0.0.1";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === "--port" && v !== undefined) (port = Number(v), i++);
    else if (a === "--host" && v !== undefined) (host = v, i++);
    else throw new Error(`fixture_server: unknown argument ${a}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`fixture_server: bad --port`);
  }
  return { port, host };
}

// ---- resumability -----------------------------------------------------------------------------

/** Keeps every event of every stream of one session, so a `Last-Event-ID` can resume any of them. */
class MemoryEventStore implements EventStore {
  #events: { id: EventId; stream: StreamId; message: JSONRPCMessage }[] = [];
  #next = 0;

  storeEvent(stream: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const id = `${stream}_${String(++this.#next).padStart(10, "0")}`;
    this.#events.push({ id, stream, message });
    return Promise.resolve(id);
  }

  getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return Promise.resolve(this.#events.find((e) => e.id === eventId)?.stream);
  }

  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> },
  ): Promise<StreamId> {
    const at = this.#events.findIndex((e) => e.id === lastEventId);
    if (at === -1) throw new Error(`unknown event id ${lastEventId}`);
    const stream = this.#events[at]!.stream;
    for (const e of this.#events.slice(at + 1)) {
      // Priming events are stored as `{}`: they carry an id, not a message.
      if (e.stream === stream && Object.keys(e.message).length > 0) await send(e.id, e.message);
    }
    return stream;
  }
}

// ---- the catalogue ----------------------------------------------------------------------------

const EMPTY_OBJECT_SCHEMA = { type: "object" as const, properties: {} };

const TOOLS: Tool[] = [
  ["test_simple_text", "Returns one text item"],
  ["test_image_content", "Returns one PNG image"],
  ["test_audio_content", "Returns one WAV audio clip"],
  ["test_embedded_resource", "Returns an embedded text resource"],
  ["test_multiple_content_types", "Returns text, an image and an embedded resource"],
  ["test_tool_with_logging", "Sends three log notifications while it runs"],
  ["test_tool_with_progress", "Sends progress 0, 50 and 100 of 100 while it runs"],
  ["test_error_handling", "Always fails with isError: true"],
  [
    "test_reconnection",
    "Closes its SSE stream mid-call; the result arrives after the client resumes",
  ],
  ["test_elicitation_sep1034_defaults", "Elicits a form whose fields all have defaults (SEP-1034)"],
  ["test_elicitation_sep1330_enums", "Elicits a form with every enum variant (SEP-1330)"],
].map(([name, description]) => ({
  name: name!,
  description: description!,
  inputSchema: EMPTY_OBJECT_SCHEMA,
}));
TOOLS.push(
  {
    name: "test_sampling",
    description: "Asks the client for an LLM completion (sampling/createMessage)",
    inputSchema: {
      type: "object",
      properties: { prompt: { type: "string", description: "The prompt to send to the LLM" } },
      required: ["prompt"],
    },
  },
  {
    name: "test_elicitation",
    description: "Asks the client for user input (elicitation/create)",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string", description: "The message to show the user" } },
      required: ["message"],
    },
  },
  {
    name: "json_schema_2020_12_tool",
    description: "Tool with JSON Schema 2020-12 features",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: {
          type: "object",
          properties: { street: { type: "string" }, city: { type: "string" } },
        },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
  },
);

const RESOURCES = [
  {
    uri: "test://static-text",
    name: "static-text",
    description: "A static text resource",
    mimeType: "text/plain",
  },
  {
    uri: "test://static-binary",
    name: "static-binary",
    description: "A static binary resource (PNG)",
    mimeType: "image/png",
  },
  {
    uri: "test://watched-resource",
    name: "watched-resource",
    description: "A resource that can be subscribed to",
    mimeType: "text/plain",
  },
];

const PROMPTS = [
  { name: "test_simple_prompt", description: "A prompt without arguments" },
  {
    name: "test_prompt_with_arguments",
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", description: "First argument", required: true },
      { name: "arg2", description: "Second argument", required: true },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    description: "A prompt that embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource", required: true }],
  },
  { name: "test_prompt_with_image", description: "A prompt with an image" },
];

const COMPLETIONS = ["paris", "park", "party", "test", "testing", "testValue"];

function readResource(uri: string): ReadResourceResult {
  if (uri === "test://static-text") {
    return {
      contents: [{
        uri,
        mimeType: "text/plain",
        text: "This is the content of the static text resource.",
      }],
    };
  }
  if (uri === "test://static-binary") {
    return { contents: [{ uri, mimeType: "image/png", blob: PNG_BASE64 }] };
  }
  if (uri === "test://watched-resource") {
    return { contents: [{ uri, mimeType: "text/plain", text: "Watched resource content" }] };
  }
  const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
  if (m) {
    const id = decodeURIComponent(m[1]!);
    return {
      contents: [{
        uri,
        mimeType: "application/json",
        text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
      }],
    };
  }
  throw new Error(`Resource not found: ${uri}`);
}

function getPrompt(name: string, args: Record<string, string>): GetPromptResult {
  switch (name) {
    case "test_simple_prompt":
      return {
        messages: [{
          role: "user",
          content: { type: "text", text: "This is a simple prompt for testing." },
        }],
      };
    case "test_prompt_with_arguments":
      return {
        messages: [{
          role: "user",
          content: {
            type: "text",
            text: `Prompt with arguments: arg1='${args.arg1 ?? ""}', arg2='${args.arg2 ?? ""}'`,
          },
        }],
      };
    case "test_prompt_with_embedded_resource":
      return {
        messages: [
          {
            role: "user",
            content: {
              type: "resource",
              resource: {
                uri: args.resourceUri ?? "test://example-resource",
                mimeType: "text/plain",
                text: "Embedded resource content for testing.",
              },
            },
          },
          {
            role: "user",
            content: { type: "text", text: "Please process the embedded resource above." },
          },
        ],
      };
    case "test_prompt_with_image":
      return {
        messages: [
          { role: "user", content: { type: "image", data: PNG_BASE64, mimeType: "image/png" } },
          { role: "user", content: { type: "text", text: "Please analyze the image above." } },
        ],
      };
    default:
      throw new Error(`Prompt not found: ${name}`);
  }
}

const SEP1034_FORM = {
  type: "object",
  properties: {
    name: { type: "string", description: "User name", default: "John Doe" },
    age: { type: "integer", description: "User age", default: 30 },
    score: { type: "number", description: "User score", default: 95.5 },
    status: {
      type: "string",
      description: "User status",
      enum: ["active", "inactive", "pending"],
      default: "active",
    },
    verified: { type: "boolean", description: "Verification status", default: true },
  },
  required: [],
};

const SEP1330_FORM = {
  type: "object",
  properties: {
    untitledSingle: {
      type: "string",
      description: "Untitled single-select",
      enum: ["option1", "option2", "option3"],
    },
    titledSingle: {
      type: "string",
      description: "Titled single-select",
      oneOf: [
        { const: "value1", title: "First Option" },
        { const: "value2", title: "Second Option" },
        { const: "value3", title: "Third Option" },
      ],
    },
    legacyEnum: {
      type: "string",
      description: "Legacy titled enum",
      enum: ["opt1", "opt2", "opt3"],
      enumNames: ["Option One", "Option Two", "Option Three"],
    },
    untitledMulti: {
      type: "array",
      description: "Untitled multi-select",
      items: { type: "string", enum: ["option1", "option2", "option3"] },
    },
    titledMulti: {
      type: "array",
      description: "Titled multi-select",
      items: {
        anyOf: [
          { const: "value1", title: "First Choice" },
          { const: "value2", title: "Second Choice" },
          { const: "value3", title: "Third Choice" },
        ],
      },
    },
  },
  required: [],
};

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

// ---- one MCP server per session ---------------------------------------------------------------

interface ToolContext {
  sendNotification: (n: ServerNotification) => Promise<void>;
  sendRequest: <T>(r: ServerRequest, schema: T) => Promise<unknown>;
  closeSSEStream?: (() => void) | undefined;
  progressToken: string | number | undefined;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function text(t: string): CallToolResult {
  return { content: [{ type: "text", text: t }] };
}

async function callTool(
  name: string,
  args: Record<string, unknown>,
  ctx: ToolContext,
): Promise<CallToolResult> {
  switch (name) {
    case "test_simple_text":
      return text("This is a simple text response for testing.");
    case "test_image_content":
      return { content: [{ type: "image", data: PNG_BASE64, mimeType: "image/png" }] };
    case "test_audio_content":
      return { content: [{ type: "audio", data: WAV_BASE64, mimeType: "audio/wav" }] };
    case "test_embedded_resource":
      return {
        content: [{
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        }],
      };
    case "test_multiple_content_types":
      return {
        content: [
          { type: "text", text: "Multiple content types test:" },
          { type: "image", data: PNG_BASE64, mimeType: "image/png" },
          {
            type: "resource",
            resource: {
              uri: "test://mixed-content-resource",
              mimeType: "application/json",
              text: JSON.stringify({ test: "data", value: 123 }),
            },
          },
        ],
      };
    case "test_tool_with_logging": {
      const steps = ["Tool execution started", "Tool processing data", "Tool execution completed"];
      for (const [i, data] of steps.entries()) {
        if (i > 0) await delay(STEP_MS);
        await ctx.sendNotification({
          method: "notifications/message",
          params: { level: "info", logger: "fixture_server", data },
        });
      }
      return text("Tool with logging executed successfully");
    }
    case "test_tool_with_progress": {
      for (const [i, progress] of [0, 50, 100].entries()) {
        if (i > 0) await delay(STEP_MS);
        if (ctx.progressToken !== undefined) {
          await ctx.sendNotification({
            method: "notifications/progress",
            params: {
              progressToken: ctx.progressToken,
              progress,
              total: 100,
              message: `Completed step ${progress} of 100`,
            },
          });
        }
      }
      return text(String(ctx.progressToken ?? "no progress token"));
    }
    case "test_error_handling":
      return {
        isError: true,
        content: [{ type: "text", text: "This tool intentionally returns an error for testing" }],
      };
    case "test_reconnection":
      // Only offered to clients of 2025-11-25 or later (they got a priming event with an id and
      // `retry`); the result is stored and replayed when the client resumes with Last-Event-ID.
      ctx.closeSSEStream?.();
      return text(
        "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
      );
    case "test_sampling": {
      const result = await ctx.sendRequest({
        method: "sampling/createMessage",
        params: {
          messages: [{ role: "user", content: { type: "text", text: String(args.prompt ?? "") } }],
          maxTokens: 100,
        },
      }, CreateMessageResultSchema) as { content?: { type?: string; text?: string } };
      return text(`LLM response: ${result.content?.text ?? "No response"}`);
    }
    case "test_elicitation": {
      const result = await ctx.sendRequest({
        method: "elicitation/create",
        params: {
          mode: "form",
          message: String(args.message ?? ""),
          requestedSchema: {
            type: "object",
            properties: {
              username: { type: "string", description: "User's response" },
              email: { type: "string", description: "User's email address" },
            },
            required: ["username", "email"],
          },
        },
      }, ElicitResultSchema) as { action: string; content?: unknown };
      return text(
        `User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    }
    case "test_elicitation_sep1034_defaults":
    case "test_elicitation_sep1330_enums": {
      const form = name === "test_elicitation_sep1034_defaults" ? SEP1034_FORM : SEP1330_FORM;
      const result = await ctx.sendRequest({
        method: "elicitation/create",
        params: {
          mode: "form",
          message: "Please review and update the form fields",
          requestedSchema: form,
        },
      } as unknown as ServerRequest, ElicitResultSchema) as { action: string; content?: unknown };
      return text(
        `Elicitation completed: action=${result.action}, content=${
          JSON.stringify(result.content ?? {})
        }`,
      );
    }
    case "json_schema_2020_12_tool":
      return text(`Received: ${JSON.stringify(args)}`);
    default:
      return { isError: true, content: [{ type: "text", text: `Unknown tool: ${name}` }] };
  }
}

function newMcpServer(): Server {
  const server = new Server(
    { name: "mcp-audit-conformance-fixture", version: "1.0.0" },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
    },
  );
  const subscriptions = new Set<string>();
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS }));
  server.setRequestHandler(
    CallToolRequestSchema,
    (request: CallToolRequest, extra: Extra) =>
      callTool(request.params.name, request.params.arguments ?? {}, {
        sendNotification: extra.sendNotification,
        sendRequest: (r, schema) =>
          extra.sendRequest(r, schema as typeof ElicitResultSchema) as Promise<unknown>,
        closeSSEStream: extra.closeSSEStream,
        progressToken: request.params._meta?.progressToken,
      }),
  );
  server.setRequestHandler(ListResourcesRequestSchema, () => ({ resources: RESOURCES }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [{
      uriTemplate: "test://template/{id}/data",
      name: "template",
      description: "A resource template with an {id} parameter",
      mimeType: "application/json",
    }],
  }));
  server.setRequestHandler(
    ReadResourceRequestSchema,
    (r: ReadResourceRequest) => readResource(r.params.uri),
  );
  server.setRequestHandler(SubscribeRequestSchema, (r: SubscribeRequest) => {
    subscriptions.add(r.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (r: UnsubscribeRequest) => {
    subscriptions.delete(r.params.uri);
    return {};
  });
  server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts: PROMPTS }));
  server.setRequestHandler(
    GetPromptRequestSchema,
    (r: GetPromptRequest) => getPrompt(r.params.name, r.params.arguments ?? {}),
  );
  server.setRequestHandler(CompleteRequestSchema, (r: CompleteRequest) => {
    const prefix = r.params.argument.value.toLowerCase();
    const values = COMPLETIONS.filter((v) => v.toLowerCase().startsWith(prefix));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return server;
}

// ---- HTTP -------------------------------------------------------------------------------------

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** True when a Host value (`name[:port]`) or an Origin's host names a loopback address. */
function isLoopbackHost(host: string): boolean {
  try {
    return LOOPBACK.has(new URL(`http://${host}`).hostname.toLowerCase());
  } catch {
    return false;
  }
}

function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status });
}

/**
 * DNS-rebinding protection, by host name rather than exact `host:port`, so that a reverse proxy
 * on another loopback port (which rewrites `Host` and may pass its own `Origin` on) is accepted.
 */
function rebindingGuard(req: Request): Response | undefined {
  const host = req.headers.get("host");
  if (host === null || !isLoopbackHost(host)) {
    return jsonRpcError(403, -32000, `Invalid Host header: ${host}`);
  }
  const origin = req.headers.get("origin");
  if (origin !== null) {
    let ok = false;
    try {
      ok = isLoopbackHost(new URL(origin).host);
    } catch {
      ok = false;
    }
    if (!ok) return jsonRpcError(403, -32000, `Invalid Origin header: ${origin}`);
  }
  return undefined;
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  /** The protocol version agreed in `initialize`. */
  version: string;
}

const sessions = new Map<string, Session>();

/** The version the SDK's `Server` answers an `initialize` asking for `requested` with. */
function negotiated(requested: string): string {
  return SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
}

/**
 * The SDK decides per request, from `MCP-Protocol-Version`, whether a POST stream gets a priming
 * event (an id and `retry`) and may be closed mid-call; the suite's `server-sse-polling` scenario
 * sends `2025-03-26` on its raw POST inside a session that agreed on 2025-11-25. Resumability is
 * a property of the session here: a request whose header names an older revision than the
 * session's is handled as the session's, so that scenario really closes the stream mid-call and
 * resumes it with `Last-Event-ID`, which is the path a proxy most easily gets wrong.
 */
function withSessionVersion(req: Request, session: Session): Request {
  const header = req.headers.get("mcp-protocol-version");
  if (header === null || header >= session.version) return req;
  const headers = new Headers(req.headers);
  headers.set("mcp-protocol-version", session.version);
  return new Request(req, { headers });
}

async function handleMcp(req: Request): Promise<Response> {
  const refused = rebindingGuard(req);
  if (refused) return refused;
  const sessionId = req.headers.get("mcp-session-id");
  if (sessionId !== null) {
    const session = sessions.get(sessionId);
    if (!session) return jsonRpcError(404, -32001, "Session not found");
    return await session.transport.handleRequest(withSessionVersion(req, session));
  }
  if (req.method !== "POST") {
    return jsonRpcError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
  }
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    return jsonRpcError(400, -32700, "Parse error");
  }
  if (!isInitializeRequest(body)) {
    return jsonRpcError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
  }
  const version = negotiated((body as InitializeRequest).params.protocolVersion);
  const transport: WebStandardStreamableHTTPServerTransport =
    new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      eventStore: new MemoryEventStore(),
      retryInterval: RETRY_MS,
      onsessioninitialized: (id: string) => void sessions.set(id, { transport, version }),
      onsessionclosed: (id: string) => void sessions.delete(id),
    });
  transport.onclose = () => {
    if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
  };
  await newMcpServer().connect(transport);
  return await transport.handleRequest(req, { parsedBody: body });
}

if (import.meta.main) {
  const { port, host } = parseArgs(Deno.args);
  const shutdown = new AbortController();
  const server = Deno.serve({
    hostname: host,
    port,
    signal: shutdown.signal,
    onListen: (addr) => {
      const h = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      console.log(`fixture_server listening on http://${h}:${addr.port}/mcp`);
    },
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path !== "/mcp") return new Response("Not Found", { status: 404 });
    return handleMcp(req);
  });
  const stop = () => {
    for (const s of sessions.values()) void s.transport.close();
    sessions.clear();
    shutdown.abort();
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
  Deno.exit(0);
}
