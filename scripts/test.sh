#!/usr/bin/env bash
# The whole test suite. Tests that need PostgreSQL start their own throwaway cluster from the
# machine's PostgreSQL server binaries (`pg_config --bindir`, or PGWARD_PG_BINDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pg_config >/dev/null 2>&1 && [ -z "${PGWARD_PG_BINDIR:-}" ] && ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries not found; installing them with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL server binaries not found: install them (e.g. apt-get install postgresql) or set PGWARD_PG_BINDIR" >&2
    exit 1
  fi
fi
# The MCP Python SDK for tests/e2e_python.rs, in a virtualenv outside the repository (reused
# when present).
PGWARD_VENV="${PGWARD_VENV:-$HOME/.cache/pgward/venv}"
MCP_SDK_VERSION="2.3.0"
if ! "$PGWARD_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_SDK_VERSION')" >/dev/null 2>&1; then
  echo "setting up the MCP Python SDK $MCP_SDK_VERSION in $PGWARD_VENV" >&2
  python3 -m venv "$PGWARD_VENV"
  "$PGWARD_VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_SDK_VERSION"
fi
export PGWARD_TEST_PYTHON="$PGWARD_VENV/bin/python"
exec cargo test --locked "$@"
