"""The report's requested-vs-achieved controls of steered samples.

`melodygen sample --key/--chords/--density` writes `NAME.controls.json` beside `NAME.mid`
(`Steering.save_beside`). For each sample with one, the notes of the file as written are
measured with the run's encoding, as `sample` measured them (`stats.controls.piece_adherence`).
A damaged controls file is skipped and listed, like an unreadable sample; a run whose encoding
measures no controls, or a sample that encoding cannot lay out, gets a note instead of figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from melodygen.encodings.controls import Steering, controls_path
from melodygen.errors import ConfigError, ReportError
from melodygen.report.run import RunInfo
from melodygen.stats.controls import Adherence


@dataclass(frozen=True)
class SampleSteering:
    """What one sample was asked for (`steering`) and how it did (`adherence`), or, when it
    was not measured, a `note` saying why."""

    steering: Steering
    adherence: Adherence | None = None
    note: str | None = None
    form: object = None  # `encodings.form.FormAdherence` where it had a form plan


@dataclass(frozen=True)
class SamplesSteering:
    """{sample path: SampleSteering} of the samples with a controls file, and the controls
    files skipped as damaged (each error naming its file)."""

    by_path: dict[str, SampleSteering] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def sample_steering(run: RunInfo, sample_paths: list[Path]) -> SamplesSteering:
    """Read the controls file beside each of `sample_paths` and measure the samples that have one."""
    from melodygen.encodings.controls import read_beside

    found, skipped = {}, []
    for path in sample_paths:
        try:
            steering = read_beside(path)
        except ConfigError as exc:  # its message names the file
            skipped.append(str(exc))
            continue
        if steering is not None:
            found[str(path)] = steering
    if not found:  # the run's encoding is looked up only when something needs it
        return SamplesSteering({}, skipped)
    encoding, note = _measuring_encoding(run)
    return SamplesSteering({path: _measure(Path(path), steering, encoding, note) for path, steering in found.items()},
                           skipped)


def _measuring_encoding(run: RunInfo):
    """(the run's encoding, None) when it can measure controls, else (None, why not)."""
    from melodygen.report.reference import stored_encoding

    try:
        found = stored_encoding(run)
    except ReportError as exc:
        return None, f"controls not measured: {exc}"
    if found is None:
        return None, "controls not measured: the run has no checkpoint and no [encoding] in its config"
    encoding, source = found
    # A capability, not a name: only an encoding with bars and chords measures controls.
    if not hasattr(encoding, "controls_of"):
        return None, (f"controls not measured: the run's {encoding.name} encoding (from {source}) "
                      "has no controls to compare with")
    return encoding, None


def _measure(path: Path, steering: Steering, encoding, note: str | None) -> SampleSteering:
    from melodygen.dataset.files import read_file
    from melodygen.stats.controls import piece_adherence

    if encoding is None:
        return SampleSteering(steering, None, note)
    result = read_file(path, encoding, keep_score=True)
    if result.skipped:  # an unreadable file is listed by the gallery; here only why it has no figures
        return SampleSteering(steering, None, f"controls not measured: {result.why()}")
    adherence = (piece_adherence(encoding, result.score, steering.request, steering.first_bar, steering.bars)
                 if steering.request.kinds else None)
    return SampleSteering(steering, adherence, form=_form(path, steering, encoding, result.score))


def _form(path: Path, steering: Steering, encoding, score):
    """How the sample follows the form plan it was sampled with (None: none), with the chords it
    kept where chords followed the plan (none asked, a model with the chord control)."""
    if not steering.form:
        return None
    from melodygen.encodings.form import FormPlan, form_adherence

    try:
        plan = FormPlan.parse(steering.form)
    except ConfigError as exc:
        raise ConfigError(f"{controls_path(path)}: {exc}") from None
    free = steering.request.chords is None and "chord" in getattr(encoding.settings, "controls", ())
    chords = encoding.controls_of(score).chords if free and score.note_count() else None
    return form_adherence(plan, score, steering.first_bar, encoding.settings.steps_per_quarter, chords)
