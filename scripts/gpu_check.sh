#!/usr/bin/env bash
# One command for a CUDA machine, about 5 minutes: the CUDA tests, each model kind trained for a
# few hundred steps with bf16 autocast and sampled, the training and sampling benchmarks, and one
# table at the end (also written to $OUT/gpu_check.md when OUT is set).
#
#   bash scripts/gpu_check.sh                          # on the GPU machine (python3 with torch there)
#   PYTHON=.venv/bin/python DEVICE=cpu STEPS=20 BENCH_STEPS=5 BENCH_PRESETS=melody_rnn BENCH_TOKENS=64 \
#       bash scripts/gpu_check.sh                  # a dry run of the script on a CPU
#
# It installs this tree (no dependencies) into a temporary folder on PYTHONPATH, so the bundled
# corpora are there as on any install; mido and pretty_midi, if that python lacks them, come from
# wheels in .whl/ when that folder is there (a GPU machine may have no network).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-300}
BENCH_STEPS=${BENCH_STEPS:-60}
BENCH_PRESETS=${BENCH_PRESETS:-melody_rnn melody_lstm melody_transformer performance_lstm performance_transformer}
BENCH_TOKENS=${BENCH_TOKENS:-1024}
WORK=$(mktemp -d)
REPORT=${OUT:-$WORK}/gpu_check.md
"$PY" -m pip install -q --no-deps --no-build-isolation --target "$WORK/site" . || exit 1
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
MG=("$PY" -m melodygen)

if ! "$PY" -c "import mido, pretty_midi" 2>/dev/null && [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site" .whl/*.whl
fi
"$PY" - "$DEVICE" <<'EOF' || exit 1
import sys, torch
device = sys.argv[1]
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to this python (run with DEVICE=cpu for a dry run)")
name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
print(f"gpu_check: torch {torch.__version__} on {name}")
EOF

status=0
section() { echo; echo "== $1 ($(date +%H:%M:%S))"; }

section "CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -n 5 | tee "$WORK/tests.txt" || status=1

section "prepare the bundled Nottingham tunes"
"${MG[@]}" prepare bundled:nottingham --encoding melody --out "$WORK/data" | tail -n 3 || exit 1

for kind in rnn lstm gru attention_lstm transformer cnn; do
    case $kind in
        rnn) config=configs/melody_rnn.toml; extra=() ;;
        gru|attention_lstm) config=configs/melody_lstm.toml; extra=(--set model.kind=$kind) ;;
        *) config=configs/melody_$kind.toml; extra=() ;;
    esac
    section "train $kind ($STEPS steps, $DEVICE) and sample 16 x 512 events"
    begin=$(date +%s.%N)
    "${MG[@]}" train --config "$config" --data "$WORK/data" --out "$WORK/run-$kind" --device "$DEVICE" \
        --set training.max_steps="$STEPS" --set training.eval_every="$STEPS" --set training.max_minutes=0 \
        "${extra[@]}" --quiet | tail -n 4 || status=1
    echo "$begin $(date +%s.%N)" > "$WORK/train-$kind.seconds"
    begin=$(date +%s.%N)
    "${MG[@]}" sample "$WORK/run-$kind/best.pt" --out "$WORK/samples-$kind" -n 16 --length 512 --seed 0 \
        --device "$DEVICE" | tail -n 2 || status=1
    echo "$begin $(date +%s.%N)" > "$WORK/sample-$kind.seconds"
done

section "training benchmark: melodygen's loop vs a bare PyTorch loop"
"$PY" scripts/bench_train.py --device "$DEVICE" --steps "$BENCH_STEPS" --repeats 1 --presets $BENCH_PRESETS | tee "$WORK/bench_train.txt" || status=1

section "sampling benchmark: batch 1 and 16, cached vs re-running the prefix"
"$PY" scripts/bench_sample.py --device "$DEVICE" --tokens "$BENCH_TOKENS" --repeat 1 | tee "$WORK/bench_sample.txt" || status=1

section "table"
"$PY" - "$WORK" "$DEVICE" "$STEPS" <<'EOF' | tee "$REPORT"
import sys
from pathlib import Path

import torch

from melodygen.training.rundir import RunPaths, read_metrics

work, device, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
print(f"gpu_check on {name}, torch {torch.__version__}; training {steps} steps per kind "
      f"({'bf16 autocast' if device.startswith('cuda') else 'fp32'}), sampling 16 x 512 events")
print()
def last(values: list, default: float) -> float:
    """The last value of a metrics column that has one (steps without it hold None)."""
    return next((v for v in reversed(values) if v is not None), default)


def seconds(what: str, kind: str) -> float:
    begin, end = map(float, (work / f"{what}-{kind}.seconds").read_text().split())
    return end - begin


print("| kind | train s (incl. start-up) | train tok/s (last interval) | val NLL | sample s (16 x 512, incl. load) | events/s |")
print("|---|---:|---:|---:|---:|---:|")
for kind in ("rnn", "lstm", "gru", "attention_lstm", "transformer", "cnn"):
    paths = RunPaths(work / f"run-{kind}")
    columns = read_metrics(paths.metrics) if paths.metrics.is_file() else {}
    rate = last(columns.get("tokens_per_s", []), 0.0)
    nll = last(columns.get("val_nll", []), float("nan"))
    sample_s = seconds("sample", kind)
    print(f"| {kind} | {seconds('train', kind):.1f} | {rate:,.0f} | {nll:.3f} | "
          f"{sample_s:.1f} | {16 * 512 / sample_s:,.0f} |")
print()
print("CUDA tests: " + (work / "tests.txt").read_text().strip().splitlines()[-1])
for bench in ("bench_train", "bench_sample"):
    print(f"\n{bench}.py:\n```\n{(work / f'{bench}.txt').read_text().rstrip()}\n```")
EOF
echo "gpu_check: table in $REPORT"
exit $status
