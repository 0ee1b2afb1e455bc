"""The studio's state, without the web: models, generation jobs, samples and favourites.

`Studio` owns one work folder. Each sample is `<stem>.mid`, `.png` and (with FluidSynth)
`.wav` there, made through `melodygen.load(...).generate` and `Piece`; favourites are kept in
`favourites.json` there, so a studio started again on the same `--out` folder has them back.
A request is checked (form, model, primer, length) before its job is queued, so a bad one is a
message at once. One worker thread runs the jobs in turn (they share the CPU), drawing a job's
pieces one at a time, which is what the page's progress counts; at most `MAX_WAITING` jobs wait
behind it and a request beyond that is refused (`StudioBusyError`), so a burst of requests
cannot pile up threads or work. Sample `i` of a request is drawn with seed `seed + i`:
`melodygen sample MODEL -n 1 --seed S` makes it again. An uploaded primer is a file in
`uploads/` only while its request is checked and its job runs; its bytes stay in memory (the
last `KEPT_UPLOADS`) so that regenerating a primed sample can continue it again.
A steered sample (key, chords, notes per bar) also has `NAME.controls.json` there and carries
its adherence line (`describe_adherence`) for the page.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import stat
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from melodygen.atomic import atomic_write
from melodygen.errors import ConfigError, MelodygenError, OutputError
from melodygen.sampling.request import random_seed
from melodygen.studio.form import GenerationSettings

FAVOURITES = "favourites.json"
UPLOADS = "uploads"
SERVED_SUFFIXES = (".mid", ".wav", ".png")
MAX_WAITING = 4  # jobs that may wait behind the running one
KEPT_UPLOADS = 8  # primers held (at most 8 x the upload limit) for regenerating primed samples
MAX_NAME = 255  # a longer file name exists nowhere (most file systems' limit)


class StudioBusyError(MelodygenError):
    """A generation request while `MAX_WAITING` jobs already wait: try again later."""


@dataclass(frozen=True)
class Upload:
    """An uploaded primer MIDI: its name on the user's machine (what messages call it) and bytes."""

    name: str
    data: bytes
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class Sample:
    """One generated piece as the page shows it; `files` maps "mid"/"wav"/"png" to file names
    in the work folder ("wav" absent without audio)."""

    id: str
    model: str
    seed: int
    settings: dict
    files: dict[str, str]
    seconds: float
    notes: int
    shortfall: str | None = None
    kept: bool = False
    adherence: str | None = None  # how a steered piece obeys its controls, one line


@dataclass
class Job:
    """A generation in progress: `done` of `total` pieces made so far, `events` drawn so far
    for the piece being made; `error` a message."""

    id: str
    total: int
    replaces: str | None = None  # the sample a regeneration replaces
    done: int = 0
    events: int = 0
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    finished: bool = False

    def to_dict(self) -> dict:
        return {"id": self.id, "total": self.total, "done": self.done, "events": self.events, "replaces": self.replaces,
                "samples": [asdict(s) for s in self.samples], "error": self.error, "finished": self.finished}


class Studio:
    """Models by name (loaded once, on first use), jobs by id, samples by id, favourites."""

    def __init__(self, models: list[str], workdir: Path, *, audio: bool = True) -> None:
        self.models = list(models)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / UPLOADS).mkdir(exist_ok=True)
        self.audio_problem = _audio_problem() if audio else "audio is off"
        self._loaded: dict[str, object] = {}
        self._jobs: dict[str, Job] = {}
        self._samples: dict[str, Sample] = {s.id: s for s in self._read_favourites()}
        self._uploads: OrderedDict[str, Upload] = OrderedDict()  # by id, oldest first
        self._root = self.workdir.resolve()  # what a served file's real folder must be
        self._lock = threading.Lock()  # guards the dicts, the worker and favourites.json
        self._loading = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_WAITING)
        self._worker: threading.Thread | None = None  # started with the first job

    # --- models --------------------------------------------------------------------------------
    def model(self, name: str):
        """The loaded `melodygen.Model` called `name` (a name this studio was started with)."""
        if name not in self.models:
            raise ConfigError(f"model: {name!r} is not one of this studio's models")
        with self._loading:
            if name not in self._loaded:
                from melodygen.api import load

                self._loaded[name] = load(name)
        return self._loaded[name]

    def describe_models(self) -> list[dict]:
        """Name, encoding, kind and controls of each model; one that fails to load says why."""
        described = []
        for name in self.models:
            try:
                model = self.model(name)
            except MelodygenError as exc:
                described.append({"name": name, "label": model_label(name), "error": str(exc)})
                continue
            described.append({"name": name, "label": model_label(name), "encoding": model.encoding.name,
                              "kind": model.checkpoint["model"]["kind"],
                              "instruments": bool(model.encoding.keeps_instruments),
                              "controls": list(getattr(model.encoding.settings, "controls", ()))
                              + (["form"] if model.encoding.refers_back else [])})
        return described

    # --- jobs ------------------------------------------------------------------------------------
    def start(self, settings: GenerationSettings, primer: Upload | None = None, *,
              replaces: str | None = None) -> Job:
        """Check the request (model loads, primer reads, length fits the encoding), then queue
        it; the returned job's fields fill in as pieces are made. `StudioBusyError` when
        `MAX_WAITING` jobs already wait. The primer's file is removed when the job ends, or at
        once when the request is refused."""
        from melodygen.sampling.files import for_model, plan_generation
        from melodygen.sampling.request import GenerationRequest

        model = self.model(settings.model)
        if settings.upload == "accompany" and primer is None:
            raise ConfigError("upload: choose the MIDI file to accompany")
        path = self._primer_file(primer)
        try:
            request = GenerationRequest.build(**settings.generate_options(settings.seed, path))
            # a bad request: its one-line reason, before the job is queued
            for_model(model.model, request, plan_generation(model.encoding, request,
                                                            instruments_seen=model.checkpoint.get("instruments")))
            job = Job(uuid.uuid4().hex[:12], settings.n, replaces)
            self._queue_job(job, model, settings, primer, path)
        except BaseException as exc:
            if path is not None:
                path.unlink(missing_ok=True)
                if isinstance(exc, MelodygenError):
                    raise type(exc)(_primer_named(exc, path, primer)) from None
            raise
        return job

    def regenerate(self, sample_id: str) -> Job:
        """A new piece with a new seed and the same settings (and primer), to replace sample
        `sample_id`."""
        old = self.sample(sample_id)
        settings = replace(GenerationSettings(**_settings_fields(old.settings)), n=1, seed=random_seed())
        return self.start(settings, self._held_primer(old), replaces=sample_id)

    def job(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise ConfigError(f"no generation job {job_id!r}")
            return self._jobs[job_id]

    def sample(self, sample_id: str) -> Sample:
        with self._lock:
            if sample_id not in self._samples:
                raise ConfigError(f"no sample {sample_id!r} (samples last while the studio runs; kept ones longer)")
            return self._samples[sample_id]

    def _primer_file(self, primer: Upload | None) -> Path | None:
        """A file of the primer's bytes in `uploads/` (our name, not the user's), or None."""
        if primer is None:
            return None
        path = self.workdir / UPLOADS / f"{uuid.uuid4().hex[:12]}.mid"
        path.write_bytes(primer.data)
        return path

    def _held_primer(self, sample: Sample) -> Upload | None:
        """The upload `sample` continued (None: it had no primer); `ConfigError` when it is no
        longer held (an older upload, or a favourite from an earlier run)."""
        # "primer_path": how a studio before uploads were held recorded it in favourites.json
        name = sample.settings.get("primer") or sample.settings.get("primer_path")
        if not name:
            return None
        with self._lock:
            upload = self._uploads.get(sample.settings.get("primer_id"))
        if upload is None:
            raise ConfigError(f"sample {sample.id} continued the primer {Path(name).name}, which the studio "
                              f"no longer holds (it keeps the last {KEPT_UPLOADS} uploads while it runs); "
                              "generate again with that primer")
        return upload

    def _queue_job(self, job: Job, model, settings: GenerationSettings, primer: Upload | None,
                   path: Path | None) -> None:
        with self._lock:
            try:
                self._queue.put_nowait((job, model, settings, primer, path))
            except queue.Full:
                raise StudioBusyError(f"the studio is busy: {MAX_WAITING} generations are waiting behind the "
                                      "one running; try again when one finishes") from None
            self._jobs[job.id] = job
            if primer is not None:  # held for regeneration: the newest last, the oldest let go
                self._uploads[primer.id] = primer
                self._uploads.move_to_end(primer.id)
                while len(self._uploads) > KEPT_UPLOADS:
                    self._uploads.popitem(last=False)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="melodygen-studio-jobs", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        """The worker thread: run the queued jobs in turn, for as long as the studio runs."""
        while True:
            self._run(*self._queue.get())

    def _run(self, job: Job, model, settings: GenerationSettings, primer: Upload | None,
             path: Path | None) -> None:
        from melodygen.sampling.loop import watching  # torch: not at import

        try:
            for i in range(settings.n):
                job.events = 0
                with watching(_event_counter(job)):  # the page's progress per event
                    sample = self._make_sample(model, settings, settings.seed + i, primer, path)
                with self._lock:
                    self._samples[sample.id] = sample
                    job.samples.append(sample)
                    job.done += 1
        except MelodygenError as exc:
            job.error = _primer_named(exc, path, primer)
        except Exception as exc:  # a bug: the page gets one line, the terminal the traceback
            job.error = f"unexpected error ({type(exc).__name__}: {exc}); details in the studio's terminal"
            logging.getLogger(__name__).exception("generation job %s failed", job.id)  # the worker goes on
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
            job.finished = True

    def _make_sample(self, model, settings: GenerationSettings, seed: int, primer: Upload | None,
                     path: Path | None) -> Sample:
        [piece] = model.generate(**settings.generate_options(seed, path))
        label = model_label(settings.model)
        stem = f"{re.sub(r'[^A-Za-z0-9_-]+', '-', label).strip('-') or 'model'}_seed{seed}_{uuid.uuid4().hex[:6]}"
        piece.save(self.workdir / f"{stem}.mid")
        piece.piano_roll(self.workdir / f"{stem}.png", name=f"{label}, seed {seed}")
        files = {"mid": f"{stem}.mid", "png": f"{stem}.png"}
        if self.audio_problem is None and piece.notes:
            piece.render_wav(self.workdir / f"{stem}.wav")
            files["wav"] = f"{stem}.wav"
        recorded = {**settings.to_dict(), "seed": seed, "primer": primer.name if primer else None,
                    "primer_id": primer.id if primer else None}
        return Sample(stem, settings.model, seed, recorded, files, round(piece.seconds, 3), len(piece.notes),
                      piece.shortfall, adherence=_adherence_line(piece))

    # --- favourites ------------------------------------------------------------------------------
    def keep(self, sample_id: str, kept: bool) -> Sample:
        """Mark a sample kept (or not) and rewrite favourites.json."""
        sample = self.sample(sample_id)
        with self._lock:
            sample.kept = kept
            favourites = [asdict(s) for s in self._samples.values() if s.kept]
            with atomic_write(self.workdir / FAVOURITES, "w", encoding="utf-8") as file:
                json.dump({"favourites": favourites}, file, indent=1)
        return sample

    def favourites(self) -> list[Sample]:
        with self._lock:
            return [s for s in self._samples.values() if s.kept]

    def _read_favourites(self) -> list[Sample]:
        path = self.workdir / FAVOURITES
        if not path.is_file():
            return []
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["favourites"]
            samples = [Sample(**entry) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{path}: not a studio favourites file ({exc}); move it away or choose "
                              "another --out") from None
        return [s for s in samples if all((self.workdir / f).is_file() for f in s.files.values())]

    # --- files -----------------------------------------------------------------------------------
    def served_file(self, name: str) -> Path | None:
        """The work-folder file `name` if the page may serve it: a plain name (no folder part) of
        a sample's MIDI, WAV or PNG that is a regular file whose real path is in the work folder
        (a link out of it, e.g. `x.mid -> /etc/passwd`, is not); None otherwise, never an error."""
        if (len(name) > MAX_NAME or "/" in name or "\\" in name or "\0" in name or name.startswith(".")
                or not name.endswith(SERVED_SUFFIXES)):
            return None
        try:
            path = (self.workdir / name).resolve(strict=True)
            regular = stat.S_ISREG(path.stat().st_mode)
        except (OSError, RuntimeError):  # missing, a link loop, a name the system refuses
            return None
        return path if regular and path.parent == self._root else None


def _audio_problem() -> str | None:
    """Why audio cannot be rendered (FluidSynth or a SoundFont missing), or None."""
    from melodygen.render.files import check_audio

    try:
        check_audio()
    except MelodygenError as exc:
        return str(exc)
    return None


def model_label(name: str) -> str:
    """How the page names a model: a bundled name as it is, a checkpoint by its folder and file
    (`runs/melody_lstm/best.pt` -> `melody_lstm/best.pt`)."""
    path = Path(name)
    if not name.endswith(".pt") and not path.is_file():
        return name
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _event_counter(job: Job):
    """A decode-loop watcher (`sampling.loop.watching`) counting the events `job`'s piece has
    drawn so far (a piece is one row; its end is no event)."""
    from melodygen.encodings.vocab import EOS_ID

    def count(ids) -> None:
        if int(ids[0]) > EOS_ID:
            job.events += 1

    return count


def _primer_named(exc: MelodygenError, path: Path | None, primer: Upload | None) -> str:
    """The message of `exc` naming the primer as the user knows it, not by the studio's copy."""
    return str(exc) if path is None else str(exc).replace(str(path), f"primer {primer.name}")


def _adherence_line(piece) -> str | None:
    """How a piece obeys its controls and follows its form plan (None: neither was asked)."""
    lines = [] if piece.form is None else [piece.form.describe()]
    if piece.adherence is not None:  # steered, with notes to measure
        from melodygen.stats.controls import describe_adherence

        lines.insert(0, describe_adherence(piece.adherence))
    return "; ".join(lines) or None


def _settings_fields(recorded: dict) -> dict:
    """`GenerationSettings` fields from a sample's recorded settings (JSON: lists for tuples)."""
    known = GenerationSettings.__dataclass_fields__
    values = {k: v for k, v in recorded.items() if k in known}
    for name in ("instruments", "chords", "density"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    return values
