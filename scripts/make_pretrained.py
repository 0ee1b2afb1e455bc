"""Make the bundled models: train each from its preset on a bundled corpus (fixed seed), measure
it, store it in float16 and write its model card. The recipe is the documentation.

    .venv/bin/python scripts/make_pretrained.py                       # train what is missing, then bundle
    .venv/bin/python scripts/make_pretrained.py --retrain folk-band   # train that one again
    .venv/bin/python scripts/make_pretrained.py --runs runs/pretrained --only chorale
    .venv/bin/python scripts/make_pretrained.py --refresh-accompaniment folk-accompanist --data runs/data/nottingham-multitrack

Per model, in one run: validation NLL (nats/event) of the trained float32 checkpoint and of the
float16 copy that ships (kept only when within 0.01 of it), the Witten-Bell 5-gram on the same
validation events, and `--samples` (8) samples at the card's sampling settings measured against
the validation pieces (structure and pitch figures, `melodygen stats`). Files written:
melodygen/pretrained/NAME.pt, NAME.md, and index.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "melodygen" / "pretrained"
MAX_HALF_NLL_LOSS = 0.01  # nats/event a float16 copy may lose before float32 is shipped instead


@dataclass(frozen=True)
class Recipe:
    name: str
    preset: str
    summary: str
    license: str
    sampling: dict  # the options the card recommends (API names)
    overrides: tuple[str, ...] = ()  # `--set`s on top of the preset
    # fine-tune stages, each the `--set`s of a run that starts from the previous run's best checkpoint
    # (training.init_from); the last one's best checkpoint is shipped (folk-band: more of the minor
    # tunes, training.minor_share). Stage k's run folder is NAME-finetune (k = 1) or NAME-finetuneK.
    finetunes: tuple[tuple[str, ...], ...] = ()
    accompanist: bool = False  # an encoder-decoder: its card also has the accompaniment figures
    infiller: bool = False  # a masked model: scored on erased cells (no n-gram beside it), infill figures


RECIPES = [
    # Before: the preset's 2,000 steps (11 minutes), 0.793 nats/event, its validation at its best when its
    # schedule ended; a 60-minute run of the preset as it is overfitted (0.80 -> 0.81 from step 2,250 on).
    # Transposed into every key and with more dropout it trains on for the hour.
    Recipe("folk-melody", "melody_lstm", "folk-dance melodies (one line), LSTM 2x256",
           "GPL-3.0 (trained on the Nottingham tunes)", {"temperature": 0.9, "bars": 16},
           ("training.max_minutes=60", "training.max_steps=100000", "training.threads=1",  # 60 minutes, nice'd
            "training.transpose_range=[-5, 6]", "model.dropout=0.3")),
    Recipe("folk-band", "multitrack_nottingham",
           "folk tunes as melody + chord tracks, steerable by key, chords and notes per bar, Transformer d256x4",
           "GPL-3.0 (trained on the Nottingham tunes)", {"temperature": 0.9, "top_p": 0.95, "bars": 16},
           ("training.max_minutes=95", "training.max_steps=20000"),  # 95 minutes, one thread, nice'd
           # then 40 minutes on two threads with a third of the windows from minor tunes (this fine-tune
           # started from the float16 bundled copy of the first run's best checkpoint), then 100 more
           # minutes on one thread, nice'd, the schedule started again, then 105 minutes on two threads
           # with varied repeats (now also the preset's; the first three runs were made before they
           # existed, without them: their validation NLL is on a stream without varied repeats)
           finetunes=(("training.minor_share=0.35", "training.lr=3e-4", "training.warmup_steps=20",
                       "training.max_minutes=40", "training.threads=2", "training.eval_every=100"),
                      ("training.minor_share=0.35", "training.lr=3e-4", "training.warmup_steps=20",
                       "training.max_minutes=100", "training.threads=1"),
                      ("encoding.varied_repeats=true", "training.minor_share=0.35", "training.lr=3e-4",
                       "training.warmup_steps=20", "training.max_minutes=105", "training.threads=2"))),
    Recipe("chorale", "multitrack_bach", "four-voice chorales in the style of Bach, Transformer d256x4",
           "music21 corpus terms (trained on its Bach chorale encodings; may restrict commercial use)",
           {"temperature": 0.9, "top_p": 0.95, "bars": 8},
           ("training.max_minutes=60", "training.max_steps=20000", "training.threads=1")),  # 60 minutes, nice'd
    Recipe("pop-piano", "multitrack_pop909", "pop songs as MELODY / BRIDGE / PIANO tracks, Transformer d256x4",
           "MIT (trained on the bundled POP909 subset; the songs themselves are commercial compositions)",
           {"temperature": 0.9, "top_p": 0.95, "bars": 8},
           ("training.max_minutes=60", "training.max_steps=20000", "training.threads=1")),  # 60 minutes, nice'd
    # The LSTM encoder-decoder (configs/accompanist_nottingham.toml: 1,495 steps, then 462 with attention by bars)
    # and the first warm starts of the Transformer one (all weights at one rate, chords given in most windows)
    # stayed at or under folk-band's chord-tone rate (docs/benchmarks.md); not bundled. The shipped run: the
    # preset on two threads, nice'd; its first 220 steps had training.control_dropout=0.3 (the preset's
    # 0.7 came in at step 220, resumed with `--resume --set training.control_dropout=0.7`).
    Recipe("folk-accompanist", "accompanist_nottingham_transformer",
           "chords for a folk melody: a Transformer encoder-decoder, warm-started from folk-band, that reads the "
           "whole melody, then writes the chord track", "GPL-3.0 (trained on the Nottingham tunes)",
           {"temperature": 0.9, "top_p": 0.95, "bars": 16}, ("training.threads=2",), accompanist=True),
    Recipe("chorale-infiller", "masked_bach",
           "four-voice chorales with gaps filled from both sides (infilling, harmonising a melody), masked d192x4",
           "music21 corpus terms (trained on its Bach chorale encodings; may restrict commercial use)",
           {"temperature": 1.0, "top_p": 0.95, "bars": 8},
           # 60 minutes: the shipped run had 35 on one thread (1,164 steps, validation still falling), then
           # was resumed toward 60 on two threads (`--resume --set training.max_minutes=60 --set training.threads=2`),
           # stopped at 53 minutes (step 2,200) for time
           ("training.max_minutes=60", "training.max_steps=20000", "training.threads=1"),
           infiller=True),
]
STRUCTURE = ("pitch_class_entropy", "note_density", "polyphony", "repetition_8", "bar_repeat_exact",
             "bar_repeat_transposed", "bar_vary", "longest_repeat_bars", "empty_bar_rate", "groove_consistency")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "pretrained", help="run folders")
    parser.add_argument("--only", nargs="+", default=None, help="these models only")
    parser.add_argument("--retrain", nargs="*", default=[], help="train these again even if their run exists")
    parser.add_argument("--samples", type=int, default=16, help="at least 10 for the real-vs-generated test")
    parser.add_argument("--refresh-accompaniment", metavar="NAME", default=None,
                        help="measure a bundled accompanist's accompaniment figures again (after a change to how "
                             "accompaniment works) and rewrite its card and index entry; its weights stay as they are")
    parser.add_argument("--data", type=Path, default=None,
                        help="with --refresh-accompaniment: a prepared dataset of its tunes (bundled models keep none)")
    return parser.parse_args()


def machine() -> str:
    """The CPU (model, cores, AVX-512 or not), torch, and the GPU if one is used."""
    import os

    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{model}, {os.cpu_count()} cores, {'AVX-512' if 'avx512f' in info else 'no AVX-512'}, "
            f"torch {torch.__version__}{gpu}")


def half_checkpoint(best: Path, recipe: Recipe, dataset: Path) -> dict:
    """The shipped checkpoint: float16 weights, no training state, a run config without paths,
    the instruments of its training data."""

    from melodygen.checkpoint import load

    ckpt = load(best)
    halves: dict = {}  # tied weights (embedding = output head) stay one tensor, stored once
    state = {k: halves.setdefault((v.data_ptr(), tuple(v.shape)), v.half()) if v.is_floating_point() else v
             for k, v in ckpt["model"]["state_dict"].items()}
    config = json.loads(json.dumps(ckpt["run_config"]))
    config.setdefault("data", {}).update({"dataset": "", "cache_dir": ""})
    kept = {k: ckpt[k] for k in ("format", "format_version", "melodygen_version", "encoding", "step", "best_val_nll")}
    from melodygen.checkpoint import DATA_PROFILE
    from melodygen.dataset.profile import dataset_profile
    from melodygen.encodings import get_encoding
    from melodygen.training.data import instruments_in

    encoding = get_encoding(ckpt["encoding"]["name"], **ckpt["encoding"]["settings"])
    instruments = instruments_in(dataset, encoding)
    kept.update({} if instruments is None else {"instruments": instruments})
    transposed = ckpt["run_config"].get("training", {}).get("transpose_range", (0, 0))
    kept[DATA_PROFILE] = ckpt.get(DATA_PROFILE) or dataset_profile(dataset, encoding, transposed).to_dict()
    return {**kept, "model": {**ckpt["model"], "state_dict": state}, "run_config": config,
            "pretrained": {"name": recipe.name, "preset": recipe.preset, "weights": "float16"}}


def describe(paths, encoding_name: str | None = None) -> dict:
    from melodygen.encodings import get_encoding
    from melodygen.stats import describe_encoded_set, describe_set

    if encoding_name is None:
        return describe_set(paths)
    return describe_encoded_set(paths, get_encoding(encoding_name))


def make(recipe: Recipe, args: argparse.Namespace) -> dict:
    import melodygen
    from melodygen.checkpoint import save
    from melodygen.dataset.manifest import read_manifest

    run = args.runs / recipe.name
    if recipe.name in args.retrain or not (run / "best.pt").is_file():
        started = time.perf_counter()
        melodygen.train(REPO / "configs" / f"{recipe.preset}.toml", out=run, overrides=recipe.overrides,
                        overwrite=True, progress=True)
        print(f"{recipe.name}: trained in {time.perf_counter() - started:.0f} s")
    shipped = run / "best.pt"
    for stage, sets in enumerate(recipe.finetunes, 1):
        tuned = finetune_run(args.runs, recipe.name, stage)
        if recipe.name in args.retrain or not (tuned / "best.pt").is_file():
            melodygen.train(REPO / "configs" / f"{recipe.preset}.toml", out=tuned, overwrite=True, progress=True,
                            overrides=(*recipe.overrides, *sets, f"training.init_from={shipped}"))
        shipped = tuned / "best.pt"
    dataset = json.loads(json.dumps(melodygen.load(shipped).checkpoint["run_config"]))["data"]["dataset"]
    full = melodygen.evaluate(shipped, data=dataset, baseline=None if recipe.infiller else 5)
    target = OUT / f"{recipe.name}.pt"
    save(half_checkpoint(shipped, recipe, Path(dataset)), target)
    half = melodygen.evaluate(target, data=dataset)
    if half["nll"] - full["nll"] > MAX_HALF_NLL_LOSS:
        raise SystemExit(f"{recipe.name}: float16 loses {half['nll'] - full['nll']:.4f} nats/event; ship float32")
    model = melodygen.load(target)
    valid = [p["path"] for p in read_manifest(Path(dataset))["pieces"] if p["split"] == "valid"]
    with tempfile.TemporaryDirectory() as tmp:
        pieces = model.generate(n=args.samples, seed=1, **recipe.sampling)
        files = [piece.save(Path(tmp) / f"s{i}.mid") for i, piece in enumerate(pieces)]
        samples = describe(files)
        reference = describe(valid, None if model.encoding.keeps_instruments else model.encoding.name)
        from melodygen.stats import compare_sets

        two_sample = compare_sets(samples, reference)["two_sample"]
    ckpt = model.checkpoint
    return {"name": recipe.name, "summary": recipe.summary, "encoding": model.encoding.name,
            "kind": ckpt["model"]["kind"], "parameters": sum(p.numel() for p in model.model.parameters()),
            "license": recipe.license, "val_nll": round(half["nll"], 4), "float32_val_nll": round(full["nll"], 4),
            "baseline_nll": round(full["baseline"]["nll"], 4) if "baseline" in full else None,
            "accuracy": round(half["accuracy"], 4),
            "steps": ckpt["step"], "preset": recipe.preset, "sampling": recipe.sampling, "bytes": target.stat().st_size,
            "valid_pieces": len(valid), "sample_count": args.samples, "samples": {k: samples["scalars"][k]["mean"] for k in STRUCTURE},
            "reference": {k: reference["scalars"][k]["mean"] for k in STRUCTURE}, "real_vs_generated": two_sample,
            "curve": learning_curve(run) or earlier_curve(recipe.name),
            "finetune_curves": [learning_curve(finetune_run(args.runs, recipe.name, stage))
                                for stage in range(1, len(recipe.finetunes) + 1)],
            **(accompaniment(target, Path(dataset)) if recipe.accompanist else {}),
            **(infilling(target) if recipe.infiller else {})}


def earlier_curve(name: str) -> list[dict]:
    """The first run's learning curve as index.json has it: run folders stay on the machine that
    trained them, so a fine-tune made elsewhere starts from the bundled weights (copied in as
    the first run's best.pt) and keeps the curve that came with them."""
    return next((e.get("curve") or [] for e in read_index()["models"] if e["name"] == name), [])


def finetune_run(runs: Path, name: str, stage: int) -> Path:
    """The run folder of fine-tune stage `stage` (1-based) of model `name`."""
    return runs / f"{name}-finetune{stage if stage > 1 else ''}"


def infilling(target: Path) -> dict:
    """`scripts/infill_table.py`'s figures: the model against the bundled chorale on 20 held-out gaps."""
    import subprocess

    out = Path(tempfile.mkdtemp()) / "infill.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "infill_table.py"), str(target), "chorale", "--pieces", "20",
                    "--json", str(out)], check=True)
    return {"infilling": json.loads(out.read_text())}


def accompaniment(target: Path, dataset: Path) -> dict:
    """`scripts/accompaniment_table.py`'s figures of the model on 30 held-out two-track tunes."""
    sys.path.insert(0, str(REPO / "scripts"))
    from accompaniment_table import measure, tune_interval, two_track_tunes

    from melodygen.encodings.controls import KEY_STRENGTH

    options = argparse.Namespace(tunes=30, temperature=0.9, top_p=0.95, key_strength=KEY_STRENGTH, seed=1)
    found = measure(str(target), two_track_tunes(dataset), options)
    found["written_interval"] = tune_interval(found.pop("written_per_tune"))
    return {"accompaniment": found}


def learning_curve(run: Path) -> list[dict]:
    """The run's validation points from its metrics.csv: step, minutes, train loss, val NLL."""
    import csv

    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        rows = [r for r in csv.DictReader(file) if r.get("val_nll")]
    return [{"step": int(r["step"]), "minutes": round(float(r["elapsed_s"]) / 60, 1),
             "train_loss": round(float(r["train_loss"]), 3) if r.get("train_loss") else None,
             "val_nll": round(float(r["val_nll"]), 4)} for r in rows]


def card(entry: dict, recipe: Recipe, where: str) -> str:
    rows = "\n".join(f"| {k} | {entry['samples'][k]:.3f} | {entry['reference'][k]:.3f} |" for k in STRUCTURE)
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in recipe.sampling.items())
    scored = (f"{entry['val_nll']:.3f} nats per erased cell given the rest (float32: {entry['float32_val_nll']:.3f}; "
              "cells erased as in training, the same ones at every evaluation)" if entry["baseline_nll"] is None else
              f"{entry['val_nll']:.3f} nats/event (float32: {entry['float32_val_nll']:.3f}), next to "
              f"{entry['baseline_nll']:.3f} for a Witten-Bell 5-gram on the same events "
              f"({1 - entry['val_nll'] / entry['baseline_nll']:.1%} lower)")
    overrides = "".join(f", `--set {o}`" for o in recipe.overrides)
    budget = "" if "training.max_minutes=0" in recipe.overrides else (" (the preset's time budget ends the run: a faster machine gets further; "
                                          "`--set training.max_minutes=0` runs all its steps)")
    steps = f"{entry['steps']} steps"
    if recipe.finetunes and entry.get("curve"):
        stages = [c[-1]["step"] for c in entry.get("finetune_curves", []) if c]
        steps = (f"{entry['curve'][-1]['step']} steps, then " + " and ".join(map(str, stages))
                 + f" steps of the fine-tunes below (the last one's best checkpoint: step {entry['steps']})")
    return f"""# {entry['name']}: {entry['summary']}

- **Data:** the bundled corpus of `configs/{recipe.preset}.toml` (see `data/README.md`), its
  validation split held out ({entry['valid_pieces']} pieces).
- **License:** {entry['license']}. A model follows the license of the data it learned from.
- **Model:** `{entry['kind']}` over the `{entry['encoding']}` encoding, {entry['parameters']:,} parameters,
  stored in float16 ({entry['bytes'] / 1e6:.1f} MB).
- **Validation NLL:** {scored}; accuracy {entry['accuracy']:.1%}.
- **Sampling:** `melodygen sample {entry['name']} --out samples/ -n 4 {options}` (the settings the
  figures below used; lower the temperature for safer, more repetitive music).
- **Made by:** `scripts/make_pretrained.py` (the preset's fixed seed{overrides}) on {where};
  {steps}{budget}.

{_curve_table(entry.get("curve") or [], bool(recipe.finetunes))}{_finetunes(entry, recipe)}Samples ({options}, {entry['sample_count']} pieces, seed 1) next to the validation pieces, means per piece:

| metric | samples | validation pieces |
|---|---:|---:|
{rows}

{_two_sample(entry.get("real_vs_generated"))}{_accompaniment(entry.get("accompaniment"), entry['name'])}{_infilling(entry.get("infilling"), entry['name'])}"""


def _infilling(found: dict | None, name: str) -> str:
    """The infilling figures, for an infiller's card."""
    if not found:
        return ""
    nll, join, wide, seconds = found["nll_per_note"], found["join_mean"], found["join_wide"], found["seconds"]
    return f"""
## Infilling held-out chorales

`melodygen sample {name} --out filled/ --primer chorale.mid --infill 3-4` rewrites bars 3-4 of every
voice knowing the bars after them; `--accompany melody.mid --given-tracks 1` writes the three
lower voices under a melody; `--bars 8` writes from nothing. Against the bundled `chorale`
(left to right, constrained decoding) on the same gaps (bars 3-4 of {found['pieces']} validation chorales;
`scripts/infill_table.py`):

| figure | {name} (both sides) | chorale (before only) | real |
|---|---:|---:|---:|
| the gap's notes' NLL, nats per note | {nll['masked']:.3f} | {nll['left']:.3f} | |
| interval into the next bar, semitones (mean over voices) | {join['masked']:.2f} | {join['left']:.2f} | {join['real']:.2f} |
| ... wider than a fifth | {wide['masked']:.1%} | {wide['left']:.1%} | {wide['real']:.1%} |
| seconds per gap (batch 1) | {seconds['masked']:.2f} | {seconds['left']:.2f} | |
"""


def _accompaniment(found: dict | None, name: str) -> str:
    """The accompaniment figures, for an accompanist's card."""
    if not found:
        return ""
    return f"""
## Accompaniment of held-out tunes

`melodygen sample {name} --out accompanied/ --accompany tune.mid --given-tracks 1 --instruments piano`:
the encoder reads track 1 (the melody) whole, the decoder writes it back note for note (forced)
with a new piano track under it, its notes leaning toward the melody's key (measured; `--key-strength`,
default 4), each bar's chord label from the melody (`harmony.harmonize`). On {found['tunes_accompanied']}
validation tunes (T=0.9, top-p 0.95, seed 1; `scripts/accompaniment_table.py`{
    f"; measured again on {found['measured_on']}" if found.get('measured_on') else ""}):

- melody onsets on a tone of the written chords: **{found['written_chord_tone_rate']:.1%}**
  (95% interval over tunes {found['written_interval'][0]:.1%} to {found['written_interval'][1]:.1%};
  {found['written_coverage']:.1%} of them under a chord, {found['written_classes']:.1f} pitch classes sounding);
  the tunes' own chords: {found['real_chord_tone_rate']:.1%} ({found['real_classes']:.1f} pitch classes);
  over the onsets in a bar's second half: {found['written_late_rate']:.1%} (the tunes' own chords: {found['real_late_rate']:.1%});
- the chord notes' NLL with the melody read: {found['chord_nll_with_melody']:.3f} nats per PITCH/VEL/DUR id
  ({found['chord_tokens']:,} ids in {found['pieces_scored']} tunes); with no melody anywhere: {found['chord_nll_alone']:.3f};
- written notes inside the chord track's training range ({found['range'][0]}-{found['range'][1]}): {found['inside_range']:.1%};
- {found['seconds_per_tune']:.1f} s per tune at batch 1.
"""


def _two_sample(found: dict | None) -> str:
    """The real-vs-generated test of the samples against the validation pieces, in lines."""
    from melodygen.stats.two_sample import describe_lines

    if not found:
        return ""
    first, *rest = describe_lines(found)
    bullets = "\n".join(f"- {line.strip()}" for line in rest[1:])
    return f"Real or generated (`melodygen stats --reference`): {first}\n\n{''.join(rest[:1])}\n\n{bullets}\n"


def _curve_table(curve: list[dict], tuned: bool = False) -> str:
    """The learning curve as a table (nothing for a run without one)."""
    if not curve:
        return ""
    rows = "\n".join(f"| {c['step']} | {c['minutes']} | {'' if c['train_loss'] is None else format(c['train_loss'], '.3f')} "
                     f"| {c['val_nll']:.4f} |" for c in curve)
    shipped = "the best checkpoint is fine-tuned, below" if tuned else "the best checkpoint is shipped"
    return (f"Learning curve (validation NLL in nats/event at each evaluation; {shipped}):\n\n"
            f"| step | minutes | train loss | val NLL |\n|---:|---:|---:|---:|\n{rows}\n\n")


def _finetunes(entry: dict, recipe: Recipe) -> str:
    """Each fine-tune stage's settings and learning curve, for a recipe with them."""
    out = []
    curves = entry.get("finetune_curves") or [[] for _ in recipe.finetunes]
    for stage, (sets, curve) in enumerate(zip(recipe.finetunes, curves), 1):
        last = stage == len(recipe.finetunes)
        shipped = ("its best checkpoint is shipped" if last else "its best checkpoint is fine-tuned again, below")
        table = _curve_table(curve).split("\n\n", 1)[-1]
        sets_text = ", ".join(f"`--set {o}`" for o in sets)
        out.append(f"Then fine-tuned from that checkpoint ({sets_text}); {shipped}:\n\n{table}")
    return "".join(out)


def refresh_accompaniment(name: str, data: Path | None) -> None:
    """`--refresh-accompaniment`: the card and index entry of bundled `name` with its
    accompaniment figures measured again on this machine (`accompaniment`), the rest kept."""
    recipe = next((r for r in RECIPES if r.name == name and r.accompanist), None)
    if recipe is None or data is None:
        raise SystemExit(f"--refresh-accompaniment {name}: give a bundled accompanist "
                         f"({', '.join(r.name for r in RECIPES if r.accompanist)}) and --data <its prepared dataset>")
    entry = next(e for e in read_index()["models"] if e["name"] == name)
    found = accompaniment(OUT / f"{name}.pt", data)["accompaniment"]
    entry = {**entry, "accompaniment": {**found, "measured_on": machine()}}
    (OUT / f"{name}.md").write_text(card(entry, recipe, entry["made_on"]), encoding="utf-8")
    add_to_index(entry)
    print(json.dumps(entry["accompaniment"]))


def main() -> None:
    args = parse_args()
    if args.refresh_accompaniment:
        return refresh_accompaniment(args.refresh_accompaniment, args.data)
    where = machine()
    print(where)
    for recipe in RECIPES:
        if args.only and recipe.name not in args.only:
            continue
        entry = {**make(recipe, args), "made_on": where}
        (OUT / f"{recipe.name}.md").write_text(card(entry, recipe, where), encoding="utf-8")
        add_to_index(entry)
        print(json.dumps(entry))
    print(f"wrote {OUT}")


def read_index() -> dict:
    """index.json as it is now ({"models": []} before the first model)."""
    return json.loads((OUT / "index.json").read_text()) if (OUT / "index.json").is_file() else {"models": []}


def add_to_index(entry: dict) -> None:
    """Put `entry` into index.json (read again just before writing, in recipe order)."""
    entries = {e["name"]: e for e in read_index()["models"]} | {entry["name"]: entry}
    order = [r.name for r in RECIPES]
    models = sorted(entries.values(), key=lambda e: order.index(e["name"]))
    (OUT / "index.json").write_text(json.dumps({"models": models}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
