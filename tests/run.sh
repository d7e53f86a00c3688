#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what the tests need (Docker engine,
# compose CLI, busybox, tmux — only what is missing; needs root for that), start dockerd
# if it is not answering, make the venv, install Ferryman with its test extras, run pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/support/engine.sh
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
exec .venv/bin/pytest "$@"
