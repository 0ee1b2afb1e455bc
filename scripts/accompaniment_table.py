"""Accompaniment figures of a multitrack model on held-out tunes: does it listen to the melody?

For the validation pieces of the dataset the checkpoint trained on (two-track tunes: melody +
chords, e.g. the Nottingham preset), in one run:

1. **Chord notes' NLL with and without the melody.** Each tune is encoded whole (melody and
   chords) and with its chord track alone, without control tokens (accompaniment asks for
   none) and with repeated bars written out (every bar's chord notes scored, for models with
   and without repeats alike); the mean NLL (nats) of the chord notes' PITCH, VEL and DUR ids is taken under the
   model in both streams (windows of the model's context, no overlap, the same cut for both).
   Lower with the melody = the model uses it. An encoder-decoder (`models.seq2seq`) also reads
   the melody whole as its source in the first stream (as `--accompany` gives it), and an
   empty source in the second.
2. **Chord-tone rate.** For each melody onset that some accompaniment note sounds under, whether
   the melody's pitch class is among the sounding accompaniment's pitch classes; the share over
   the tune's onsets, for the real chords and for chords the model writes to the same melody
   (`sample --accompany`, given track 1, one piano track, seed 1). Coverage: the share of melody
   onsets with any accompaniment sounding; pitch classes sounding: how many distinct ones the
   accompaniment sounds at a covered onset, on average (a cluster of all twelve would put every
   melody note on a "chord tone"). The same rate over the onsets in the second half of a bar:
   where a left-to-right model, which writes a bar's chord before hearing the rest of the bar's
   melody, falls behind the real chords. The written rate's 95% interval, and each model's
   difference from the first's (paired: the same tunes), come from resampling tunes
   (`tune_interval`): one seed per tune, so a tune's chords are one draw.

   Also, for the LSTM encoder-decoder, the share of its attention that falls on the source's
   bar of the same number as the decoder's (attention by bars, `models.seq2seq`; chance is about
   one bar's share of the window); the share of written notes inside the chord track's pitch
   range as the model recorded it (`data_profile`); and seconds per tune.

    .venv/bin/python scripts/accompaniment_table.py folk-band runs/accompanist/best.pt --tunes 30

A checkpoint argument ending in .json is the rows an earlier run wrote with `--json`, measured
with the same settings: models measured in separate processes (in parallel, one thread each)
are then compared tune by tune in one table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from melodygen.encodings.controls import KEY_STRENGTH


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+",
                        help="multitrack checkpoints or bundled model names, measured side by side")
    parser.add_argument("--data", default=None, help="dataset folder whose validation tunes are used [default: the one "
                        "the first checkpoint trained on]")
    parser.add_argument("--tunes", type=int, default=30, help="validation tunes to accompany (all are scored)")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1, help="the sampling seed of every tune")
    parser.add_argument("--key-strength", type=float, default=KEY_STRENGTH,
                        help="the new notes' lean toward the melody's key (0: none) [default: sample's, %(default)s]")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def tune_ids(encoding, score, tracks) -> list[int]:
    """BOS and the ids of `score` encoded with `tracks` only, without control tokens (as
    accompaniment runs: none) and with repeated bars written out (as given music is), so models
    with and without repeats are scored on the same notes."""
    from melodygen.encodings.vocab import BOS_ID
    from melodygen.notes import Score

    part = Score(tracks, score.tempo_map, score.time_signatures, score.end_time)
    return [BOS_ID, *(int(i) for i in encoding.encode_with(part, controls=False))]


def chord_note_nll(model, encoding, score, tracks, chord_track: int, context: int) -> tuple[float, int]:
    """(summed NLL, count) of the PITCH/VEL/DUR ids of notes of track `chord_track` (index in
    `tracks`) when `score` is encoded with `tracks` only."""
    ids = tune_ids(encoding, score, tracks)
    scored, track = [], -1
    for i, (name, value) in enumerate(encoding.vocab.event_of(x) for x in ids):
        if name == "TRACK":
            track = value
        elif name == "BAR":
            track = -1
        elif name in ("PITCH", "VEL", "DUR") and track == chord_track:
            scored.append(i)
    total = 0.0
    reads = {}
    if model.reads_source:  # an encoder-decoder hears the melody through its encoder too (when it is there)
        from melodygen.dataset.pairs import source_rows

        given = encoding.given_source(ids[1:], 1) if chord_track == 1 else np.zeros(0, dtype=np.int64)
        reads["source"] = source_rows([given], model.settings.max_source)
    bar = getattr(model.settings, "bar_id", 0)  # as the encoder-decoder counts bars
    with torch.inference_mode():
        for lo in range(0, len(ids) - 1, context):
            window = torch.tensor([ids[lo:lo + context + 1]])
            if model.reads_source:
                reads["bar_offset"] = torch.tensor([ids[:lo].count(bar) if bar else 0])
            logits = model(window[:, :-1], **reads)
            logp = torch.log_softmax(logits.float(), -1)[0]
            for i in scored:
                if lo < i <= lo + context and i < len(ids):
                    total -= float(logp[i - lo - 1, ids[i]])
    return total, len(scored)


def own_bar_attention(model, encoding, score, tracks, context: int) -> tuple[float, int]:
    """(attention summed over decoder positions that falls on the source ids of their own bar,
    positions) of `model` reading `score` whole, the melody (track 1) as its source."""
    from melodygen.dataset.pairs import source_rows

    ids = tune_ids(encoding, score, tracks)
    source = source_rows([encoding.given_source(ids[1:], 1)], model.settings.max_source)
    bar = model.settings.bar_id
    source_bars = (source[0] == bar).cumsum(0)
    total, count = 0.0, 0
    with torch.inference_mode():
        for lo in range(0, len(ids) - 1, context):
            window = torch.tensor([ids[lo:lo + context]])
            weights = model.attention(window, source, torch.tensor([ids[:lo].count(bar)]))[0]
            bars = (window[0] == bar).cumsum(0) + ids[:lo].count(bar)
            total += float((weights * (source_bars[None, :] == bars[:, None])).sum())
            count += window.shape[1]
    return total, count


def chord_tone_rate(melody, accompaniment, downbeats) -> np.ndarray:
    """(chord tones, covered onsets, onsets, pitch classes sounding summed over the covered
    onsets, and chord tones and covered onsets in the second half of a bar) of melody notes
    against sounding accompaniment; `downbeats`: the bar starts in seconds. The fourth keeps
    the rate honest: a cluster of every pitch class would put every melody note on a 'chord
    tone'. The last two show where a left-to-right model is weak: a bar's chord is written
    when it starts, before the melody of its second half (a real chord track changes there in
    about 30% of the Nottingham bars)."""
    starts = np.array([n.start for n in accompaniment])
    ends = np.array([n.end for n in accompaniment])
    classes = np.array([n.pitch % 12 for n in accompaniment])
    counts = np.zeros(6)
    for t, pc in sorted({(round(n.start, 6), n.pitch % 12) for n in melody}):
        counts[2] += 1
        sounding = set(classes[(starts <= t + 1e-6) & (ends > t + 1e-6)].tolist()) if len(starts) else set()
        if sounding:
            late = in_second_half(t, downbeats)
            counts[[0, 1, 3, 4, 5]] += (pc in sounding, 1, len(sounding), late and pc in sounding, late)
    return counts


def tune_interval(per_tune: list, base: list | None = None, draws: int = 2000) -> tuple[float, float]:
    """The 95% interval of the pooled chord-tone rate of `per_tune` ((chord tones, covered
    onsets) per tune), or of its difference from `base`'s on the same tunes (paired), by
    resampling tunes: a tune's onsets share its chords and its seed, so tunes are the units."""
    ours = np.asarray(per_tune, dtype=float)
    theirs = None if base is None else np.asarray(base, dtype=float)
    picks = np.random.default_rng(0).integers(0, len(ours), size=(draws, len(ours)))
    rates = ours[picks, 0].sum(1) / ours[picks, 1].sum(1)
    if theirs is not None:
        rates -= theirs[picks, 0].sum(1) / theirs[picks, 1].sum(1)
    low, high = np.quantile(rates, [0.025, 0.975])
    return float(low), float(high)


def in_second_half(t: float, downbeats: np.ndarray) -> bool:
    """Whether time `t` (seconds) falls in the second half of its bar (the last bar as long as
    the one before it)."""
    bar = int(np.searchsorted(downbeats, t + 1e-6)) - 1
    if bar < 0 or len(downbeats) < 2:
        return False
    end = downbeats[bar + 1] if bar + 1 < len(downbeats) else 2 * downbeats[bar] - downbeats[bar - 1]
    return t - downbeats[bar] >= (end - downbeats[bar]) / 2 - 1e-6


def two_track_tunes(dataset: Path) -> list[tuple]:
    """(path, score, its two tracks with notes) of each validation piece of `dataset` with two."""
    from melodygen.dataset.manifest import read_manifest
    from melodygen.midi_io import read_score

    tunes = []
    for piece in read_manifest(dataset)["pieces"]:
        if piece["split"] == "valid":
            score = read_score(piece["path"])
            tracks = [t for t in score.tracks if t.notes]
            if len(tracks) == 2:
                tunes.append((piece["path"], score, tracks))
    return tunes


def measure(name: str, valid: list, args) -> dict:
    """The figures of one model on the two-track validation tunes `valid` ((path, score, tracks))."""
    import melodygen

    model = melodygen.load(name, device="cpu")
    encoding = model.encoding
    context = model.model.max_context or 512
    with_melody, alone, own_bar = np.zeros(2), np.zeros(2), np.zeros(2)
    for _, score, tracks in valid:
        with_melody += chord_note_nll(model.model, encoding, score, tracks, 1, context)
        alone += chord_note_nll(model.model, encoding, score, tracks[1:], 0, context)
        if hasattr(model.model, "attention"):
            own_bar += own_bar_attention(model.model, encoding, score, tracks, context)
    profile = model.checkpoint.get("data_profile") or {}
    lowest, highest = (profile.get("ranges") or [[0, 127], [0, 127]])[1]  # the chord track's, as trained
    real, written, inside, pitches, per_tune = np.zeros(6), np.zeros(6), np.zeros(2), [], []
    started = time.perf_counter()
    for path, _, tracks in valid[:args.tunes]:
        downbeats = np.asarray(pretty_midi.PrettyMIDI(str(path)).get_downbeats())
        real += chord_tone_rate(tracks[0].notes, tracks[1].notes, downbeats)
        (piece,) = model.generate(n=1, accompany=path, given_tracks=[1], instruments=["piano"], seed=args.seed,
                                  temperature=args.temperature, top_p=args.top_p,
                                  key_strength=args.key_strength)
        melody, *new = piece.score.tracks
        notes = [n for t in new for n in t.notes]
        counts = chord_tone_rate(melody.notes, notes, downbeats)
        written += counts
        per_tune.append(counts[:2].tolist())
        inside += (sum(lowest <= n.pitch <= highest for n in notes), len(notes))
        pitches += [n.pitch for n in notes]
    tunes = min(args.tunes, len(valid))
    return {
        "checkpoint": name, "kind": model.checkpoint["model"]["kind"], "steps": model.checkpoint["step"],
        "pieces_scored": len(valid), "tunes_accompanied": tunes,
        "chord_nll_with_melody": with_melody[0] / with_melody[1], "chord_nll_alone": alone[0] / alone[1],
        "chord_tokens": int(with_melody[1]),
        "own_bar_attention": own_bar[0] / own_bar[1] if own_bar[1] else None,
        "real_chord_tone_rate": real[0] / real[1], "real_coverage": real[1] / real[2],
        "written_chord_tone_rate": written[0] / written[1], "written_coverage": written[1] / written[2],
        "written_per_tune": per_tune,  # (chord tones, covered onsets) of each tune, for `tune_interval`
        "real_classes": real[3] / real[1], "written_classes": written[3] / written[1],
        "real_late_rate": real[4] / real[5], "written_late_rate": written[4] / written[5],
        "range": [int(lowest), int(highest)], "inside_range": inside[0] / max(inside[1], 1),
        "written_pitches": [min(pitches, default=0), max(pitches, default=0)],
        "seconds_per_tune": (time.perf_counter() - started) / max(tunes, 1)}


def earlier_rows(path: Path, settings: dict) -> list[dict]:
    """The rows an earlier run wrote with `--json`, to stand beside models measured now (the
    paired differences need each tune's counts); refused unless measured with the same
    `settings` (dataset, tunes, sampling, seed)."""
    rows = json.loads(path.read_text())
    for row in rows:
        other = {k: row.get(k) for k in settings}
        if other != settings:
            raise SystemExit(f"{path}: {row['checkpoint']} was measured with {other}, not {settings}")
    return rows


def main() -> None:
    args = parse_args()
    import melodygen

    models = [name for name in args.checkpoints if not name.endswith(".json")]
    recorded = models and melodygen.load(models[0], device="cpu").checkpoint["run_config"]["data"].get("dataset")
    if not (args.data or recorded and (Path(recorded) / "manifest.json").is_file()):
        raise SystemExit(f"{models[0] if models else 'rows measured earlier'}: no prepared dataset of its own here "
                         "(a bundled model keeps none); pass --data <a prepared dataset of the same tunes>")
    data = Path(args.data or recorded)
    valid = two_track_tunes(data)
    print(f"{data}: {len(valid)} validation pieces with melody + chords")
    settings = {"data": str(data.resolve()), "tunes": args.tunes, "temperature": args.temperature,
                "top_p": args.top_p, "key_strength": args.key_strength, "seed": args.seed}
    rows = [row for name in args.checkpoints for row in (
        earlier_rows(Path(name), settings) if name.endswith(".json") else [{**measure(name, valid, args), **settings}])]
    lines = [
        ("chord notes' NLL (PITCH/VEL/DUR ids), melody in the stream",
         lambda r: f"{r['chord_nll_with_melody']:.3f} nats"),
        ("the same chord notes, chords alone (no melody anywhere)", lambda r: f"{r['chord_nll_alone']:.3f} nats"),
        ("melody onsets on a chord tone, real chords",
         lambda r: f"{r['real_chord_tone_rate']:.1%} ({r['real_classes']:.1f} pitch classes sounding)"),
        ("melody onsets on a chord tone, chords written by `--accompany`",
         lambda r: f"**{r['written_chord_tone_rate']:.1%}** ({r['written_coverage']:.1%} under a chord, "
                   f"{r['written_classes']:.1f} pitch classes sounding)"),
        ("... its 95% interval, resampling tunes",
         lambda r: "{:.1%} to {:.1%}".format(*tune_interval(r["written_per_tune"]))),
        (f"... its difference from {rows[0]['checkpoint']}'s on the same tunes (95% interval)",
         lambda r: "" if r is rows[0] else "{:+.1%} ({:+.1%} to {:+.1%})".format(
             r["written_chord_tone_rate"] - rows[0]["written_chord_tone_rate"],
             *tune_interval(r["written_per_tune"], rows[0]["written_per_tune"]))),
        ("melody onsets on a chord tone in a bar's second half, real chords / written",
         lambda r: f"{r['real_late_rate']:.1%} / {r['written_late_rate']:.1%}"),
        ("written notes inside the chord track's training range",
         lambda r: f"{r['inside_range']:.1%} (range {r['range'][0]}-{r['range'][1]}, written "
                   f"{r['written_pitches'][0]}-{r['written_pitches'][1]})"),
        ("attention on the source's bar of the decoder's own (LSTM encoder-decoder)",
         lambda r: "" if r["own_bar_attention"] is None else f"{r['own_bar_attention']:.1%}"),
        ("seconds per tune, batch 1", lambda r: f"{r['seconds_per_tune']:.1f} s")]
    print(f"\nchord notes scored: {rows[0]['chord_tokens']:,} in {len(valid)} tunes; "
          f"{rows[0]['tunes_accompanied']} tunes accompanied (given track 1, one piano track, "
          f"T={args.temperature}, top-p {args.top_p}, key strength {args.key_strength:g}, seed {args.seed})\n")
    print("| figure | " + " | ".join(f"{r['checkpoint']} ({r['kind']}, {r['steps']:,} steps)" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for label, cell in lines:
        print(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
