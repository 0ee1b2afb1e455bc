"""MIDI -> WAV through the FluidSynth command line and a General MIDI SoundFont.

FluidSynth renders raw 32-bit float samples into a temporary file (so nothing clips before we
normalize). This module then reads that file twice, a block of `BLOCK_FRAMES` at a time, so
memory stays the same for a minute or an hour of music (the whole piece in numpy took 5 GB for
an hour): once for the peak, once to write a 16-bit stereo WAV (atomically, with the stdlib
`wave` module) scaled so that the peak sits at `PEAK_DBFS`, exactly the whole-piece
normalization. The audio is trimmed or padded to the MIDI file's duration plus
`RELEASE_TAIL_S` seconds (so the last notes decay instead of being cut off). The temporary file
takes twice the WAV's size on disk, in the system's temporary folder (`$TMPDIR`).

SoundFont search order: `--soundfont`, `$MELODYGEN_SOUNDFONT`, the usual system places
(Debian/Ubuntu `fluid-soundfont-gm`, Fedora/Arch, Homebrew), then pretty_midi's bundled
TimGM6mb.sf2 as a small fallback.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from melodygen.atomic import atomic_write, scratch_folder
from melodygen.errors import RenderError

SAMPLE_RATE = 44100
CHANNELS = 2
BLOCK_FRAMES = 1 << 16
"""Frames read, scaled and written at a time (1.5 s: 512 KiB of float32 stereo)."""
PEAK_DBFS = -1.0
RELEASE_TAIL_S = 1.0
"""Seconds of audio kept after the MIDI file's end so the last notes can ring out."""

INSTALL_HINT = (
    "FluidSynth is not installed: install it with "
    "`sudo apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm` (Debian/Ubuntu) "
    "or `brew install fluid-synth` (macOS)"
)

_SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/*.sf2",
    "/usr/share/sounds/sf2/*.sf2",
    "/opt/homebrew/share/soundfonts/*.sf2",
    "/opt/homebrew/share/fluid-synth/sf2/*.sf2",
    "/usr/local/share/soundfonts/*.sf2",
    "/usr/local/share/fluid-synth/sf2/*.sf2",
)


def find_fluidsynth() -> str:
    """The path of the `fluidsynth` program; `RenderError` with install instructions if absent."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise RenderError(INSTALL_HINT)
    return program


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path:
    """The SoundFont to use: `explicit`, else `$MELODYGEN_SOUNDFONT`, else the first one found
    in the usual places, else pretty_midi's bundled TimGM6mb.sf2."""
    if explicit is not None:
        return _checked_soundfont(Path(explicit), "--soundfont")
    if os.environ.get("MELODYGEN_SOUNDFONT"):
        return _checked_soundfont(Path(os.environ["MELODYGEN_SOUNDFONT"]), "$MELODYGEN_SOUNDFONT")
    for pattern in _SYSTEM_SOUNDFONTS:
        for candidate in sorted(glob.glob(pattern)):
            if _is_soundfont(Path(candidate)):
                return Path(candidate)
    bundled = _bundled_soundfont()
    if bundled is not None:
        return bundled
    raise RenderError(
        "no General MIDI SoundFont found: install `fluid-soundfont-gm` (apt) or pass --soundfont FILE.sf2"
    )


def _bundled_soundfont() -> Path | None:
    # find_spec locates pretty_midi without importing it (only midi_io imports pretty_midi).
    spec = importlib.util.find_spec("pretty_midi")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "TimGM6mb.sf2"
        if _is_soundfont(candidate):
            return candidate
    return None


def _checked_soundfont(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise RenderError(f"{path}: SoundFont not found (from {origin})")
    if not _is_soundfont(path):
        raise RenderError(f"{path}: not a SoundFont (.sf2) file (from {origin})")
    return path


def _is_soundfont(path: Path) -> bool:
    """True for a readable RIFF file of form type `sfbk` (what FluidSynth loads)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def render_wav(
    midi_path: Path, wav_path: Path, *, duration: float, soundfont: Path, expect_sound: bool = True
) -> Path:
    """Render `midi_path` to a normalized 16-bit stereo WAV of `duration + RELEASE_TAIL_S` seconds.

    With `expect_sound` (the file has notes), all-zero output is an error: FluidSynth renders
    silence rather than failing when the SoundFont lacks the instruments.
    """
    n_frames = round((duration + RELEASE_TAIL_S) * SAMPLE_RATE)
    with scratch_folder("render") as tmp:  # the raw floats: twice the WAV's size, for a moment
        raw = synthesize(midi_path, soundfont, tmp / "out.raw")
        peak = max((float(np.max(np.abs(block))) for block in read_blocks(raw, n_frames)), default=0.0)
        if expect_sound and peak == 0.0:
            raise RenderError(f"{midi_path}: FluidSynth rendered silence with SoundFont {soundfont}")
        write_wav(read_blocks(raw, n_frames), wav_path, gain=peak_gain(peak))
    return wav_path


def synthesize(midi_path: Path, soundfont: Path, raw: Path) -> Path:
    """Run FluidSynth on `midi_path`, writing little-endian float32 stereo frames to `raw`."""
    program = find_fluidsynth()
    cmd = [program, "-n", "-i", "-q", "-F", str(raw), "-r", str(SAMPLE_RATE),
           "-T", "raw", "-O", "float", "-E", "little", str(soundfont), str(midi_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not raw.is_file():
        reason = (done.stderr or done.stdout).strip().splitlines()
        detail = reason[-1] if reason else f"exit status {done.returncode}"
        raise RenderError(f"{midi_path}: FluidSynth failed: {detail}")
    return raw


def read_blocks(raw: Path, n_frames: int) -> Iterator[np.ndarray]:
    """Exactly `n_frames` frames of the raw float32 stereo file `raw`, as (frames, 2) blocks of
    at most `BLOCK_FRAMES`: its first frames, then silence past its end."""
    with open(raw, "rb") as file:
        for start in range(0, n_frames, BLOCK_FRAMES):
            frames = min(BLOCK_FRAMES, n_frames - start)
            block = np.fromfile(file, dtype="<f4", count=CHANNELS * frames)
            yield fit_length(block[: block.size - block.size % CHANNELS].reshape(-1, CHANNELS), frames)


def fit_length(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Trim or zero-pad (frames, channels) samples to exactly `n_frames` frames."""
    if len(samples) >= n_frames:
        return samples[:n_frames]
    pad = np.zeros((n_frames - len(samples), samples.shape[1]), dtype=samples.dtype)
    return np.concatenate([samples, pad])


def peak_gain(peak: float, peak_dbfs: float = PEAK_DBFS) -> float:
    """The factor that puts a loudest sample of `peak` at `peak_dbfs` (1 for silence)."""
    return 1.0 if peak == 0.0 else 10.0 ** (peak_dbfs / 20.0) / peak


def write_wav(blocks: Iterable[np.ndarray], path: Path, *, gain: float = 1.0) -> None:
    """Write blocks of float stereo samples, shape (frames, 2), times `gain` and clipped to
    [-1, 1], as 16-bit PCM; temp file + rename."""
    with atomic_write(path) as file, wave.open(file, "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        for block in blocks:
            out.writeframes(np.round(np.clip(block * gain, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
