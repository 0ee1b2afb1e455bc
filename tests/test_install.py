"""An installed wheel (not the clone) runs the bundled corpus and a preset from another folder,
and carries the license files of what it ships, named in its metadata."""

import email.parser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# What a wheel is built from: the project files, without local environments and outputs.
NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "runs", "samples", "build", "dist", "*.egg-info",
                                     "__pycache__", ".pytest_cache", ".hypothesis", "bench_env")


def run(args, cwd, env=None):
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the project."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", root / "dist", source], cwd=root)
    [built] = (root / "dist").glob("melodygen-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(python, melodygen script) of a fresh venv holding `wheel`; torch and the other
    dependencies come from the test environment via a .pth line."""
    root = tmp_path_factory.mktemp("install")
    run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], cwd=root)
    python = root / "venv" / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        cwd=root)
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).strip()
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, root / "venv" / "bin" / "melodygen"


@pytest.mark.slow
def test_wheel_ships_the_corpora_and_runs_prepare_and_a_preset_from_another_folder(installed, tmp_path):
    python, melodygen = installed
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    where = run([python, "-c", "import melodygen, melodygen.dataset.sources as s; "
                 "print(melodygen.__file__); print(s.resolve_source(s.DEFAULT_CORPUS))"], cwd=tmp_path)
    assert str(REPO) not in where and "site-packages" in where
    corpora = Path(where.splitlines()[1]).parent
    assert (corpora / "nottingham" / "LICENSE.md").is_file()
    assert (corpora / "bach-chorales" / "SOURCE.md").is_file()

    packages = sorted(f"melodygen.{p.parent.name}" for p in (REPO / "melodygen").glob("*/__init__.py"))
    run([python, "-c", f"import importlib; [importlib.import_module(p) for p in {packages!r}]"], cwd=tmp_path)

    out = run([melodygen, "prepare", "--encoding", "melody", "--out", "ds"], cwd=tmp_path, env=env)
    assert "dataset:" in out and (tmp_path / "ds" / "manifest.json").is_file()
    out = run([melodygen, "train", "--config", REPO / "configs" / "debug.toml", "--out", "run",
               "--set", "training.max_steps=3", "--set", "training.eval_every=3", "--quiet"],
              cwd=tmp_path, env=env)
    assert (tmp_path / "run" / "best.pt").is_file(), out
    assert list((tmp_path / "cache" / "melodygen" / "datasets").glob("nottingham-melody-*"))
    # a bundled model plays right after installing (and its copy check finds its corpus)
    assert "folk-melody" in run([melodygen, "models"], cwd=tmp_path, env=env)
    out = run([melodygen, "sample", "folk-melody", "--out", "first", "--bars", "4", "--seed", "1"], cwd=tmp_path, env=env)
    assert (tmp_path / "first" / "sample_000.mid").is_file() and "copy check skipped" not in out, out


# The terms of the license expression: what each bundled corpus is under (data/README.md) and how
# the bundled models' cards (pretrained/index.json) begin to name them.
CORPUS_TERMS = {"nottingham": "GPL-3.0-only", "bach-chorales": "LicenseRef-music21-corpus", "pop909": "MIT"}
MODEL_CARD_SPELLING = {"MIT": "MIT", "GPL-3.0-only": "GPL-3.0", "LicenseRef-music21-corpus": "music21 corpus terms"}
LICENSE_FILES = {"LICENSE", "data/README.md", "data/nottingham/LICENSE.md", "data/pop909/LICENSE",
                 "data/bach-chorales/LICENSE"}  # the code's, then each corpus's


def _wheel_metadata(wheel: Path) -> tuple[email.message.Message, dict[str, bytes]]:
    """(the wheel's METADATA, {license file path as named: its bytes in the wheel})."""
    with zipfile.ZipFile(wheel) as archive:
        [meta] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        licenses = meta.replace("METADATA", "licenses/")
        shipped = {name.removeprefix(licenses): archive.read(name) for name in archive.namelist()
                   if name.startswith(licenses)}
        return email.parser.Parser().parsestr(archive.read(meta).decode()), shipped


@pytest.mark.slow
def test_wheel_carries_the_license_files_of_what_it_ships_and_names_them(wheel, installed):
    metadata, shipped = _wheel_metadata(wheel)
    expression = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert metadata["License-Expression"] == expression and metadata["License"] is None
    assert set(expression.split(" AND ")) == set(MODEL_CARD_SPELLING)
    assert sorted(metadata.get_all("License-File")) == sorted(shipped), "each license file named, and shipped"
    assert all(content == (REPO / name).read_bytes() for name, content in shipped.items())
    corpora = {p.name for p in (REPO / "data").iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert corpora == set(CORPUS_TERMS), "a new bundled corpus: give its terms and license file"
    assert LICENSE_FILES <= set(shipped) and set(CORPUS_TERMS.values()) | {"MIT"} == set(MODEL_CARD_SPELLING)
    assert (REPO / "LICENSE").read_text().startswith("MIT License")  # the code
    for model in json.loads((REPO / "melodygen" / "pretrained" / "index.json").read_text())["models"]:
        assert f"melodygen/pretrained/{model['name']}.md" in shipped  # its card says what it was trained on
        preset = tomllib.loads((REPO / "configs" / f"{model['preset']}.toml").read_text())
        [corpus] = {source.removeprefix("bundled:") for source in preset["data"]["sources"]}
        assert model["license"].startswith(MODEL_CARD_SPELLING[CORPUS_TERMS[corpus]]), model["name"]
    python, _ = installed
    seen = run([python, "-c", "import importlib.metadata as m; print(m.metadata('melodygen')['License-Expression'])"],
               cwd=wheel.parent)
    assert seen.strip() == expression
