"""`Piece`: one generated piece as the API and the command line hand it out.

A piece is its `Score` (tracks, tempo map, meter; times in seconds) plus how it came about: the
new ids the model drew, why it holds less music than asked (if it does), its log-likelihood
under beam search, the controls it was steered by and how well it obeys them, what of it the
user gave, its copy check, and the warning when what the user gave is far from the model's
training data. It saves to MIDI, converts to `pretty_midi.PrettyMIDI`, renders
to WAV (FluidSynth) and draws its piano roll, each through the module that owns that job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from melodygen.atomic import scratch_folder
from melodygen.notes import Note, Score


@dataclass
class Piece:
    """One generated piece: its score and how it came about (module docstring)."""

    score: Score
    ids: list[int] = field(default_factory=list)  # the new ids, without the primer
    shortfall: str | None = None  # why it has less new music than asked, if it has
    log_likelihood: float | None = None  # of its new ids under the model (beam search), nats
    path: Path | None = None  # where `save` last wrote it
    steering: object = None  # `encodings.controls.Steering`: the controls it was sampled with
    adherence: object = None  # `stats.controls.Adherence`: how well it obeys them
    form: object = None  # `encodings.form.FormAdherence`: how it follows its form plan
    given: object = None  # what the user gave (primer, given tracks or bars): `given_mask(ids)`, for the copy check
    copy_check: dict | None = None  # `stats.copies.check_pieces`' row: {"path", "check"} or {"path", "skipped"}
    input_warning: str | None = None  # the primer or given music holds ids the model never saw (`dataset.profile`)

    @property
    def notes(self) -> list[Note]:
        """Every note of every track, by onset."""
        return sorted((n for t in self.score.tracks for n in t.notes), key=lambda n: (n.start, n.pitch))

    @property
    def seconds(self) -> float:
        """Where the last note ends."""
        return max((n.end for t in self.score.tracks for n in t.notes), default=0.0)

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        pitches = [n.pitch for t in self.score.tracks for n in t.notes]
        return (min(pitches), max(pitches)) if pitches else None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the piece as a type-1 MIDI file (atomically), and the controls it was sampled
        with beside it (`NAME.controls.json`) if it was steered; returns the MIDI file's path."""
        from melodygen.midi_io import write_score

        self.path = write_score(self.score, path)
        if self.steering is not None:
            self.steering.save_beside(self.path, None if self.form is None else self.form.to_dict())
        return self.path

    def to_pretty_midi(self):
        """The piece as a `pretty_midi.PrettyMIDI` (read back from the MIDI bytes it saves to)."""
        from melodygen.midi_io import to_pretty_midi

        return to_pretty_midi(self.score)

    def render_wav(self, path: str | os.PathLike, *, soundfont: str | os.PathLike | None = None) -> Path:
        """Render the piece to a 16-bit stereo WAV with FluidSynth (`melodygen.render.audio`)."""
        from melodygen.midi_io import write_score
        from melodygen.render.audio import find_soundfont, render_wav
        from melodygen.render.pianoroll import score_duration

        font = find_soundfont(soundfont)
        with scratch_folder("piece") as tmp:
            midi = write_score(self.score, tmp / "piece.mid")
            return render_wav(midi, Path(path), duration=score_duration(self.score), soundfont=font,
                              expect_sound=bool(self.notes))

    def piano_roll(self, path: str | os.PathLike, *, name: str | None = None) -> Path:
        """Draw the piano roll (PNG, one colour per track for an arrangement)."""
        from melodygen.render.pianoroll import draw_pianoroll

        path = Path(path)
        return draw_pianoroll(self.score, path, name=name or path.stem)

    def __repr__(self) -> str:
        tracks = len(self.score.tracks)
        return (f"Piece({len(self.notes)} notes on {tracks} track{'s' * (tracks != 1)}, "
                f"{self.seconds:.1f} s, {len(self.ids)} new events)")
