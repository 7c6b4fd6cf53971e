"""The offline demo driver against the real app process (``python -m agent``) on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import demo
from agent.local_llm import local_model_unavailable

ECHO = "import:tests.support.scripted_model:build_echo_model"


def test_demo_passes_with_the_local_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if (reason := local_model_unavailable()) is not None:
        pytest.skip(reason)
    assert demo.main(["--state-dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for check in ("recall", "isolation", "recall tool"):
        assert f"PASS {check}:" in out
    assert "FAIL" not in out


def test_demo_fails_when_memory_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_MEMORY_ENABLED", "false")
    assert demo.main(["--state-dir", str(tmp_path / "demo"), "--model-provider", ECHO]) == 1
    out = capsys.readouterr().out
    assert "FAIL recall:" in out and "FAIL recall tool:" in out
    # isolation cannot be claimed when nothing was recalled at all
    assert "FAIL isolation:" in out
    assert "ECHO: What is the launch date" in out  # the conversation is printed


def test_demo_reports_an_app_that_cannot_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "demo"
    assert demo.main(["--state-dir", str(state), "--model-provider", "no-such-provider"]) == 1
    out = capsys.readouterr().out
    assert "FAIL demo ran: the app exited" in out
    assert (state / "server.log").read_text().strip()


def test_state_dir_is_recreated(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    (state / "vectors").mkdir(parents=True)
    (state / "vectors" / "stale.sqlite").write_text("old")
    demo.main(["--state-dir", str(state), "--model-provider", "no-such-provider"])
    assert not (state / "vectors" / "stale.sqlite").exists()
