"""The voices grid (`encodings.voices`) and the masked model that fills its blanks
(`models.masked`, `dataset.blanks`, `sampling.blanks`): round trips on real chorales, a model that
reads both ways, erasures that score only erased cells, and infilling, accompaniment and music
from nothing that keep what was given."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import midi_factory as mf
from conftest import CORPORA
from melodygen.checkpoint import make_checkpoint, save
from melodygen.cli import main
from melodygen.dataset.blanks import erase
from melodygen.encodings import get_encoding
from melodygen.encodings.vocab import PAD_ID
from melodygen.errors import ConfigError
from melodygen.midi_io import read_score
from melodygen.models import build_model, settings_to_dict
from train_fixtures import make_dataset, write_dataset

ENC = get_encoding("voices")
CHORALES = sorted(CORPORA["bach-chorales"].glob("*.mid"))[:12]
TINY = {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 256, "dropout": 0.0}


def test_real_chorales_round_trip_cell_for_cell():
    for path in CHORALES:
        ids = ENC.encode(read_score(path))
        assert ENC.dropped_ids(ids) == 0
        np.testing.assert_array_equal(ENC.encode(ENC.decode_score(ids, qpm=90.0)), ids)
        steps = ENC.grid(ids).bars
        assert sum(steps) * ENC.settings.voices + len(steps) == len(ids)  # a BAR and its cells per bar


def test_a_voice_keeps_the_note_that_started_last_and_bars_keep_their_meter(tmp_path):
    tpb = mf.TPB
    chords = [(60, 0, 2 * tpb), (64, 0, 2 * tpb), (67, tpb, 3 * tpb)]  # two at once, then one over them
    path = mf.midi_file(tmp_path / "waltz.mid", [[mf.meta(0, "time_signature", numerator=3, denominator=4)],
                                                  mf.note_events(chords), mf.note_events([(48, 0, 6 * tpb)], channel=1)])
    score = ENC.decode_score(ENC.encode(read_score(path)), qpm=60.0)
    assert [(n.pitch, n.start, n.end) for n in score.tracks[0].notes] == [(64, 0.0, 1.0), (67, 1.0, 3.0)]
    assert [(n.pitch, n.start, n.end) for n in score.tracks[1].notes] == [(48, 0.0, 6.0)]
    assert [t.notes for t in score.tracks[2:]] == [[], []]  # the voices the file does not have rest
    assert score.time_signatures == [(0.0, 3, 4)]


def test_the_grammar_keeps_voices_in_turn_and_holds_where_a_note_sounds():
    grammar = ENC.grammar([], rows=4)
    generator = torch.Generator().manual_seed(0)
    drawn, last = [], None
    for _ in range(300):
        logits = grammar(torch.zeros(4, ENC.vocab.size), last)
        logits[:, :2] = float("-inf")  # PAD, BOS
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        drawn.append(last)
    for row in torch.stack(drawn, 1).tolist():
        row = row[:row.index(2)] if 2 in row else row  # up to EOS
        assert ENC.dropped_ids(row) == 0 and row[0] == ENC.vocab.id_of("BAR")
        assert not ENC.cells().blank[row].any()


def test_erasing_scores_only_erased_cells_and_every_kind_comes_up():
    ids = np.stack([ENC.encode(read_score(path))[:512].astype(np.int64) for path in CHORALES[:8]])
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(10):
        erased, targets = erase(ids, ENC, rng)
        blank = ENC.blank_of(ids) == erased
        assert ((targets != PAD_ID) == blank).all()  # a target exactly where a cell was erased
        np.testing.assert_array_equal(targets[blank], ids[blank])
        np.testing.assert_array_equal(erased[~blank], ids[~blank])  # bar lines and the rest untouched
        for row in blank:
            voices = set(ENC.voice_of(ids[0][row]).tolist())
            kinds.add("one voice" if len(voices) == 1 and row.sum() > 8 else "several")
    assert kinds == {"one voice", "several"}


def tiny_masked(path, seed=0):
    torch.manual_seed(seed)
    model = build_model("masked", TINY, ENC.vocab.size)
    return save(make_checkpoint(model_kind="masked", model_settings=settings_to_dict(model.settings), model=model,
                                encoding=ENC, run_config={}, step=0, best_val_nll=None), path)


def test_the_masked_model_reads_both_ways_and_does_not_step():
    torch.manual_seed(0)
    model = build_model("masked", TINY, ENC.vocab.size).eval()
    ids = torch.as_tensor(ENC.encode(read_score(CHORALES[0]))[:64].astype(np.int64))[None]
    changed = ids.clone()
    changed[0, 50] = ENC.blank_of(ids[0, 50:51].numpy())[0]
    with torch.no_grad():
        assert not torch.allclose(model(ids)[:, :40], model(changed)[:, :40])  # earlier logits hear later ids
    with pytest.raises(ConfigError, match="fills blanks; it does not write left to right"):
        model.step(ids, None)


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    return tiny_masked(tmp_path_factory.mktemp("masked") / "masked.pt")


def notes_outside(score, lo, hi):
    """(track, pitch, start, end) of the notes of the first four tracks that start outside [lo, hi) s."""
    return [(i, n.pitch, round(n.start, 6), round(n.end, 6)) for i, t in enumerate(score.tracks[:4]) for n in t.notes
            if not lo <= n.start < hi]


def test_infilling_rewrites_only_the_bars_asked_and_fills_every_blank(masked, tmp_path):
    import melodygen

    path = CHORALES[1]
    original = read_score(path)
    pieces = melodygen.load(masked).generate(n=2, primer=path, infill=(3, 4), seed=1)
    bar = original.tempo_map.to_seconds  # 4/4 from beat 0 in this chorale: bars 3-4 are beats 8-16
    lo, hi = bar(8.0), bar(16.0)
    assert original.time_signatures[0][1:] == (4, 4)
    for piece in pieces:
        assert notes_outside(piece.score, lo, hi) == notes_outside(original, lo, hi)
        assert any(lo <= n.start < hi for t in piece.score.tracks for n in t.notes)
        assert not (ENC.blank_of(piece.ids) == np.asarray(piece.ids)).any()
    assert pieces[0].ids != pieces[1].ids


def test_accompanying_keeps_the_given_voice_and_writes_the_others(masked, tmp_path):
    result = CliRunner().invoke(main, ["sample", str(masked), "--out", str(tmp_path), "--accompany", str(CHORALES[2]),
                                       "--given-tracks", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    written = read_score(tmp_path / "sample_000.mid")
    original = read_score(CHORALES[2])
    assert [(n.pitch, round(n.start, 4)) for n in written.tracks[0].notes] == [
        (n.pitch, round(n.start, 4)) for n in original.tracks[0].notes]
    assert all(t.notes for t in written.tracks[1:4])


def test_music_from_nothing_is_whole_bars_of_every_voice(masked, tmp_path):
    result = CliRunner().invoke(main, ["sample", str(masked), "--out", str(tmp_path), "--bars", "3", "-n", "2",
                                       "--seed", "4", "--temperature", "0.8"])
    assert result.exit_code == 0, result.output
    pieces = __import__("melodygen").load(masked).generate(n=4, bars=3, seed=4, temperature=1.3)
    assert all(ENC.dropped_ids(p.ids) == 0 for p in pieces)  # no hold left where its voice rests
    for path in sorted(tmp_path.glob("*.mid")):
        score = read_score(path)
        assert len(score.tracks) == 4
        end_ticks = sum(m.time for m in mido.MidiFile(path).tracks[0])
        assert end_ticks <= 3 * 4 * mido.MidiFile(path).ticks_per_beat
    refused = CliRunner().invoke(main, ["sample", str(masked), "--out", str(tmp_path / "x"), "--length", "40"])
    assert refused.exit_code != 0 and "give --bars N" in refused.output
    assert not (tmp_path / "x").exists()  # refused before the output folder is made


def test_infilling_the_voices_grid_needs_a_masked_model(tmp_path):
    from test_sample_cli import write_checkpoint

    lstm = write_checkpoint(tmp_path / "lstm.pt", "lstm", "voices")
    result = CliRunner().invoke(main, ["sample", str(lstm), "--out", str(tmp_path / "o"), "--primer", str(CHORALES[0]),
                                       "--infill", "2-3"])
    assert result.exit_code == 1 and "need a masked model" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_masked_model_trains_on_erased_cells_and_evaluates_the_same_way(tmp_path):
    from melodygen.config import config_from_dict
    from melodygen.evaluation import evaluate_checkpoint
    from melodygen.training import train

    pieces = [ENC.encode(read_score(path)) for path in CHORALES]
    data = write_dataset(tmp_path / "data", ENC, {"train": pieces[:9], "valid": pieces[9:]})
    config = config_from_dict({
        "data": {"dataset": str(data)}, "encoding": {"name": "voices"}, "model": {"kind": "masked", **TINY},
        "training": {"batch_size": 2, "seq_len": 256, "max_steps": 4, "eval_every": 2, "eval_max_batches": 3,
                     "log_every": 1, "warmup_steps": 1, "threads": 1, "device": "cpu", "transpose_range": [-2, 2]}},
        "<test>")
    result = train(config, tmp_path / "run", progress=False)
    first = evaluate_checkpoint(tmp_path / "run" / "best.pt", data_dir=data, seq_len=256, device="cpu")
    again = evaluate_checkpoint(tmp_path / "run" / "best.pt", data_dir=data, seq_len=256, device="cpu")
    assert first["nll"] == again["nll"] and 0 < first["events"] < valid_cells(data)  # the same erased cells
    assert np.isfinite(result.best["nll"])
    melody = make_dataset(tmp_path / "melody")
    with pytest.raises(ConfigError, match="no blanks to fill"):
        train(config_from_dict({"data": {"dataset": str(melody)}, "encoding": {"name": "melody"},
                                "model": {"kind": "masked", **TINY}, "training": {"threads": 1, "device": "cpu"}},
                               "<test>"), tmp_path / "r2", progress=False)


def valid_cells(data) -> int:
    from melodygen.dataset.shards import TokenDataset

    ids = np.asarray(TokenDataset(data, "valid").ids, dtype=np.int64)
    return int((ENC.voice_of(ids) >= 0).sum())


def test_a_masked_model_judges_real_against_generated_from_its_embedding(masked, tmp_path):
    from melodygen.stats.judge import embedding_test

    same = embedding_test(masked, CHORALES[:12], CHORALES[:12])  # one set against itself: chance
    assert same.accuracy is not None and same.accuracy <= 0.6
    noise = tmp_path / "noise"
    noise.mkdir()
    for i in range(12):  # random clusters of notes, nothing like a chorale
        rng = np.random.default_rng(i)
        mf.midi_file(noise / f"n{i}.mid", [mf.note_events([(int(p), 120 * k, 120 * k + 90) for k, p in
                                                           enumerate(rng.integers(30, 95, 64))], channel=c)
                                           for c in range(4)])
    apart = embedding_test(masked, sorted(noise.glob("*.mid")), CHORALES[:12])
    assert apart.accuracy >= 0.9  # even an untrained model's states tell noise from chorales
    result = CliRunner().invoke(main, ["stats", str(noise), "--reference", str(CORPORA["bach-chorales"]),
                                       "--judge", str(masked)])
    assert result.exit_code == 0, result.output
    assert "second judge" in result.output and "real vs generated" in result.output


def test_a_note_tied_into_the_gap_keeps_its_length_and_nothing_overlaps_it(masked, tmp_path):
    import melodygen

    tpb = mf.TPB
    voices = [[(72 - 5 * v, 0, 7 * tpb), (74 - 5 * v, 7 * tpb, 9 * tpb)] + [(71 - 5 * v, b * tpb, (b + 1) * tpb)
                                                                           for b in range(9, 20)] for v in range(4)]
    path = mf.midi_file(tmp_path / "tied.mid", [mf.note_events(notes, channel=v) for v, notes in enumerate(voices)])
    (piece,) = melodygen.load(masked).generate(n=1, primer=path, infill=(3, 3), seed=2)  # bar 3: beats 8-12
    seconds = read_score(path).tempo_map.to_seconds
    for track in piece.score.tracks[:4]:
        notes = sorted(track.notes, key=lambda n: n.start)
        assert any(n.start == pytest.approx(seconds(7)) and n.end == pytest.approx(seconds(9)) for n in notes)
        assert all(a.end <= b.start + 1e-9 for a, b in zip(notes, notes[1:]))  # one voice, one note at a time
