"""Accompaniment figures of a multitrack model on held-out tunes: does it listen to the melody?

For the validation pieces of the dataset the checkpoint trained on (two-track tunes: melody +
chords, e.g. the Nottingham preset), in one run:

1. **Chord notes' NLL with and without the melody.** Each tune is encoded whole (melody and
   chords) and with its chord track alone, without control tokens (accompaniment asks for none); the mean NLL (nats) of the chord notes' PITCH, VEL
   and DUR ids is taken under the model in both streams (windows of the model's context, no
   overlap, the same cut for both). Lower with the melody = the model uses it. An
   encoder-decoder (`models.seq2seq`) also reads the melody whole as its source in the first
   stream (as `--accompany` gives it), and an empty source in the second.
2. **Chord-tone rate.** For each melody onset that some accompaniment note sounds under, whether
   the melody's pitch class is among the sounding accompaniment's pitch classes; the share over
   the tune's onsets, for the real chords and for chords the model writes to the same melody
   (`sample --accompany`, given track 1, one piano track, seed 1). Coverage: the share of melody
   onsets with any accompaniment sounding.

    .venv/bin/python scripts/accompaniment_table.py runs/multitrack_nottingham/best.pt --tunes 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a multitrack checkpoint or bundled model name")
    parser.add_argument("--data", default=None, help="dataset folder [default: the one the run trained on]")
    parser.add_argument("--tunes", type=int, default=30, help="validation tunes to accompany (all are scored)")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def chord_note_nll(model, encoding, score, tracks, chord_track: int, context: int) -> tuple[float, int]:
    """(summed NLL, count) of the PITCH/VEL/DUR ids of notes of track `chord_track` (index in
    `tracks`) when `score` is encoded with `tracks` only."""
    from melodygen.encodings.vocab import BOS_ID
    from melodygen.notes import Score

    part = Score(tracks, score.tempo_map, score.time_signatures, score.end_time)
    controls = {int(i) for ids in encoding.control_ids().values() for i in ids}  # as accompaniment runs: none
    ids = [BOS_ID, *(int(i) for i in encoding.encode(part) if int(i) not in controls)]
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
    bar = encoding.vocab.id_of("BAR")
    with torch.inference_mode():
        for lo in range(0, len(ids) - 1, context):
            window = torch.tensor([ids[lo:lo + context + 1]])
            if model.reads_source:
                reads["bar_offset"] = torch.tensor([ids[:lo].count(bar)])
            logits = model(window[:, :-1], **reads)
            logp = torch.log_softmax(logits.float(), -1)[0]
            for i in scored:
                if lo < i <= lo + context and i < len(ids):
                    total -= float(logp[i - lo - 1, ids[i]])
    return total, len(scored)


def chord_tone_rate(melody, accompaniment) -> tuple[int, int, int]:
    """(chord tones, covered onsets, onsets) of melody notes against sounding accompaniment."""
    starts = np.array([n.start for n in accompaniment])
    ends = np.array([n.end for n in accompaniment])
    classes = np.array([n.pitch % 12 for n in accompaniment])
    tones = covered = 0
    onsets = sorted({(round(n.start, 6), n.pitch % 12) for n in melody})
    for t, pc in onsets:
        sounding = classes[(starts <= t + 1e-6) & (ends > t + 1e-6)] if len(starts) else []
        if len(sounding):
            covered += 1
            tones += int(pc in set(sounding.tolist()))
    return tones, covered, len(onsets)


def main() -> None:
    args = parse_args()
    import melodygen
    from melodygen.dataset.manifest import read_manifest
    from melodygen.midi_io import read_score

    model = melodygen.load(args.checkpoint, device="cpu")
    encoding = model.encoding
    data = args.data or model.checkpoint["run_config"]["data"]["dataset"]
    valid = [p["path"] for p in read_manifest(Path(data))["pieces"] if p["split"] == "valid"]
    context = model.model.max_context or 512
    two_track = []
    for path in valid:
        score = read_score(path)
        tracks = [t for t in score.tracks if t.notes]
        if len(tracks) == 2:
            two_track.append((path, score, tracks))
    print(f"{len(valid)} validation pieces, {len(two_track)} with melody + chords; context {context}")
    with_melody = np.zeros(2)
    alone = np.zeros(2)
    for _, score, tracks in two_track:
        with_melody += chord_note_nll(model.model, encoding, score, tracks, 1, context)
        alone += chord_note_nll(model.model, encoding, score, tracks[1:], 0, context)
    real, written = np.zeros(3), np.zeros(3)
    started = time.perf_counter()
    for path, score, tracks in two_track[:args.tunes]:
        real += chord_tone_rate(tracks[0].notes, tracks[1].notes)
        (piece,) = model.generate(n=1, accompany=path, given_tracks=[1], instruments=["piano"], seed=1,
                                  temperature=args.temperature, top_p=args.top_p)
        melody, *new = piece.score.tracks
        written += chord_tone_rate(melody.notes, [n for t in new for n in t.notes])
    seconds = time.perf_counter() - started
    figures = {
        "checkpoint": str(args.checkpoint), "pieces_scored": len(two_track), "tunes_accompanied": min(args.tunes, len(two_track)),
        "chord_nll_with_melody": with_melody[0] / with_melody[1], "chord_nll_alone": alone[0] / alone[1],
        "chord_tokens": int(with_melody[1]),
        "real_chord_tone_rate": real[0] / real[1], "real_coverage": real[1] / real[2],
        "written_chord_tone_rate": written[0] / written[1], "written_coverage": written[1] / written[2],
        "accompany_seconds": seconds}
    print(f"chord notes' NLL (PITCH/VEL/DUR ids, {figures['chord_tokens']:,}): with the melody "
          f"{figures['chord_nll_with_melody']:.3f} nats, chords alone {figures['chord_nll_alone']:.3f} nats")
    print(f"chord-tone rate of melody onsets over {figures['tunes_accompanied']} tunes: real chords "
          f"{figures['real_chord_tone_rate']:.1%} (coverage {figures['real_coverage']:.1%}), written chords "
          f"{figures['written_chord_tone_rate']:.1%} (coverage {figures['written_coverage']:.1%}); "
          f"{seconds:.0f} s to accompany")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
