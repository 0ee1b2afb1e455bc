#!/usr/bin/env bash
# The main job on the bundled data, from nothing: set up .venv, prepare the Nottingham folk tunes,
# train the small melody LSTM (about 5 minutes on 2 CPU cores), sample MIDI files, compare the
# model with a 5-gram baseline on the same validation events, say where everything is.
# Extra arguments go to `melodygen train`, e.g. `bash scripts/quickstart.sh --set training.max_minutes=2`,
# or `--threads 1` on a machine busier than its cores (train says so in a note when it starts).
# Training and evaluation use the physical cores, sampling one thread (`--threads N` of each command).
# Train says when the time budget stopped it far short of its steps, evaluate when the model does
# no better than the 5-gram, each with the reason and what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
MG=.venv/bin/melodygen
RUN=runs/quickstart
SAMPLES=samples/quickstart

$MG prepare bundled:nottingham --encoding melody --out runs/data/nottingham-melody
$MG train --config configs/melody_lstm.toml --data runs/data/nottingham-melody --out "$RUN" --overwrite "$@"
$MG sample "$RUN/best.pt" --out "$SAMPLES" --num-outputs 4 --bars 16 --temperature 0.9 --seed 0 --overwrite
echo
echo "Did it learn? The model against a counted 5-gram, on the same held-out tunes (lower NLL is better):"
$MG evaluate "$RUN/best.pt" --data runs/data/nottingham-melody --baseline 5
echo
echo "Done. Your generated MIDI files are in $SAMPLES/ (the model is $RUN/best.pt)."
echo "Next: hear and see them on one page:  .venv/bin/melodygen report $RUN --samples $SAMPLES --reference bundled:nottingham"
