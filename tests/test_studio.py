"""The studio page: its API through Flask's test client (fast), `melodygen studio` through
CliRunner, and the page in headless Chromium (slow): generate, hear, see, steer, a corrupt upload."""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("flask")

import melodygen  # noqa: E402
from browser import DevTools, needs_chromium  # noqa: E402
from conftest import default_sigint  # noqa: E402
from melodygen.checkpoint import make_checkpoint, save  # noqa: E402
from melodygen.cli import main  # noqa: E402
from melodygen.encodings import get_encoding  # noqa: E402
from melodygen.midi_io import read_score  # noqa: E402
from melodygen.models import build_model, settings_to_dict  # noqa: E402
from melodygen.stats.controls import describe_adherence  # noqa: E402
from melodygen.studio.app import create_app  # noqa: E402
from melodygen.studio.form import GenerationSettings, parse_settings  # noqa: E402
from melodygen.studio.serve import make_studio_server  # noqa: E402
from melodygen.studio.session import _settings_fields  # noqa: E402
from midi_factory import random_bytes_file, simple_file  # noqa: E402
from test_sample_cli import write_checkpoint  # noqa: E402

POLL_LIMIT_S = 120  # a bounded wait for background jobs, far above what they need
CONTROLS = ["key", "chord", "density"]
STEER = {"key": "D", "chords": "D G A7 D", "density": "6"}  # the form's text


def write_steered_checkpoint(path: Path) -> Path:
    """A tiny untrained LSTM over the multitrack encoding with every control (as in test_controls)."""
    torch.manual_seed(0)
    encoding = get_encoding("multitrack", controls=CONTROLS)
    model = build_model("lstm", {"embed_size": 16, "hidden_size": 24, "num_layers": 1}, encoding.vocab.size)
    return save(make_checkpoint(model_kind="lstm", model_settings=settings_to_dict(model.settings), model=model,
                                encoding=encoding, run_config={}, step=0, best_val_nll=None), path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    return {"melody": str(write_checkpoint(folder / "lstm.pt", "lstm", "melody")),
            "multitrack": str(write_checkpoint(folder / "band.pt", "transformer", "multitrack")),
            "steered": str(write_steered_checkpoint(folder / "steered.pt"))}


def page_client(app):
    """A test client of `app` that sends the launch token with each request, as the page does."""
    client = app.test_client()
    client.environ_base["HTTP_X_MELODYGEN_TOKEN"] = app.config["STUDIO_TOKEN"]
    return client


@pytest.fixture
def client(tmp_path, checkpoints):
    return page_client(create_app(list(checkpoints.values()), tmp_path / "work", audio=False))


def ended(client, answer) -> dict:
    """The job of a 202 answer once it has ended, well or not (polled, bounded)."""
    assert answer.status_code == 202, answer.json
    job = answer.json["job"]
    deadline = time.monotonic() + POLL_LIMIT_S
    while not job["finished"]:
        assert time.monotonic() < deadline, f"job still running after {POLL_LIMIT_S} s: {job}"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json["job"]
    return job


def finished(client, answer) -> dict:
    """The job of a 202 answer, once it has finished without an error."""
    job = ended(client, answer)
    assert job["error"] is None, job["error"]
    return job


def generate(client, model, **fields):
    return client.post("/api/generate", data={"model": model, "n": "2", "length": "2", "unit": "bars",
                                              "seed": "7", **fields})


def test_models_are_described_with_their_controls(client, checkpoints):
    models = {m["name"]: m for m in client.get("/api/models").json["models"]}
    assert models[checkpoints["melody"]] == {"name": checkpoints["melody"], "label": f"{Path(checkpoints['melody']).parent.name}/lstm.pt",
                                             "encoding": "melody", "kind": "lstm", "instruments": False,
                                             "controls": []}
    assert models[checkpoints["multitrack"]]["instruments"] is True and models[checkpoints["multitrack"]]["controls"] == []
    assert models[checkpoints["steered"]]["controls"] == CONTROLS


def test_the_control_fields_are_hidden_and_off_until_a_model_has_them(client):
    page = client.get("/").get_data(as_text=True)
    assert '<fieldset id="steering" hidden>' in page
    for control, name in (("key", "key"), ("chord", "chords"), ("density", "density")):
        # hidden and disabled (a disabled field is not sent); the page turns on the model's own
        assert re.search(rf'<label data-control="{control}" hidden>[^<]*(<span[^>]*>[^<]*</span>)?\s*'
                         rf'<input type="text" name="{name}" [^>]* disabled>', page), name


def test_generate_writes_each_sample_as_the_api_would_with_its_seed(client, checkpoints, tmp_path):
    job = finished(client, generate(client, checkpoints["melody"], tempo="120"))
    assert job["done"] == job["total"] == 2
    assert [s["seed"] for s in job["samples"]] == [7, 8]
    model = melodygen.load(checkpoints["melody"])
    for sample in job["samples"]:
        assert set(sample["files"]) == {"mid", "png"}  # audio=False
        for name in sample["files"].values():
            assert client.get(f"/files/{name}").status_code == 200
        [again] = model.generate(n=1, bars=2, seed=sample["seed"], tempo=120)
        written = read_score(tmp_path / "work" / sample["files"]["mid"])
        assert [n.pitch for n in written.tracks[0].notes] == [n.pitch for n in again.notes]
        assert sample["seconds"] == pytest.approx(4.0)  # 2 bars of 4/4 at 120
    assert (tmp_path / "work" / job["samples"][0]["files"]["png"]).read_bytes()[:4] == b"\x89PNG"


def test_downloads_are_attachments(client, checkpoints):
    sample = finished(client, generate(client, checkpoints["melody"], n="1"))["samples"][0]
    answer = client.get(f"/files/{sample['files']['mid']}?download=1")
    assert answer.status_code == 200 and "attachment" in answer.headers["Content-Disposition"]
    assert answer.data[:4] == b"MThd"


def test_regenerate_replaces_one_sample_with_a_new_seed_and_the_same_settings(client, checkpoints):
    old = finished(client, generate(client, checkpoints["melody"], n="1", length="3"))["samples"][0]
    job = finished(client, client.post(f"/api/samples/{old['id']}/regenerate"))
    [new] = job["samples"]
    assert job["replaces"] == old["id"] and new["id"] != old["id"]
    assert new["settings"]["length"] == 3 and new["settings"]["n"] == 1
    assert client.post("/api/samples/nope/regenerate").status_code == 400


def test_instruments_steer_a_multitrack_model_and_are_refused_for_a_melody_model(client, checkpoints):
    job = finished(client, generate(client, checkpoints["multitrack"], n="1", instruments="violin, piano"))
    assert job["samples"][0]["settings"]["instruments"] == [40, 0]
    answer = generate(client, checkpoints["melody"], instruments="violin")
    assert answer.status_code == 400 and "--instruments needs a multitrack model" in answer.json["error"]


def test_a_steered_job_s_pieces_carry_their_adherence_line(client, checkpoints, tmp_path):
    job = finished(client, generate(client, checkpoints["steered"], n="1", **STEER))
    [sample] = job["samples"]
    assert (sample["settings"]["key"], sample["settings"]["chords"], sample["settings"]["density"]) == (
        "D", ["D", "G", "A7", "D"], [6])
    [piece] = melodygen.load(checkpoints["steered"]).generate(n=1, bars=2, seed=7, key="D", chords="D G A7 D",
                                                             density=6)
    assert piece.adherence is not None and sample["adherence"] == describe_adherence(piece.adherence)
    assert "notes per bar within" in sample["adherence"] and "(asked D" in sample["adherence"]
    assert (tmp_path / "work" / sample["files"]["mid"]).with_suffix(".controls.json").is_file()
    plain = finished(client, generate(client, checkpoints["multitrack"], n="1"))["samples"][0]
    assert plain["adherence"] is None and plain["settings"]["chords"] is None


def test_regenerate_keeps_the_controls(client, checkpoints):
    old = finished(client, generate(client, checkpoints["steered"], n="1", key="Bm", chords="Bm, G", density="4,8"))
    new = finished(client, client.post(f"/api/samples/{old['samples'][0]['id']}/regenerate"))["samples"][0]
    assert {k: new["settings"][k] for k in ("key", "chords", "density")} == {
        "key": "Bm", "chords": ["Bm", "G"], "density": [4, 8]}
    assert new["seed"] != old["samples"][0]["seed"] and new["adherence"]


@pytest.mark.parametrize("fields, message", [
    ({"chords": "D H7"}, "chords: unknown chord 'H7': a root A-G"),
    ({"density": "0"}, "density 0: notes per bar must be 1.."),
    ({"density": "many"}, "density 'many': give whole numbers of notes per bar"),
    ({"key": "H"}, "key: unknown key 'H'"),
])
def test_a_bad_control_is_refused_in_one_line_before_the_job_starts(client, checkpoints, tmp_path, fields, message):
    answer = generate(client, checkpoints["steered"], **fields)
    assert answer.status_code == 400 and answer.json["error"].startswith(message), answer.json
    assert "\n" not in answer.json["error"] and not list((tmp_path / "work").glob("*.mid"))


def test_a_control_the_model_lacks_is_refused(client, checkpoints):
    answer = generate(client, checkpoints["multitrack"], chords="D")
    assert answer.status_code == 400 and "trained without the chord control" in answer.json["error"]


def test_favourites_persist_in_the_work_folder(tmp_path, checkpoints):
    work = tmp_path / "work"
    client = page_client(create_app([checkpoints["melody"]], work, audio=False))
    a, b = finished(client, generate(client, checkpoints["melody"]))["samples"]
    assert client.post(f"/api/samples/{a['id']}/keep", data={"keep": "1"}).status_code == 200
    kept = client.post(f"/api/samples/{b['id']}/keep", data={"keep": "1"}).json["favourites"]
    assert {s["id"] for s in kept} == {a["id"], b["id"]}
    assert client.post(f"/api/samples/{b['id']}/keep", data={"keep": "0"}).status_code == 200
    stored = json.loads((work / "favourites.json").read_text())["favourites"]
    assert [s["id"] for s in stored] == [a["id"]]

    again = create_app([checkpoints["melody"]], work, audio=False).test_client()  # a new session
    [back] = again.get("/api/favourites").json["favourites"]
    assert back["id"] == a["id"] and back["kept"] and again.get(f"/files/{a['files']['mid']}").status_code == 200


def test_a_damaged_favourites_file_is_one_line(tmp_path, checkpoints):
    (tmp_path / "favourites.json").write_text("{not json")
    with pytest.raises(melodygen.errors.OutputError, match="not a studio favourites file"):
        create_app([checkpoints["melody"]], tmp_path, audio=False)


@pytest.mark.parametrize("builder", [random_bytes_file, lambda folder: _text(folder)])
def test_a_corrupt_primer_is_a_message_naming_the_upload(client, checkpoints, tmp_path, builder):
    data = builder(tmp_path).read_bytes()
    answer = generate(client, checkpoints["melody"], primer=(io.BytesIO(data), "my tune.mid"))
    assert answer.status_code == 400
    message = answer.json["error"]
    assert message.startswith("primer my tune.mid: ") and "\n" not in message and "Traceback" not in message
    assert str(tmp_path) not in message  # not the studio's copy of the file
    assert not list((tmp_path / "work" / "uploads").iterdir())


def _text(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("this is not MIDI")
    return path


def test_a_primer_is_continued(client, checkpoints, tmp_path):
    primer = simple_file(tmp_path).read_bytes()
    job = finished(client, generate(client, checkpoints["melody"], n="1", primer=(io.BytesIO(primer), "p.mid")))
    written = read_score(tmp_path / "work" / job["samples"][0]["files"]["mid"])
    assert written.note_count() >= read_score(tmp_path / "simple.mid").note_count()


def test_an_upload_over_the_limit_is_a_message(tmp_path, checkpoints):
    client = page_client(create_app([checkpoints["melody"]], tmp_path / "work", audio=False, max_upload=1000))
    answer = generate(client, checkpoints["melody"], primer=(io.BytesIO(b"MThd" + bytes(5000)), "big.mid"))
    assert answer.status_code == 413 and "larger than" in answer.json["error"]


@pytest.mark.parametrize("fields, named", [
    ({"n": "0"}, "n: 0 is outside 1..8"), ({"n": "two"}, "n: 'two' is not a whole number"),
    ({"temperature": "0"}, "temperature: 0 is outside"), ({"temperature": "inf"}, "temperature: 'inf' is not a finite number"),
    ({"top_p": "1.5"}, "top_p: 1.5 is outside"), ({"length": "999", "unit": "bars"}, "length: 999 is outside 1..64"),
    ({"length": "2.5", "unit": "events"}, "length: '2.5' is not a whole number"), ({"unit": "hours"}, "unit: 'hours'"),
    ({"seed": "-1"}, "seed: -1 is outside"), ({"tempo": "1"}, "tempo: 1 is outside"),
    ({"instruments": "kazoo-ish"}, "instruments: unknown instrument 'kazoo-ish'"),
    ({"model": "other.pt"}, "model: 'other.pt' is not one of"),
])
def test_bad_fields_are_refused_naming_the_field(client, checkpoints, fields, named):
    answer = generate(client, **{"model": checkpoints["melody"], **fields})
    assert answer.status_code == 400 and named in answer.json["error"], answer.json


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(melodygen.errors.ConfigError) as caught:
        parse_settings({"model": "m", "n": "99", "temperature": "x", "seed": "1.5"}, ["m"])
    assert str(caught.value).count(";") == 2


def test_an_empty_seed_draws_one_and_empty_options_are_none():
    settings = parse_settings({"model": "m", "seed": "", "top_p": "", "tempo": "", "instruments": " ", "key": "",
                               "chords": " ", "density": ""}, ["m"])
    assert 0 <= settings.seed < 2**31 and settings.top_p is settings.tempo is settings.instruments is None
    assert settings.key is settings.chords is settings.density is None
    assert {"key": None, "chords": None, "density": None}.items() <= settings.generate_options(1).items()


def test_the_controls_round_trip_through_a_sample_s_recorded_settings():
    settings = parse_settings({"model": "m", "seed": "3", "key": "bm", "chords": "d, G  a7", "density": "6,12"}, ["m"])
    assert (settings.key, settings.chords, settings.density) == ("Bm", ("D", "G", "A7"), (6, 12))
    assert GenerationSettings(**_settings_fields(json.loads(json.dumps(settings.to_dict())))) == settings
    again = {"model": "m", "seed": "3", "key": settings.key, "chords": " ".join(settings.chords), "density": "6 12"}
    assert parse_settings(again, ["m"]) == settings  # the names read back as the same controls
    options = settings.generate_options(4)
    assert (options["key"], options["chords"], options["density"], options["seed"]) == ("Bm", ("D", "G", "A7"), (6, 12), 4)


@pytest.mark.parametrize("name", ["../lstm.pt", "..%2Flstm.pt", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd",
                                  "favourites.json", "uploads/x.mid", ".hidden.mid", "..\\x.mid", "nothing.mid"])
def test_files_are_served_only_by_plain_name_from_the_work_folder(client, tmp_path, name):
    (tmp_path / "lstm.pt").write_bytes(b"secret")
    (tmp_path / "work" / "uploads" / "x.mid").write_bytes(b"MThd")
    (tmp_path / "work" / ".hidden.mid").write_bytes(b"MThd")
    answer = client.get(f"/files/{name}", follow_redirects=True)
    assert answer.status_code == 404 and b"secret" not in answer.data


def test_only_trusted_host_names_are_answered(tmp_path, checkpoints):
    app = create_app([checkpoints["melody"]], tmp_path, audio=False, trusted_hosts=["127.0.0.1", "localhost"])
    client = app.test_client()
    assert client.get("/api/models", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    answer = client.get("/api/models", headers={"Host": "evil.example:8765"})
    assert answer.status_code == 400 and "error" in answer.json


def test_an_unexpected_error_is_one_line_without_a_traceback(client, monkeypatch):
    from melodygen.studio.session import Studio

    def broken(self):
        raise KeyError("boom")

    monkeypatch.setattr(Studio, "describe_models", broken)
    answer = client.get("/api/models")
    assert answer.status_code == 500 and answer.json == {
        "error": "unexpected error (KeyError); details in the studio's terminal"}


def test_a_failed_generation_is_the_job_s_message(client, checkpoints, monkeypatch):
    from melodygen.api import Model
    from melodygen.errors import RenderError

    def fails(self, **options):
        raise RenderError("FluidSynth failed: no voice")

    monkeypatch.setattr(Model, "generate", fails)
    job = generate(client, checkpoints["melody"]).json["job"]
    deadline = time.monotonic() + POLL_LIMIT_S
    while not job["finished"] and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json["job"]
    assert job["error"] == "FluidSynth failed: no voice" and job["samples"] == []


def test_a_job_reports_the_events_drawn_so_far_for_the_piece_being_made(client, checkpoints, monkeypatch):
    """Held at the 10th draw of each piece (a watcher of the decode loop, after the studio's own):
    the job has counted 10 events of the piece being made; at the end, the last piece's all."""
    from melodygen.api import Model
    from melodygen.sampling.loop import watching

    generate_piece, reached, release = Model.generate, threading.Event(), threading.Event()

    def held(self, **options):
        def hold(ids, draws=[0]):
            draws[0] += 1
            if draws[0] % 32 == 10:  # each piece is 32 draws (2 bars)
                reached.set()
                assert release.wait(POLL_LIMIT_S)
                release.clear()

        with watching(hold):
            return generate_piece(self, **options)

    monkeypatch.setattr(Model, "generate", held)
    answer = generate(client, checkpoints["melody"])
    try:
        for done in (0, 1):
            assert reached.wait(POLL_LIMIT_S)
            reached.clear()
            job = client.get(f"/api/jobs/{answer.json['job']['id']}").json["job"]
            assert (job["done"], job["events"], job["finished"]) == (done, 10, False)
            release.set()
    finally:
        release.set()
    job = finished(client, answer)
    assert job["done"] == 2 and job["events"] == 32


def test_the_page_names_its_controls(client):
    page = client.get("/").get_data(as_text=True)
    for control in ('name="model"', 'name="temperature"', 'name="top_p"', 'name="length"', 'name="seed"',
                    'name="instruments"', 'name="key"', 'name="chords"', 'name="density"', 'type="file"',
                    'id="generate"', 'id="favourites"'):
        assert control in page
    assert client.get("/static/studio.js").status_code == 200


# --- the command ---------------------------------------------------------------------------------

def studio(*args):
    return CliRunner().invoke(main, ["studio", *map(str, args)])


def test_a_missing_model_is_one_line(tmp_path):
    result = studio(tmp_path / "nope.pt")
    assert result.exit_code == 1 and "no such checkpoint file or bundled model" in result.output
    assert len(result.output.splitlines()) == 1


def test_no_models_at_all_is_one_line(monkeypatch):
    monkeypatch.setattr("melodygen.pretrained.bundled_models", lambda: [])
    result = studio()
    assert result.exit_code == 1 and "no models to offer" in result.output


def test_without_flask_the_command_says_how_to_install_it(monkeypatch, checkpoints):
    monkeypatch.setitem(__import__("sys").modules, "flask", None)
    monkeypatch.delitem(__import__("sys").modules, "melodygen.studio.app", raising=False)
    result = studio(checkpoints["melody"])
    assert result.exit_code == 1 and "pip install 'melodygen[studio]'" in result.output
    assert len(result.output.splitlines()) == 1


def test_a_port_in_use_is_one_line(checkpoints, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = studio(checkpoints["melody"], "--port", taken.getsockname()[1], "--out", tmp_path / "o",
                        "--no-browser")
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1:" in result.output and "--port" in result.output


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_only_an_explicit_other_host_is_used_and_warned_about(monkeypatch, checkpoints, host, warned):
    seen = {}
    monkeypatch.setattr("melodygen.studio.serve.serve", lambda models, **options: seen.update(options))
    result = studio(checkpoints["melody"], "--host", host)
    assert result.exit_code == 0 and seen["host"] == host
    assert ("exposes the studio" in result.output) == warned
    assert studio(checkpoints["melody"]).exit_code == 0 and seen["host"] == "127.0.0.1"


@pytest.mark.usefixtures("sigint_ignored")  # as under `&` or nohup: the child must still hear Ctrl-C
def test_the_command_serves_until_interrupted_and_removes_its_temporary_folder(checkpoints):
    import re
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    command = [sys.executable, "-m", "melodygen", "studio", checkpoints["melody"], "--port", "0", "--no-browser"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=default_sigint)
    try:
        line = process.stdout.readline()
        found = re.match(r"melodygen studio: (http://127\.0\.0\.1:\d+/) .*files in (\S+?), removed at exit", line)
        assert found, line
        token = re.match(r"melodygen studio: token for scripts: (\S+) \(send it as the X-Melodygen-Token header",
                         process.stdout.readline()).group(1)
        with urllib.request.urlopen(found.group(1) + "api/models", timeout=30) as answer:
            assert json.load(answer)["models"][0]["kind"] == "lstm"
        keep = urllib.request.Request(found.group(1) + "api/samples/nope/keep", data=b"keep=1",
                                      headers={"X-Melodygen-Token": token})
        with pytest.raises(urllib.error.HTTPError) as refused:  # a script with the printed token is heard
            urllib.request.urlopen(keep, timeout=30)
        assert refused.value.code == 400 and "no sample 'nope'" in json.load(refused.value)["error"]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert not Path(found.group(2)).exists()


# --- in a real browser ---------------------------------------------------------------------------

@contextlib.contextmanager
def served(app):
    """The URL of `app` served on a free loopback port in a thread, while in the block."""
    server = make_studio_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def running_studio(tmp_path, checkpoints):
    """(url, work folder) of a studio served on a free loopback port in a thread."""
    app = create_app([checkpoints["melody"]], tmp_path / "work", trusted_hosts=["127.0.0.1"])
    if app.extensions["melodygen_studio"].audio_problem:
        pytest.skip(app.extensions["melodygen_studio"].audio_problem)
    with served(app) as url:
        yield url, tmp_path / "work"


# The start of each script run in the page: `until` (poll a check, bounded by %(limit)d ms), and
# the model list loaded.
_PAGE_READY = """(async () => {
  const until = async (check, what) => {
    const deadline = Date.now() + %(limit)d;
    while (!check()) { if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
                       await new Promise(r => setTimeout(r, 50)); }
  };
  await until(() => document.querySelector("#model option"), "the models");
"""

# In the page: fill the form, press Generate, wait (bounded) for the cards, then report what the
# browser loaded: each picture's size, each <audio>'s source and duration, whether it plays, and
# the peak of the WAV as the browser decodes it.
_GENERATE = _PAGE_READY + """  const form = document.getElementById("controls");
  form.n.value = "2"; form.length.value = "2"; form.unit.value = "bars"; form.seed.value = "11"; form.tempo.value = "120";
  document.getElementById("generate").click();
  await until(() => document.querySelectorAll("#samples .card").length === 2 &&
                    !document.getElementById("generate").disabled, "two samples");
  const images = [...document.querySelectorAll("#samples img")];
  await until(() => images.every(i => i.complete), "the piano rolls");
  const audios = [...document.querySelectorAll("#samples audio")];
  await until(() => audios.every(a => a.readyState >= 1 || a.error), "the audio metadata");
  const first = audios[0];
  first.muted = true;
  await first.play();
  await until(() => first.currentTime > 0.1, "playback to start");
  first.pause();
  document.querySelector("#samples .card .keep").click();
  await until(() => document.querySelectorAll("#favourites .card").length === 1, "the favourite");
  const bytes = await (await fetch(first.src)).arrayBuffer();
  const decoded = await new OfflineAudioContext(2, 44100, 44100).decodeAudioData(bytes);
  const peak = Math.max(...[0, 1].map(c => decoded.getChannelData(c).reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
  return {images: images.map(i => i.naturalWidth),
          audio: audios.map(a => ({src: a.getAttribute("src"), duration: a.duration, error: a.error && a.error.code})),
          decoded: {seconds: decoded.duration, peak}, message: document.getElementById("message").hidden,
          shown: ["progress-box", "instruments-field", "steering"].map(id => document.getElementById(id).offsetParent !== null)};
})()"""

_CORRUPT_UPLOAD = """(async () => {
  const input = document.getElementById("primer");
  const files = new DataTransfer();
  files.items.add(new File([new Uint8Array([77, 84, 104, 100, 0, 0, 0, 6, 1])], "broken.mid", {type: "audio/midi"}));
  input.files = files.files;
  document.getElementById("generate").click();
  const message = document.getElementById("message"), deadline = Date.now() + %(limit)d;
  while (message.hidden) { if (Date.now() > deadline) throw new Error("no message shown");
                           await new Promise(r => setTimeout(r, 50)); }
  return {message: message.textContent, cards: document.querySelectorAll("#samples .card").length};
})()"""


def wav_facts(path: Path) -> tuple[float, int]:
    """(seconds, peak sample) of a 16-bit WAV file."""
    with wave.open(str(path)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        return wav.getnframes() / wav.getframerate(), int(np.abs(samples).max())


@pytest.mark.slow
@needs_chromium
def test_studio_in_headless_chromium_generates_plays_and_shows_a_corrupt_upload(tmp_path, running_studio):
    url, work = running_studio
    limit = {"limit": POLL_LIMIT_S * 1000}
    with DevTools(tmp_path, "--autoplay-policy=no-user-gesture-required") as browser:
        tab = browser.open(url)
        seen = browser.evaluate(tab, _GENERATE % limit, timeout=POLL_LIMIT_S + 30)
        browser.screenshot(tab, tmp_path / "studio.png")
        corrupt = browser.evaluate(tab, _CORRUPT_UPLOAD % limit, timeout=POLL_LIMIT_S + 30)
        browser.screenshot(tab, tmp_path / "studio-message.png")

    assert seen["message"] is True  # no error shown
    assert seen["shown"] == [False, False, False]  # progress gone once done; no instruments or controls for a melody model
    assert len(json.loads((work / "favourites.json").read_text())["favourites"]) == 1
    assert len(seen["images"]) == 2 and all(width > 0 for width in seen["images"])
    wavs = sorted(work.glob("*.wav"))
    assert len(wavs) == 2
    for audio in seen["audio"]:
        assert audio["error"] is None and audio["src"] in {f"/files/{w.name}" for w in wavs}, audio
        # 2 bars of 4/4 at 120 qpm: 4 s, plus the renderer's 1 s release tail
        assert audio["duration"] == pytest.approx(5.0, abs=0.05)
    for wav in wavs:
        seconds, peak = wav_facts(wav)
        assert seconds == pytest.approx(5.0, abs=0.01) and peak > 1000
    assert seen["decoded"]["seconds"] == pytest.approx(5.0, abs=0.05) and seen["decoded"]["peak"] > 0.03
    assert corrupt["message"].startswith("primer broken.mid: ") and corrupt["cards"] == 2
    assert (tmp_path / "studio.png").read_bytes()[:4] == b"\x89PNG"


# In the page: a model without controls hides the steering fields; one with them shows them; fill
# them, generate one piece, read its card's adherence line; then a bad chord is the message.
_STEER = _PAGE_READY + """  const form = document.getElementById("controls"), select = document.getElementById("model");
  const field = name => form.elements.namedItem(name);  // not elements["length"]: that is their count
  const shown = () => ["steering", "key", "chords", "density"].map(
    name => (document.getElementById(name) || field(name)).offsetParent !== null);
  const choose = name => { select.value = name; select.dispatchEvent(new Event("change")); };
  choose(%(plain)s);
  const plain = {shown: shown(), sent: [...new FormData(form).keys()]};
  choose(%(steered)s);
  const steered = shown();
  field("n").value = "1"; field("length").value = "2"; field("unit").value = "bars"; field("seed").value = "5";
  field("key").value = "D"; field("chords").value = "D G A7 D"; field("density").value = "6";
  document.getElementById("generate").click();
  await until(() => document.querySelector("#samples .card") && !document.getElementById("generate").disabled,
              "the steered sample");
  const line = document.querySelector("#samples .card .adherence");
  const message = document.getElementById("message");
  const ok = message.hidden;
  field("chords").value = "D H7";
  document.getElementById("generate").click();
  await until(() => !message.hidden, "the message");
  return {plain, steered, ok, adherence: line && line.textContent, info: document.getElementById("model-info").textContent,
          message: message.textContent, cards: document.querySelectorAll("#samples .card").length};
})()"""


@pytest.mark.slow
@needs_chromium
def test_studio_in_headless_chromium_steers_and_shows_the_adherence(tmp_path, checkpoints):
    plain, steered = checkpoints["melody"], checkpoints["steered"]
    app = create_app([plain, steered], tmp_path / "work", audio=False, trusted_hosts=["127.0.0.1"])
    with served(app) as url, DevTools(tmp_path) as browser:
        tab = browser.open(url)
        seen = browser.evaluate(tab, _STEER % {"limit": POLL_LIMIT_S * 1000, "plain": json.dumps(plain),
                                               "steered": json.dumps(steered)}, timeout=POLL_LIMIT_S + 30)
        browser.screenshot(tab, tmp_path / "studio-steered.png")

    assert seen["plain"]["shown"] == [False, False, False, False]
    assert not {"key", "chords", "density"} & set(seen["plain"]["sent"])  # hidden fields are not sent
    assert seen["steered"] == [True, True, True, True] and "can be steered by key, chord, density" in seen["info"]
    assert seen["ok"], seen["message"]
    [piece] = melodygen.load(steered).generate(n=1, bars=2, seed=5, key="D", chords="D G A7 D", density=6)
    assert seen["adherence"] == "Key D · chords D G A7 D · 6 notes per bar: " + describe_adherence(piece.adherence)
    assert seen["message"].startswith("chords: unknown chord 'H7'") and seen["cards"] == 1
