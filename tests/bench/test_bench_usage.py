"""Every benchmark's usage line names the command a user types, ``python -m bench.<module>``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Every module of bench/ that a user runs (the ones with a ``main``).
COMMANDS = sorted(path.stem for path in (ROOT / "bench").glob("*.py") if "\ndef main(" in path.read_text())


def test_the_runnable_modules_are_found() -> None:
    assert "bench_auth" in COMMANDS and "static_model" in COMMANDS and "_common" not in COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_the_usage_line_is_the_command_a_user_types(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bench.bench_auth --help`` said ``usage: bench_auth.py``, which is no command
    (run as a file, its imports of the project fail): argparse took the program's name from
    ``sys.argv[0]``, the module's path under ``-m``."""
    module = importlib.import_module(f"bench.{name}")
    monkeypatch.setattr(sys, "argv", [str(ROOT / "bench" / f"{name}.py"), "--help"])  # as `python -m` sets it
    with pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m bench.{name} ")
