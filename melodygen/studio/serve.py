"""Running the studio: which models, the work folder, the HTTP server (Werkzeug's, under Flask).

`serve` is what `melodygen studio` calls: it checks the models and Flask are there before
anything starts, binds the address (a port in use is one line), prints the URL and the token
scripts send with each POST (a second line, so the first stays the URL line) and serves until
Ctrl-C, then removes a temporary work folder.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from melodygen.atomic import scratch_folder
from melodygen.errors import CheckpointError, MelodygenError, OutputError


class StudioSetupError(MelodygenError):
    """The studio cannot start: Flask missing, no models, the port taken."""


LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]
INSTALL_HINT = "the studio needs Flask: pip install 'melodygen[studio]' (or pip install 'flask>=3')"


def studio_models(given: Sequence[str]) -> list[str]:
    """The models the studio offers: those given (each a checkpoint file or a bundled name,
    checked now), else every bundled model; `CheckpointError` when there are none."""
    from melodygen.checkpoint import resolve_checkpoint
    from melodygen.pretrained import bundled_models

    for name in given:
        resolve_checkpoint(name)
    models = list(dict.fromkeys(given)) or [m.name for m in bundled_models()]
    if not models:
        raise CheckpointError("no models to offer: no bundled model is installed; pass checkpoint files, "
                              "e.g. melodygen studio runs/melody_lstm/best.pt")
    return models


def serve(models: list[str], *, host: str = "127.0.0.1", port: int = 8765, out_dir: str | None = None,
          open_browser: bool = False, audio: bool = True, echo: Callable[[str], None] = print) -> None:
    """Serve the studio for `models` on host:port until interrupted."""
    try:
        from melodygen.studio.app import TOKEN_HEADER, create_app
    except ImportError:
        raise StudioSetupError(INSTALL_HINT) from None
    # A temporary work folder is named after this process, so the next studio removes one a
    # kill -9 left behind (`scratch_folder`).
    with (_output_folder(Path(out_dir)) if out_dir else scratch_folder("studio")) as workdir:
        main_thread = threading.current_thread() is threading.main_thread()
        before = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # `kill` stops it as Ctrl-C does
        try:
            trusted = LOOPBACK_NAMES if host in LOOPBACK_NAMES else None  # DNS rebinding finds no page
            app = create_app(models, workdir, audio=audio, trusted_hosts=trusted)
            server = make_studio_server(app, host, port)
            url = f"http://{'[' + host + ']' if ':' in host else host}:{server.port}/"
            echo(f"melodygen studio: {url}  ({len(models)} model{'s' * (len(models) != 1)}; files in {workdir}"
                 f"{'' if out_dir else ', removed at exit: pass --out DIR to keep them'}); Ctrl-C stops it")
            echo(f"melodygen studio: token for scripts: {app.config['STUDIO_TOKEN']} (send it as the "
                 f"{TOKEN_HEADER} header with every POST)")
            if open_browser and _has_desktop():
                threading.Timer(0.5, webbrowser.open, args=(url,)).start()
            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request (the page polls)
            server.serve_forever()  # until Ctrl-C
            echo("melodygen studio: stopped")
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, before)


@contextmanager
def _output_folder(folder: Path) -> Iterator[Path]:
    """The user's `--out` folder, created if need be and kept."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    yield folder


def make_studio_server(app, host: str, port: int):
    """Werkzeug's threaded server for `app` on a socket bound here, so that a taken port or a bad
    address is our one line (Werkzeug's own bind prints two and exits); `.port` is the port."""
    from werkzeug.serving import make_server, select_address_family

    try:
        sock = socket.create_server((host, port), family=select_address_family(host, port))
    except OSError as exc:
        raise StudioSetupError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another "
                               "--port (0 picks a free one)") from None
    with sock:  # the server works on its own duplicate of the socket
        return make_server(host, sock.getsockname()[1], app, threaded=True, fd=sock.fileno())


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _has_desktop() -> bool:
    """Whether a browser can open a window here (not a console browser taking the terminal)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
