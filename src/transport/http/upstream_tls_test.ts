import assert from "node:assert/strict";
import { createServer, type ServerOptions } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { TLSSocket } from "node:tls";
import type { LogFields } from "../../log.ts";
import {
  type UpstreamTls,
  upstreamTls,
  type UpstreamTlsConfig,
  UpstreamTlsError,
} from "./upstream_tls.ts";
import { type CertFiles, makeCerts, NAMED_HOST } from "../../../tests/fixtures/tls/make_certs.ts";

const NONE: UpstreamTlsConfig = {
  ca_file: "",
  server_name: "",
  insecure_skip_verify: false,
  client_cert_file: "",
  client_key_file: "",
};

interface Warning {
  msg: string;
  fields: LogFields | undefined;
}

async function open(config: Partial<UpstreamTlsConfig>, warnings: Warning[] = []) {
  return await upstreamTls({ ...NONE, ...config }, {
    warn: (msg, fields) => warnings.push({ msg, fields }),
  });
}

interface TestServer extends AsyncDisposable {
  url: string;
}

/** A `Deno.serve` TLS server on 127.0.0.1 (it cannot ask for client certificates). */
function denoServer(pair: CertFiles, handler: Deno.ServeHandler<Deno.NetAddr>): TestServer {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: pair.cert, key: pair.key, onListen() {} },
    handler,
  );
  return {
    url: `https://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** What a `node:https` server saw of one request. */
interface Seen {
  host: string | undefined;
  clientCn: string | undefined;
}

/** A `node:https` server on 127.0.0.1, for what `Deno.serve` cannot do: mTLS and reading SNI. */
async function nodeServer(
  options: ServerOptions,
): Promise<TestServer & { seen: Seen[]; sni: string[] }> {
  const seen: Seen[] = [];
  const sni: string[] = [];
  const server = createServer({
    ...options,
    SNICallback(name, done) {
      sni.push(name);
      done(null, undefined);
    },
  }, (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const cn = socket instanceof TLSSocket ? socket.getPeerCertificate().subject?.CN : undefined;
    seen.push({ host: req.headers.host, clientCn: typeof cn === "string" ? cn : undefined });
    res.end("ok");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `https://127.0.0.1:${address.port}`,
    seen,
    sni,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function text(upstream: UpstreamTls, url: string, init?: RequestInit): Promise<string> {
  const res = await upstream.fetch(url, init);
  assert.equal(res.status, 200);
  return await res.text();
}

async function rejectsTls(upstream: UpstreamTls, url: string, pattern: RegExp): Promise<void> {
  await assert.rejects(upstream.fetch(url), (e: unknown) => {
    assert.ok(e instanceof TypeError, `expected a TypeError, got ${e}`);
    const detail = `${e.message} ${e.cause instanceof Error ? e.cause.message : ""}`;
    assert.match(detail, pattern);
    return true;
  });
}

/** A promise with its resolver, for waits on events without sleeping. */
function signalled<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** `promise`, or a failure naming `what` after `ms`: a safety net, not a pause. */
function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  const timedOut = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(new Error(`timed out: ${what}`)), { once: true });
  });
  return Promise.race([promise, timedOut]);
}

const encoder = new TextEncoder();

/** Reads until the text so far contains `marker`, returning that text. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  marker: string,
): Promise<string> {
  const decoder = new TextDecoder();
  let got = "";
  while (!got.includes(marker)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`stream ended before ${JSON.stringify(marker)}; got ${got}`);
    got += decoder.decode(value, { stream: true });
  }
  return got;
}

Deno.test("upstream TLS", async (t) => {
  await using certs = await makeCerts();
  const ca = certs.ca.certFile;

  await t.step("with no settings, Deno's fetch is used and an unknown CA is rejected", async () => {
    await using server = denoServer(certs.server, () => new Response("hi"));
    await using upstream = await open({});
    assert.equal(upstream.backend, "deno_fetch");
    await rejectsTls(upstream, server.url, /UnknownIssuer|unable to verify|certificate/i);
  });

  await t.step("ca_file makes a server signed by that CA trusted", async () => {
    await using server = denoServer(certs.server, () => new Response("hi"));
    await using upstream = await open({ ca_file: ca });
    assert.equal(upstream.backend, "deno_fetch");
    assert.equal(await text(upstream, server.url), "hi");
  });

  await t.step("a server signed by a CA other than ca_file is rejected", async () => {
    await using server = denoServer(certs.server, () => new Response("hi"));
    await using upstream = await open({ ca_file: certs.otherCa.certFile });
    await rejectsTls(upstream, server.url, /UnknownIssuer/);
  });

  await t.step("a certificate not valid for the dialled address is rejected", async () => {
    await using server = denoServer(certs.named, () => new Response("hi"));
    await using upstream = await open({ ca_file: ca });
    await rejectsTls(upstream, server.url, /not valid for name/);
  });

  await t.step(
    "server_name verifies against that name and sends it as SNI while dialling 127.0.0.1",
    async () => {
      await using server = await nodeServer({ cert: certs.named.cert, key: certs.named.key });
      await using upstream = await open({ ca_file: ca, server_name: NAMED_HOST });
      assert.equal(upstream.backend, "node_https");
      assert.equal(await text(upstream, `${server.url}/mcp`), "ok");
      // Like Go's tls.Config.ServerName, the name is for TLS only: Host stays the URL's.
      assert.deepEqual(server.sni, [NAMED_HOST]);
      assert.deepEqual(server.seen, [{ host: new URL(server.url).host, clientCn: undefined }]);
    },
  );

  await t.step(
    "server_name still verifies: a wrong name or an unknown CA is rejected",
    async () => {
      await using server = denoServer(certs.named, () => new Response("hi"));
      {
        await using upstream = await open({ ca_file: ca, server_name: "other.internal" });
        await rejectsTls(upstream, server.url, /altnames|other\.internal/);
      }
      {
        await using upstream = await open({
          ca_file: certs.otherCa.certFile,
          server_name: NAMED_HOST,
        });
        await rejectsTls(upstream, server.url, /verify|certificate/);
      }
    },
  );

  await t.step("insecure_skip_verify accepts a self-signed certificate and warns", async () => {
    await using server = denoServer(certs.selfSigned, () => new Response("hi"));
    {
      await using strict = await open({});
      await rejectsTls(strict, server.url, /certificate|UnknownIssuer|CaUsedAsEndEntity/i);
    }
    const warnings: Warning[] = [];
    await using upstream = await open({ insecure_skip_verify: true }, warnings);
    assert.equal(upstream.backend, "node_https");
    assert.equal(await text(upstream, server.url), "hi");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]?.msg ?? "", /VERIFICATION IS OFF/);
    assert.deepEqual(warnings[0]?.fields, {
      key: "proxy.tls.insecure_skip_verify",
      ca_file_ignored: false,
    });
  });

  await t.step("insecure_skip_verify also accepts a certificate for another name", async () => {
    await using server = denoServer(certs.named, () => new Response("hi"));
    await using upstream = await open({ ca_file: ca, insecure_skip_verify: true });
    assert.equal(await text(upstream, server.url), "hi");
  });

  const mtlsOptions: ServerOptions = {
    cert: certs.server.cert,
    key: certs.server.key,
    ca: certs.ca.cert,
    requestCert: true,
    rejectUnauthorized: true,
  };
  const clientPair = {
    client_cert_file: certs.client.certFile,
    client_key_file: certs.client.keyFile,
  };

  for (
    const [backend, extra] of [["deno_fetch", {}], ["node_https", {
      server_name: "localhost",
    }]] as const
  ) {
    await t.step(
      `mTLS (${backend}): a server requiring a client certificate accepts ours`,
      async () => {
        await using server = await nodeServer(mtlsOptions);
        await using upstream = await open({ ca_file: ca, ...extra, ...clientPair });
        assert.equal(upstream.backend, backend);
        assert.equal(await text(upstream, server.url), "ok");
        assert.equal(server.seen[0]?.clientCn, "client");
      },
    );

    await t.step(`mTLS (${backend}): without a client certificate it is rejected`, async () => {
      await using server = await nodeServer(mtlsOptions);
      await using upstream = await open({ ca_file: ca, ...extra });
      await rejectsTls(upstream, server.url, /CertificateRequired|certificate|alert|closed|reset/i);
      assert.deepEqual(server.seen, []);
    });
  }

  for (
    const [backend, extra] of [["deno_fetch", {}], ["node_https", {
      server_name: "localhost",
    }]] as const
  ) {
    const config = { ca_file: ca, ...extra };

    await t.step(`${backend}: an SSE body arrives event by event`, async () => {
      const release = signalled();
      await using server = denoServer(certs.server, () => {
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(encoder.encode("id: 1\ndata: first\n\n"));
            await release.promise;
            controller.enqueue(encoder.encode("id: 2\ndata: second\n\n"));
            controller.close();
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      });
      await using upstream = await open(config);
      assert.equal(upstream.backend, backend);
      const res = await upstream.fetch(server.url, {
        headers: { accept: "text/event-stream" },
        // A safety net: a buffered body would wait here forever for the second event.
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      assert.ok(res.body !== null);
      const reader = res.body.getReader();
      // The server sends the second event only after the first has been read here.
      assert.equal(await readUntil(reader, "data: first\n\n"), "id: 1\ndata: first\n\n");
      release.resolve();
      assert.equal(await readUntil(reader, "data: second\n\n"), "id: 2\ndata: second\n\n");
      assert.equal((await reader.read()).done, true);
    });

    await t.step(
      `${backend}: aborting mid-stream ends the body and the server sees it go`,
      async () => {
        const cancelled = signalled<unknown>();
        await using server = denoServer(certs.server, () => {
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(encoder.encode("data: first\n\n"));
            },
            cancel(reason) {
              cancelled.resolve(reason);
            },
          });
          return new Response(body, { headers: { "content-type": "text/event-stream" } });
        });
        await using upstream = await open(config);
        const controller = new AbortController();
        const res = await upstream.fetch(server.url, { signal: controller.signal });
        assert.ok(res.body !== null);
        const reader = res.body.getReader();
        await readUntil(reader, "data: first\n\n");
        controller.abort();
        await assert.rejects(reader.read(), { name: "AbortError" });
        await within(cancelled.promise, "the server's stream to be cancelled");
      },
    );

    await t.step(`${backend}: aborting before the response headers rejects the fetch`, async () => {
      const arrived = signalled();
      const gone = signalled();
      await using server = denoServer(certs.server, async (req) => {
        req.signal.addEventListener("abort", () => gone.resolve());
        arrived.resolve();
        await gone.promise;
        return new Response("too late");
      });
      await using upstream = await open(config);
      const controller = new AbortController();
      const pending = upstream.fetch(server.url, { signal: controller.signal });
      await within(arrived.promise, "the request to reach the server");
      controller.abort(new DOMException("client went away", "AbortError"));
      await assert.rejects(pending, { name: "AbortError", message: "client went away" });
      await within(gone.promise, "the server to see the request aborted");
    });

    await t.step(`${backend}: an already-aborted signal rejects without a request`, async () => {
      await using upstream = await open(config);
      await assert.rejects(
        upstream.fetch("https://127.0.0.1:9/", { signal: AbortSignal.abort() }),
        { name: "AbortError" },
      );
    });

    await t.step(
      `${backend}: request bodies, methods, headers and statuses cross intact`,
      async () => {
        await using server = denoServer(certs.server, async (req) => {
          const body = await req.text();
          if (req.method === "DELETE") return new Response(null, { status: 204 });
          const headers = new Headers({ "content-type": "application/json" });
          headers.append("x-multi", "a");
          headers.append("x-multi", "b");
          return Response.json({
            method: req.method,
            path: new URL(req.url).pathname + new URL(req.url).search,
            session: req.headers.get("mcp-session-id"),
            body,
          }, { status: 202, headers });
        });
        await using upstream = await open(config);
        const sent = '{"jsonrpc":"2.0","id":1,"method":"ping"}';

        const plain = await upstream.fetch(`${server.url}/mcp?x=1`, {
          method: "POST",
          headers: { "mcp-session-id": "s-1", "content-type": "application/json" },
          body: sent,
        });
        assert.equal(plain.status, 202);
        assert.equal(plain.headers.get("x-multi"), "a, b");
        assert.deepEqual(await plain.json(), {
          method: "POST",
          path: "/mcp?x=1",
          session: "s-1",
          body: sent,
        });

        const streamed = await upstream.fetch(`${server.url}/mcp`, {
          method: "POST",
          body: ReadableStream.from([
            encoder.encode(sent.slice(0, 10)),
            encoder.encode(sent.slice(10)),
          ]),
          duplex: "half",
        } as RequestInit);
        assert.equal((await streamed.json()).body, sent);

        const deleted = await upstream.fetch(`${server.url}/mcp`, { method: "DELETE" });
        assert.equal(deleted.status, 204);
        assert.equal(deleted.body, null);
      },
    );
  }

  await t.step("a missing file is an UpstreamTlsError naming its key", async () => {
    const missing = `${certs.dir}/nope.pem`;
    for (
      const [config, key] of [
        [{ ca_file: missing }, "proxy.tls.ca_file"],
        [
          { client_cert_file: missing, client_key_file: certs.client.keyFile },
          "proxy.tls.client_cert_file",
        ],
        [
          { client_cert_file: certs.client.certFile, client_key_file: missing },
          "proxy.tls.client_key_file",
        ],
      ] as const
    ) {
      await assert.rejects(open(config), (e: unknown) => {
        assert.ok(e instanceof UpstreamTlsError);
        assert.equal(e.name, "UpstreamTlsError");
        assert.equal(e.key, key);
        assert.match(
          e.message,
          new RegExp(`^${key.replaceAll(".", "\\.")}: cannot read .*nope\\.pem`),
        );
        return true;
      });
    }
  });

  await t.step("a file without the expected PEM block is an UpstreamTlsError", async () => {
    await assert.rejects(open({ ca_file: certs.ca.keyFile }), {
      name: "UpstreamTlsError",
      key: "proxy.tls.ca_file",
    });
    await assert.rejects(
      open({ client_cert_file: certs.client.certFile, client_key_file: certs.client.certFile }),
      { name: "UpstreamTlsError", key: "proxy.tls.client_key_file" },
    );
  });

  await t.step(
    "a client key that does not match its certificate is an UpstreamTlsError",
    async () => {
      await assert.rejects(
        open({ client_cert_file: certs.client.certFile, client_key_file: certs.server.keyFile }),
        { name: "UpstreamTlsError", key: "proxy.tls.client_key_file" },
      );
    },
  );

  await t.step("half a client pair is an UpstreamTlsError naming the missing key", async () => {
    await assert.rejects(open({ client_cert_file: certs.client.certFile }), {
      name: "UpstreamTlsError",
      key: "proxy.tls.client_key_file",
    });
    await assert.rejects(open({ client_key_file: certs.client.keyFile }), {
      name: "UpstreamTlsError",
      key: "proxy.tls.client_cert_file",
    });
  });

  await t.step("keyPrefix names another section's keys", async () => {
    await assert.rejects(
      upstreamTls({ ...NONE, ca_file: `${certs.dir}/nope.pem` }, {
        warn() {},
        keyPrefix: "otel.tls",
      }),
      { name: "UpstreamTlsError", key: "otel.tls.ca_file" },
    );
  });
});
