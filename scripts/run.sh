#!/usr/bin/env bash
# Runs Rankery on a fresh machine: installs it, creates the SQLite database under ./var,
# applies migrations, loads the demo project (first time only) and serves http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p var
.venv/bin/rankery migrate
if [ ! -f var/.demo-loaded ]; then
  .venv/bin/rankery demo && touch var/.demo-loaded
fi
exec .venv/bin/rankery serve --host "${RANKERY_HOST:-127.0.0.1}" --port "${RANKERY_PORT:-8000}"
