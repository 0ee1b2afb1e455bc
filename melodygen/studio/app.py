"""The studio's web side: a Flask app over a `Studio` (routes, uploads, messages).

Every answer of the JSON API is either data or `{"error": "<one line>"}` with a 4xx/5xx status:
a `MelodygenError` (bad field, corrupt primer, a model that cannot load) is a 400 with its
message, an upload over the size limit a 413, an unexpected exception a 500 whose line says the
details are in the terminal (the traceback goes to the log, never to the page). Files are served
only from the work folder, by plain name (`Studio.served_file`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from melodygen.errors import MelodygenError
from melodygen.studio.form import LENGTH_LIMITS, MAX_PIECES, parse_settings
from melodygen.studio.session import UPLOADS, Studio

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


def create_app(models: list[str], workdir: str | os.PathLike, *, audio: bool = True,
               max_upload: int = MAX_UPLOAD_BYTES, trusted_hosts: list[str] | None = None) -> Flask:
    """The studio page and its API for `models` (bundled names or checkpoint paths), writing
    into `workdir`. `audio=False` skips WAV rendering (and FluidSynth). `trusted_hosts`: the
    only Host names answered (a web page that rebinds its own name to 127.0.0.1 gets a 400)."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=max_upload, MAX_FORM_MEMORY_SIZE=max_upload, TRUSTED_HOSTS=trusted_hosts)
    studio = Studio(models, Path(workdir), audio=audio)
    app.extensions["melodygen_studio"] = studio
    _add_pages(app, studio, max_upload)
    _add_api(app, studio)
    _add_error_handlers(app, max_upload)
    return app


def _add_pages(app: Flask, studio: Studio, max_upload: int) -> None:
    @app.get("/")
    def page():
        return render_template("index.html", max_upload=max_upload, max_pieces=MAX_PIECES,
                               limits=LENGTH_LIMITS, audio_problem=studio.audio_problem)

    @app.get("/files/<path:name>")
    def files(name: str):
        path = studio.served_file(name)
        if path is None:
            return _error(f"no such file: {name}", 404)
        return send_file(path, as_attachment=request.args.get("download") == "1", max_age=0)


def _add_api(app: Flask, studio: Studio) -> None:
    @app.get("/api/models")
    def models():
        return jsonify(models=studio.describe_models(), audio_problem=studio.audio_problem)

    @app.post("/api/generate")
    def generate():
        settings = parse_settings(request.form, studio.models)
        upload = request.files.get("primer")
        if upload is None or not upload.filename:
            return jsonify(job=studio.start(settings).to_dict()), 202
        primer = studio.workdir / UPLOADS / f"{uuid.uuid4().hex[:12]}.mid"
        upload.save(primer)
        try:
            job = studio.start(settings, primer)
        except MelodygenError as exc:  # name the file as the user knows it, not our copy
            primer.unlink(missing_ok=True)
            raise type(exc)(str(exc).replace(str(primer), f"primer {upload.filename}")) from None
        return jsonify(job=job.to_dict()), 202

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


def _add_error_handlers(app: Flask, max_upload: int) -> None:
    @app.errorhandler(MelodygenError)
    def bad_request(exc: MelodygenError):
        return _error(str(exc), 400)

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
