#!/usr/bin/env bash
# Runs Rankery on a fresh machine: installs it with the trainer, creates the SQLite database
# under ./var, applies migrations, loads the demo project (first time only; it includes a tiny
# base model built on the spot), starts one local worker for training and sampling jobs, and
# serves http://127.0.0.1:8000. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh train
mkdir -p var
.venv/bin/rankery migrate
if [ ! -f var/.demo-loaded ]; then
  .venv/bin/rankery demo && touch var/.demo-loaded
fi
if [ ! -s var/.worker-token ]; then
  (umask 077 && .venv/bin/rankery workers create local-worker | tail -n 1 > var/.worker-token)
fi

host="${RANKERY_HOST:-127.0.0.1}"
port="${RANKERY_PORT:-8000}"
RANKERY_WORKER_TOKEN="$(cat var/.worker-token)" \
  .venv/bin/rankery worker --api-url "http://$host:$port" &
worker=$!
trap 'kill "$worker" 2> /dev/null || true' EXIT
.venv/bin/rankery serve --host "$host" --port "$port"
