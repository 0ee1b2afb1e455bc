"""`sample`'s copy check judges only the music the model wrote: a training tune the user gave, as
the primer, as the tracks to accompany or as the bars around an infilling, is not reported as
copied (`stats.copies.check_pieces` masks each `Piece.given`). The bundled `folk-band` on one of
its own training tunes; the check prepares its training corpus once (a few seconds)."""

from __future__ import annotations

import pytest
from conftest import CORPORA

from melodygen import pretrained
from melodygen.checkpoint import resolve_checkpoint
from melodygen.sampling.files import sample_to_midi
from melodygen.sampling.request import GenerationRequest
from melodygen.stats.copies import (
    DEFAULT_MAX_COPY_BARS,
    check_files,
    piece_warnings,
    training_set,
    warning_lines,
)

TUNE = CORPORA["nottingham"] / "hpps11.mid"  # 8 bars of melody and chords, in folk-band's train split


@pytest.mark.slow
@pytest.mark.skipif("folk-band" not in {m.name for m in pretrained.bundled_models()},
                    reason="no bundled folk-band model in this tree")
@pytest.mark.parametrize("options", [
    {"primer": TUNE, "bars": 1, "n": 4, "seed": 1},  # one new bar after the tune
    {"accompany": TUNE, "instruments": (0,), "n": 2},  # every track given, a piano added
    {"primer": TUNE, "infill": (2, 3), "n": 2},  # 2 bars written again
], ids=["primer", "accompany", "infill"])
def test_a_training_tune_the_user_gave_is_not_reported_as_copied(tmp_path, options):
    checkpoint = resolve_checkpoint("folk-band")
    pieces = sample_to_midi(checkpoint, tmp_path, GenerationRequest(**options), "cpu", copy_check=True)
    whole = check_files([piece.path for piece in pieces], training_set(checkpoint).index)
    assert warning_lines(whole, DEFAULT_MAX_COPY_BARS)  # judged whole, as `sample` did: "copied"
    assert all("check" in piece.copy_check for piece in pieces)
    assert piece_warnings(pieces, DEFAULT_MAX_COPY_BARS) == []
