#!/usr/bin/env bash
# Creates .venv and installs Rankery into it (the web app only). `scripts/setup.sh train` adds
# the trainer, for a worker; `scripts/setup.sh test` adds the trainer, the test tools and the
# system packages the tests need (PostgreSQL server, Chromium) from Debian. The trainer comes
# with the CPU build of torch (pinned: an unpinned torch would pull a multi-GB CUDA build); on a
# GPU machine install the torch build for your CUDA first.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install --quiet torch==2.13.0
  .venv/bin/python -m pip install --quiet -e '.[test,train]'
  missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || missing+=(postgresql)
  command -v chromium > /dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]} from Debian packages..."
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  fi
elif [ "${1:-}" = "train" ]; then
  .venv/bin/python -m pip install --quiet torch==2.13.0
  .venv/bin/python -m pip install --quiet -e '.[train]'
else
  .venv/bin/python -m pip install --quiet -e .
fi
