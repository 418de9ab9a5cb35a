#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, starts a throwaway
# PostgreSQL server, lints, and runs every test on SQLite and PostgreSQL (browser tests in
# headless Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

pg_dir=$(mktemp -d /tmp/rankery-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
eval "$(scripts/postgres.sh start "$pg_dir")"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
