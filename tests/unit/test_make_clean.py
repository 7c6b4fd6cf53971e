"""``make clean`` removes what the project's own commands leave in the tree, and nothing of the user's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What `make install`, `make test` (pytest, Hypothesis, npm ci), `make bench` and the app's
#: defaults write inside the tree.
ARTEFACTS = (".venv", "agent_memory.egg-info", ".pytest_cache", ".hypothesis", "build", ".state",
             "tests/iam/node_modules")
#: The user's own configuration, which git ignores too but `make clean` must keep.
USER_FILES = (".env", "agentcore.env", ".bedrock_agentcore.yaml")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_clean_removes_the_artefacts_of_install_and_test_and_keeps_the_user_s_files(tmp_path: Path) -> None:
    """``pip install -e .`` writes agent_memory.egg-info at the root, which `make clean` left."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ARTEFACTS:
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "left-behind").write_text("x")
    for name in USER_FILES:
        (tmp_path / name).write_text("AGENT_AUTH_MODE=dev\n")
    # the Makefile's defaults, not those of a make that runs this test (.ci/run exports
    # VENV=.venv/ci and passes it on the command line, which reaches sub-makes in MAKEFLAGS)
    env = {k: v for k, v in os.environ.items() if k not in ("VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    subprocess.run(["make", "--no-print-directory", "clean"], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert [name for name in ARTEFACTS if (tmp_path / name).exists()] == []
    assert [name for name in USER_FILES if not (tmp_path / name).is_file()] == []
