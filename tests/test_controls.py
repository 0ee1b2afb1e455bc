"""Controls (key, chord, notes per bar) of the multitrack encoding: labelled from the notes,
transposed with them, forced by the grammar when asked for, dropped at random in training,
measured against the request, and bad values are one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import CORPORA
from midi_factory import melody_with_chords_file
from train_fixtures import untrained_checkpoint

from melodygen import harmony
from melodygen.cli import main
from melodygen.dataset.windows import WindowSampler
from melodygen.encodings import get_encoding
from melodygen.encodings.controls import DENSITY_COUNTS, KEY_STRENGTH, ControlRequest, Steering, read_beside
from melodygen.encodings.multitrack_controls import density_bins
from melodygen.errors import ConfigError
from melodygen.midi_io import read_score
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.sampling.request import GenerationRequest
from melodygen.stats.controls import measure_adherence, piece_adherence

ALL = ("key", "chord", "density")
ENC = get_encoding("multitrack", controls=list(ALL))
PLAIN = get_encoding("multitrack")
TUNES = [CORPORA["nottingham"] / name for name in ("jigs1.mid", "reelsa-c5.mid", "waltzes3.mid")]


def tokens(ids, encoding=ENC):
    return encoding.readable(ids)


def two_track_score(bars: list[tuple[list[int], list[int]]]) -> Score:
    """4/4 at 120 qpm (a bar is 2 s): per bar, melody quarter notes and a held chord."""
    melody, chords = [], []
    for b, (tune, chord) in enumerate(bars):
        melody += [Note(p, 90, b * 2 + i * 0.5, b * 2 + i * 0.5 + 0.5) for i, p in enumerate(tune)]
        chords += [Note(p, 70, b * 2.0, b * 2.0 + 2.0) for p in chord]
    return Score([Track("melody", 0, False, melody), Track("chords", 0, False, chords)], TempoMap(qpm=(120.0,)),
                 [(0.0, 4, 4)])


# ------------------------------------------------------------------------------ encoding


@pytest.mark.parametrize("path", TUNES, ids=lambda p: p.name)
def test_controls_add_tokens_but_never_change_the_notes(path):
    score = read_score(path)
    ids, plain = ENC.encode(score), PLAIN.encode(score)
    assert ENC.dropped_ids(ids) == 0
    assert ENC.decode(ids) == PLAIN.decode(plain)
    names = [ENC.vocab.event_of(int(i))[0] for i in ids]
    assert [n for n in names if n not in ("KEY", "CHORD", "DENSITY")] == [PLAIN.vocab.event_of(int(i))[0] for i in plain]
    # every bar opens BAR [TIMESIG] KEY [CHORD] DENSITY
    for at in (i for i, n in enumerate(names) if n == "BAR"):
        head = names[at + 1:at + 5]
        head = head[1:] if head[0] == "TIMESIG" else head
        assert head[0] == "KEY" and (head[1:3] == ["CHORD", "DENSITY"] or head[1] == "DENSITY")


def test_the_labels_are_the_bars_chords_counts_and_key():
    score = two_track_score([([62, 66, 69, 66], [50, 54, 57]),       # D
                             ([67, 71, 74], [43, 47, 50]),            # G
                             ([69, 73, 76, 79], [45, 49, 52, 55]),  # A7
                             ([74], [50, 54, 57])])                   # D
    text = tokens(ENC.encode(score))
    assert [t for t in text if t.startswith(("KEY", "CHORD", "DENSITY"))] == [
        "KEY(D)", "CHORD(D)", "DENSITY(7)", "KEY(D)", "CHORD(G)", "DENSITY(6)", "KEY(D)", "CHORD(A7)", "DENSITY(8)",
        "KEY(D)", "CHORD(D)", "DENSITY(4)"]


def test_a_bar_of_two_chords_is_labelled_with_the_first():
    melody = [Note(72, 90, i * 0.5, i * 0.5 + 0.5) for i in range(4)]
    chords = [Note(p, 70, 0.0, 1.0) for p in (48, 52, 55)] + [Note(p, 70, 1.0, 2.0) for p in (53, 57, 60)]
    score = Score([Track("m", 0, False, melody), Track("c", 0, False, chords)], TempoMap(qpm=(120.0,)), [(0.0, 4, 4)])
    assert "CHORD(C)" in tokens(ENC.encode(score))  # not the Fmaj7 that C + F make together


def test_density_counts_are_exact_to_16_then_binned_within_6_percent():
    counts = np.arange(1, DENSITY_COUNTS[-1] + 1)
    binned = np.asarray(DENSITY_COUNTS)[density_bins(counts)]
    assert (binned[:16] == counts[:16]).all()
    assert (np.abs(binned - counts) / counts).max() <= 0.065


@pytest.mark.parametrize("shift", [-5, -1, 2, 7])
def test_transposing_the_ids_is_encoding_the_transposed_music(shift):
    score = read_score(TUNES[0])
    moved = Score([Track(t.name, t.program, t.is_drum, [Note(n.pitch + shift, n.velocity, n.start, n.end)
                                                        for n in t.notes]) for t in score.tracks],
                  score.tempo_map, score.time_signatures, score.end_time)
    assert (ENC.pitch_shift_table(shift)[ENC.encode(score)] == ENC.encode(moved)).all()


def test_controls_setting_is_checked_and_round_trips(tmp_path):
    with pytest.raises(ConfigError, match="controls"):
        get_encoding("multitrack", controls=["tempo"])
    with pytest.raises(ConfigError, match="controls"):
        get_encoding("multitrack", controls=["key", "key"])
    ENC.save_json(tmp_path / "e.json")
    assert type(ENC).from_dict(json.loads((tmp_path / "e.json").read_text())) == ENC
    assert PLAIN.vocab.tokens == ENC.vocab.tokens[:PLAIN.vocab.size]  # old ids keep their meaning


# ------------------------------------------------------------------------------ grammar


def draw(encoding, rows: int, steps: int, seed: int = 0, primer=(), bias=0.0, **grammar):
    """Random logits (+ `bias`) through the grammar: what a model that knows nothing would write."""
    g = encoding.grammar(list(primer), rows, "cpu", **grammar)
    gen, last, out = torch.Generator().manual_seed(seed), None, [[] for _ in range(rows)]
    for _ in range(steps):
        logits = g(torch.randn(rows, encoding.vocab.size, generator=gen) + bias, last)
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
        for row, i in zip(out, last.tolist()):
            row.append(i)
    return [row[:row.index(2)] if 2 in row else row for row in out]


def test_requested_controls_are_forced_bar_by_bar_and_others_banned():
    request = ControlRequest.parse(key="Bm", chords="Bm G D A7", density="5,9")
    for row in draw(ENC, 6, 400, controls=request, instruments=(73, 0)):
        assert ENC.dropped_ids(row) == 0
        text = tokens(row)
        assert text[:3] == ["PROGRAM(flute)", "PROGRAM(acoustic-grand-piano)", "BAR"]
        heads = [t for t in text if t.startswith(("KEY", "CHORD", "DENSITY"))]
        bars = sum(t == "BAR" for t in text)
        wanted = [x for b in range(bars)
                  for x in ("KEY(Bm)", f"CHORD({'Bm G D A7'.split()[b % 4]})", f"DENSITY({(5, 9)[b % 2]})")]
        assert heads == wanted[:len(heads)] and len(heads) >= 3 * bars - 3
    for row in draw(ENC, 4, 300, controls=ControlRequest.parse(chords="C")):
        assert not any(t.startswith(("KEY", "DENSITY")) for t in tokens(row))
    for row in draw(ENC, 4, 300):
        assert not any(t.startswith(("KEY", "CHORD", "DENSITY")) for t in tokens(row))


def test_strict_density_holds_every_new_bar_within_tolerance():
    request = ControlRequest.parse(density="3,12", strict_density=True)
    # Random pitches climb to 127 within a position; at a bar's last position that leaves no note
    # to add, and then (only then) the bar may close short. A model keeps to real pitches:
    bias = torch.zeros(ENC.vocab.size)
    bias[ENC.vocab.offset("PITCH") + 96:ENC.vocab.offset("PITCH") + 128] = -30.0
    rows = draw(ENC, 8, 600, bias=bias, controls=request)
    def outside(rows):
        """Bars (all but each row's last, which the step limit may cut) outside the tolerance."""
        bad = 0
        for row in rows:
            counts = []
            for name, _ in ENC.vocab.events(row):
                if name == "BAR":
                    counts.append(0)
                elif name in ("PITCH", "DRUM"):
                    counts[-1] += 1
            bad += sum(not (3, 12)[b % 2] * 0.85 <= c <= (3, 12)[b % 2] * 1.15 for b, c in enumerate(counts[:-1]))
        return bad

    assert all(ENC.dropped_ids(row) == 0 for row in rows) and outside(rows) == 0
    assert outside(draw(ENC, 8, 600, bias=bias, controls=ControlRequest.parse(density="3,12"))) > 0  # not held
    with pytest.raises(ConfigError, match="ask for a density too"):
        ControlRequest.parse(key="D", strict_density=True)


def test_a_primer_keeps_its_own_bars_controls_only_where_asked():
    primer = [int(i) for i in ENC.encode(read_score(TUNES[0]))]
    names = lambda ids: {ENC.vocab.event_of(i)[0] for i in ids}  # noqa: E731
    assert not names(ENC.conditioning(GenerationRequest()).primer_ids(primer)) & {"KEY", "CHORD", "DENSITY"}
    kept = ENC.conditioning(GenerationRequest(key="E", chords="A")).primer_ids(primer)
    assert "DENSITY" not in names(kept) and {"CHORD", "KEY"} <= names(kept)
    own = {t for t in tokens(primer) if t.startswith("KEY")}
    assert {t for t in tokens(kept) if t.startswith("KEY")} == own != {"KEY(E)"}  # the primer's own
    for row in draw(ENC, 2, 200, primer=kept, controls=ControlRequest.parse(key="E", chords="A")):
        assert ENC.dropped_ids(kept + row) == 0
        assert {t for t in tokens(row) if t.startswith(("KEY", "CHORD"))} <= {"CHORD(A)", "KEY(E)"}


# ------------------------------------------------------------------------------ training


class Split:
    """A train split of three real tunes, encoded with controls (what `TokenDataset` offers)."""

    ids = np.array([int(i) for t in TUNES for i in (*ENC.encode(read_score(t)), 2, 1)], dtype=np.uint16)
    directory, split, num_tokens, offsets = "tunes", "train", len(ids), np.array([0, len(ids)])


def test_control_dropout_takes_whole_kinds_out_of_windows():
    kinds = list(ENC.control_ids().values())
    plain = next(WindowSampler(Split, 64, 8, generator=np.random.default_rng(3)))
    assert np.isin(plain.ids.numpy(), np.concatenate(kinds)).any()
    seen = set()
    batch = next(WindowSampler(Split, 64, 64, generator=np.random.default_rng(3), controls=kinds, control_dropout=0.5))
    for row, target in zip(batch.ids.numpy(), batch.targets.numpy()):
        assert len(row) == 64 and (row[1:] == target[:-1]).all()
        seen.add(tuple(bool(np.isin(row, k).any()) for k in kinds))
    assert len(seen) > 2  # kinds come and go independently ...
    everything = WindowSampler(Split, 64, 16, generator=np.random.default_rng(3), controls=kinds, control_dropout=1.0)
    assert not np.isin(next(everything).ids.numpy(), np.concatenate(kinds)).any()  # ... or all at once
    again = WindowSampler(Split, 64, 64, generator=np.random.default_rng(3), controls=kinds, control_dropout=0.5)
    assert (next(again).ids == batch.ids).all()  # and the same seed gives the same windows


def test_dropout_leaves_a_full_window_even_in_empty_bars():
    """A stretch of empty bars is three control ids to each BAR: dropping them all must still
    leave seq_len + 1 ids of the stream."""
    v = ENC.vocab
    bar = [v.id_of("BAR"), v.id_of("KEY", 2), v.id_of("CHORD", 0), v.id_of("DENSITY", 0)]

    class Empty:
        ids = np.array(bar * 400, dtype=np.uint16)
        directory, split, num_tokens, offsets = "empty", "train", len(ids), np.array([0, len(ids)])

    kinds = list(ENC.control_ids().values())
    batch = next(WindowSampler(Empty, 64, 8, generator=np.random.default_rng(0), controls=kinds, control_dropout=1.0))
    assert (batch.ids == v.id_of("BAR")).all() and (batch.targets == v.id_of("BAR")).all()


def test_dropped_windows_are_the_stream_with_those_tokens_deleted():
    import itertools

    ids = Split.ids
    kinds = list(ENC.control_ids().values())
    streams = []  # the stream with each subset of kinds deleted, as text to search in
    for n in range(len(kinds) + 1):
        for out in itertools.combinations(kinds, n):
            kept = ids[~np.isin(ids, np.concatenate(out))] if out else ids
            streams.append("," + ",".join(map(str, kept)) + ",")
    batch = next(WindowSampler(Split, 100, 32, generator=np.random.default_rng(0), controls=kinds, control_dropout=0.4))
    for row, target in zip(batch.ids.numpy(), batch.targets.numpy()):
        window = "," + ",".join(map(str, [*row, target[-1]])) + ","
        assert any(window in stream for stream in streams)


# ------------------------------------------------------------------------------ requests, adherence


def test_bad_control_values_are_one_clear_line():
    for kwargs, words in [({"chords": "D H7"}, "unknown chord 'H7'"), ({"density": "0"}, "^density 0"),
                          ({"density": "-3"}, "^density"), ({"density": "x"}, "whole numbers"),
                          ({"key": "Q minor"}, "unknown key"), ({"chords": ""}, "^chords: none given")]:
        with pytest.raises(ConfigError, match=words) as err:
            ControlRequest.parse(**kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="trained without the chord control"):
        ControlRequest.parse(chords="D").check_model(("key",))


def test_adherence_compares_request_and_notes_bar_by_bar():
    score = two_track_score([([62, 66, 69, 66], [50, 54, 57]), ([67, 71, 74, 72], [43, 47, 50])])
    request = ControlRequest.parse(key="D", chords="D C", density="7,10")
    result = piece_adherence(ENC, score, request)
    assert [(r["chord"], r["achieved_chord"], r["density"], r["achieved_density"]) for r in result.bars] == [
        ("D", "D", 7, 7), ("C", "G", 10, 7)]
    assert result.summary["density_within"] == 0.5 and result.summary["chord_match"] == 0.5
    assert result.summary["chord_tone_rate"] == pytest.approx((4 + 2) / 8)  # of 67 71 74 72, C E G has 67 72
    assert result.key["achieved_key"] == "D" and result.summary["key_match"] == 1.0
    padded = measure_adherence(ENC.controls_of(score), request, first_bar=1, bars=3)
    assert [r["achieved_density"] for r in padded.bars] == [7, 0, 0]  # bars after the last note are empty


def test_steering_is_saved_beside_the_file(tmp_path):
    steering = Steering(ControlRequest.parse(key="F#m", chords="F#m D E", density="8", strict_density=True), 4, 16)
    midi = tmp_path / "s_000.mid"
    steering.save_beside(midi)
    assert read_beside(midi) == steering
    assert read_beside(tmp_path / "other.mid") is None
    (tmp_path / "bad.controls.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.controls.json"):
        read_beside(tmp_path / "bad.mid")


@pytest.fixture(scope="module")
def controlled_checkpoint(tmp_path_factory):
    return untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "controls.pt", ENC, instruments=[0, 73])


def run(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args), "--no-copy-check"])


def test_sample_steers_writes_the_request_and_says_how_it_went(controlled_checkpoint, tmp_path):
    result = run(controlled_checkpoint, "--out", tmp_path, "--bars", 4, "-n", 2, "--seed", 1,
                 "--key", "G", "--chords", "G C D7 G", "--density", "6")
    assert result.exit_code == 0, result.output
    for i in range(2):
        steering = read_beside(tmp_path / f"sample_00{i}.mid")
        assert steering == Steering(ControlRequest.parse("G", "G C D7 G", "6"), 0, 4)
        assert f"sample_00{i}.mid: notes per bar within 15%" in result.output
    assert "chord as asked in" in result.output and "key " in result.output


@pytest.mark.parametrize("args, words", [
    (["--chords", "Xb9"], "unknown chord 'Xb9'"),
    (["--density", "0"], "density 0: notes per bar must be 1.."),
    (["--key", "H"], "unknown key 'H'"),
    (["--instruments", "violin"], "never heard violin in training; its instruments: acoustic grand piano, flute"),
    (["--meter", "3/64"], "--meter 3/64: the model's encoding has no token for it"),
    (["--meter", "3/4", "--primer", CORPORA["nottingham"] / "jigs1.mid"], "--meter sets the meter of a piece from nothing"),
])
def test_sample_refuses_bad_controls_in_one_line(controlled_checkpoint, tmp_path, args, words):
    result = run(controlled_checkpoint, "--out", tmp_path / "out", "--bars", 2, *args)
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_sample_writes_the_meter_asked_for(controlled_checkpoint, tmp_path):
    result = run(controlled_checkpoint, "--out", tmp_path, "--bars", 3, "-n", 3, "--seed", 2, "--meter", "9/8")
    assert result.exit_code == 0, result.output
    for i in range(3):
        assert {(n, d) for _, n, d in read_score(tmp_path / f"sample_00{i}.mid").time_signatures} == {(9, 8)}


def test_a_meter_the_model_never_trained_on_is_refused_with_the_ones_it_did(tmp_path):
    from melodygen.dataset.profile import DataProfile
    from melodygen.encodings.multitrack_conditioning import MultitrackConditioning

    counts = np.zeros(ENC.vocab.size, dtype=np.int64)
    for meter, count in (((3, 4), 5), ((6, 8), 9)):
        counts[ENC.vocab.id_of("TIMESIG", ENC.meter_index[meter])] = count
    seen = DataProfile(counts)
    refused = MultitrackConditioning(ENC, GenerationRequest(meter="4/4"), lambda: seen)
    with pytest.raises(ConfigError, match=r"--meter 4/4: this model never trained on it; its meters, commonest "
                                          r"first: 6/8, 3/4$"):
        refused.check(None)
    assert MultitrackConditioning(ENC, GenerationRequest(meter="3/4"), lambda: seen).meter_id() == \
        ENC.vocab.id_of("TIMESIG", ENC.meter_index[(3, 4)])


def test_a_model_without_controls_says_so(tmp_path):
    from test_sample_cli import write_checkpoint

    plain = write_checkpoint(tmp_path / "plain.pt", "lstm", "multitrack")
    result = run(plain, "--out", tmp_path / "out", "--bars", 2, "--chords", "D")
    assert result.exit_code != 0 and "trained without the chord control (its controls: none)" in result.output
    assert GenerationRequest().controls is None and harmony.parse_chord("D") == ControlRequest.parse(chords="D").chords[0]


# ----------------------------------------------------------------------------- key lean


def test_key_lean_moves_mass_between_pitches_not_away_from_them():
    from melodygen.encodings.key_lean import KeyLean

    v = ENC.vocab
    lean = KeyLean(v, harmony.parse_key("Em"), 3.0)
    logits = torch.randn(3, v.size)
    logits[2, v.offset("PITCH"):v.offset("PITCH") + v.range("PITCH").size] = -torch.inf  # no pitch allowed here
    out = lean(logits, None)
    pitch = slice(v.offset("PITCH"), v.offset("PITCH") + v.range("PITCH").size)
    before, after = torch.softmax(logits[:2], -1), torch.softmax(out[:2], -1)
    assert torch.allclose(before[:, pitch].sum(-1), after[:, pitch].sum(-1), atol=1e-5)  # as likely to write a note
    others = torch.ones(v.size, dtype=torch.bool)
    others[pitch] = False
    assert torch.equal(out[:, others], logits[:, others]) and torch.equal(out[2], logits[2])
    e, f = v.id_of("PITCH", 64), v.id_of("PITCH", 65)  # E (the tonic) against F (off the scale)
    profile = harmony.key_profile(harmony.parse_key("Em"))
    gained = (out[0, e] - out[0, f]) - (logits[0, e] - logits[0, f])
    assert float(gained) == pytest.approx(3.0 * np.log(profile[4] / profile[5]), rel=1e-5)


def test_key_lean_is_full_in_the_opening_bars_and_lighter_after():
    from melodygen.encodings.key_lean import LATER, OPENING_BARS, KeyLean

    v = ENC.vocab
    lean = KeyLean(v, harmony.parse_key("G"), 2.0)
    logits = torch.zeros(2, v.size)
    g, gsharp = v.id_of("PITCH", 67), v.id_of("PITCH", 68)
    gap = lambda out: float(out[0, g] - out[0, gsharp])  # noqa: E731
    full = gap(lean(logits, None))
    bar, pos = torch.tensor([v.id_of("BAR")] * 2), torch.tensor([v.id_of("POS", 0)] * 2)
    for _ in range(OPENING_BARS):
        assert gap(lean(logits, bar)) == pytest.approx(full)
        assert gap(lean(logits, pos)) == pytest.approx(full)
    assert gap(lean(logits, bar)) == pytest.approx(full * LATER)
    lean.select_rows(torch.tensor([1, 1, 0]))  # beam search copies rows
    assert gap(lean(torch.zeros(3, v.size), pos[[0, 0, 0]])) == pytest.approx(full * LATER)


def test_key_strength_is_read_with_the_key_and_saved(tmp_path):
    assert ControlRequest.parse(key="Em").key_strength == KEY_STRENGTH
    assert ControlRequest.parse(key="Em", key_strength=0).key_strength == 0
    with pytest.raises(ConfigError, match="ask for a key too"):
        ControlRequest.parse(chords="D", key_strength=1.5)
    with pytest.raises(ConfigError, match="ask for a key too"):
        GenerationRequest(key_strength=1.5)
    for strength in (1.5, 0.0):  # 0: the KEY token alone, read back as 0, not as the default
        steering = Steering(ControlRequest.parse(key="Em", key_strength=strength), 0, 8)
        steering.save_beside(tmp_path / "s.mid")
        assert read_beside(tmp_path / "s.mid") == steering


def test_key_strength_leans_the_sampled_notes(controlled_checkpoint, tmp_path):
    import melodygen

    model = melodygen.load(controlled_checkpoint)
    scale = {}
    for strength in (0, 6):
        pieces = model.generate(n=4, bars=4, key="Em", key_strength=strength, seed=3)
        weights = sum(np.bincount([n.pitch % 12 for n in p.notes], minlength=12) for p in pieces)
        scale[strength] = harmony.key_fit(weights, harmony.parse_key("Em"))
    assert scale[6] > scale[0] + 0.2  # an untrained model draws pitches evenly; the lean moves them to E minor


# ----------------------------------------------------------------------------- accompaniment over asked chords


def test_accompaniment_over_asked_chords_forces_them_bar_by_bar(tmp_path):
    from melodygen.encodings.multitrack_given import accompaniment_plan

    tune = read_score(melody_with_chords_file(tmp_path, notes=16))  # four bars
    plan = accompaniment_plan(ENC, tune, [0], [0], ControlRequest.parse(key="Bm", chords="Bm G"))
    names = [ENC.vocab.event_of(int(i)) for i in plan.ids]
    assert [harmony.chord_name(v) for n, v in names if n == "CHORD"] == ["Bm", "G", "Bm", "G"]
    assert {harmony.key_name(v) for n, v in names if n == "KEY"} == {"Bm"}
    measured = accompaniment_plan(ENC, tune, [0], [0])  # no request: the melody's own
    assert [n for n, _ in names] == [n for n, _ in (ENC.vocab.event_of(int(i)) for i in measured.ids)]


def test_sample_accompanies_over_asked_chords_and_says_how_it_went(controlled_checkpoint, tmp_path):
    tune = melody_with_chords_file(tmp_path, notes=16)
    result = run(controlled_checkpoint, "--out", tmp_path / "out", "--accompany", tune, "--given-tracks", 1,
                 "--instruments", "piano", "--chords", "C G", "--key", "C", "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "chord as asked in" in result.output and "key " in result.output
    assert read_beside(tmp_path / "out" / "sample_000.mid").request == ControlRequest.parse("C", "C G")
    for args, words in [(["--accompany", tune, "--density", "8"], "--density counts every track's notes"),
                        (["--primer", tune, "--infill", "2-3", "--key", "C"], "not with --infill")]:
        refused = run(controlled_checkpoint, "--out", tmp_path / "no", *args)
        assert refused.exit_code != 0 and words in refused.output and "Traceback" not in refused.output


# ----------------------------------------------------------------------------- a key's cadence


def test_a_key_brings_tonic_chords_at_both_ends_and_the_models_choice_between():
    em, g = harmony.parse_chord("Em"), harmony.parse_chord("G")
    request = ControlRequest.parse(key="Em")
    assert request.with_cadence(4, opening=True).chords == (em, None, None, em)
    assert request.with_cadence(4, opening=False).chords == (None, None, None, em)  # after a primer
    unknown = request.with_cadence(None, opening=True).chords  # a length in events: no closing bar known
    assert unknown[0] == em and set(unknown[1:]) == {None} and len(unknown) > 1000
    for plain in (ControlRequest.parse(key="Em", chords="G"), ControlRequest.parse(key="Em", cadence=False),
                  ControlRequest.parse(density="8")):
        assert plain.with_cadence(4, opening=True) is plain
    assert request.with_cadence(None, opening=False) is request  # nothing to place
    assert ControlRequest.parse(key="G").with_cadence(2, opening=True).chords == (g, g)


def test_the_grammar_forces_a_cadences_chords_and_leaves_the_rest_to_the_model():
    em = "CHORD(Em)"
    plan = ControlRequest.parse(key="Em").with_cadence(4, opening=True)
    seen_between, closed = set(), 0
    for row in draw(ENC, 16, 600, controls=plan, instruments=(73, 0)):
        chords = [t for t in tokens(row) if t.startswith("CHORD")]
        assert chords[0] == em
        if len(chords) == 4:
            assert chords[3] == em
            closed += 1
        seen_between |= set(chords[1:3])
    assert closed and len(seen_between) > 3  # random logits: any chord between the ends


def test_sample_with_a_key_writes_its_cadence_and_no_cadence_turns_it_off(controlled_checkpoint, tmp_path):
    import melodygen

    model = melodygen.load(controlled_checkpoint)
    for cadence in (True, False):
        for piece in model.generate(n=2, bars=3, key="Am", cadence=cadence, seed=2):
            chords = [t for t in tokens(piece.ids) if t.startswith("CHORD")]
            assert chords == (["CHORD(Am)", chords[1], "CHORD(Am)"] if cadence else [])
            assert piece.steering.request.cadence is cadence
    with pytest.raises(ConfigError, match="--no-cadence"):
        GenerationRequest(chords=("G",), key="G", cadence=False)
    with pytest.raises(ConfigError, match="--no-cadence"):
        GenerationRequest(cadence=False)
    steering = Steering(ControlRequest.parse(key="Am", cadence=False), 0, 3)
    steering.save_beside(tmp_path / "s.mid")
    assert read_beside(tmp_path / "s.mid") == steering
