"""The house style's checkable part: `ruff check melodygen` with the rules in pyproject.toml
(pyflakes, pycodestyle, import order, modern syntax, likely bugs, and a docstring on every
module and every public class and function, as ../shared/STYLE.md asks)."""

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing_in_the_package():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "melodygen"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
