#!/usr/bin/env bash
# Sets up .venv with the test extra and runs the whole test suite (one torch thread).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="[test]" bash scripts/setup_env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec .venv/bin/python -m pytest -q "$@"
