#!/usr/bin/env bash
# The whole test suite: unit tests (tiny in-code model) and integration tests (the real embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
exec python -m pytest tests -q "$@"
