"""An installed wheel (not the clone) runs the bundled corpus and a preset from another folder."""

import os
import shutil
import subprocess
import sys
import sysconfig
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
def installed(tmp_path_factory):
    """(python, melodygen script) of a fresh venv holding the wheel built from a copy of the
    project; torch and the other dependencies come from the test environment via a .pth line."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", root / "dist", source], cwd=root)
    [wheel] = (root / "dist").glob("melodygen-*.whl")
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
