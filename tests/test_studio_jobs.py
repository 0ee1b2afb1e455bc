"""The studio's limits on work: a bounded job queue (no thread per request), uploaded primers
removed when their job ends, and a ceiling on every form field."""

from __future__ import annotations

import io
import threading

import pytest

pytest.importorskip("flask")

from melodygen.api import Model  # noqa: E402
from melodygen.errors import ConfigError, RenderError  # noqa: E402
from melodygen.midi_io import read_score  # noqa: E402
from melodygen.studio.app import create_app  # noqa: E402
from melodygen.studio.form import MAX_FIELD_CHARS, MAX_ITEMS, parse_settings  # noqa: E402
from melodygen.studio.session import MAX_WAITING  # noqa: E402
from midi_factory import simple_file  # noqa: E402
from test_sample_cli import write_checkpoint  # noqa: E402
from test_studio import POLL_LIMIT_S, ended, page_client  # noqa: E402

BURST = 50


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(write_checkpoint(tmp_path_factory.mktemp("models") / "lstm.pt", "lstm", "melody"))


@pytest.fixture
def client(tmp_path, model):
    return page_client(create_app([model], tmp_path / "work", audio=False))


@pytest.fixture
def primer(tmp_path) -> bytes:
    return simple_file(tmp_path).read_bytes()


@pytest.fixture
def gate(monkeypatch):
    """Holds every generation until `gate.set()` (done after the test in any case);
    `gate.entered` is set once a generation waits at it."""
    gate, generate = threading.Event(), Model.generate
    gate.entered = threading.Event()

    def held(self, **options):
        gate.entered.set()
        assert gate.wait(POLL_LIMIT_S)
        return generate(self, **options)

    monkeypatch.setattr(Model, "generate", held)
    yield gate
    gate.set()


def ask(client, model, primer: bytes | None = None, **fields):
    data = {"model": model, "n": "1", "length": "1", "seed": "3", **fields}
    if primer is not None:
        data["primer"] = (io.BytesIO(primer), "my tune.mid")
    return client.post("/api/generate", data=data)


def uploads(tmp_path) -> list:
    return sorted((tmp_path / "work" / "uploads").iterdir())


# --- the queue -----------------------------------------------------------------------------------

def test_a_burst_queues_a_few_jobs_refuses_the_rest_and_starts_one_worker(client, model, gate, primer, tmp_path):
    threads = threading.active_count()
    running = ask(client, model)
    assert running.status_code == 202 and gate.entered.wait(POLL_LIMIT_S)  # the worker holds it
    burst = [ask(client, model, primer) for _ in range(BURST)]
    assert [a.status_code for a in burst] == [202] * MAX_WAITING + [503] * (BURST - MAX_WAITING)
    assert threading.active_count() <= threads + 1  # the worker, not a thread per job
    for refused in burst[MAX_WAITING:]:
        assert refused.json["error"].startswith("the studio is busy: 4 generations are waiting")
    assert len(uploads(tmp_path)) == MAX_WAITING  # a refused request's primer is gone at once

    gate.set()
    for answer in (running, *burst[:MAX_WAITING]):
        job = ended(client, answer)
        assert job["error"] is None and job["done"] == 1
    assert uploads(tmp_path) == []
    assert ask(client, model).status_code == 202  # room again


def a_bug(self, **options):
    raise KeyError("a bug")


def test_a_bug_in_a_job_leaves_the_worker_running(client, model, monkeypatch):
    generate = Model.generate
    monkeypatch.setattr(Model, "generate", a_bug)
    assert ended(client, ask(client, model))["error"].startswith("unexpected error (KeyError: 'a bug')")
    monkeypatch.setattr(Model, "generate", generate)
    assert ended(client, ask(client, model))["done"] == 1


# --- uploaded primers ----------------------------------------------------------------------------

def fails(self, **options):
    raise RenderError("FluidSynth failed: no voice")


@pytest.mark.parametrize("outcome", ["made", "failed", "refused"])
def test_an_uploaded_primer_is_removed_when_its_job_ends(client, model, primer, tmp_path, monkeypatch, outcome):
    if outcome == "failed":
        monkeypatch.setattr(Model, "generate", fails)
    fields = {"instruments": "violin"} if outcome == "refused" else {}  # a melody model has no instruments
    answer = ask(client, model, primer, **fields)
    if outcome == "refused":
        assert answer.status_code == 400 and "--instruments needs a multitrack model" in answer.json["error"]
    else:
        assert (ended(client, answer)["error"] is None) == (outcome == "made")
    assert uploads(tmp_path) == []


def test_regenerating_a_primed_sample_continues_the_same_primer(client, model, primer, tmp_path, monkeypatch):
    monkeypatch.setattr("melodygen.studio.session.KEPT_UPLOADS", 1)
    [old] = ended(client, ask(client, model, primer))["samples"]
    [new] = ended(client, client.post(f"/api/samples/{old['id']}/regenerate"))["samples"]
    assert new["settings"]["primer"] == "my tune.mid" and new["seed"] != old["seed"]
    written = read_score(tmp_path / "work" / new["files"]["mid"]).tracks[0].notes
    assert [n.pitch for n in written[:8]] == [60, 62, 64, 65, 67, 69, 71, 72]  # the primer's (simple_file)
    assert uploads(tmp_path) == []

    ended(client, ask(client, model, primer))  # a newer upload: the studio lets the first go
    answer = client.post(f"/api/samples/{old['id']}/regenerate")
    assert answer.status_code == 400 and "continued the primer my tune.mid, which the studio no longer holds" in (
        answer.json["error"])


# --- field ceilings ------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, named", [
    ({"chords": "D " * (MAX_ITEMS + 1)}, f"chords: more than {MAX_ITEMS} values"),
    ({"density": "4," * (MAX_ITEMS + 1)}, f"density: more than {MAX_ITEMS} values"),
    ({"instruments": "piano," * (MAX_ITEMS + 1)}, f"instruments: {MAX_ITEMS + 1} instruments, more than"),
    ({"key": "D" * (MAX_FIELD_CHARS + 1)}, f"key: {MAX_FIELD_CHARS + 1} characters, more than"),
    ({"model": "m" * 10**6}, "model: 1000000 characters, more than"),
    ({"seed": "9" * 5000}, "seed: 5000 characters, more than"),
])
def test_list_and_text_fields_have_a_ceiling(fields, named):
    with pytest.raises(ConfigError) as caught:
        parse_settings({"model": "m", **fields}, ["m"])
    assert str(caught.value).startswith(named) and len(str(caught.value)) < 200


@pytest.mark.parametrize("name, unit", [("n", "bars"), ("temperature", "bars"), ("top_p", "bars"), ("length", "bars"),
                                        ("length", "seconds"), ("length", "events"), ("seed", "bars"),
                                        ("tempo", "bars")])
def test_every_number_field_has_an_upper_bound(name, unit):
    with pytest.raises(ConfigError, match=f"^{name}: 1000000000000 is outside"):
        parse_settings({"model": "m", "unit": unit, name: "1000000000000"}, ["m"])


def test_an_over_long_field_is_one_line_and_writes_nothing(client, model, primer, tmp_path):
    answer = ask(client, model, primer, density="4 " * (MAX_ITEMS + 1))
    assert answer.status_code == 400 and answer.json["error"].startswith("density: more than")
    assert uploads(tmp_path) == [] and not list((tmp_path / "work").glob("*.mid"))


def test_a_primer_describing_hours_of_music_is_refused_in_one_line(client, model, tmp_path):
    from midi_factory import long_silence_file

    bomb = long_silence_file(tmp_path, minutes=600).read_bytes()  # 50 bytes, 10 hours
    answer = ask(client, model, bomb)
    assert answer.status_code == 400 and "\n" not in answer.json["error"]
    assert answer.json["error"].startswith("primer my tune.mid: 600.0 minutes of music, longer than the ceiling")
    assert uploads(tmp_path) == []


def test_an_uploaded_file_can_be_the_music_to_accompany(tmp_path_factory, tmp_path):
    from midi_factory import melody_with_chords_file

    band = str(write_checkpoint(tmp_path_factory.mktemp("band") / "mt.pt", "lstm", "multitrack"))
    tune = melody_with_chords_file(tmp_path_factory.mktemp("tune"), notes=8)
    client = page_client(create_app([band], tmp_path / "work", audio=False))
    answer = ask(client, band, tune.read_bytes(), upload="accompany", given_tracks="1", instruments="piano")
    [sample] = ended(client, answer)["samples"]
    written = read_score(tmp_path / "work" / sample["files"]["mid"], include_drums=True)
    given = read_score(tune).tracks[0]
    assert [(n.pitch, round(n.start, 4)) for n in written.tracks[0].notes] == [
        (n.pitch, round(n.start, 4)) for n in given.notes]  # the melody comes back as given
    assert [t.program for t in written.tracks[1:]] == [0] and sample["settings"]["upload"] == "accompany"
    refused = ask(client, band, None, upload="accompany", instruments="piano")
    assert refused.status_code == 400 and "choose the MIDI file to accompany" in refused.json["error"]
    assert ask(client, band, None, upload="sing").json["error"].startswith("upload: 'sing' is not one of")
    tempo = ask(client, band, tune.read_bytes(), upload="accompany", instruments="piano", tempo="90")
    assert tempo.status_code == 400 and "tempo: not with upload=accompany" in tempo.json["error"]
