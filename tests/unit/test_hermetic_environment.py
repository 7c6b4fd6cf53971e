"""The suite ignores the app settings of the shell it runs in: the README has developers export
``AGENT_AUTH_MODE``, ``AGENT_MODEL_PROVIDER`` and ``AGENT_STATE_DIR`` to call the local app, and
``make test`` run from that shell must behave as on a clean CI host (the settings tests would
otherwise read the developer's auth mode, state directory and model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _leaked() -> list[str]:
    """App settings of the shell still visible to a test (the live-AWS tests' own variables aside)."""
    return sorted(
        name for name in os.environ
        if (name.startswith("AGENT_") and not name.startswith("AGENT_MEMORY_IT_")) or name == "AUTH_DEV_STATE_DIR"
    )  # fmt: skip


def test_no_app_setting_of_the_shell_reaches_a_test() -> None:
    assert _leaked() == []


def test_a_run_from_a_shell_that_exported_the_readmes_settings_sees_none_of_them(tmp_path: Path) -> None:
    exported = {
        "AGENT_AUTH_MODE": "dev",
        "AGENT_MODEL_PROVIDER": "local",
        "AGENT_STATE_DIR": str(tmp_path / "state"),
        "AGENT_SETTINGS_FILE": str(tmp_path / "local.env"),
        "AUTH_DEV_STATE_DIR": str(tmp_path / "issuer"),
    }
    probe = f"{Path(__file__).relative_to(ROOT)}::test_no_app_setting_of_the_shell_reaches_a_test"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", probe],
        cwd=ROOT, env={**os.environ, **exported}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
