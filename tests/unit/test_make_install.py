"""``make test`` and ``make bench`` install the project once, and again only when pyproject.toml changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The Makefile's own defaults, not those of a make that runs this test (.ci/run passes VENV on).
ENV = {k: v for k, v in os.environ.items() if k not in ("VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _installs(target: str, venv: Path) -> list[str]:
    """The ``pip install`` lines ``make <target>`` would run with ``venv`` (``make -n``: nothing runs)."""
    done = subprocess.run(["make", "-n", "--no-print-directory", target, f"VENV={venv}"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if "pip install" in line]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A virtualenv the Makefile has created (its python and pip exist), the project not yet installed."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "pip"):
        (venv / "bin" / tool).touch()
    return venv


@pytest.mark.parametrize("target", ["install", "test", "bench"])
def test_a_second_run_does_not_reinstall_until_pyproject_changes(venv: Path, target: str) -> None:
    """Every ``make test`` re-ran ``pip install -e '.[dev]'`` (setuptools' editable-install notice
    each time): the install now leaves a stamp in the venv, and is redone only when
    pyproject.toml (dependencies, extras, packages: all the install reads) is newer."""
    first = _installs(target, venv)
    assert len(first) == 1 and "-e '.[dev]'" in first[0], first
    stamp = venv / ".dev-extra-installed"
    assert f"touch {stamp}" in first[0]
    stamp.touch()  # what that install leaves
    assert _installs(target, venv) == []
    older = (ROOT / "pyproject.toml").stat().st_mtime - 60
    os.utime(stamp, (older, older))  # pyproject.toml changed since
    assert _installs(target, venv) == first
