"""The CLI as a shell uses it: output piped into a reader that stops early, and Ctrl-C."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.erasure import erase
from scripts import forget
from scripts.__main__ import main

ROOT = Path(__file__).resolve().parents[3]


def _pending(state: Path, count: int) -> None:
    outbox = LocalOutbox(state / "outbox")
    for n in range(count):
        outbox.put(OutboxEntry(tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id=f"c{n}", transcript=[]))


def test_a_reader_that_closed_the_pipe_ends_the_output_quietly(tmp_path: Path) -> None:
    """``outbox list | head -1``: the reader is gone before the report is printed. A
    BrokenPipeError traceback (and Python's 'Exception ignored' at exit) went to stderr."""
    _pending(tmp_path, 3)
    read, write = os.pipe()
    os.close(read)  # no reader at all: the first write fails with EPIPE, deterministically
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scripts", "outbox", "list", "--backend", "local", "--state-dir", str(tmp_path)],
            cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 0  # the command's own exit code: listing succeeded


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during forget's settle wait: a KeyboardInterrupt traceback went to the operator,
    without saying what to do; the marker is durable, so re-running completes the erasure."""
    _pending(tmp_path, 1)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(forget, "erase", lambda *a, **kw: erase(*a, **kw, sleep=interrupted))
    argv = ["forget", "--backend", "local", "--state-dir", str(tmp_path), "--tenant", "acme", "--user", "ann", "--yes"]
    try:
        code = main(argv)
    except KeyboardInterrupt:  # not caught: it would end pytest's session
        code = None
    assert code == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted") and "re-run" in err and len(err.strip().splitlines()) == 1
    monkeypatch.undo()
    assert main([*argv, "--settle-seconds", "0"]) == 0
    assert LocalOutbox(tmp_path / "outbox").pending() == []


class _ClosedPipe(io.StringIO):
    """A stdout whose reader is gone (``| head`` that has exited)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return os.open(os.devnull, os.O_WRONLY)


def test_values_the_operator_needs_next_lost_to_a_closed_pipe_fail_the_command(aws, monkeypatch, capsys) -> None:
    """A report ending in values needed next (an ARN, ids, cognito create-user's password shown
    once) that nobody read is not a success: exit 1, said on stderr, the values not repeated."""
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(["runtime-role", "--region", "us-east-1"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1
    assert "role ARN" in err and "arn:aws:iam::" not in err
