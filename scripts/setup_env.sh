#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs melodygen into it, CPU build of torch first.
# Usage: source-free; called by scripts/quickstart.sh and scripts/test.sh.
#   TORCH_SPEC   the torch requirement to install first (default: torch==2.13.0)
#   TORCH_INDEX  an extra pip index for torch, e.g. PyTorch's CPU wheel index, to avoid a large CUDA build
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "melodygen needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    echo "melodygen setup: installing ${TORCH_SPEC:-torch==2.13.0} (CPU build where available)"
    "${PIP[@]}" install "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"}
fi
echo "melodygen setup: installing melodygen and its dependencies into .venv"
"${PIP[@]}" install -e ".${EXTRAS:-}"
