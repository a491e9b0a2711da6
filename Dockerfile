# syntax=docker/dockerfile:1
# mcp-audit as a container image: the proxy compiled with `deno compile` on Deno's own image,
# then copied alone into a slim Debian (glibc, which a compiled Deno binary needs).
#
#   docker build -t mcp-audit .
#   docker run --rm mcp-audit --version
#   docker run --rm -v mcp-audit-data:/data -p 127.0.0.1:4422:4422 -e AUDIT_SECRET \
#     mcp-audit --transport http --upstream https://mcp.example.com/mcp
#
# The audit log, its pins and an optional config.yaml live in the /data volume (the working
# folder, so the defaults ./audit.jsonl, ./audit.db and ./config.yaml land there). See
# docs/install.md; compose.yaml beside this file runs it with the dashboard and metrics.

ARG DENO_VERSION=2.9.6

# The build runs on the builder's own platform and compiles for the image's (--target), which is
# much faster than compiling under emulation; the platform is BuildKit's own variable.
# hadolint ignore=DL3029
FROM --platform=$BUILDPLATFORM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY src/ src/
COPY dashboard/ dashboard/
COPY scripts/release/ scripts/release/
ARG TARGETARCH
# A release build passes the commit and its time (the workflow does); a local build says unknown.
ARG BUILD_COMMIT=unknown
ARG BUILD_DATE=unknown
# -e: a failed stamp stops the build rather than shipping "unknown".
SHELL ["/bin/bash", "-e", "-o", "pipefail", "-c"]
# --allow-all: the permissions a user of the binary has anyway (the upstream is any command), and
# the only set with which Deno lets the proxy put the upstream in a cgroup of its own (docs/stdio.md).
RUN if [ "$BUILD_COMMIT" != unknown ]; then \
      deno run --allow-read=src --allow-write=src scripts/release/stamp.ts \
        --commit "$BUILD_COMMIT" --date "$BUILD_DATE"; \
    fi; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH: $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    deno compile --frozen --allow-all --target "$target" \
      --include dashboard --include src/telemetry/telemetry_worker.ts \
      --output /out/mcp-audit main.ts

FROM debian:bookworm-slim
# One unprivileged user owns /data; numeric, so Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 mcp-audit \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin mcp-audit \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /out/mcp-audit /usr/local/bin/mcp-audit
# Inside a container the loopback address is reachable from nowhere, so every listener binds all
# interfaces; what is published (docker run -p, compose ports) decides who reaches it. These
# variables rank above config.yaml: set them again to change a bind address.
ENV MCP_AUDIT_PROXY_BIND_ADDRESS=0.0.0.0 \
    MCP_AUDIT_DASHBOARD_BIND_ADDRESS=0.0.0.0 \
    MCP_AUDIT_METRICS_BIND_ADDRESS=0.0.0.0 \
    HOME=/data
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
# The HTTP proxy, the dashboard, the Prometheus metrics.
EXPOSE 4422 9090 9091
# The image has no curl: bash's /dev/tcp asks the dashboard for its page (static, no token
# needed, no log read). Its port follows MCP_AUDIT_DASHBOARD_PORT; with the dashboard off,
# disable or replace the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${MCP_AUDIT_DASHBOARD_PORT:-9090}\" && printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\\.[01] 200 '"]
ENTRYPOINT ["mcp-audit"]
CMD ["--help"]
