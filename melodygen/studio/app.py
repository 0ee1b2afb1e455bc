"""The studio's web side: a Flask app over a `Studio` (routes, uploads, messages).

Every answer of the JSON API is either data or `{"error": "<one line>"}` with a 4xx/5xx status:
a `MelodygenError` (bad field, corrupt primer, a model that cannot load) is a 400 with its
message, a refused request a 403, an upload over the size limit a 413, a full job queue a 503,
an unexpected exception a 500 whose line says the details are in the terminal (the traceback
goes to the log, never to the page). Files are served only from the work folder, by plain name
(`Studio.served_file`).

Any web page the user visits can make the browser send a POST here (a form, or `fetch` in
no-cors mode), so a request that changes state must show it comes from the studio's own page:
no `Origin` of another origin, no `Sec-Fetch-Site` of another site, and the per-launch token of
`TOKEN_HEADER`, which the page carries in a meta tag (another site cannot read the page, and a
custom header is beyond what a cross-site form can send). Reading (GET) needs no token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from melodygen.errors import MelodygenError
from melodygen.studio.form import LENGTH_LIMITS, MAX_PIECES, parse_settings
from melodygen.studio.session import Studio, StudioBusyError, Upload

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
TOKEN_HEADER = "X-Melodygen-Token"
READING_METHODS = ("GET", "HEAD", "OPTIONS")  # need no token; every other method changes state


def _not_framed(response):
    """No other site may show the studio in a frame (where a user could be led to click its
    buttons unseen: clickjacking); the token guards requests, this guards clicks."""
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def create_app(models: list[str], workdir: str | os.PathLike, *, audio: bool = True,
               max_upload: int = MAX_UPLOAD_BYTES, trusted_hosts: list[str] | None = None,
               token: str | None = None) -> Flask:
    """The studio page and its API for `models` (bundled names or checkpoint paths), writing
    into `workdir`. `audio=False` skips WAV rendering (and FluidSynth). `trusted_hosts`: the
    only Host names answered (a web page that rebinds its own name to 127.0.0.1 gets a 400).
    `token`: what every POST must carry in `TOKEN_HEADER` (default: a new random one, in
    `app.config["STUDIO_TOKEN"]`)."""
    app = Flask(__name__)
    token = token or secrets.token_urlsafe(24)
    app.config.update(MAX_CONTENT_LENGTH=max_upload, MAX_FORM_MEMORY_SIZE=max_upload, TRUSTED_HOSTS=trusted_hosts,
                      STUDIO_TOKEN=token)
    studio = Studio(models, Path(workdir), audio=audio)
    app.extensions["melodygen_studio"] = studio
    app.before_request(lambda: _refusal(token))
    app.after_request(_not_framed)
    _add_pages(app, studio, max_upload)
    _add_api(app, studio)
    _add_error_handlers(app, max_upload)
    return app


def _add_pages(app: Flask, studio: Studio, max_upload: int) -> None:
    @app.get("/")
    def page():
        return render_template("index.html", max_upload=max_upload, max_pieces=MAX_PIECES,
                               limits=LENGTH_LIMITS, audio_problem=studio.audio_problem,
                               token=app.config["STUDIO_TOKEN"])

    @app.get("/files/<path:name>")
    def files(name: str):
        path = studio.served_file(name)
        if path is None:
            return _error(f"no such file: {_shown(name)}", 404)
        return send_file(path, as_attachment=request.args.get("download") == "1", max_age=0)


def _add_api(app: Flask, studio: Studio) -> None:
    @app.get("/api/models")
    def models():
        return jsonify(models=studio.describe_models(), audio_problem=studio.audio_problem)

    @app.post("/api/generate")
    def generate():
        settings = parse_settings(request.form, studio.models)
        upload = request.files.get("primer")
        primer = None
        if upload and upload.filename:  # its name goes into one-line messages: one short line
            primer = Upload(" ".join(upload.filename.split())[:100], upload.read())
        return jsonify(job=studio.start(settings, primer).to_dict()), 202

    @app.get("/api/jobs/<job_id>")
    def job(job_id: str):
        return jsonify(job=studio.job(job_id).to_dict())

    @app.post("/api/samples/<sample_id>/regenerate")
    def regenerate(sample_id: str):
        return jsonify(job=studio.regenerate(sample_id).to_dict()), 202

    @app.post("/api/samples/<sample_id>/keep")
    def keep(sample_id: str):
        kept = request.form.get("keep", "1") not in ("0", "false", "")
        studio.keep(sample_id, kept)
        return jsonify(favourites=[vars(s) for s in studio.favourites()])

    @app.get("/api/favourites")
    def favourites():
        return jsonify(favourites=[vars(s) for s in studio.favourites()])


def _refusal(token: str):
    """A 403 for a state-changing request that may come from another site's page or lacks the
    token; None (go on) otherwise. A script sends no Origin: the token alone vouches for it."""
    if request.method in READING_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        return _error(f"refused: a request from another origin ({_shown(origin)}); use the studio's own page", 403)
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        return _error("refused: a request from another site; use the studio's own page", 403)
    if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, "").encode(), token.encode()):
        return _error(f"refused: no valid {TOKEN_HEADER} header (the token `melodygen studio` prints at launch, "
                      "also in the page's <meta name=\"melodygen-token\">)", 403)
    return None


def _add_error_handlers(app: Flask, max_upload: int) -> None:
    @app.errorhandler(MelodygenError)
    def bad_request(exc: MelodygenError):
        return _error(str(exc), 400)

    @app.errorhandler(StudioBusyError)
    def busy(exc: StudioBusyError):
        return _error(str(exc), 503)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return _error(f"the upload is larger than {max_upload / 1024 / 1024:g} MB; choose a smaller MIDI file", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return _error(f"{exc.code} {exc.name}: {exc.description}", exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error in the studio")
        return _error(f"unexpected error ({type(exc).__name__}); details in the studio's terminal", 500)


def _error(message: str, status: int):
    return jsonify(error=message), status


def _shown(text: str, limit: int = 80) -> str:
    """`text` for a one-line message: quoted (a newline shows as \\n) and cut to `limit` characters."""
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
