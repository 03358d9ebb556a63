#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv in .venv with the pinned CPU environment.
# Offline-friendly: only PyPI is needed (torch 2.13.0 comes from a local CPU wheel where pip is configured for one).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"videor1 needs Python 3.11, found {sys.version.split()[0]}"'

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
.venv/bin/python -c 'import videor1, torch, transformers; print(f"videor1 ready: torch {torch.__version__}, transformers {transformers.__version__}")'
