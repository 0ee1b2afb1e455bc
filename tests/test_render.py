"""Tests of melodygen.render (audio, pianoroll, files) and `melodygen render`."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from melodygen.render import audio
from melodygen.cli import main
from melodygen.errors import RenderError
from melodygen.notes import Note, Score, TempoMap, Track
from melodygen.render.pianoroll import bar_times, draw_pianoroll, pitch_name, score_facts
from melodygen.render.files import render_files

needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
C_MAJOR = (60, 62, 64, 65, 67, 69, 71, 72)


def write_scale(path: Path, *, qpm: float = 120.0, ticks_per_beat: int = 480) -> float:
    """A C-major scale of quarter notes in 3/4 on a piano; returns its duration in seconds."""
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0),
        mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
        mido.Message("program_change", program=0, time=0),
    ])
    for pitch in C_MAJOR:
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks_per_beat))
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(path)
    return len(C_MAJOR) * 60.0 / qpm


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV as float samples in [-1, 1], shape (frames, channels), and its rate."""
    with wave.open(str(path), "rb") as f:
        assert f.getsampwidth() == 2
        frames = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return frames.reshape(-1, f.getnchannels()).astype(np.float32) / 32767.0, f.getframerate()


def scale_score() -> Score:
    notes = [Note(p, 40 + 10 * i, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate(C_MAJOR)]
    return Score(tracks=[Track("piano", 0, False, notes)], time_signatures=[(0.0, 3, 4)], end_time=4.0)


# --- audio -----------------------------------------------------------------------------------

@needs_fluidsynth
def test_c_major_scale_is_audible_normalized_and_as_long_as_the_file(tmp_path):
    duration = write_scale(tmp_path / "scale.mid")
    wav = audio.render_wav(tmp_path / "scale.mid", tmp_path / "scale.wav",
                           duration=duration, soundfont=audio.find_soundfont())
    samples, rate = read_wav(wav)
    assert rate == audio.SAMPLE_RATE and samples.shape[1] == 2
    assert len(samples) == round((duration + audio.RELEASE_TAIL_S) * rate)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 0.02, f"rendered scale too quiet: RMS {rms}"
    peak = float(np.max(np.abs(samples)))
    assert peak == pytest.approx(10 ** (audio.PEAK_DBFS / 20), abs=2e-3)
    assert peak < 0.99  # not clipped
    # Sound in every note's half-second, not only at the start.
    per_note = samples[: int(duration * rate)].reshape(len(C_MAJOR), -1, 2)
    assert np.all(np.sqrt(np.mean(per_note**2, axis=(1, 2))) > 0.005)


def test_fit_length_trims_and_pads_with_silence():
    samples = np.ones((10, 2), dtype=np.float32)
    assert audio.fit_length(samples, 4).shape == (4, 2)
    padded = audio.fit_length(samples, 15)
    assert padded.shape == (15, 2) and padded[10:].sum() == 0 and padded[:10].all()


def test_peak_gain_sets_the_peak_and_keeps_silence_silent():
    assert 3.0 * audio.peak_gain(3.0, -6.0) == pytest.approx(10 ** (-6 / 20))
    assert audio.peak_gain(0.0) == 1.0


def test_wav_round_trip(tmp_path):
    samples = np.linspace(-1, 1, 200).reshape(100, 2)
    audio.write_wav([samples[:30], samples[30:]], tmp_path / "x.wav")
    back, rate = read_wav(tmp_path / "x.wav")
    assert rate == audio.SAMPLE_RATE and np.allclose(back, samples, atol=1e-4)


def test_missing_fluidsynth_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RenderError, match=r"apt-get install --no-install-recommends fluidsynth.*brew"):
        audio.find_fluidsynth()


def test_soundfont_search_order(tmp_path, monkeypatch):
    fake = tmp_path / "mine.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00sfbk" + bytes(20))
    assert audio.find_soundfont(fake) == fake
    monkeypatch.setenv("MELODYGEN_SOUNDFONT", str(fake))
    assert audio.find_soundfont() == fake
    monkeypatch.delenv("MELODYGEN_SOUNDFONT")
    monkeypatch.setattr(audio, "_SYSTEM_SOUNDFONTS", ())
    assert audio.find_soundfont().name == "TimGM6mb.sf2"  # pretty_midi's bundled fallback


def test_bad_soundfont_is_one_clear_error(tmp_path):
    with pytest.raises(RenderError, match="missing.sf2: SoundFont not found"):
        audio.find_soundfont(tmp_path / "missing.sf2")
    (tmp_path / "text.sf2").write_text("not a soundfont")
    with pytest.raises(RenderError, match=r"text.sf2: not a SoundFont"):
        audio.find_soundfont(tmp_path / "text.sf2")


# --- piano roll ------------------------------------------------------------------------------

def test_bar_lines_follow_time_signatures_and_tempo_changes():
    # 120 qpm for 4 beats (2 s), then 60 qpm; 4/4 from 0 s, 6/8 (3 quarter notes) from 4 s.
    tempo = TempoMap(times=(0.0, 2.0), beats=(0.0, 4.0), qpm=(120.0, 60.0))
    score = Score(tracks=[], tempo_map=tempo, time_signatures=[(4.0, 6, 8), (0.0, 4, 4)])
    assert bar_times(score, end=10.0) == pytest.approx([0.0, 2.0, 4.0, 7.0])
    assert bar_times(Score(tracks=[]), end=10.0) == []  # no meter, no bar lines


def test_facts_and_pitch_names():
    facts = score_facts(scale_score(), "scale.mid")
    assert (facts.notes, facts.duration, facts.lowest, facts.highest) == (8, 4.0, 60, 72)
    assert facts.summary() == "8 notes, 4.0 s, pitch C4-C5"
    assert [pitch_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]


def test_pianoroll_draws_coloured_notes(tmp_path):
    import matplotlib.image

    png = draw_pianoroll(scale_score(), tmp_path / "roll.png", name="scale.mid")
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (420, 1200)
    rgb = pixels[..., :3]
    saturated = (rgb.max(axis=2) - rgb.min(axis=2)) > 0.3  # coloured note bars and colorbar
    assert saturated.mean() > 0.01


def test_an_arrangement_is_coloured_by_track(tmp_path):
    import matplotlib.image

    def has(pixels, colour) -> bool:
        return bool((np.abs(pixels[..., :3] - np.array(colour)).max(axis=2) < 0.02).any())

    blue, orange = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)  # tab10's first two colours
    high = Track("flute", 73, False, [Note(84, 127, 0.0, 2.0)])
    low = Track("bass", 32, False, [Note(36, 127, 0.0, 2.0)])
    two = matplotlib.image.imread(draw_pianoroll(Score([high, low]), tmp_path / "two.png", name="two"))
    one = matplotlib.image.imread(draw_pianoroll(Score([high]), tmp_path / "one.png", name="one"))
    assert has(two, blue) and has(two, orange)
    assert not has(one, orange)


def test_pianoroll_of_an_empty_score(tmp_path):
    png = draw_pianoroll(Score(tracks=[]), tmp_path / "empty.png", name="empty.mid")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- render_files and the command ------------------------------------------------------------

@needs_fluidsynth
def test_render_command_writes_both_outputs(tmp_path):
    write_scale(tmp_path / "scale.mid")
    result = CliRunner().invoke(main, ["render", str(tmp_path / "scale.mid"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "scale.wav").is_file() and (tmp_path / "out" / "scale.png").is_file()
    assert "8 notes, 4.0 s, pitch C4-C5" in result.output and str(tmp_path / "out") in result.output


def test_png_only_renders_beside_the_file(tmp_path):
    write_scale(tmp_path / "scale.mid")
    [rendered] = render_files([tmp_path / "scale.mid"], wav=False)
    assert rendered.png == tmp_path / "scale.png" and rendered.png.is_file()
    assert rendered.wav is None and not (tmp_path / "scale.wav").exists()


def test_render_command_takes_folders(tmp_path):
    for name in ("a", "sub/b"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_scale(tmp_path / f"{name}.mid")
    result = CliRunner().invoke(main, ["render", str(tmp_path), "--png", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_unreadable_files_in_a_folder_are_skipped_and_listed(tmp_path):
    write_scale(tmp_path / "a.mid")
    (tmp_path / "b.mid").write_bytes(b"")
    (tmp_path / "c.mid").write_text("text named .mid")
    result = CliRunner().invoke(main, ["render", str(tmp_path), "--png", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    assert result.stderr.splitlines() == [f"skipped {tmp_path / 'b.mid'}: empty file (0 bytes)",
                                          f"skipped {tmp_path / 'c.mid'}: not a MIDI file (no MThd header)"]
    assert "rendered 1 file(s), skipped 2" in result.stdout
    (tmp_path / "a.mid").write_bytes(b"MThd")
    result = CliRunner().invoke(main, ["render", str(tmp_path), "--png"])
    assert result.exit_code == 1 and result.output.startswith("Error: none of the 3 MIDI files could be read")


def test_an_unwritable_output_names_it_and_leaves_no_temp_file(tmp_path):
    write_scale(tmp_path / "scale.mid")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scale.png").mkdir()  # a folder where the picture should go
    result = CliRunner().invoke(main, ["render", str(tmp_path / "scale.mid"), "--png", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path / 'out' / 'scale.png'}: cannot write (")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["scale.png"]


def test_same_output_name_twice_is_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_scale(tmp_path / folder / "song.mid")
    with pytest.raises(RenderError, match="would both be rendered"):
        render_files([tmp_path / "a" / "song.mid", tmp_path / "b" / "song.mid"], tmp_path / "out", wav=False)


def test_render_errors_are_one_line(tmp_path, monkeypatch):
    write_scale(tmp_path / "scale.mid")
    (tmp_path / "bad.mid").write_bytes(b"not midi at all")
    runner = CliRunner()
    result = runner.invoke(main, ["render", str(tmp_path / "bad.mid"), "--png"])
    assert result.exit_code == 1 and "bad.mid" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("PATH", "")
    result = runner.invoke(main, ["render", str(tmp_path / "scale.mid"), "--wav"])
    assert result.exit_code == 1 and "--no-install-recommends" in result.output
    assert len(result.output.strip().splitlines()) == 1


def tiny_checkpoint(path: Path) -> Path:
    from melodygen.checkpoint import make_checkpoint, save
    from melodygen.encodings import get_encoding
    from melodygen.models import build_model

    encoding = get_encoding("melody")
    settings = {"embed_size": 8, "hidden_size": 16, "num_layers": 1}
    model = build_model("lstm", settings, encoding.vocab.size)
    return save(make_checkpoint(model_kind="lstm", model_settings=settings, model=model, encoding=encoding,
                                run_config={}, step=0, best_val_nll=None), path)


def sample_rendered(tmp_path):
    return CliRunner().invoke(main, ["sample", str(tiny_checkpoint(tmp_path / "tiny.pt")), "--out",
                                     str(tmp_path / "s"), "-n", "2", "--length", "64", "--seed", "1",
                                     "--device", "cpu", "--render"])


@needs_fluidsynth
def test_sample_render_writes_audio_and_pictures_beside_the_samples(tmp_path):
    result = sample_rendered(tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("sample_000", "sample_001"):
        assert {p.suffix for p in (tmp_path / "s").glob(f"{name}.*")} == {".mid", ".wav", ".png"}
    assert f"into {tmp_path / 's'}" in result.output


def test_sample_render_without_fluidsynth_warns_in_one_line_and_draws_the_pictures(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    result = sample_rendered(tmp_path)
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.output.splitlines() if line.startswith("warning")]
    assert warning.startswith("warning: no audio: FluidSynth is not installed: install it with")
    assert warning.endswith("--render writes the piano-roll PNGs only")
    for name in ("sample_000", "sample_001"):
        assert {p.suffix for p in (tmp_path / "s").glob(f"{name}.*")} == {".mid", ".png"}
    assert f"rendered 2 piano-roll PNG(s) into {tmp_path / 's'}" in result.output


def test_a_file_name_that_is_not_utf8_is_rendered(tmp_path):
    path = tmp_path / os.fsdecode(b"caf\xe9.mid")  # Latin-1 bytes, kept by Python as a lone surrogate
    write_scale(path)
    [rendered] = render_files([path], tmp_path / "out", wav=False)
    assert rendered.facts.name == "caf\ufffd.mid" and rendered.png.is_file()
