"""`melodygen fit`: the folder survey and its choices, the held-out pieces, starting from a
checkpoint (`training.init_from`), bad input in one line, and (slow) whole fits, stopped and
resumed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from melodygen.cli import main
from melodygen.errors import ConfigError, DatasetError, OutputError
from melodygen.fitting.plan import make_plan
from melodygen.fitting.scoring import held_out_fraction, is_held_out
from melodygen.fitting.survey import survey_folder
from midi_factory import TPB, message, meta, midi_file, note_events
from train_fixtures import make_dataset, tiny_config


def tune(path: Path, seed: int, *, tracks: int = 1, chords: bool = False, jitter: int = 0, drums: bool = False) -> Path:
    """A 8-bar tune of random scale steps; `tracks` lines (each its own program), block
    chords in the first, onsets moved by up to `jitter` ticks, a drum track."""
    rng = random.Random(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    laid = []
    for t in range(tracks):
        notes, tick = [], 0
        while tick < 32 * TPB:
            pitch = rng.choice(scale) - 12 * t
            start = tick + (rng.randint(0, jitter) if jitter else 0)
            notes.append((pitch, start, tick + TPB))
            if chords and t == 0:
                notes += [(pitch + 4, start, tick + TPB), (pitch + 7, start, tick + TPB)]
            tick += TPB
        laid.append([message(0, "program_change", program=[0, 40, 32][t], channel=t),
                     *note_events(sorted(notes, key=lambda n: n[1]), channel=t)])
    if drums:
        laid.append(note_events([(36, i * TPB, i * TPB + TPB // 2) for i in range(32)], channel=9))
    return midi_file(path, [[meta(0, "time_signature", numerator=4, denominator=4)], *laid])


def folder_of(tmp_path: Path, count: int, name: str = "music", **kind) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for i in range(count):
        tune(folder / f"tune{i:02d}.mid", seed=i, **kind)
    return folder


@pytest.mark.parametrize("kind, encoding", [({}, "melody"), ({"tracks": 2}, "multitrack"),
                                            ({"chords": True}, "multitrack"), ({"drums": True}, "multitrack"),
                                            ({"jitter": 97}, "performance")])
def test_the_encoding_follows_what_the_folder_holds(tmp_path, kind, encoding):
    survey = survey_folder(folder_of(tmp_path, 5, **kind), workers=1, progress=False)
    plan = make_plan(survey)
    assert plan.encoding == encoding
    assert plan.choices[0].what == "encoding" and plan.choices[0].reason  # said, with why
    assert make_plan(survey, encoding="melody").encoding == "melody"  # and overridden


def test_the_survey_counts_the_music_and_skips_bad_files_with_their_reason(tmp_path):
    folder = folder_of(tmp_path, 5, tracks=2)
    (folder / "broken.mid").write_bytes(b"MThd not really")
    (folder / "copy.mid").write_bytes((folder / "tune00.mid").read_bytes())
    survey = survey_folder(folder, workers=1, progress=False)
    assert len(survey.pieces) == 5 and survey.duplicates == 1
    assert [Path(p).name for p, _ in survey.skipped] == ["broken.mid"]
    assert survey.median_tracks == 2 and sorted(survey.instruments()) == [0, 40]
    assert survey.meters() == {"4/4": 5}
    text = "\n".join(survey.describe())
    assert "5 pieces" in text and "skipped" in text and "broken.mid" in text


@pytest.mark.parametrize("make, message_part", [
    (lambda d: d, "no .mid or .midi files"),
    (lambda d: tune(d / "one.mid", 1) and d, "only one MIDI file"),
    (lambda d: [tune(d / f"t{i}.mid", i) for i in range(3)] and d, r"3 usable piece\(s\)"),
    (lambda d: [(d / f"t{i}.mid").write_bytes(b"junk") for i in range(3)] and d, "no usable music"),
    (lambda d: d / "missing", "not a folder"),
])
def test_a_folder_that_cannot_become_a_model_is_one_line(tmp_path, make, message_part):
    folder = tmp_path / "in"
    folder.mkdir()
    with pytest.raises(DatasetError, match=message_part):
        survey_folder(make(folder), workers=1, progress=False)


@pytest.mark.parametrize("seed", range(5))
def test_the_held_out_pieces_are_those_lowest_in_the_split_buckets(seed):
    rng = random.Random(seed)
    hashes = [f"{rng.getrandbits(160):040x}" for _ in range(40)]
    fraction = held_out_fraction(hashes, 6)
    chosen = [h for h in hashes if is_held_out(h, fraction)]
    buckets = sorted(int(h[:8], 16) % 1000 for h in hashes)
    assert len(chosen) == sum(b <= buckets[5] for b in buckets) >= 6  # more only where buckets tie
    assert all(int(h[:8], 16) % 1000 <= buckets[5] for h in chosen)


def test_init_from_maps_the_vocabulary_by_token_name(tmp_path):
    from melodygen.encodings import get_encoding
    from melodygen.models import build_model
    from melodygen.training.init import load_initial_weights
    from train_fixtures import untrained_checkpoint

    narrow, wide = get_encoding("melody", min_pitch=60, max_pitch=72), get_encoding("melody", min_pitch=55, max_pitch=80)
    base = untrained_checkpoint(tmp_path / "base.pt", narrow)
    model = build_model("lstm", {"embed_size": 16, "hidden_size": 24, "num_layers": 1}, wide.vocab.size)
    start = load_initial_weights(model, wide, str(base))
    old = torch.load(base, weights_only=True)["model"]["state_dict"]
    new = model.state_dict()
    key = next(k for k, v in old.items() if v.shape[0] == narrow.vocab.size and v.dim() == 2)
    names = [wide.vocab.token(i) for i in range(wide.vocab.size)]
    old_names = [narrow.vocab.token(i) for i in range(narrow.vocab.size)]
    for name in ("NOTE_ON(60)", "NOTE_ON(72)", "BOS", "NOTE_OFF"):
        assert torch.equal(new[key][names.index(name)], old[key][old_names.index(name)])
    assert "NOTE_ON(55)" in start.added and "NOTE_ON(60)" not in start.added
    assert torch.allclose(new[key][names.index("NOTE_ON(80)")], old[key].mean(0))
    other = build_model("lstm", {"embed_size": 16, "hidden_size": 32, "num_layers": 1}, wide.vocab.size)
    with pytest.raises(ConfigError, match="use its \\[model\\] settings"):
        load_initial_weights(other, wide, str(base))


def test_a_fine_tune_is_measured_before_its_first_step(tmp_path):
    from melodygen.training import train

    dataset = make_dataset(tmp_path / "data")
    first = train(tiny_config(dataset), tmp_path / "first", progress=False)
    tuned = train(tiny_config(dataset, init_from=str(first.paths.best), max_steps=4), tmp_path / "tuned", progress=False)
    rows = (tmp_path / "tuned" / "metrics.csv").read_text().splitlines()
    assert rows[1].startswith("0,") and tuned.best is not None
    # the starting point is the first run's best model: the same validation NLL
    assert float(rows[1].split(",")[2]) == pytest.approx(first.best["nll"], abs=1e-4)


def test_out_is_never_a_folder_of_something_else(tmp_path):
    folder = folder_of(tmp_path, 5)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    result = CliRunner().invoke(main, ["fit", str(folder), "--out", str(other), "--quiet"])
    assert result.exit_code == 1 and "not empty and not a fit folder" in result.output
    assert (other / "precious.txt").read_text() == "keep"
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "empty"), "--out", str(tmp_path / "new"), "--quiet"])
    assert result.exit_code == 1 and "not a folder" in result.output and not (tmp_path / "new").exists()


@pytest.fixture
def quick_fit(monkeypatch):
    """A fit's fixed times scaled down to seconds (the logic is the same)."""
    import melodygen.fitting.plan as plan
    import melodygen.fitting.run as run
    import melodygen.fitting.training as training

    monkeypatch.setattr(run, "REPORT_RESERVE_MINUTES", 0.0)
    monkeypatch.setattr(training, "MIN_TRAINING_MINUTES", 0.05)
    monkeypatch.setattr(plan, "MIN_TRIAL_MINUTES", 0.05)
    monkeypatch.setattr(training, "EVAL_EVERY", 3)
    monkeypatch.setitem(plan.SCRATCH_MODELS, "small", {**plan.SCRATCH_MODELS["small"], "d_model": 32, "d_ff": 64,
                                                        "n_layers": 1})


class StopAfter:
    """A stop flag raised after `checks` reads (the training loop reads it once per step)."""

    def __init__(self, checks: int):
        self.checks, self.armed = checks, False

    @property
    def requested(self) -> bool:
        self.checks -= 1
        return self.checks < 0


@pytest.mark.slow
def test_a_whole_fit_stopped_and_resumed(tmp_path, quick_fit):
    from melodygen import load
    from melodygen.fitting import fit

    folder = folder_of(tmp_path, 7)
    out = tmp_path / "fit"
    lines = []
    assert fit(folder, out, minutes=0.5, samples=2, progress=False, echo=lines.append, stop=StopAfter(4)) is None
    state = json.loads((out / "fit.json").read_text())
    assert state["bases"].keys() == {"folk-melody"} and "winner" not in state["training"]
    with pytest.raises(OutputError, match="--resume"):
        fit(folder, out, minutes=0.5, progress=False, echo=lines.append)
    result = fit(folder, out, minutes=0.5, samples=2, resume=True, progress=False, echo=lines.append)
    state = result.state
    assert set(state["training"]["trials"]) == {"finetune", "scratch"}
    assert state["training"]["winner"] in ("finetune", "scratch") and state["training"]["finished"]
    for figures in (state["final"]["fitted"], state["final"]["ngram"], state["bases"]["folk-melody"]):
        assert np.isfinite(figures["nats_per_note"]) and figures["notes"] > 0
    assert state["final"]["audit"]["summary"]["files"] == 2
    card = result.card.read_text()
    assert "License:** FILL IN" in card and "| fitted (model.pt) |" in card and "Memorisation audit" in card
    page = result.report.read_text()
    assert "Fitted to your folder" in page and "nats/note" in page
    assert load(result.model).generate(events=16, seed=1)[0].notes  # a checkpoint like any other
    assert any(line.startswith("choice: start") for line in lines)


@pytest.mark.slow
def test_fit_from_the_command_line_from_scratch(tmp_path, quick_fit):
    folder = folder_of(tmp_path, 6, tracks=2)
    out = tmp_path / "fit"
    result = CliRunner().invoke(main, ["fit", str(folder), "--out", str(out), "--from", "scratch", "--minutes", "0.4",
                                       "--samples", "2", "--quiet", "--threads", "1",
                                       "--set", "training.transpose_range=[0,0]"])
    assert result.exit_code == 0, result.output
    assert "choice: encoding    multitrack" in result.output and "report:" in result.output
    state = json.loads((out / "fit.json").read_text())
    assert state["bases"] == {} and state["training"]["names"] == ["scratch"]
    assert state["training"]["configs"]["scratch"]["training"]["transpose_range"] == [0, 0]
    sampled = CliRunner().invoke(main, ["sample", str(out / "model.pt"), "--out", str(tmp_path / "new"), "--events", "32"])
    assert sampled.exit_code == 0, sampled.output


def test_every_choice_can_be_overridden_and_a_bad_override_is_one_line(tmp_path):
    survey = survey_folder(folder_of(tmp_path, 8), workers=1, progress=False)
    plan = make_plan(survey, held_out=2, overrides=("training.transpose_range=[0,0]", "model.d_model=64"))
    assert plan.held_out == 2 and plan.choices[-1].what == "overrides"
    with pytest.raises(ConfigError, match="--held-out 6"):
        make_plan(survey, held_out=6)
    with pytest.raises(ConfigError, match="unknown"):
        make_plan(survey, overrides=("training.not_a_setting=1",))
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "music"), "--out", str(tmp_path / "o"), "--from", "nope"])
    assert result.exit_code == 1 and "nope" in result.output and not (tmp_path / "o").exists()


def test_out_inside_the_folder_and_a_resume_of_another_folder_are_refused(tmp_path):
    from melodygen.fitting import fit

    folder = folder_of(tmp_path, 5)
    with pytest.raises(OutputError, match="inside"):
        fit(folder, folder / "fit", progress=False, echo=lambda _: None)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "fit.json").write_text(json.dumps({"folder": "/somewhere/else"}))
    with pytest.raises(OutputError, match="not of"):
        fit(folder, tmp_path / "done", resume=True, progress=False, echo=lambda _: None)


def test_the_api_function_is_not_shadowed_by_the_package_that_does_the_work():
    import melodygen
    import melodygen.fitting  # noqa: F401 - importing a subpackage sets its name on the parent

    assert callable(melodygen.fit) and melodygen.fit.__module__ == "melodygen.api"
