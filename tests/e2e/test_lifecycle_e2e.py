"""Conversations that are never explicitly ended are still summarized: idle timer and SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from auth.dev_issuer import DevIssuer
from memory.pipeline.outbox_local import LocalOutbox
from tests.e2e.conftest import new_session, stored
from tests.e2e.server import REPO, SESSION_HEADER, AgentServer
from tests.support.scripted_model import HANG_PREFIX, HANG_SUMMARY_PREFIX

HANGING_MODEL = "import:tests.support.scripted_model:build_hanging_echo_model"


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_idle_timeout_ends_the_conversation(tmp_path: Path) -> None:
    server = AgentServer(tmp_path, AGENT_IDLE_TIMEOUT_SECONDS="1", AGENT_REAP_INTERVAL_SECONDS="0.2").start()
    try:
        token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-idle", "judy")
        sid = new_session()
        assert server.invoke(token, {"prompt": "My bike is red."}, sid).status_code == 200
        assert stored(tmp_path, "tenant-idle", "judy") == []
        assert wait_for(lambda: len(stored(tmp_path, "tenant-idle", "judy")) == 1), server.log()
        [memory] = stored(tmp_path, "tenant-idle", "judy")
        assert memory.conversation_id == sid and "red" in memory.content
    finally:
        server.stop()


def test_sigterm_with_an_open_conversation_loses_nothing(tmp_path: Path) -> None:
    # A short budget: the summaries may not be stored before exit, only recorded in the outbox.
    server = AgentServer(tmp_path, AGENT_SHUTDOWN_GRACE_SECONDS="1").start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-term", "ken")
    sids = [new_session(), new_session()]
    try:
        for n, sid in enumerate(sids):
            assert server.invoke(token, {"prompt": f"My locker is number {n}7."}, sid).status_code == 200
    finally:
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown: -15 is a clean exit.
        assert server.terminate() in (0, -15), server.log()
    assert "ending open conversations" in server.log()
    outbox = tmp_path / "outbox"
    pending = {entry.conversation_id for entry in LocalOutbox(outbox).pending()}
    now = {m.conversation_id for m in stored(tmp_path, "tenant-term", "ken")}
    # Each conversation is stored or pending (or both: stored just before exit while its
    # outbox entry was not yet removed, which the replay below makes idempotent).
    assert pending | now == set(sids), (pending, now, server.log())

    restarted = AgentServer(tmp_path).start()  # replays the outbox on start
    try:
        restarted.wait_idle()
        memories = stored(tmp_path, "tenant-term", "ken")
        assert sorted(m.conversation_id for m in memories) == sorted(sids)
        assert not list(outbox.glob("*.json"))
    finally:
        restarted.stop()


def test_a_session_id_reused_after_a_restart_keeps_both_memories(tmp_path: Path) -> None:
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-reuse", "lena")
    sid = new_session()
    facts = ["My boat is called Aurora.", "My kite is called Zephyr."]
    for fact in facts:  # one server process per conversation, the same session id both times
        server = AgentServer(tmp_path).start()
        try:
            assert server.invoke(token, {"prompt": fact, "end_session": True}, sid).status_code == 200
            server.wait_idle()
        finally:
            server.stop()
    memories = stored(tmp_path, "tenant-reuse", "lena")
    assert len({m.id for m in memories}) == 2, [m.content for m in memories]  # the second did not overwrite
    assert {m.conversation_id for m in memories} == {sid}  # forget --conversation <sid> finds both
    assert sorted(("Aurora" in m.content, "Zephyr" in m.content) for m in memories) == [(False, True), (True, False)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_turn_that_never_returns_does_not_keep_the_process_from_exiting(tmp_path: Path, sig: int) -> None:
    """A streamed turn whose model call hangs in a worker thread: the process exits soon after the
    grace period (it waited grace + 30 s for the session after SIGTERM, and forever after SIGINT:
    the interpreter joined the hung thread at exit), names the session it abandoned, and loses
    nothing answered: the other session is ended, the hung one's answered turn is in its checkpoint,
    which the next start adopts."""
    server = AgentServer(tmp_path, AGENT_SHUTDOWN_GRACE_SECONDS="1", AGENT_MODEL_PROVIDER=HANGING_MODEL).start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-hang", "lee")
    ended, hung = new_session(), new_session()
    try:
        assert server.invoke(token, {"prompt": "My locker is number 17."}, ended).status_code == 200
        assert server.invoke(token, {"prompt": "My bike is red."}, hung).status_code == 200
        hanging = threading.Thread(target=_quietly, args=(server, token, hung), daemon=True)
        hanging.start()
        assert wait_for(lambda: server.log().count(f"session_id={hung} stream=True") == 1), server.log()
        started = time.monotonic()
        assert server.proc is not None
        server.proc.send_signal(sig)
        code = server.proc.wait(timeout=25)  # grace 1 s: uvicorn's, the turn's, the summaries'
    finally:
        server.stop()
    assert code in (0, 130, -sig) and time.monotonic() - started < 25, server.log()
    assert f"not ended, their request still running at the turn deadline: {hung} " in server.log()
    outbox = LocalOutbox(tmp_path / "outbox")
    (checkpoint,) = [e for e in outbox.pending() if e.conversation_id == hung]
    assert checkpoint.open and [t["text"] for t in checkpoint.transcript][:1] == ["My bike is red."]

    memories = stored_after_restart(tmp_path, "tenant-hang", "lee", 2)  # adopts the checkpoint
    assert "17" in memories[ended] and "red" in memories[hung]


def test_the_whole_shutdown_fits_its_budget_when_a_turn_and_a_summary_never_return(tmp_path: Path) -> None:
    """AgentCore kills a stopping session's process after up to 15 s. The shutdown waited for
    requests, then turns, then summaries, each for the whole grace period (about 3 x 20 s by
    default); now every step shares one budget. With a streamed turn and a summary that never
    return, the process exits on its own within the budget, names what it abandoned, and both
    conversations are in the outbox (the ended one closed, the hung one as its checkpoint),
    which the next start stores."""
    budget = 4.0
    server = AgentServer(
        tmp_path, AGENT_SHUTDOWN_GRACE_SECONDS=str(budget), AGENT_MODEL_PROVIDER=HANGING_MODEL
    ).start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-budget", "max")
    ended, hung = new_session(), new_session()
    try:
        prompt = f"{HANG_SUMMARY_PREFIX} My kite is green."
        assert server.invoke(token, {"prompt": prompt, "end_session": True}, ended).status_code == 200
        assert server.invoke(token, {"prompt": "My bike is red."}, hung).status_code == 200
        threading.Thread(target=_quietly, args=(server, token, hung), daemon=True).start()
        assert wait_for(lambda: server.log().count(f"session_id={hung} stream=True") == 1), server.log()
        assert httpx.get(f"{server.url}/ping", timeout=2).json()["status"] == "HealthyBusy"  # the summary
        started = time.monotonic()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        server.stop()
    # generous: the budget, plus half of it and 2 s for signal delivery and the interpreter's exit
    assert code in (0, -signal.SIGTERM) and took < 1.5 * budget + 2, (took, server.log())
    log = server.log()
    assert f"not ended, their request still running at the turn deadline: {hung} " in log
    assert "1 summary task(s) abandoned" in log
    pending = {entry.conversation_id: entry for entry in LocalOutbox(tmp_path / "outbox").pending()}
    assert not pending[ended].open and pending[hung].open, pending
    assert [t["text"] for t in pending[hung].transcript][:1] == ["My bike is red."]

    memories = stored_after_restart(tmp_path, "tenant-budget", "max", 2)  # replays both
    assert "green" in memories[ended] and "red" in memories[hung]


def test_a_port_in_use_ends_the_process_even_with_a_summary_that_never_returns(tmp_path: Path) -> None:
    """uvicorn answers a port it cannot bind with ``sys.exit(3)`` after the lifespan's shutdown;
    that SystemExit went past ``agent.app.run``'s ``os._exit``, so the interpreter joined the
    replay's hung summary thread at exit and the process (which had printed the bind error) never
    ended. The summary stays in the outbox for the next start."""
    server = AgentServer(tmp_path, AGENT_MODEL_PROVIDER=HANGING_MODEL).start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-port", "pia")
    sid = new_session()
    try:
        prompt = f"{HANG_SUMMARY_PREFIX} My kite is green."
        assert server.invoke(token, {"prompt": prompt, "end_session": True}, sid).status_code == 200
    finally:
        server.stop()  # killed: the closed entry stays in the outbox, replayed by the next start
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        blocked = AgentServer(
            tmp_path, AGENT_MODEL_PROVIDER=HANGING_MODEL, AGENT_PORT=str(taken.getsockname()[1]),
            AGENT_SHUTDOWN_GRACE_SECONDS="1",
        )
        try:
            proc = subprocess.run([sys.executable, "-m", "agent"], cwd=REPO, env=blocked.env,
                                  capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the process did not end: {exc.output!r}") from None
    assert proc.returncode == 3, proc.stderr
    assert "address already in use" in proc.stderr and "1 summary task(s) abandoned" in proc.stderr
    assert [e.open for e in LocalOutbox(tmp_path / "outbox").pending() if e.conversation_id == sid] == [False]


def _quietly(server: AgentServer, token: str, session_id: str) -> None:
    """A streamed turn the model never answers (the connection drops at the server's exit)."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{server.url}/invocations", json={"prompt": f"{HANG_PREFIX} My car is blue.", "stream": True},
                   headers={"Authorization": f"Bearer {token}", SESSION_HEADER: session_id}, timeout=60)


def stored_after_restart(tmp_path: Path, tenant: str, user: str, count: int) -> dict[str, str]:
    """Start the app again on the same state (open checkpoints adopted at once) until ``count``
    memories of ``user`` are stored; their text by conversation id."""
    restarted = AgentServer(tmp_path, AGENT_ORPHAN_AFTER_SECONDS="0").start()
    try:
        restarted.wait_idle()
        assert wait_for(lambda: len(stored(tmp_path, tenant, user)) == count), restarted.log()
    finally:
        restarted.stop()
    return {m.conversation_id: m.content for m in stored(tmp_path, tenant, user)}
