"""`prepare`: MIDI files -> a dataset folder of token shards, encoding.json and manifest.json.

Steps: find the files; if the input fingerprint matches the dataset already in `out_dir`, reuse
it; otherwise hash every file (exact duplicates are dropped, the content hash decides the split),
take the ids of files the previous dataset already encoded (`incremental`), read and encode the
rest in worker processes, and write everything into a staging folder next to `out_dir` (the
shards, then the copy index of the train split, `dataset.copies`). The
manifest is written last and the staging folder is renamed into place only when complete, so an
interrupted run leaves the previous dataset untouched and nothing a later run would trust. A
killed run may leave its `.NAME.partial-PID-HEX` (or, mid-swap, `.NAME.old-PID-HEX`) folder
behind, and temp files in `out_dir` (`atomic`); the next `prepare` of `out_dir` removes those
whose process is gone, and only those: a concurrent `prepare` keeps its own.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from melodygen.atomic import remove_leftovers, scratch
from melodygen.dataset.copies import COPY_INDEX, build_index
from melodygen.dataset.files import UNREADABLE, FileResult, read_files
from melodygen.dataset.incremental import earlier_results
from melodygen.dataset.manifest import (
    ENCODING,
    MANIFEST,
    build_manifest,
    check_dataset,
    count_reasons,
    input_fingerprint,
    read_manifest,
    split_of,
    write_json,
)
from melodygen.dataset.shards import SPLITS, shard_paths, write_split
from melodygen.dataset.sources import content_hash, find_midi_files, resolve_source
from melodygen.dataset.summary import PrepareSummary
from melodygen.encodings.vocab import BOS_ID, EOS_ID
from melodygen.errors import ConfigError, DatasetError, OutputError

DUPLICATE = "duplicate"


def prepare(sources: Sequence[str | Path], encoding, out_dir: str | Path, *, val_fraction: float = 0.1,
            workers: int | None = None, progress: bool = True, force: bool = False) -> PrepareSummary:
    """Build (or reuse) the dataset of `sources` under `encoding` in `out_dir`.

    `sources`: MIDI files and folders (searched recursively). `workers`: processes that parse
    (default: every CPU; 1 parses in this process). `force`: rebuild and re-parse every file.
    Bad files are skipped and recorded with their reason. Raises `DatasetError` when no file is
    usable, `OutputError` when `out_dir` cannot be written or holds something other than a
    melodygen dataset, `ConfigError` for a bad fraction.
    """
    started = time.perf_counter()
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir)
    remove_leftovers(out_dir.parent, ("partial", "old"), out_dir.name)  # of killed runs
    remove_leftovers(out_dir, ("tmp",))  # e.g. a killed copy index build: not "other files"
    files = find_midi_files(sources)
    encoding_dict = encoding.to_dict()
    fingerprint = input_fingerprint(files, encoding_dict, val_fraction)
    if not force and (previous := _reusable(out_dir, fingerprint, encoding_dict)) is not None:
        return previous
    _check_replaceable(out_dir)
    with _staging_dir(out_dir) as staging:
        unique, skipped = _hash_and_dedup(files)
        earlier = {} if force else earlier_results(out_dir, encoding_dict)
        results = _encode(unique, encoding, earlier, workers, progress)
        pieces = _write_shards(staging, unique, results, skipped, val_fraction)
        copy_index = build_index(staging, encoding)  # the copy check's index of the train split
        write_json(staging / ENCODING, encoding_dict)
        manifest = build_manifest(
            sources=[str(resolve_source(s).resolve()) for s in sources], fingerprint=fingerprint,
            encoding_dict=encoding_dict, val_fraction=val_fraction, files_found=len(files),
            files_from_previous=sum(sha1 in earlier for _, sha1 in unique), pieces=pieces,
            skipped=sorted(skipped, key=lambda s: s["path"]), seconds=time.perf_counter() - started)
        manifest["copy_index"] = copy_index  # its build time, size and windows
        write_json(staging / MANIFEST, manifest)  # last: its presence marks a complete dataset
        _swap_into_place(staging, out_dir)
    return PrepareSummary.from_manifest(manifest, out_dir, reused=False)


def _reusable(out_dir: Path, fingerprint: str, encoding_dict: dict) -> PrepareSummary | None:
    try:
        manifest = check_dataset(out_dir, encoding_dict)
    except DatasetError:
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    return PrepareSummary.from_manifest(manifest, out_dir, reused=True)


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything but an empty folder or an earlier melodygen dataset holding
    nothing else (e.g. not a run that was trained into the dataset folder: its checkpoints)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; choose another --out")
    if any(out_dir.iterdir()):
        try:
            read_manifest(out_dir)
        except DatasetError:
            raise OutputError(f"{out_dir}: exists and is not a melodygen dataset; not replacing it, "
                              "choose another --out") from None
    ours = {MANIFEST, ENCODING, COPY_INDEX, *(path.name for split in SPLITS for path in shard_paths(out_dir, split))}
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
    if others:
        raise OutputError(f"{out_dir}: holds files that are not part of a dataset ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); not replacing it, choose another --out")


@contextmanager
def _staging_dir(out_dir: Path) -> Iterator[Path]:
    with scratch(out_dir, "partial") as staging:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()  # not mkdtemp: the dataset gets the usual permissions, not 0700
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot write there ({exc.strerror or exc})") from None
        try:
            yield staging
        except OSError as exc:
            raise OutputError(f"{out_dir}: writing the dataset failed ({exc})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    with scratch(out_dir, "old") as old:
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)


def _skip(path: Path | str, reason: str, detail: str) -> dict:
    return {"path": str(path), "reason": reason, "detail": detail}


def _hash_and_dedup(files: list[Path]) -> tuple[list[tuple[Path, str]], list[dict]]:
    """(path, sha1) of the first file of each content, in order; the rest recorded as skipped."""
    first_with: dict[str, Path] = {}
    unique, skipped = [], []
    for path in files:
        try:
            sha1 = content_hash(path)
        except OSError as exc:
            skipped.append(_skip(path, UNREADABLE, str(exc.strerror or exc)))
            continue
        if sha1 in first_with:
            skipped.append(_skip(path, DUPLICATE, f"same content as {first_with[sha1]}"))
            continue
        first_with[sha1] = path
        unique.append((path, sha1))
    return unique, skipped


def _encode(unique: list[tuple[Path, str]], encoding, earlier: dict[str, FileResult], workers: int | None,
            progress: bool) -> list[FileResult]:
    """A result per unique file, in order: from `earlier` where known, else parsed now."""
    todo = [path for path, sha1 in unique if sha1 not in earlier]
    fresh = iter(read_files(todo, encoding, workers=workers, progress=progress) if todo else [])
    return [earlier[sha1] if sha1 in earlier else next(fresh) for _, sha1 in unique]


def _write_shards(staging: Path, unique: list[tuple[Path, str]], results: list[FileResult],
                  skipped: list[dict], val_fraction: float) -> list[dict]:
    """Write both splits; return one manifest entry per piece, append unusable files to `skipped`."""
    ids_of = {split: [] for split in SPLITS}
    pieces = []
    for (path, sha1), result in zip(unique, results):
        if result.ids is None:
            skipped.append(_skip(path, result.reason, result.detail) | {"sha1": sha1})
            continue
        split = split_of(sha1, val_fraction)
        pieces.append({"path": str(path), "sha1": sha1, "split": split, "index": len(ids_of[split]),
                       "ids": len(result.ids), "notes": result.notes, "seconds": result.seconds})
        ids_of[split].append(result.ids)
    if not pieces:
        raise DatasetError(f"no usable MIDI: all {len(skipped)} files were skipped ({_reasons(skipped)})")
    if not ids_of["train"]:
        raise DatasetError(f"all {len(pieces)} usable pieces fell into the validation split; "
                           "lower --val-fraction or add files")
    for split in SPLITS:
        write_split(staging, split, ids_of[split], BOS_ID, EOS_ID)
    return pieces


def _reasons(skipped: list[dict]) -> str:
    counts = ", ".join(f"{reason}: {n}" for reason, n in count_reasons(skipped).items())
    example = next((s for s in skipped if s["reason"] != DUPLICATE), skipped[0])
    return f"{counts}; e.g. {example['path']}: {example['detail']}"
