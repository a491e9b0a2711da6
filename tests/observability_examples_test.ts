/**
 * The observability example (examples/observability/) checked file by file, with the tools that
 * read those files where they exist here: `promtool` for the Prometheus configuration and every
 * dashboard query, the proxy's own configuration loader for mcp-audit.yaml, a schema of the
 * collector's components for the collector configuration (no collector binary is packaged for
 * Debian or npm), and the compose file parsed for pinned images and mounts that exist. Nothing here
 * depends on the storage backend: the sqlite pass skips it.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../src/config/load.ts";
import { ALL_METRICS } from "../src/telemetry/metric_names.ts";
import { assert, assertEquals, STORAGE, tempDir } from "./helpers.ts";
import {
  dashboardQueries,
  EXAMPLE,
  familyOf,
  forPrometheus,
  metricNames,
  readDashboard,
  variableMetric,
  variableQueries,
} from "./fixtures/prom_dashboard.ts";
import { checkCollectorConfig } from "./fixtures/prom_collector_schema.ts";

const ignore = STORAGE === "sqlite";
const decoder = new TextDecoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function record(value: unknown, what: string): Record<string, unknown> {
  assert(isRecord(value), `${what} is a map`);
  return value;
}

function strings(value: unknown, what: string): string[] {
  assert(
    Array.isArray(value) && value.every((v) => typeof v === "string"),
    `${what} is a list of strings`,
  );
  return value;
}

function yamlFile(name: string): unknown {
  return parseYaml(Deno.readTextFileSync(`${EXAMPLE}${name}`));
}

async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("promtool", { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("promtool is not installed (Debian package prometheus; .ci/run installs it)");
    }
    throw e;
  }
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/** The example's mcp-audit.yaml, loaded as the proxy loads it. */
function exampleConfig() {
  const text = Deno.readTextFileSync(`${EXAMPLE}mcp-audit.yaml`);
  return loadConfig({
    file: { path: `${EXAMPLE}mcp-audit.yaml`, text },
    env: {},
    flags: new Map(),
    upstreamArgv: [],
  });
}

/** compose.yaml's services. */
function composeServices(): Record<string, Record<string, unknown>> {
  const compose = record(yamlFile("compose.yaml"), "compose.yaml");
  const services = record(compose.services, "services");
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, service] of Object.entries(services)) {
    out[name] = record(service, `services.${name}`);
  }
  return out;
}

/** `host:port` of a URL or `host:port` text. */
function hostAndPort(text: string): { host: string; port: string } {
  const url = new URL(text.includes("://") ? text : `tcp://${text}`);
  return { host: url.hostname, port: url.port };
}

Deno.test({
  name:
    "the example's prometheus.yml passes promtool check config and scrapes mcp-audit's metrics listener",
  ignore,
  fn: async () => {
    const { code, output } = await promtool("check", "config", `${EXAMPLE}prometheus.yml`);
    assertEquals(code, 0, `promtool check config exits 0:\n${output}`);
    assert(output.includes("SUCCESS"), `promtool reports success:\n${output}`);

    // The target is the proxy's metrics listener as the example configures it.
    const { config } = exampleConfig();
    const prometheus = record(yamlFile("prometheus.yml"), "prometheus.yml");
    const jobs = prometheus.scrape_configs;
    assert(Array.isArray(jobs) && jobs.length === 1, "one scrape job");
    const job = record(jobs[0], "the scrape job");
    assertEquals(job.metrics_path, config.metrics.path, "the job scrapes metrics.path");
    const statics = job.static_configs;
    assert(Array.isArray(statics) && statics.length === 1, "one static target group");
    const targets = strings(record(statics[0], "static_configs[0]").targets, "targets");
    assertEquals(targets, [`mcp-audit:${config.metrics.port}`], "the target is mcp-audit's port");
    assert("mcp-audit" in composeServices(), "mcp-audit is a compose service");

    // The same check refuses a broken file, so a pass above means something.
    await using dir = await tempDir("promtool-config");
    const broken = `${dir.path}/prometheus.yml`;
    await Deno.writeTextFile(broken, "global:\n  scrape_interval: often\n");
    assert((await promtool("check", "config", broken)).code !== 0, "a bad interval is refused");
  },
});

Deno.test({
  name:
    "the collector configuration uses known components with valid settings, and every pipeline only defined ones",
  ignore,
  fn: () => {
    const collector = yamlFile("otel-collector.yaml");
    assertEquals(checkCollectorConfig(collector), [], "no schema problems");

    const root = record(collector, "otel-collector.yaml");
    const pipelines = record(record(root.service, "service").pipelines, "pipelines");
    assertEquals(Object.keys(pipelines).sort(), ["logs", "traces"], "a traces and a logs pipeline");
    const exporters = record(root.exporters, "exporters");
    const logs = record(pipelines.logs, "logs pipeline");
    assert(
      strings(logs.exporters, "logs exporters").some((id) => id.startsWith("file")),
      "audit records go to a file (the SIEM's side)",
    );
    const traces = record(pipelines.traces, "traces pipeline");
    assert(
      strings(traces.processors, "trace processors").includes("batch") &&
        strings(logs.processors, "log processors").includes("batch"),
      "both pipelines batch",
    );

    // The proxy sends to the receiver's port, by the collector's compose service name; spans go
    // on to a service compose.yaml runs.
    const services = composeServices();
    const { config } = exampleConfig();
    const otlp = record(record(record(root.receivers, "receivers").otlp, "otlp").protocols, "p");
    const http = hostAndPort(String(record(otlp.http, "protocols.http").endpoint));
    assertEquals(http.host, "0.0.0.0", "the receiver listens for other containers");
    const endpoint = hostAndPort(config.otel.endpoint);
    assertEquals(endpoint.port, http.port, "mcp-audit sends to the receiver's port");
    assert(endpoint.host in services, `${endpoint.host} is a compose service`);
    for (const [id, settings] of Object.entries(exporters)) {
      if (!id.startsWith("otlp")) continue;
      const host = hostAndPort(String(record(settings, id).endpoint)).host;
      assert(host in services, `exporter ${id} sends to ${host}, a compose service`);
    }

    // The schema check can fail: a pipeline naming an undefined exporter, an unknown setting,
    // a bad duration and an unknown component are each reported.
    const broken = structuredClone(root);
    record(record(record(broken.service, "s").pipelines, "p").traces, "t").exporters = ["zipkin"];
    record(record(broken.processors, "p").batch, "batch").timeout = "1 second";
    record(record(broken.exporters, "e").debug, "debug").verbose = true;
    record(broken.receivers, "r").kafka = {};
    const problems = checkCollectorConfig(broken).join("\n");
    for (const expected of ["zipkin", "timeout", "verbose", "kafka"]) {
      assert(problems.includes(expected), `a broken ${expected} is reported:\n${problems}`);
    }
  },
});

Deno.test({
  name:
    "mcp-audit.yaml loads with the proxy's own loader: metrics on all interfaces at :9091, spans for every method, audit records as logs",
  ignore,
  fn: () => {
    const { config, warnings } = exampleConfig();
    assertEquals(warnings, [], "no warnings");
    assertEquals(config.proxy.transport, "http");
    assertEquals(config.metrics.enabled, true);
    assertEquals(config.metrics.bind_address, "0.0.0.0", "scraped from another container");
    assertEquals(config.metrics.port, 9091, "the Go tool's port");
    assertEquals(config.otel.enabled, true);
    assertEquals(config.otel.endpoint, "http://otel-collector:4318");
    assertEquals(config.otel.methods, "all");
    assertEquals(config.otel.logs, true);
    assertEquals(config.policy.enabled, true, "the policy gives the denial panels data");
    assert(config.proxy.http.allowed_hosts.includes("mcp-audit"), "the load service's Host");

    // The upstream is the compose service running server-everything, on the port it is given.
    const services = composeServices();
    const upstream = hostAndPort(config.proxy.upstream);
    const server = services[upstream.host];
    assert(server !== undefined, `${upstream.host} is a compose service`);
    assertEquals(record(server.environment, "environment").PORT, upstream.port);
  },
});

Deno.test({
  name:
    "compose.yaml pins every image, mounts only files that exist, and names only services it defines",
  ignore,
  fn: async () => {
    const compose = record(yamlFile("compose.yaml"), "compose.yaml");
    const services = composeServices();
    const volumes = Object.keys(record(compose.volumes, "volumes"));
    for (
      const name of ["mcp-audit", "everything", "load", "otel-collector", "prometheus", "grafana"]
    ) {
      assert(name in services, `service ${name}`);
    }
    const mountsOf = new Map<string, { source: string; target: string }[]>();
    for (const [name, service] of Object.entries(services)) {
      const image = service.image;
      assert(typeof image === "string", `${name} has an image`);
      const tag = /^[a-z0-9./_-]+:([A-Za-z0-9._-]+)$/.exec(image)?.[1];
      assert(
        tag !== undefined && tag !== "latest" && /\d+\.\d+/.test(tag),
        `${name}: image ${image} has a pinned version tag`,
      );
      if (image.startsWith("denoland/deno:")) {
        assertEquals(tag, "2.9.6", `${name} runs the Deno the project pins`);
      }
      const mounts: { source: string; target: string }[] = [];
      for (const volume of strings(service.volumes ?? [], `${name}.volumes`)) {
        const [source = "", target = ""] = volume.split(":");
        assert(target.startsWith("/"), `${name}: ${volume} mounts at an absolute path`);
        if (source.startsWith(".") || source.startsWith("/")) {
          const path = new URL(source, `file://${EXAMPLE}`).pathname;
          await Deno.stat(path).catch(() => {
            throw new Error(`${name}: mounted ${source} (${path}) does not exist`);
          });
          assert(volume.endsWith(":ro"), `${name}: ${volume} is mounted read-only`);
          mounts.push({ source: path.replace(/\/$/, ""), target });
        } else {
          assert(volumes.includes(source), `${name}: volume ${source} is declared`);
        }
      }
      mountsOf.set(name, mounts);
      for (const other of strings(service.depends_on ?? [], `${name}.depends_on`)) {
        assert(other in services, `${name} depends on ${other}, a service`);
      }
      for (const port of strings(service.ports ?? [], `${name}.ports`)) {
        assert(port.startsWith("127.0.0.1:"), `${name}: ${port} is published on loopback only`);
      }
      // Every file a command names inside the container is one a mount brings in.
      for (const arg of strings(service.command ?? [], `${name}.command`)) {
        const path = arg.replace(/^--[a-z.-]+=/, "");
        if (!path.startsWith("/app/") && !path.startsWith("/etc/")) continue;
        const mount = mounts.find((m) => path === m.target || path.startsWith(`${m.target}/`));
        assert(mount !== undefined, `${name}: ${path} comes from a mount`);
        const host = mount.source + path.slice(mount.target.length);
        await Deno.stat(host).catch(() => {
          throw new Error(`${name}: ${path} is ${host} on this side, which does not exist`);
        });
      }
    }
    // The proxy runs this repository's main.ts with the example's configuration.
    const proxyCommand = strings(services["mcp-audit"]?.command, "mcp-audit.command");
    assert(proxyCommand.includes("/app/main.ts"), "mcp-audit runs main.ts");
    const configArg = proxyCommand[proxyCommand.lastIndexOf("--config") + 1];
    assert(
      mountsOf.get("mcp-audit")?.some((m) =>
        m.target === configArg && m.source === `${EXAMPLE}mcp-audit.yaml`
      ),
      "the proxy's --config is the example's mcp-audit.yaml",
    );
    // The agent calls the proxy on its port by a host name it accepts, and sends its spans to the
    // collector the proxy sends to.
    const { config } = exampleConfig();
    const loadCommand = strings(services.load?.command, "load.command");
    const flag = (name: string) => loadCommand[loadCommand.indexOf(name) + 1] ?? "";
    const url = new URL(flag("--url"));
    assertEquals(url.port, String(config.proxy.port), "load calls the proxy's port");
    assert(config.proxy.http.allowed_hosts.includes(url.hostname), "by a host the proxy accepts");
    assertEquals(flag("--otlp"), config.otel.endpoint, "load sends spans where the proxy does");
    // Grafana loads dashboards from where the dashboards folder is mounted.
    const provider = record(yamlFile("grafana/provisioning/dashboards/dashboards.yaml"), "p");
    const providers = provider.providers;
    assert(Array.isArray(providers) && providers.length === 1, "one dashboard provider");
    const path = record(record(providers[0], "provider").options, "options").path;
    assert(
      mountsOf.get("grafana")?.some((m) =>
        m.target === path && m.source === `${EXAMPLE}grafana/dashboards`
      ),
      "the provider's path is where grafana/dashboards is mounted",
    );
  },
});

Deno.test({
  name: "Grafana's datasources are compose services, and every dashboard panel uses one of them",
  ignore,
  fn: () => {
    const services = composeServices();
    const file = record(yamlFile("grafana/provisioning/datasources/datasources.yaml"), "file");
    const sources = file.datasources;
    assert(Array.isArray(sources), "a list of datasources");
    const uids = new Set<string>();
    for (const source of sources) {
      const s = record(source, "datasource");
      assert(typeof s.uid === "string" && typeof s.url === "string", "uid and url");
      uids.add(s.uid);
      const host = new URL(s.url).hostname;
      assert(host in services, `datasource ${s.uid} points at ${host}, a compose service`);
    }
    assert(uids.has("prometheus"), "the Prometheus datasource has the uid the dashboard uses");
    const dashboard = readDashboard();
    const panels = dashboard.panels;
    assert(Array.isArray(panels) && panels.length > 0, "panels");
    const ids = new Set<number>();
    for (const panel of panels) {
      const p = record(panel, "panel");
      assert(typeof p.id === "number" && !ids.has(p.id), `panel ids are unique: ${p.id}`);
      ids.add(p.id);
      const uid = record(p.datasource, `panel ${p.id} datasource`).uid;
      assert(typeof uid === "string" && uids.has(uid), `panel ${p.id} uses a provisioned source`);
      const grid = record(p.gridPos, `panel ${p.id} gridPos`);
      assert(
        typeof grid.x === "number" && typeof grid.w === "number" && grid.x + grid.w <= 24,
        `panel ${p.id} fits the 24-column grid`,
      );
    }
  },
});

Deno.test({
  name: "every dashboard query names only metrics the proxy serves, and promtool parses each one",
  ignore,
  fn: async () => {
    const families = new Map(ALL_METRICS.map((m) => [m.name, m.type]));
    const dashboard = readDashboard();
    const queries = dashboardQueries(dashboard);
    assert(queries.length >= 10, `the dashboard has its queries (${queries.length})`);

    const read = new Set<string>();
    for (const q of queries) {
      const names = metricNames(forPrometheus(q.expr));
      assert(names.length > 0, `${q.panel} ${q.refId} reads a metric: ${q.expr}`);
      for (const name of names) {
        const family = familyOf(name, families);
        assert(family !== undefined, `${q.panel} ${q.refId}: ${name} is not a metric we serve`);
        read.add(family);
      }
    }
    for (const v of variableQueries(dashboard)) {
      assert(families.has(variableMetric(v.query)), `variable ${v.name} reads a metric we serve`);
    }
    // What the issue asks the dashboard to show.
    for (
      const wanted of [
        "mcp_audit_tool_calls_total",
        "mcp_audit_request_duration_seconds",
        "mcp_audit_policy_decisions_total",
        "mcp_audit_guardrail_decisions_total",
        "mcp_audit_rate_limit_rejections_total",
        "mcp_audit_async_queue_depth",
        "mcp_audit_otel_queue_depth",
        "mcp_audit_chain_seq",
      ]
    ) {
      assert(read.has(wanted), `the dashboard shows ${wanted}`);
    }
    assert(
      queries.some((q) =>
        /histogram_quantile\(0\.5,.*mcp_audit_request_duration_seconds/.test(q.expr)
      ) &&
        queries.some((q) =>
          /histogram_quantile\(0\.95,.*mcp_audit_request_duration_seconds/.test(q.expr)
        ),
      "p50 and p95 latency",
    );
    assert(
      queries.some((q) => /sum by \(tool_name\) \(rate\(mcp_audit_tool_calls_total/.test(q.expr)),
      "calls per second by tool",
    );

    // The name check can fail.
    assertEquals(metricNames('sum by (le) (rate(nope_seconds_bucket{a="b"}[5m])) > 1e-9'), [
      "nope_seconds_bucket",
    ]);
    assertEquals(
      familyOf("mcp_audit_chain_seq_count", families),
      undefined,
      "a gauge has no _count",
    );

    // promtool parses each query as a recording rule's expression.
    await using dir = await tempDir("promtool-rules");
    const rules = queries.map((q) => ({
      record: `dashboard:panel_${q.panelId}:${q.refId.toLowerCase()}`,
      expr: forPrometheus(q.expr),
    }));
    const file = `${dir.path}/dashboard.rules.json`;
    // JSON is YAML: promtool reads this file as it would a YAML one.
    await Deno.writeTextFile(file, JSON.stringify({ groups: [{ name: "dashboard", rules }] }));
    const checked = await promtool("check", "rules", file);
    assertEquals(checked.code, 0, `promtool check rules exits 0:\n${checked.output}`);
    assert(
      checked.output.includes(`SUCCESS: ${rules.length} rules found`),
      `promtool found every query:\n${checked.output}`,
    );

    // And refuses a query that does not parse.
    const bad = `${dir.path}/bad.rules.json`;
    const broken = { record: "dashboard:broken", expr: "sum(rate(mcp_audit_chain_seq[1m])" };
    await Deno.writeTextFile(bad, JSON.stringify({ groups: [{ name: "b", rules: [broken] }] }));
    assert((await promtool("check", "rules", bad)).code !== 0, "a broken query is refused");
  },
});
