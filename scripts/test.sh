#!/usr/bin/env bash
# The whole test suite: lint (ruff), format check, the layering contract (import-linter), then unit tests (tiny
# in-code model) and integration tests (the real embedded model).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
ruff check .
ruff format --check .
lint-imports --no-logo
exec python -m pytest tests -q "$@"
