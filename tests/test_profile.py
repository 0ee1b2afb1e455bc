"""Tests of melodygen.dataset.profile: what a model saw in training (the data profile, stored in
new checkpoints or counted from the run's dataset), the one-line warning about music far from
it in `evaluate`, primers and accompaniment, and velocities fitted to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from melodygen.checkpoint import DATA_PROFILE, load, make_checkpoint, save
from melodygen.cli import main
from melodygen.dataset.files import read_file
from melodygen.dataset.profile import (SEEN_AT_LEAST, WARN_SHARE, DataProfile, check_input, checkpoint_profile,
                                       dataset_profile, fit_velocities, unseen_ids, velocity_kinds)
from melodygen.dataset.shards import TokenDataset
from melodygen.encodings import ENCODINGS, get_encoding
from melodygen.errors import ConfigError
from melodygen.evaluation import evaluate_checkpoint
from melodygen.models import build_model, settings_to_dict
from melodygen.sampling.files import generate_pieces, plan_generation
from melodygen.sampling.request import GenerationRequest
from melodygen.training import train
from midi_factory import meta, midi_file, melody_notes, note_events
from train_fixtures import make_dataset, tiny_config, write_dataset

ENC = get_encoding("multitrack")
TRAINED_VELOCITY = 80


def tune(path: Path, velocities=(TRAINED_VELOCITY,)) -> Path:
    """Four 4/4 bars of quarter notes up a C major scale at 120 qpm, one piano track; note i
    at velocities[i % len(velocities)]."""
    notes = [(*n, velocities[i % len(velocities)]) for i, n in enumerate(melody_notes(16))]
    return midi_file(path, [[meta(0, "set_tempo", tempo=500000), meta(0, "time_signature", numerator=4, denominator=4)],
                            [meta(0, "track_name", name="Melody"), *note_events(notes)]])


@pytest.fixture
def trained(tmp_path) -> Path:
    """A tiny multitrack checkpoint whose run trained on four copies of `tune` (every id of it
    seen four times or more, one velocity), its dataset named in its run config and no
    profile stored (as the bundled models)."""
    ids = read_file(tune(tmp_path / "train.mid"), ENC).ids
    data = write_dataset(tmp_path / "data", ENC, {"train": [ids] * 4, "valid": [ids]})
    torch.manual_seed(0)
    model = build_model("gru", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, ENC.vocab.size)
    ckpt = make_checkpoint(model_kind="gru", model_settings=settings_to_dict(model.settings), model=model,
                           encoding=ENC, run_config={"data": {"dataset": str(data)}, "training": {"seq_len": 32}},
                           step=1, best_val_nll=None)
    return save(ckpt, tmp_path / "m.pt")


@pytest.fixture
def loud(tmp_path) -> Path:
    """`tune` played soft and loud in turn: velocities the model never saw, nothing else new."""
    return tune(tmp_path / "loud.mid", velocities=(30, 120))


def test_velocity_kinds_are_read_from_each_encoding():
    expected = {"melody": (), "performance": ("VELOCITY",), "multitrack": ("VEL",), "voices": ()}
    assert set(expected) == set(ENCODINGS)
    for name, kinds in expected.items():
        assert velocity_kinds(get_encoding(name)) == kinds, name
    assert velocity_kinds(get_encoding("multitrack", controls=["key", "chord", "density"])) == ("VEL",)


def test_a_file_with_unseen_velocities_is_warned_with_their_share(trained, loud):
    ids = read_file(loud, ENC).ids
    result = evaluate_checkpoint(trained, sources=[str(loud)])
    share = 16 / len(ids)  # one VEL per note, every one unseen; all else is the training tune's
    assert share >= WARN_SHARE
    assert result["unseen"]["kinds"] == {"VEL": 16} and result["unseen"]["share"] == pytest.approx(share)
    assert result["unseen"]["files"][0]["path"] == str(loud)
    line = result["input_warning"]
    assert line.startswith(f"warning: loud.mid: {share:.0%} of the ids are ones the model never saw in training: "
                           f"velocities (VEL) {share:.0%} (VEL(")
    assert line.endswith("--fit-velocities maps its velocities to the nearest the model saw") and "\n" not in line


def test_a_file_like_the_training_data_is_not_warned(trained, tmp_path):
    result = evaluate_checkpoint(trained, sources=[str(tune(tmp_path / "like.mid"))])
    assert result["input_warning"] is None and result["unseen"]["unseen"] == 0
    assert evaluate_checkpoint(trained)["input_warning"] is None  # its own valid split


def test_a_few_unseen_ids_are_counted_but_not_warned(trained, tmp_path):
    one = tune(tmp_path / "one.mid", velocities=(TRAINED_VELOCITY,) * 15 + (120,))
    result = evaluate_checkpoint(trained, sources=[str(one)])
    assert result["unseen"]["unseen"] == 1 and result["unseen"]["share"] < WARN_SHARE
    assert result["input_warning"] is None


def test_a_set_is_warned_when_one_of_its_files_is_far(trained, loud, tmp_path):
    like = [str(tune(tmp_path / f"like{i}.mid")) for i in range(12)]
    result = evaluate_checkpoint(trained, sources=[*like, str(loud)])
    assert result["unseen"]["share"] < WARN_SHARE  # the set's share, while one file is far
    assert result["input_warning"].startswith("warning: these 13 MIDI files (1 at 2% or more): ")


def test_fitting_changes_only_unseen_velocities_to_the_nearest_seen():
    vel = ENC.vocab.offset("VEL")
    counts = np.full(ENC.vocab.size, SEEN_AT_LEAST)
    counts[vel:vel + 16] = 0
    counts[[vel + 4, vel + 11]] = 10  # bins 5 and 12 seen
    counts[ENC.vocab.id_of("PITCH", 100)] = 0  # an unseen pitch: not a velocity, never fitted
    profile = DataProfile(counts)
    ids = np.array([*range(vel, vel + 16), ENC.vocab.id_of("PITCH", 100), ENC.vocab.id_of("PITCH", 60)])
    fitted, changed = fit_velocities(ids, ENC, profile)
    bins = [ENC.vocab.event_of(int(i))[1] for i in fitted[:16]]
    assert bins == [5] * 8 + [12] * 8  # 1..8 nearer 5 (8: a tie, the softer), 9..16 nearer 12
    assert (fitted[16:] == ids[16:]).all()
    seen = profile.seen(ENC)
    assert (fitted[seen[ids]] == ids[seen[ids]]).all() and changed == 14
    none_seen = counts.copy()
    none_seen[vel:vel + 16] = 0
    assert fit_velocities(ids, ENC, DataProfile(none_seen))[1] == 0  # nothing to fit to: unchanged


def test_evaluate_fit_velocities_scores_the_file_as_the_model_heard_its_training(trained, loud, tmp_path):
    fitted = evaluate_checkpoint(trained, sources=[str(loud)], fit_velocities=True)
    like = evaluate_checkpoint(trained, sources=[str(tune(tmp_path / "like.mid"))])
    assert fitted["fitted"] == 16 and fitted["input_warning"] is None
    assert fitted["nll"] == pytest.approx(like["nll"])  # one velocity seen: the loud file becomes the tune
    assert evaluate_checkpoint(trained, sources=[str(loud)])["nll"] != pytest.approx(like["nll"])


def test_seen_ids_include_the_training_transpositions():
    melody = get_encoding("melody")
    counts = np.zeros(melody.vocab.size, dtype=np.int64)
    counts[melody.vocab.id_of("NOTE_ON", 60)] = SEEN_AT_LEAST
    counts[melody.vocab.id_of("NOTE_ON", 72)] = SEEN_AT_LEAST - 1  # too rare to count as seen
    notes = [melody.vocab.id_of("NOTE_ON", p) for p in range(56, 76)]

    def seen_pitches(transpose_range):
        seen = DataProfile(counts, transpose_range).seen(melody)
        return [p for p, i in zip(range(56, 76), notes) if seen[i]]

    assert seen_pitches((0, 0)) == [60]
    assert seen_pitches((-2, 2)) == [58, 59, 60, 61, 62]
    assert DataProfile(counts).seen(melody)[:3].all()  # PAD, BOS, EOS


def test_checkpoints_store_the_profile_and_load_it(tmp_path):
    data = make_dataset(tmp_path / "data")
    train(tiny_config(data), tmp_path / "run", progress=False)
    melody = get_encoding("melody")
    stored = load(tmp_path / "run" / "best.pt")[DATA_PROFILE]
    counts = np.bincount(TokenDataset(data, "train").ids.astype(np.int64), minlength=melody.vocab.size)
    assert stored == {"counts": counts.tolist(), "transpose_range": [-2, 2]}  # tiny_config's
    assert stored == dataset_profile(data, melody, (-2, 2)).to_dict()
    profile = checkpoint_profile(load(tmp_path / "run" / "last.pt"), melody, "last.pt")
    assert (profile.counts == counts).all() and profile.transpose_range == (-2, 2)


def test_a_checkpoint_without_a_profile_counts_its_runs_dataset_or_says_nothing(trained, loud, tmp_path):
    ckpt = load(trained)
    assert DATA_PROFILE not in ckpt
    profile = checkpoint_profile(ckpt, ENC, str(trained))
    assert (profile.counts == dataset_profile(tmp_path / "data", ENC).counts).all()
    assert ckpt[DATA_PROFILE] == profile.to_dict()  # kept: a loaded model counts it once
    (tmp_path / "data").rename(tmp_path / "moved")
    assert checkpoint_profile(load(trained), ENC, str(trained)) is None
    result = evaluate_checkpoint(trained, sources=[str(loud)])
    assert "unseen" not in result and result.get("input_warning") is None
    damaged = load(trained)
    damaged[DATA_PROFILE] = {"counts": [1, 2, 3]}
    assert checkpoint_profile(damaged, ENC, str(trained)) is None


def test_a_primer_is_warned_and_fitted_and_its_pieces_carry_the_warning(trained, loud):
    profile = checkpoint_profile(load(trained), ENC, str(trained))
    plan = plan_generation(ENC, GenerationRequest(primer=loud, events=4), profile=profile)
    assert plan.input_warning.startswith("warning: loud.mid: ") and "--fit-velocities" in plan.input_warning
    fitted = plan_generation(ENC, GenerationRequest(primer=loud, events=4, fit_velocities=True), profile=profile)
    assert fitted.input_warning is None and unseen_ids(fitted.primer, ENC, profile).unseen == 0
    assert len(fitted.primer) == len(plan.primer)
    model = build_model("gru", {"embed_size": 8, "hidden_size": 16, "num_layers": 1}, ENC.vocab.size).eval()
    request = GenerationRequest(primer=loud, events=4, seed=1)
    pieces = generate_pieces(model, ENC, request, "cpu", plan_generation(ENC, request, profile=lambda: profile))
    assert pieces[0].input_warning == plan.input_warning


def test_given_music_is_warned_without_offering_the_fit(trained, loud):
    profile = checkpoint_profile(load(trained), ENC, str(trained))
    plan = plan_generation(ENC, GenerationRequest(accompany=loud, instruments=[0]), profile=profile)
    assert plan.input_warning.startswith("warning: loud.mid: ") and "velocities (VEL)" in plan.input_warning
    assert "--fit-velocities" not in plan.input_warning
    with pytest.raises(ConfigError, match="--fit-velocities maps the velocities of a --primer"):
        GenerationRequest(accompany=loud, fit_velocities=True)
    with pytest.raises(ConfigError, match="--fit-velocities maps the velocities of a --primer"):
        GenerationRequest(fit_velocities=True)


def test_nothing_is_read_or_said_without_music_or_a_profile(loud):
    def unread():
        raise AssertionError("the profile was read without music to check")

    # one stream from nothing: nothing to check, no tracks to choose (tracks read it: above)
    assert plan_generation(get_encoding("melody"), GenerationRequest(events=4), profile=unread).input_warning is None
    assert plan_generation(ENC, GenerationRequest(primer=loud, events=4)).input_warning is None
    assert check_input([5, 6], ENC, lambda: None, "x.mid").warning is None


def test_the_evaluate_command_warns_on_stderr_and_fits(trained, loud):
    plain = CliRunner().invoke(main, ["evaluate", str(trained), str(loud), "--threads", "1"])
    assert plain.exit_code == 0, plain.output
    assert plain.stderr.startswith("warning: loud.mid: ") and "warning" not in plain.stdout
    fitted = CliRunner().invoke(main, ["evaluate", str(trained), str(loud), "--fit-velocities", "--threads", "1"])
    assert fitted.exit_code == 0 and fitted.stderr == ""
    assert "fitted 16 velocity ids to the nearest the model saw in training" in fitted.stdout
    helped = CliRunner().invoke(main, ["evaluate", "--help"]).output
    assert "--fit-velocities" in helped and "never" in helped and "warning" in helped


def test_a_piece_from_nothing_gets_the_usual_tracks_of_the_training_data(tmp_path):
    """Most training pieces open with the same instruments: a piece begun from nothing without
    --instruments gets them (a chorale its four voices, a folk band its chord track)."""
    from melodygen.dataset.profile import usual_header

    ids = np.array([1, 5, 5, 9, 2, 1, 5, 5, 9, 2, 1, 7, 9, 2], dtype=np.int64)  # two of three open 5 5
    offsets = np.array([0, 5, 10, 14])

    class Programs:  # an encoding whose programs 0..2 are ids 5..7
        def program_ids(self):
            return np.array([5, 6, 7])

    assert usual_header(ids, offsets, Programs()) == (0, 0)
    assert usual_header(ids, np.array([0, 5, 10, 14, 14 + 0]), Programs()) == (0, 0)
    rare = np.array([1, 5, 9, 2, 1, 6, 9, 2, 1, 7, 9, 2], dtype=np.int64)
    assert usual_header(rare, np.array([0, 4, 8, 12]), Programs()) is None  # none opens half
    assert usual_header(ids, offsets, get_encoding("melody")) is None
    profile = DataProfile(np.zeros(ENC.vocab.size, dtype=np.int64), (0, 0), (73, 0))
    assert DataProfile.from_dict(profile.to_dict(), ENC.vocab.size).header == (73, 0)
    grammar = plan_generation(ENC, GenerationRequest(bars=2), profile=profile).processors[0]
    assert grammar.parts[0].header.tolist() == [73, 0]  # the header is forced to the usual tracks
    named = plan_generation(ENC, GenerationRequest(bars=2, instruments=(40,)), profile=profile).processors[0]
    assert named.parts[0].header.tolist() == [40]  # asked instruments win


def test_new_notes_stay_inside_each_usual_tracks_training_range():
    """The profile keeps each usual track's pitch range; a piece with those tracks gets it as
    a grammar part (widened by range_margin), other instruments and given tracks stay free."""
    from melodygen.encodings.multitrack_tracks import PitchRanges

    profile = DataProfile(np.zeros(ENC.vocab.size, dtype=np.int64), (0, 0), (0, 0), ((60, 72), (40, 55)))
    assert DataProfile.from_dict(profile.to_dict(), ENC.vocab.size).ranges == ((60, 72), (40, 55))
    plan = plan_generation(ENC, GenerationRequest(bars=4, n=6, seed=1), profile=profile)
    grammar = plan.processors[0]
    ranges = [p for p in grammar.parts if isinstance(p, PitchRanges)]
    assert len(ranges) == 1 and ranges[0].lowest.tolist() == [0, 60, 40]
    generator = torch.Generator().manual_seed(0)
    rows, last = [[] for _ in range(6)], None
    for _ in range(300):
        logits = grammar(torch.randn(6, ENC.vocab.size, generator=generator) * 3, last)
        logits[:, :3] = -float("inf")
        assert torch.isfinite(logits).any(1).all()
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        for row, i in zip(rows, last.tolist()):
            row.append(i)
    notes = 0
    for row in rows:
        assert ENC.dropped_ids(row) == 0
        for track, (low, high) in zip(ENC.decode_score(row).tracks, ((60, 72), (40, 55))):
            assert all(low <= n.pitch <= high for n in track.notes)
            notes += len(track.notes)
    assert notes > 20  # the check ran
    wider = plan_generation(ENC, GenerationRequest(bars=4, range_margin=5), profile=profile).processors[0]
    assert [p for p in wider.parts if isinstance(p, PitchRanges)][0].lowest.tolist() == [0, 55, 35]
    other = plan_generation(ENC, GenerationRequest(bars=4, instruments=(40, 0)), profile=profile).processors[0]
    assert not any(isinstance(p, PitchRanges) for p in other.parts)  # not the usual tracks: free


def test_a_datasets_profile_records_its_usual_tracks_and_their_ranges(tmp_path):
    from melodygen.dataset.profile import dataset_profile
    from melodygen.dataset.prepare import prepare

    from conftest import CORPORA

    files = sorted(CORPORA["nottingham"].glob("*.mid"))[:8]
    prepare(files, ENC, tmp_path / "data", val_fraction=0.0, workers=1, progress=False)
    profile = dataset_profile(tmp_path / "data", ENC, (-2, 3))
    assert profile.header == (0, 0)  # melody and chords, both on piano
    pitches = [[n.pitch for n in read_file(f, ENC, keep_score=True).score.tracks[t].notes] for f in files
               for t in (0, 1)]
    melody = [p for i, ps in enumerate(pitches) if i % 2 == 0 for p in ps]
    assert profile.ranges[0] == (min(melody) - 2, max(melody) + 3)


def test_an_accompaniment_keeps_a_range_only_where_the_added_track_is_the_usual_one(tmp_path):
    from melodygen.encodings.multitrack_tracks import PitchRanges

    profile = DataProfile(np.zeros(ENC.vocab.size, dtype=np.int64), (0, 0), (0, 0), ((60, 72), (40, 55)))
    melody = midi_file(tmp_path / "tune.mid", [note_events(melody_notes(8))])

    def ranges(instrument):
        plan = plan_generation(ENC, GenerationRequest(accompany=melody, instruments=(instrument,)), profile=profile)
        found = [p for p in plan.processors[0].parts if isinstance(p, PitchRanges)]
        return found[0].lowest.tolist()[1:] if found else None

    assert ranges(0) == [0, 40]  # the given melody free, the new piano held to the usual chord range
    assert ranges(33) is None  # a bass is not the usual second track: free


def test_a_damaged_stored_header_or_range_is_dropped_not_used():
    good = {"counts": [0] * ENC.vocab.size, "transpose_range": [0, 0], "header": [0, 0], "ranges": [[60, 72], [40, 55]]}
    assert DataProfile.from_dict(good, ENC.vocab.size).ranges == ((60, 72), (40, 55))
    for damage in ({"ranges": [[72, 60], [40, 55]]}, {"ranges": [[60, 72]]}, {"header": [0, 300]}):
        profile = DataProfile.from_dict({**good, **damage}, ENC.vocab.size)
        assert profile is not None and profile.header is None and profile.ranges is None


def test_fitting_velocities_without_a_profile_says_so():
    assert "nothing fitted" in check_input([5, 6], ENC, lambda: None, "x.mid", fit=True).warning
