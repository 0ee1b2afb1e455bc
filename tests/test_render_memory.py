"""WAV rendering holds a block of audio at a time, never the piece: its peak memory is the same
for one minute or ten, and the blocks add up to exactly the whole-piece normalization.

A stand-in `fluidsynth` on PATH writes known raw samples, so most of these tests need no
SoundFont and know what the WAV must hold; one renders real music with the real FluidSynth."""

import shutil
import sys
import tracemalloc
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from melodygen.render import audio

FAKE_FLUIDSYNTH = """#!{python}
# $FAKE_SECONDS of float32 stereo into the file after -F, in blocks (`stand_in_samples` below)
import os, sys
import numpy as np
frames = round(float(os.environ["FAKE_SECONDS"]) * 44100)
with open(sys.argv[sys.argv.index("-F") + 1], "wb") as out:
    for start in range(0, frames, 100_000):
        i = np.arange(start, min(start + 100_000, frames))
        saw = np.where((i >= frames // 2) & (i < frames // 2 + 1000), 2.5, 0.3) * ((i % 100) / 50 - 1)
        out.write(np.stack([saw, -0.5 * saw], axis=1).astype("<f4").tobytes())
"""


def stand_in_samples(seconds: float) -> np.ndarray:
    """What the stand-in writes, (frames, 2) float32: a sawtooth at 0.3, and at 2.5 for 1,000
    frames mid-piece (FluidSynth's floats may pass 1). Plain arithmetic, the same in any blocks."""
    frames = round(seconds * audio.SAMPLE_RATE)
    i = np.arange(frames)
    saw = np.where((i >= frames // 2) & (i < frames // 2 + 1000), 2.5, 0.3) * ((i % 100) / 50 - 1)
    return np.stack([saw, -0.5 * saw], axis=1).astype("<f4")


@pytest.fixture
def fake_render(tmp_path, monkeypatch):
    """`render(seconds, duration)`: the WAV `render_wav` makes of `seconds` of the stand-in's
    audio for a piece of `duration` seconds, and the peak bytes traced while it ran."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "fluidsynth").write_text(FAKE_FLUIDSYNTH.format(python=sys.executable))
    (folder / "fluidsynth").chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    soundfont = tmp_path / "unused.sf2"

    def render(seconds: float, duration: float) -> tuple[Path, int]:
        monkeypatch.setenv("FAKE_SECONDS", str(seconds))
        tracemalloc.start()  # numpy's buffers are traced too
        try:
            wav = audio.render_wav(tmp_path / "piece.mid", tmp_path / f"{seconds}.wav", duration=duration,
                                   soundfont=soundfont)
            return wav, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    return render


def read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (2, 2, audio.SAMPLE_RATE)
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)


def test_peak_memory_does_not_grow_with_the_length_of_the_piece(fake_render):
    # An hour took 5 GB: the whole piece was read into numpy, then copied four times over.
    _, short_peak = fake_render(60, 59.0)
    long_wav, long_peak = fake_render(600, 599.0)
    assert len(read_pcm(long_wav)) == 600 * audio.SAMPLE_RATE
    assert long_peak < 1.5 * short_peak and long_peak < 8 << 20  # one minute of float32 stereo: 21 MB


@pytest.mark.parametrize("seconds, duration", [(6.0, 4.0), (4.0, 5.0)])  # trimmed; padded past the end
def test_blocks_write_exactly_the_whole_piece_normalized(fake_render, seconds, duration):
    wav, _ = fake_render(seconds, duration)
    n_frames = round((duration + audio.RELEASE_TAIL_S) * audio.SAMPLE_RATE)
    whole = np.zeros((n_frames, 2), dtype=np.float32)
    kept = stand_in_samples(seconds)[:n_frames]
    whole[:len(kept)] = kept
    gain = 10 ** (audio.PEAK_DBFS / 20) / float(np.max(np.abs(whole)))
    want = np.round(np.clip(whole * gain, -1.0, 1.0) * 32767.0).astype("<i2")
    assert n_frames > 3 * audio.BLOCK_FRAMES and np.array_equal(read_pcm(wav), want)


def test_silence_is_refused_before_a_wav_is_written(fake_render, tmp_path):
    from melodygen.errors import RenderError

    with pytest.raises(RenderError, match="rendered silence"):
        fake_render(0.0, 2.0)
    assert not list(tmp_path.glob("*.wav"))


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth not installed")
def test_a_real_three_minute_piece_renders_in_blocks(tmp_path):
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))])
    for i in range(3 * 60 * 2):  # quarter notes at 120 qpm for three minutes
        track += [mido.Message("note_on", note=60 + i % 12, velocity=90, time=0),
                  mido.Message("note_off", note=60 + i % 12, velocity=0, time=480)]
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(tmp_path / "long.mid")
    tracemalloc.start()
    try:
        wav = audio.render_wav(tmp_path / "long.mid", tmp_path / "long.wav", duration=180.0,
                               soundfont=audio.find_soundfont())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pcm = read_pcm(wav)
    assert len(pcm) == 181 * audio.SAMPLE_RATE and peak < 8 << 20  # the piece in float32: 64 MB
    assert np.abs(pcm).max() == round(10 ** (audio.PEAK_DBFS / 20) * 32767)
    assert (np.abs(pcm[-audio.SAMPLE_RATE * 90:]) > 1000).any()  # sound in its second half
