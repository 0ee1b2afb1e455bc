"""The ceilings (`limits`): files describing hours of music or more events than any piece has
are refused in one line, quickly, by every path that reads MIDI; a request for a piece of more
events than the piece ceiling is refused before sampling, or capped where its length is a budget."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

import midi_factory as mf
from melodygen.cli import main
from melodygen.dataset.prepare import prepare
from melodygen.dataset.files import TOO_LONG, read_file
from melodygen.encodings import get_encoding
from melodygen.errors import ConfigError, MidiReadError, MusicTooLongError
from melodygen.midi_io import read_score
from melodygen.limits import ReadLimits


def test_huge_deltas_are_refused_naming_the_ceiling_and_how_to_raise_it(tmp_path):
    path = mf.huge_deltas_file(tmp_path)
    start = time.perf_counter()
    with pytest.raises(MusicTooLongError, match=rf"^{path}: 9\d\d,\d{{3}}\.\d minutes of music, longer than "
                                                r"the ceiling of 30 minutes \(raise it with MELODYGEN_MAX_MINUTES"):
        read_score(path)
    assert time.perf_counter() - start < 5  # generous: a refusal, not a computation


def test_a_too_long_file_is_still_a_midi_read_error():
    assert issubclass(MusicTooLongError, MidiReadError)  # every caller that skips unreadable files skips it


def test_a_long_silence_counts_as_music(tmp_path):
    path = mf.long_silence_file(tmp_path, minutes=600)
    with pytest.raises(MusicTooLongError, match=r"600\.\d minutes of music"):
        read_score(path)


def test_a_piece_just_under_the_ceiling_reads(tmp_path):
    score = read_score(mf.long_silence_file(tmp_path, minutes=29))
    assert score.note_count() == 5 and score.end_time == pytest.approx(2 + 29 * 60 + 0.5)


def test_an_absurd_tempo_cannot_hide_hours_of_beats_in_seconds(tmp_path):
    path = mf.fast_tempo_file(tmp_path)  # 20 seconds, 20,000 quarter notes
    with pytest.raises(MusicTooLongError, match=r"20,002 beats of music, more than the ceiling of 9,000 \(30 minutes at 300"):
        read_score(path)
    assert read_score(path, limits=ReadLimits(max_minutes=100)).note_count() == 2


def test_the_event_ceiling_stops_the_scan(tmp_path):
    path = mf.many_events_file(tmp_path, 1000)
    with pytest.raises(MusicTooLongError, match=r"more than 1,500 MIDI events.*MELODYGEN_MAX_EVENTS"):
        read_score(path, limits=ReadLimits(max_events=1500))
    assert read_score(path, limits=ReadLimits(max_events=2000)).note_count() == 1000


def test_the_event_ceiling_counts_every_track(tmp_path):
    tracks = [mf.note_events(mf.melody_notes(300)) for _ in range(4)]  # 600 events a track
    path = mf.midi_file(tmp_path / "four.mid", tracks)
    read_score(path, limits=ReadLimits(max_events=2400))
    with pytest.raises(MusicTooLongError):
        read_score(path, limits=ReadLimits(max_events=2000))


def test_the_environment_sets_the_ceilings(tmp_path, monkeypatch):
    path = mf.long_silence_file(tmp_path, minutes=40)
    monkeypatch.setenv("MELODYGEN_MAX_MINUTES", "45")
    assert read_score(path).note_count() == 5
    monkeypatch.setenv("MELODYGEN_MAX_MINUTES", "30")
    monkeypatch.setenv("MELODYGEN_MAX_EVENTS", "5")
    with pytest.raises(MusicTooLongError, match="more than 5 MIDI events"):
        read_score(path)


@pytest.mark.parametrize("variable, value", [("MELODYGEN_MAX_MINUTES", "lots"), ("MELODYGEN_MAX_MINUTES", "-1"),
                                             ("MELODYGEN_MAX_EVENTS", "1.5"), ("MELODYGEN_MAX_MINUTES", "nan")])
def test_a_bad_ceiling_in_the_environment_is_one_error(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"^\${variable} must be a positive"):
        ReadLimits.from_env()


def test_read_file_skips_a_too_long_file_with_its_own_reason(tmp_path):
    result = read_file(mf.huge_deltas_file(tmp_path))
    assert result.reason == TOO_LONG and "MELODYGEN_MAX_MINUTES" in result.detail
    with pytest.raises(MusicTooLongError):
        result.raise_if_skipped("no usable primer")


@pytest.mark.parametrize("builder", [mf.huge_deltas_file, mf.long_silence_file, mf.fast_tempo_file])
@pytest.mark.parametrize("encoding", ["melody", "performance", "multitrack"])
def test_tokens_refuses_a_bomb_in_one_line(tmp_path, builder, encoding):
    result = CliRunner().invoke(main, ["tokens", str(builder(tmp_path)), "--encoding", encoding])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "than the ceiling" in result.output


def test_prepare_skips_a_too_long_file_and_reads_it_once_the_ceiling_is_raised(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    mf.simple_file(src)
    mf.long_silence_file(src, minutes=40)
    summary = prepare([src], get_encoding("melody"), tmp_path / "ds", workers=1, progress=False)
    assert summary.skipped_by_reason == {TOO_LONG: 1}
    [(path, _, detail)] = summary.skipped
    assert path.endswith("long_silence.mid") and "40.0 minutes of music" in detail
    monkeypatch.setenv("MELODYGEN_MAX_MINUTES", "60")
    summary = prepare([src], get_encoding("melody"), tmp_path / "ds", workers=1, progress=False)
    assert not summary.reused and summary.skipped_by_reason == {} and summary.files_used == 2


@pytest.mark.parametrize("length", [["--length", "20001"], ["--bars", "1251"]])  # melody: 16 events a bar
def test_a_piece_longer_than_the_piece_ceiling_is_refused_before_sampling(tmp_path, length):
    from test_sample_cli import write_checkpoint

    ckpt = write_checkpoint(tmp_path / "m.pt", "lstm", "melody")
    result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "o"), *length])
    assert result.exit_code == 1 and not (tmp_path / "o").exists()
    assert result.output.strip().startswith("Error: the length asked for needs 20,0")
    assert "more than the 20,000 one piece may have (raise it with MELODYGEN_MAX_PIECE_EVENTS" in result.output


def test_the_piece_ceiling_caps_a_budget_and_says_so(monkeypatch):
    from melodygen.encodings import get_encoding
    from melodygen.sampling.files import plan_generation
    from melodygen.sampling.request import GenerationRequest

    monkeypatch.setenv("MELODYGEN_MAX_PIECE_EVENTS", "300")
    plan = plan_generation(get_encoding("performance"), GenerationRequest(seconds=60))  # 12,000 events of safety cap
    assert plan.max_events == 300


def test_music_to_accompany_past_the_piece_ceiling_is_refused_in_one_line(tmp_path, monkeypatch):
    from melodygen.encodings import get_encoding
    from melodygen.sampling.files import plan_generation
    from melodygen.sampling.request import GenerationRequest

    monkeypatch.setenv("MELODYGEN_MAX_PIECE_EVENTS", "50")
    tune = mf.melody_with_chords_file(tmp_path, notes=32)
    with pytest.raises(ConfigError, match=rf"^{tune}: its given music \(\d+ bars\) needs \d+ events, more than the 50"):
        plan_generation(get_encoding("multitrack"), GenerationRequest(accompany=tune, instruments=(0,)))
