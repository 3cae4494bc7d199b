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
exec cargo test --locked "$@"
