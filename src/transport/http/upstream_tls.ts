/**
 * The upstream client of the HTTP proxy, built from `proxy.tls.*`: a `fetch`-shaped function whose
 * responses stream, and which honours `signal`.
 *
 * Deno's own `fetch` with a `Deno.createHttpClient` does a custom CA (`caCerts`) and a client
 * certificate (`cert` + `key`), but it cannot verify against a name other than the URL's host nor
 * skip verification per client (only the process-wide `--unsafely-ignore-certificate-errors`
 * flag). So when `server_name` or `insecure_skip_verify` is set, requests go through `node:https`
 * instead, whose `servername`, `rejectUnauthorized`, `ca`, `cert` and `key` cover every option;
 * it is wrapped to look like `fetch`.
 *
 * @example
 * ```ts
 * import { upstreamTls } from "./upstream_tls.ts";
 *
 * await using upstream = await upstreamTls(
 *   {
 *     ca_file: "ca.pem",
 *     server_name: "mcp.internal",
 *     insecure_skip_verify: false,
 *     client_cert_file: "",
 *     client_key_file: "",
 *   },
 *   { warn: (msg, fields) => console.error(msg, fields) },
 * );
 * const res = await upstream.fetch("https://10.0.0.5:8443/mcp", { method: "POST", body: "{}" });
 * ```
 *
 * @module
 */
import { Agent, type AgentOptions, request as httpsRequest } from "node:https";
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { LogFields } from "../../log.ts";

/** The `*.tls` settings; an empty string means unset. */
export interface UpstreamTlsConfig {
  /** PEM CA bundle to verify the upstream against. */
  ca_file: string;
  /** Name to verify the certificate against and send as SNI; the URL's host is still dialled. */
  server_name: string;
  /** Accept any certificate. Logged as a warning. */
  insecure_skip_verify: boolean;
  /** PEM client certificate (chain) for mTLS; needs `client_key_file`. */
  client_cert_file?: string;
  /** PEM private key of `client_cert_file`. */
  client_key_file?: string;
}

/** What the proxy calls to reach the upstream: `fetch`'s shape. */
export type UpstreamFetch = (
  input: Request | URL | string,
  init?: RequestInit,
) => Promise<Response>;

/** Which client carries the requests. */
export type UpstreamTlsBackend = "deno_fetch" | "node_https";

/** An upstream client; dispose it to close its pooled connections. */
export interface UpstreamTls extends AsyncDisposable {
  readonly backend: UpstreamTlsBackend;
  readonly fetch: UpstreamFetch;
}

/** Where the warning goes, and which configuration section the settings came from. */
export interface UpstreamTlsOptions {
  warn: (msg: string, fields?: LogFields) => void;
  /** Prefix of the keys named in errors and warnings; `proxy.tls` unless told. */
  keyPrefix?: string;
}

/** A TLS setting that cannot be used: an unreadable or malformed file, or a half-set pair. */
export class UpstreamTlsError extends Error {
  override name = "UpstreamTlsError";
  constructor(readonly key: string, readonly problem: string, options?: ErrorOptions) {
    super(`${key}: ${problem}`, options);
  }
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----/;

async function readPem(key: string, path: string, pattern: RegExp, what: string) {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new UpstreamTlsError(key, `cannot read ${path}: ${reason}`, { cause: e });
  }
  if (!pattern.test(text)) throw new UpstreamTlsError(key, `${path} holds no PEM ${what}`);
  return text;
}

/**
 * Reads the files named by `config` and returns the upstream client: Deno's `fetch` when it can
 * do what is asked, `node:https` behind a `fetch`-shaped function when `server_name` or
 * `insecure_skip_verify` is set. Throws {@linkcode UpstreamTlsError} naming the key at fault.
 */
export async function upstreamTls(
  config: UpstreamTlsConfig,
  options: UpstreamTlsOptions,
): Promise<UpstreamTls> {
  const prefix = options.keyPrefix ?? "proxy.tls";
  const certFile = config.client_cert_file ?? "";
  const keyFile = config.client_key_file ?? "";
  if ((certFile === "") !== (keyFile === "")) {
    const [missing, other] = certFile === ""
      ? ["client_cert_file", "client_key_file"]
      : ["client_key_file", "client_cert_file"];
    throw new UpstreamTlsError(
      `${prefix}.${missing}`,
      `must be set together with ${prefix}.${other}`,
    );
  }
  const ca = config.ca_file === ""
    ? undefined
    : await readPem(`${prefix}.ca_file`, config.ca_file, CERTIFICATE, "certificate");
  const identity = certFile === "" ? undefined : {
    cert: await readPem(`${prefix}.client_cert_file`, certFile, CERTIFICATE, "certificate"),
    key: await readPem(`${prefix}.client_key_file`, keyFile, PRIVATE_KEY, "private key"),
  };

  // Deno's client parses the pair and checks the key matches the certificate, which node:https
  // only does at the first handshake; so it is made in both cases, and kept when it is enough.
  let client: Deno.HttpClient;
  try {
    client = Deno.createHttpClient({ caCerts: ca === undefined ? [] : [ca], ...identity });
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    const key = identity === undefined ? `${prefix}.ca_file` : `${prefix}.client_key_file`;
    throw new UpstreamTlsError(key, `unusable: ${reason}`, { cause: e });
  }

  if (config.insecure_skip_verify) {
    options.warn(
      "UPSTREAM TLS VERIFICATION IS OFF: any certificate is accepted, so anyone on the path can " +
        "read and change upstream traffic; use only for testing",
      { key: `${prefix}.insecure_skip_verify`, ca_file_ignored: ca !== undefined },
    );
  }
  if (config.server_name === "" && !config.insecure_skip_verify) {
    return new DenoFetchUpstream(client);
  }
  client.close();

  const agentOptions: AgentOptions = {
    keepAlive: true,
    rejectUnauthorized: !config.insecure_skip_verify,
  };
  if (ca !== undefined) agentOptions.ca = ca;
  if (identity !== undefined) {
    agentOptions.cert = identity.cert;
    agentOptions.key = identity.key;
  }
  if (config.server_name !== "") agentOptions.servername = config.server_name;
  return new NodeHttpsUpstream(new Agent(agentOptions));
}

/** Deno's `fetch` with a dedicated `Deno.HttpClient` (HTTP/2 where the upstream offers it). */
class DenoFetchUpstream implements UpstreamTls {
  readonly backend = "deno_fetch";
  readonly fetch: UpstreamFetch;
  #client: Deno.HttpClient;

  constructor(client: Deno.HttpClient) {
    this.#client = client;
    this.fetch = function upstreamFetch(input, init) {
      // A redirect is an answer to pass on, never a place to go: following one could take the
      // request (and its Authorization) to another host.
      return fetch(input, { ...init, client, redirect: "manual" });
    };
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#client[Symbol.dispose]();
    return Promise.resolve();
  }
}

/** `node:https` with a keep-alive agent that carries the TLS options (HTTP/1.1 only). */
class NodeHttpsUpstream implements UpstreamTls {
  readonly backend = "node_https";
  readonly fetch: UpstreamFetch;
  #agent: Agent;

  constructor(agent: Agent) {
    this.#agent = agent;
    this.fetch = function upstreamFetch(input, init) {
      const url = new URL(input instanceof Request ? input.url : input);
      // TLS settings have nothing to say about a plain-HTTP upstream.
      if (url.protocol !== "https:") return fetch(input, { ...init, redirect: "manual" });
      return nodeFetch(agent, url, new Request(input, init), init);
    };
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#agent.destroy();
    return Promise.resolve();
  }
}

/** Statuses whose responses have no body, which `new Response` refuses one for. */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** Whether the body came as a stream, to be sent as it arrives rather than gathered first. */
function streamedBody(request: Request, init: RequestInit | undefined): boolean {
  if (request.body === null) return false;
  if (init?.body !== undefined && init.body !== null) return init.body instanceof ReadableStream;
  return true;
}

function fetchFailed(cause: unknown): TypeError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new TypeError(`fetch failed: ${reason}`, { cause });
}

function toBytes(chunk: Uint8Array | string): Uint8Array {
  if (typeof chunk === "string") return new TextEncoder().encode(chunk);
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * One request over `node:https`, settled like `fetch`: a `TypeError` when no response arrives,
 * `signal.reason` when aborted, and a body that streams chunk by chunk with backpressure. Redirects
 * are never followed (the proxy passes them on).
 */
async function nodeFetch(
  agent: Agent,
  url: URL,
  request: Request,
  init: RequestInit | undefined,
): Promise<Response> {
  const signal = request.signal;
  signal.throwIfAborted();

  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of request.headers) {
    // The URL decides Host, as with Deno's fetch.
    if (name === "host") continue;
    const seen = headers[name];
    headers[name] = seen === undefined ? value : [seen, value].flat().map(String);
  }
  let body: Uint8Array | ReadableStream<Uint8Array> | null = request.body;
  if (body !== null && !streamedBody(request, init)) {
    body = await request.bytes();
    headers["content-length"] ??= String(body.byteLength);
  }
  signal.throwIfAborted();

  return await new Promise<Response>((resolve, reject) => {
    let settled = false;
    let bodyController: ReadableStreamDefaultController<Uint8Array> | undefined;
    let bodyDone = false;
    const req: ClientRequest = httpsRequest({
      agent,
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? 443 : Number(url.port),
      method: request.method,
      path: `${url.pathname}${url.search}`,
      headers,
    });

    const endBody = (error?: unknown) => {
      if (bodyDone) return;
      bodyDone = true;
      signal.removeEventListener("abort", onAbort);
      if (bodyController === undefined) return;
      if (error === undefined) bodyController.close();
      else bodyController.error(error);
    };
    const fail = (error: unknown) => {
      if (!settled) {
        settled = true;
        bodyDone = true;
        signal.removeEventListener("abort", onAbort);
        reject(error);
      } else {
        endBody(error);
      }
    };
    function onAbort() {
      fail(signal.reason);
      req.destroy();
    }
    signal.addEventListener("abort", onAbort, { once: true });

    req.on("error", (e: Error) => fail(signal.aborted ? signal.reason : fetchFailed(e)));
    req.on("response", (res: IncomingMessage) => {
      if (settled) {
        res.destroy();
        return;
      }
      let response: Response;
      try {
        const responseHeaders = new Headers();
        const raw = res.rawHeaders;
        for (let i = 0; i + 1 < raw.length; i += 2) {
          const name = raw[i];
          const value = raw[i + 1];
          if (name !== undefined && value !== undefined) responseHeaders.append(name, value);
        }
        const status = res.statusCode ?? 0;
        const meta = { status, statusText: res.statusMessage ?? "", headers: responseHeaders };
        if (NULL_BODY_STATUS.has(status) || request.method === "HEAD") {
          res.resume();
          res.on("end", () => endBody());
          response = new Response(null, meta);
        } else {
          const stream = responseBody(res, req, endBody, (c) => bodyController = c);
          response = new Response(stream, meta);
        }
      } catch (e) {
        fail(fetchFailed(e));
        req.destroy();
        return;
      }
      settled = true;
      resolve(response);
    });

    if (body === null) req.end();
    else if (body instanceof Uint8Array) req.end(body);
    else void sendStream(req, body, signal);
  });
}

/** The response body as a stream: paused while the reader lags, the request ended on cancel. */
function responseBody(
  res: IncomingMessage,
  req: ClientRequest,
  endBody: (error?: unknown) => void,
  setController: (c: ReadableStreamDefaultController<Uint8Array>) => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      setController(controller);
      res.on("data", (chunk: Uint8Array | string) => {
        controller.enqueue(toBytes(chunk));
        if ((controller.desiredSize ?? 1) <= 0) res.pause();
      });
      res.on("end", () => endBody());
      res.on("error", (e: Error) => endBody(fetchFailed(e)));
      res.on("close", () => {
        if (!res.complete) endBody(new TypeError("upstream closed the response before its end"));
      });
    },
    pull() {
      res.resume();
    },
    cancel() {
      endBody();
      req.destroy();
    },
  });
}

/** Writes a streamed request body, waiting for `drain` so a slow upstream holds the client back. */
async function sendStream(
  req: ClientRequest,
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const closed = new Promise<void>((resolve) => req.once("close", resolve));
  // Once the request is gone (aborted, failed, or answered and closed), stop reading the source;
  // a pending read then ends at once.
  void closed.then(() => reader.cancel(signal.reason).catch(() => {}));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (req.destroyed) break;
      if (!req.write(value)) {
        await Promise.race([new Promise((resolve) => req.once("drain", resolve)), closed]);
      }
    }
    if (!req.destroyed) req.end();
  } catch (e) {
    req.destroy(signal.aborted ? undefined : e instanceof Error ? e : new Error(String(e)));
  }
}
