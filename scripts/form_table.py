"""The figures of the form issue (22) for multitrack folk models, side by side in one run.

    python scripts/form_table.py runs/baselines/folk-band-norepeat.pt folk-band
    python scripts/form_table.py folk-band --samples 48 --bars 16 --form AABA --form-samples 16

For each model (a checkpoint or a bundled name), against the validation tunes of the Nottingham
corpus (the split `prepare` makes for configs/multitrack_nottingham.toml) cut to --bars bars:

- free samples (--samples pieces of --bars bars at the model card's settings, or --temperature
  and --top-p, --seed): bars repeating an earlier bar (exactly), the longest repeated run of bars,
  bars varying an earlier bar (`bar_vary`: not equal, half their notes shared; not among the
  classifier's features, which stay those its figures were first measured with),
  and the real-vs-generated classifier test (`stats.two_sample`; its mean over --seeds sets of
  samples, each of its own seed, and the three features that give the first set away most),
  each next to the reference's;
- copies: the share of samples with a stretch of more than 4 bars also in a training tune (the
  copy check of `sample`, on streams with every bar written out);
- notes' NLL: nats per note over the whole validation tunes (each model reads its own ids of the
  same tunes, in windows of its context; notes counted as written out), so a model that spends
  one id on a repeated bar is compared on the same music;
- with --form: --form-samples pieces of --bars bars with that plan, and the share of the bars
  the plan repeats that sound as the bar they repeat;
- silent beats: the share of pieces (free, and with the plan) with a whole beat where nothing
  sounds between their first onset and their last note (a repeated pickup bar mid-tune; the
  held-out cuts have none).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from melodygen import meter  # noqa: E402
from melodygen.dataset.manifest import split_of  # noqa: E402
from melodygen.dataset.sources import content_hash  # noqa: E402
from melodygen.midi_io import read_score, write_score  # noqa: E402
from melodygen.notes import Note, Score, Track  # noqa: E402

CORPUS = REPO / "data" / "nottingham"
COPY_BARS = 4
REPEAT_FIGURES = ("bar_repeat_exact", "longest_repeat_bars", "bar_vary")  # `stats` scalars beside the tunes'


def validation_tunes() -> list[Path]:
    """The corpus's validation split as `prepare` makes it (val_fraction 0.1, by content hash)."""
    seen, found = set(), []
    for path in sorted(CORPUS.glob("*.mid")):
        digest = content_hash(path)
        if digest not in seen and split_of(digest, 0.1) == "valid":
            seen.add(digest)
            found.append(path)
    return found


def cut(score: Score, bars: int, grid: int = 12) -> Score:
    """The first `bars` bars of `score` (its own meters), from the bar of its first note."""
    onsets = [n.start for t in score.tracks for n in t.notes]
    laid = meter.score_bars(score, grid)
    first = int(meter.bar_index(laid, [round(score.tempo_map.to_beats(min(onsets)) * grid)])[0])
    end = (score.tempo_map.to_seconds(laid[first + bars].start / grid) if len(laid) > first + bars
           else max(n.end for t in score.tracks for n in t.notes))
    tracks = [Track(t.name, t.program, t.is_drum, [Note(n.pitch, n.velocity, n.start, min(n.end, end))
                                                   for n in t.notes if n.start < end - 1e-9]) for t in score.tracks]
    return Score([t for t in tracks if t.notes], score.tempo_map,
                 [s for s in score.time_signatures if s[0] < end], end, score.source, 0, score.ticks_per_beat)


def nats_per_note(model, encoding, scores: list[Score]) -> float:
    """Total NLL of each tune's ids (BOS .. EOS, in windows of the model's context) per note."""
    from melodygen.encodings.vocab import BOS_ID, EOS_ID

    context = getattr(model.settings, "max_context", 1024)
    nats = notes = 0.0
    vocab = encoding.vocab
    pitched = {i for name in ("PITCH", "DRUM")
               for i in range(vocab.offset(name), vocab.offset(name) + vocab.range(name).size)}
    with torch.inference_mode():
        for score in scores:
            ids = [BOS_ID, *map(int, encoding.encode(score)), EOS_ID]
            notes += sum(1 for i in encoding.written_out(encoding.encode(score)) if int(i) in pitched)
            for start in range(0, len(ids) - 1, context):
                window = torch.tensor(ids[start:start + context + 1])[None]
                logits = model(window[:, :-1])
                nats += float(torch.nn.functional.cross_entropy(logits[0], window[0, 1:], reduction="sum"))
    return nats / notes


def copies(scores: list[Score], index, encoding) -> float:
    """The share of `scores` with a stretch of more than COPY_BARS bars also in a training tune."""
    from melodygen.errors import NoUsableMusicError

    copied = 0
    for score in scores:
        try:
            found = index.check(encoding.written_out(encoding.encode(score))).longest
        except NoUsableMusicError:
            continue
        copied += found is not None and (found.bars or 0) > COPY_BARS
    return copied / len(scores)


def measure(name: str, args, reference: dict, tunes: list[Score], work: Path) -> dict:
    """One model's row of the table (module docstring), its samples written under `work`."""
    from melodygen import stats
    from melodygen.checkpoint import load_for_inference, resolve_checkpoint
    from melodygen.sampling.files import sample_to_midi
    from melodygen.sampling.request import GenerationRequest
    from melodygen.stats.copies import run_training_set

    path = resolve_checkpoint(name)
    model, encoding, ckpt = load_for_inference(path)
    out = work / Path(name).stem
    started = time.perf_counter()
    pieces = sample_to_midi(path, out, GenerationRequest(n=args.samples, bars=args.bars, temperature=args.temperature,
                                                         top_p=args.top_p, seed=args.seed))
    seconds = time.perf_counter() - started
    described = stats.describe_set([p.path for p in pieces])
    comparison = stats.compare_sets(described, reference)
    row = {"sampling s": seconds}
    for metric in REPEAT_FIGURES:
        row[metric] = comparison["scalars"][metric]["generated"]["mean"]
    accuracies = [comparison["two_sample"]["accuracy"]]
    for seed in range(args.seed + 1, args.seed + args.seeds):  # the classifier's figure varies by seed (+-4%)
        more = sample_to_midi(path, work / f"{Path(name).stem}-seed{seed}", GenerationRequest(
            n=args.samples, bars=args.bars, temperature=args.temperature, top_p=args.top_p, seed=seed))
        accuracies.append(stats.compare_sets(stats.describe_set([p.path for p in more]), reference)
                          ["two_sample"]["accuracy"])
    row["classifier accuracy"] = float(np.mean(accuracies))
    row["giveaways (first set; each feature alone)"] = ", ".join(
        f"{g['feature']} {g['accuracy']:.0%}" for g in comparison["two_sample"]["giveaways"][:3])
    if args.seeds > 1:
        row[f"... seeds {args.seed}-{args.seed + args.seeds - 1}"] = " / ".join(f"{a:.3f}" for a in accuracies)
    row["pieces with a silent beat"] = silent_share(described)
    training = run_training_set(ckpt["run_config"], encoding, name)
    row[f"copies > {COPY_BARS} bars"] = None if training.index is None else copies([p.score for p in pieces],
                                                                                   training.index, encoding)
    row["nats per note"] = nats_per_note(model, encoding, tunes)
    if args.form and getattr(encoding.settings, "repeats", 0):
        from melodygen.encodings.form import FormPlan

        plan = FormPlan.parse(args.form, args.bars)
        formed = sample_to_midi(path, work / f"{Path(name).stem}-form",
                                GenerationRequest(n=args.form_samples, bars=args.bars, form=args.form,
                                                  temperature=args.temperature, top_p=args.top_p, seed=args.seed))
        planned = sum(p for piece in formed for p, _ in piece.form.repeated)
        heard = sum(h for piece in formed for _, h in piece.form.repeated)
        row[f"--form {plan.describe()}: repeats heard"] = heard / planned
        row[f"--form {plan.describe()}: pieces with a silent beat"] = silent_share(
            stats.describe_set([p.path for p in formed]))
    return row


def silent_share(described: dict) -> float:
    """The share of a described set's pieces with an empty beat (`empty_beat_rate` > 0)."""
    rates = [f["scalars"]["empty_beat_rate"] for f in described["per_file"]]
    return sum(r > 0 for r in rates) / len(rates)


def main() -> None:
    """Read the validation tunes, measure each model, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoints or bundled model names")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="free sample sets (seeds from --seed) whose classifier "
                        "accuracies are averaged; the other figures are the first set's")
    parser.add_argument("--temperature", type=float, default=0.9, help="[default: the card's]")
    parser.add_argument("--top-p", type=float, default=0.95, help="[default: the card's]")
    parser.add_argument("--form", default="AABA", help="a form plan to sample with ('' for none)")
    parser.add_argument("--form-samples", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from melodygen import stats

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tunes = [read_score(p) for p in validation_tunes()]
        (work / "reference").mkdir()
        for tune, path in zip(tunes, validation_tunes()):
            write_score(cut(tune, args.bars), work / "reference" / path.name)
        reference = stats.describe_set(sorted((work / "reference").glob("*.mid")))
        rows = {name: measure(name, args, reference, tunes, work) for name in args.models}
    real = {**{metric: reference["scalars"][metric]["mean"] for metric in REPEAT_FIGURES},
            "pieces with a silent beat": silent_share(reference)}
    metrics = list(dict.fromkeys(k for row in rows.values() for k in row))
    print(f"{len(tunes)} validation tunes cut to {args.bars} bars; {args.samples} samples per model, seed {args.seed}, "
          f"T {args.temperature:g}, top-p {args.top_p:g}")
    print("| metric | " + " | ".join(Path(n).stem for n in rows) + " | validation tunes |")
    print("|---|" + "---:|" * (len(rows) + 1))
    for metric in metrics:
        cells = [_cell(row.get(metric)) for row in rows.values()]
        print(f"| {metric} | " + " | ".join(cells) + f" | {_cell(real.get(metric))} |")


def _cell(value) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
