"""The studio against other web pages and odd requests: only its own page (or a script with the
launch token) may change anything, and only regular files inside the work folder are served."""

from __future__ import annotations

import http.server
import io
import logging
import re
import threading

import pytest

pytest.importorskip("flask")

from browser import DevTools, needs_chromium  # noqa: E402
from flask import request  # noqa: E402
from melodygen.studio.app import create_app  # noqa: E402
from melodygen.studio.session import Studio  # noqa: E402
from test_sample_cli import write_checkpoint  # noqa: E402
from test_studio import POLL_LIMIT_S, page_client, served  # noqa: E402

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(write_checkpoint(tmp_path_factory.mktemp("models") / "lstm.pt", "lstm", "melody"))


@pytest.fixture
def app(tmp_path, model):
    return create_app([model], tmp_path / "work", audio=False)


@pytest.fixture
def started(monkeypatch) -> list:
    """The settings of each job the studio starts (it still starts them)."""
    calls, start = [], Studio.start

    def recorded(self, settings, *args, **options):
        calls.append(settings)
        return start(self, settings, *args, **options)

    monkeypatch.setattr(Studio, "start", recorded)
    return calls


def form(model: str, multipart: bool = False) -> dict:
    """A small generation request; `multipart`: with an (empty) file field, as the page sends it."""
    fields = {"model": model, "n": "1", "length": "1"}
    return {**fields, "primer": (io.BytesIO(b""), "")} if multipart else fields


@pytest.mark.parametrize("headers, multipart", [
    ({"Origin": EVIL}, False), ({"Origin": EVIL}, True), ({"Origin": "null"}, False),
    ({"Origin": "http://localhost:9999"}, False),  # another port is another origin
    ({"Sec-Fetch-Site": "cross-site"}, True), ({"Sec-Fetch-Site": "same-site"}, False),
])
def test_a_post_from_another_site_is_refused_even_with_the_token(app, model, started, headers, multipart):
    answer = page_client(app).post("/api/generate", data=form(model, multipart), headers=headers)
    assert answer.status_code == 403 and answer.json["error"].startswith("refused: a request from another")
    assert "\n" not in answer.json["error"] and started == []


@pytest.mark.parametrize("route", ["/api/generate", "/api/samples/x/regenerate", "/api/samples/x/keep"])
@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_a_post_without_the_launch_token_is_refused(app, model, started, route, token):
    headers = {} if token is None else {"X-Melodygen-Token": token}
    answer = app.test_client().post(route, data=form(model), headers=headers)
    assert answer.status_code == 403 and "X-Melodygen-Token" in answer.json["error"] and started == []
    assert app.test_client().get("/api/favourites").status_code == 200  # reading needs no token


def test_the_page_and_a_script_with_its_token_are_heard(app, model, started, tmp_path):
    page = app.test_client().get("/").get_data(as_text=True)
    token = re.search(r'<meta name="melodygen-token" content="([^"]+)">', page).group(1)
    another_launch = create_app([model], tmp_path / "other", audio=False)
    assert token == app.config["STUDIO_TOKEN"] != another_launch.config["STUDIO_TOKEN"]
    as_page = {"X-Melodygen-Token": token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    for headers in (as_page, {"X-Melodygen-Token": token}):  # a script sends no Origin
        answer = app.test_client().post("/api/generate", data=form(model, True), headers=headers)
        assert answer.status_code == 202, answer.json
    assert len(started) == 2
    assert "X-Melodygen-Token" in app.test_client().get("/static/studio.js").get_data(as_text=True)


# --- files ---------------------------------------------------------------------------------------

def test_a_link_out_of_the_work_folder_is_not_served(app, tmp_path):
    work = app.extensions["melodygen_studio"].workdir
    (tmp_path / "secret.mid").write_bytes(b"secret")
    (work / "out.mid").symlink_to(tmp_path / "secret.mid")
    (work / "passwd.mid").symlink_to("/etc/passwd")
    (work / "loop.mid").symlink_to(work / "loop.mid")
    (work / "folder.mid").mkdir()
    (work / "real.mid").write_bytes(b"MThd")
    client = app.test_client()
    for name in ("out.mid", "passwd.mid", "loop.mid", "folder.mid"):
        answer = client.get(f"/files/{name}")
        assert answer.status_code == 404 and answer.json == {"error": f"no such file: {name!r}"}, name
    assert client.get("/files/real.mid").data == b"MThd"


@pytest.mark.parametrize("name", ["a" * 5000 + ".mid", "x%00.mid", "%0A.mid"])
def test_an_impossible_file_name_is_a_one_line_404_without_a_traceback(app, caplog, name):
    with caplog.at_level(logging.ERROR):
        answer = app.test_client().get(f"/files/{name}")
    assert answer.status_code == 404 and "\n" not in answer.json["error"] and len(answer.json["error"]) < 120
    assert not caplog.records


# --- in a real browser ---------------------------------------------------------------------------

_ATTACK = """<!doctype html><iframe name="a"></iframe><iframe name="b"></iframe>
<form id="multipart" method="post" action="%(url)sapi/generate" target="a" enctype="multipart/form-data">
%(fields)s</form>
<form id="plain" method="post" action="%(url)sapi/generate" target="b">%(fields)s</form>
<script>
const loaded = name => new Promise(done => document.querySelector(`iframe[name=${name}]`).onload = done);
window.attack = Promise.all([loaded("a"), loaded("b"),
  fetch("%(url)sapi/generate", {method: "POST", mode: "no-cors", body: new FormData(document.getElementById("plain"))})
    .then(() => "sent", e => String(e))]);
document.getElementById("multipart").submit(); document.getElementById("plain").submit();
</script>"""


class _OnePage(http.server.BaseHTTPRequestHandler):
    """Serves `page` (set on a subclass) at every path: another site's page, for the browser."""

    page = ""

    def do_GET(self):
        body = self.page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.mark.slow
@needs_chromium
def test_another_site_s_page_in_chromium_cannot_start_a_job(tmp_path, app, model, started):
    answered = []
    app.after_request(lambda response: answered.append((request.path, response.status_code)) or response)
    with served(app) as url:
        fields = "".join(f'<input name="{k}" value="{v}">' for k, v in form(model).items())
        handler = type("Attack", (_OnePage,), {"page": _ATTACK % {"url": url, "fields": fields}})
        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            with DevTools(tmp_path) as browser:  # localhost and 127.0.0.1 are different sites
                tab = browser.open(f"http://localhost:{evil.server_address[1]}/")
                seen = browser.evaluate(tab, """(async () => {
                  while (!window.attack) await new Promise(r => setTimeout(r, 50));
                  return await window.attack; })()""", timeout=POLL_LIMIT_S)
        finally:
            evil.shutdown()
            evil.server_close()
    assert seen[2] == "sent" and answered == [("/api/generate", 403)] * 3  # all three reached the studio
    assert started == []


def test_no_other_site_may_frame_the_studio(app):
    for path in ("/", "/api/models", "/files/nothing.mid"):
        answer = app.test_client().get(path)
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path
