"""Tests of melodygen.stats: metrics with known answers on hand-built scores, the distance
measures on known distributions, and set description / comparison on real files."""

import math

import numpy as np
import pytest

import midi_factory as mf
from melodygen.encodings import get_encoding
from melodygen.errors import NoUsableMusicError
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.stats import compare_sets, describe_encoded_set, describe_set, score_stats
from melodygen.stats.compare import histogram_overlap_and_kl, overlap_and_kl
from melodygen.stats.metrics import LENGTH_LABELS, length_histogram

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def make_score(notes, qpm=120.0, drum_notes=()):
    """A score from (pitch, start_beat, length_beats[, velocity]) tuples at a fixed tempo."""
    sec = 60.0 / qpm

    def to_notes(specs):
        return [Note(n[0], n[3] if len(n) > 3 else 80, n[1] * sec, (n[1] + n[2]) * sec) for n in specs]

    tracks = [Track("piano", 0, False, to_notes(notes))]
    if drum_notes:
        tracks.append(Track("drums", 0, True, to_notes(drum_notes)))
    return Score(tracks=tracks, tempo_map=TempoMap(qpm=(qpm,)), source="hand-built")


def melody(pitches, length=1.0):
    return make_score([(p, i * length, length) for i, p in enumerate(pitches)])


def test_c_major_scale_has_known_statistics():
    s = score_stats(melody(C_MAJOR))
    assert s.scalars["scale_consistency"] == 1.0
    assert s.scalars["pitch_range"] == 12
    assert s.scalars["used_pitches"] == 8
    assert s.scalars["polyphony"] == 1.0  # legato: a note ending where the next starts is no overlap
    assert s.scalars["empty_beat_rate"] == 0.0
    assert s.scalars["note_density"] == pytest.approx(1.0)
    assert s.histograms["note_length"][LENGTH_LABELS.index("1")] == 8
    assert s.histograms["ioi"].tolist() == [0, 0, 0, 0, 7, 0, 0]


def test_uniform_chromatic_set_has_maximal_entropy():
    s = score_stats(melody(range(60, 72)))
    assert s.scalars["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert s.scalars["scale_consistency"] == pytest.approx(7 / 12)
    assert score_stats(melody([60] * 5)).scalars["pitch_class_entropy"] == 0.0


def test_triad_polyphony_is_three():
    s = score_stats(make_score([(60, 0, 2), (64, 0, 2), (67, 0, 2)]))
    assert s.scalars["polyphony"] == pytest.approx(3.0)
    assert s.histograms["ioi"].sum() == 0  # one onset: no interval
    assert s.histograms["note_length"][LENGTH_LABELS.index("2")] == 3


def test_polyphony_is_time_weighted_over_sounding_time():
    # one note for a beat, two for a beat, then silence and one note: (1 + 2 + 1) / 3 beats
    s = score_stats(make_score([(60, 0, 2), (64, 1, 1), (67, 5, 1)]))
    assert s.scalars["polyphony"] == pytest.approx(4 / 3)


def test_empty_beat_rate_counts_silent_beats():
    s = score_stats(make_score([(60, 0, 1), (62, 3, 1)]))  # beats 0..3 -> 1 and 2 are silent
    assert s.scalars["empty_beat_rate"] == pytest.approx(0.5)
    half_beats = score_stats(make_score([(60, 0.5, 1), (62, 1.5, 0.5)]))  # beats 0, 1 both touched
    assert half_beats.scalars["empty_beat_rate"] == 0.0


def test_repetition_counts_repeated_ngrams():
    assert score_stats(melody([60, 62, 64, 65] * 2)).scalars["repetition"] == pytest.approx(1 / 5)
    assert score_stats(melody(C_MAJOR)).scalars["repetition"] == 0.0
    assert score_stats(melody([60, 60, 60])).scalars["repetition"] == 0.0  # fewer than 4 onsets
    chords = [(p, t, 1) for t in range(8) for p in (60, 64, 67)]
    assert score_stats(make_score(chords)).scalars["repetition"] == pytest.approx(4 / 5)


def test_statistics_do_not_depend_on_tempo():
    notes = [(60, 0, 0.5), (64, 0.5, 0.25), (67, 1, 1.5), (72, 1, 3), (62, 4, 1)]
    slow, fast = score_stats(make_score(notes, qpm=60)), score_stats(make_score(notes, qpm=180))
    assert slow.scalars == pytest.approx(fast.scalars)
    for name in slow.histograms:
        assert slow.histograms[name].tolist() == fast.histograms[name].tolist()


def test_tempo_change_is_followed():
    # 120 qpm for the first 2 s (4 beats), then 60 qpm: a 1 s note after the change is 1 beat
    tempo = TempoMap(times=(0.0, 2.0), beats=(0.0, 4.0), qpm=(120.0, 60.0))
    score = Score([Track("p", 0, False, [Note(60, 80, 0.0, 0.5), Note(62, 80, 2.0, 3.0)])], tempo)
    s = score_stats(score)
    assert s.histograms["note_length"][LENGTH_LABELS.index("1")] == 2
    assert s.histograms["ioi"][LENGTH_LABELS.index("4+")] == 1


@pytest.mark.parametrize("shift", [1, 5, -7])
def test_pitch_class_metrics_are_transposition_invariant(shift):
    pitches = [60, 62, 64, 66, 67, 60, 71, 72, 73]
    a, b = score_stats(melody(pitches)), score_stats(melody([p + shift for p in pitches]))
    for name in ("pitch_class_entropy", "scale_consistency", "pitch_range", "repetition"):
        assert a.scalars[name] == pytest.approx(b.scalars[name])
    assert np.roll(a.histograms["pitch_class"], shift).tolist() == b.histograms["pitch_class"].tolist()


def test_drums_are_ignored_and_velocity_averaged():
    score = make_score([(60, 0, 1, 100), (62, 1, 1, 50)], drum_notes=[(36, 0, 0.1, 127)] * 3)
    s = score_stats(score)
    assert s.scalars["mean_velocity"] == 75.0
    assert s.histograms["pitch_class"].sum() == 2
    with pytest.raises(NoUsableMusicError, match="hand-built: no non-drum notes"):
        score_stats(make_score([], drum_notes=[(36, 0, 1)]))


def test_length_histogram_clamps_to_the_outer_bins():
    counts = length_histogram(np.array([0.001, 1 / 16, 0.25, 1.0, 4.0, 30.0]))
    assert counts.tolist() == [2, 0, 1, 0, 1, 0, 2]


def test_overlap_of_identical_sets_is_one_and_kl_zero():
    values = np.random.default_rng(0).normal(3.0, 0.5, size=40)
    overlap, kl = overlap_and_kl(values, values)
    assert overlap == pytest.approx(1.0, abs=1e-9)
    assert kl == pytest.approx(0.0, abs=1e-9)
    assert overlap_and_kl([2.0, 2.0], [2.0]) == (1.0, 0.0)


def test_overlap_of_disjoint_sets_is_zero_and_kl_large():
    rng = np.random.default_rng(1)
    overlap, kl = overlap_and_kl(rng.normal(0, 1, 30), rng.normal(50, 1, 30))
    assert overlap < 1e-3
    assert kl > 5
    constant_overlap, _ = overlap_and_kl([0.0] * 5, [1.0] * 5)
    assert constant_overlap < 1e-3


def test_overlap_grows_as_distributions_approach():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 200)
    overlaps = [overlap_and_kl(base, rng.normal(shift, 1, 200))[0] for shift in (4, 2, 1, 0)]
    assert overlaps == sorted(overlaps)
    assert 0.2 < overlaps[2] < 0.8
    a, b = rng.normal(0, 1, 50), rng.normal(1, 2, 70)
    assert overlap_and_kl(a, b)[0] == pytest.approx(overlap_and_kl(b, a)[0])


def test_histogram_overlap_and_kl():
    assert histogram_overlap_and_kl([1, 2, 3], [2, 4, 6]) == pytest.approx((1.0, 0.0))
    overlap, kl = histogram_overlap_and_kl([1, 0, 0], [0, 0, 1])
    assert overlap == 0.0 and kl > 10
    assert histogram_overlap_and_kl([1, 1], [1, 0])[0] == pytest.approx(0.5)


def test_describe_set_skips_unreadable_files(nottingham_files, tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    described = describe_set([*nottingham_files, broken])
    assert described["count"] == len(nottingham_files)
    assert [s["path"] for s in described["skipped"]] == [str(broken)]
    assert described["skipped"][0]["reason"]
    assert [f["path"] for f in described["per_file"]] == [str(p) for p in nottingham_files]
    entropy = described["scalars"]["pitch_class_entropy"]
    assert 0 < entropy["min"] <= entropy["mean"] <= entropy["max"] <= math.log2(12)
    for hist in described["histograms"].values():
        assert sum(hist["probs"]) == pytest.approx(1.0)
        assert len(hist["labels"]) == len(hist["counts"])


def test_describe_set_with_no_usable_file_is_one_error(tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"not midi at all")
    with pytest.raises(NoUsableMusicError, match="no readable MIDI file"):
        describe_set([broken])


def test_compare_sets_of_a_set_with_itself_and_with_another(nottingham_files, chorale_files):
    folk = describe_set(nottingham_files)
    same = compare_sets(folk, folk)
    assert all(m["overlap"] == pytest.approx(1.0) for m in same["scalars"].values())
    assert all(m["kl"] == pytest.approx(0.0, abs=1e-9) for m in same["histograms"].values())
    other = compare_sets(folk, describe_set(chorale_files))
    assert other["scalars"].keys() == same["scalars"].keys()
    assert other["scalars"]["pitch_range"]["generated"]["mean"] == folk["scalars"]["pitch_range"]["mean"]
    assert min(m["overlap"] for m in other["scalars"].values()) < 0.9


# --- a set as an encoding sees it ------------------------------------------------------------

def test_chords_are_dropped_through_the_melody_encoding_and_kept_raw(tmp_path):
    files = [mf.melody_with_chords_file(tmp_path, "a.mid"), mf.melody_with_chords_file(tmp_path, "b.mid", notes=8)]
    encoded = describe_encoded_set(files, get_encoding("melody"))
    raw = describe_set(files)
    assert encoded["count"] == raw["count"] == 2
    assert encoded["scalars"]["polyphony"]["max"] == 1.0
    assert raw["scalars"]["polyphony"]["min"] > 3.0  # melody + triad under it
    assert encoded["scalars"]["pitch_range"]["max"] == 12.0  # the melody's octave, no chord below
    assert raw["scalars"]["pitch_range"]["max"] == 72 - 48


def test_max_events_keeps_the_beginning_of_each_file(tmp_path):
    path = mf.melody_with_chords_file(tmp_path)
    encoding = get_encoding("melody")
    whole = describe_encoded_set([path], encoding)["per_file"][0]["scalars"]
    cut = describe_encoded_set([path], encoding, max_events=6)["per_file"][0]["scalars"]
    assert whole["used_pitches"] == 8.0
    assert 1.0 <= cut["used_pitches"] < 8.0 and cut["pitch_range"] < whole["pitch_range"]


def test_encoded_set_skips_files_the_encoding_cannot_use_and_runs_in_workers(tmp_path):
    files = [mf.melody_with_chords_file(tmp_path, "a.mid"), mf.melody_with_chords_file(tmp_path, "b.mid", notes=8),
             mf.drums_only_file(tmp_path)]
    encoding = get_encoding("melody")
    serial = describe_encoded_set(files, encoding)
    assert serial["count"] == 2 and [s["path"] for s in serial["skipped"]] == [str(files[2])]
    assert serial["skipped"][0]["reason"].startswith("nothing to encode in the melody encoding (")
    assert describe_encoded_set(files, encoding, workers=2) == serial


def _beats_score(tracks, signatures=((0.0, 4, 4),)):
    """Tracks of (pitch, start beat, end beat) at 60 qpm, so seconds equal beats."""
    made = [Track(f"t{i}", i, False, [Note(p, 80, s, e) for p, s, e in notes]) for i, notes in enumerate(tracks)]
    return Score(made, TempoMap(qpm=(60.0,)), list(signatures))


def test_empty_bars_and_groove_follow_the_meter():
    # 4/4: bar 1 quarters, bar 2 empty, bar 3 quarters -> 1 empty of 3; groove: 1 - (4/48 + 4/48) / 2
    quarters = [(60, b, b + 1) for b in (0, 1, 2, 3, 8, 9, 10, 11)]
    scalars = score_stats(_beats_score([quarters])).scalars
    assert scalars["empty_bar_rate"] == pytest.approx(1 / 3)
    assert scalars["groove_consistency"] == pytest.approx(1 - 4 / 48)
    same = [(60, b, b + 0.5) for b in range(12)]
    assert score_stats(_beats_score([same])).scalars["groove_consistency"] == 1.0
    # 3/4 then 4/4 from beat 3: bars [0,3) [3,7) [7,11); the onsets at 3 and 7 open bars 2 and 3
    changed = _beats_score([[(60, 0, 1), (62, 3, 4), (64, 7, 8)]], signatures=((0.0, 3, 4), (3.0, 4, 4)))
    scalars = score_stats(changed).scalars
    assert scalars["empty_bar_rate"] == 0.0 and scalars["groove_consistency"] == 1.0


def test_per_track_ranges_and_polyphony():
    stats = score_stats(_beats_score([[(72, 0, 1), (79, 1, 2)], [(48, 0, 2), (52, 0, 2), (55, 0, 2)]]))
    assert stats.scalars["tracks"] == 2
    assert [(t["notes"], t["lowest"], t["highest"], t["pitch_range"], t["polyphony"]) for t in stats.tracks] == [
        (2, 72, 79, 7, 1.0), (3, 48, 55, 7, 3.0)]
