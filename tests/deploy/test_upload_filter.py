"""Nothing local is uploaded: the starter toolkit's own upload code, applied to a working copy
with everything the project's commands leave behind at their default locations.

The toolkit (0.3.14) zips the source directory with the fixed patterns of its packaged
``dockerignore.template`` (``CodeBuildService._parse_dockerignore``), not the project's
``.dockerignore``, which it excludes from the upload itself. Those patterns skip ``.venv/``,
``.env``, ``build/`` and ``tests/`` but not other state folders, so the project keeps its
local state, CI venv and benchmark results where they are skipped or outside the tree.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from bedrock_agentcore_starter_toolkit.services.codebuild import CodeBuildService

from auth.dev_issuer import DevIssuer

REPO = Path(__file__).resolve().parents[2]
MARKER = "LOCAL-ONLY-DATA"


def _toolkit_zip(source: Path) -> zipfile.ZipFile:
    """``CodeBuildService.upload_source`` itself, with S3 replaced by a capture of the zip."""
    captured: dict[str, bytes] = {}

    class _S3:
        def upload_file(self, filename: str, bucket: str, key: str, ExtraArgs: dict) -> None:  # noqa: N803
            captured["zip"] = Path(filename).read_bytes()

    service = object.__new__(CodeBuildService)  # no AWS session: only the packaging runs
    service.logger = __import__("logging").getLogger("toolkit")
    service.account_id = "123456789012"
    service.s3_client = _S3()
    service.ensure_source_bucket = lambda account_id: "bucket"
    service.upload_source(agent_name="agent_memory", source_dir=str(source))
    return zipfile.ZipFile(io.BytesIO(captured["zip"]))


def _working_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout.decode()
    for name in filter(None, files.split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _venv(path: Path) -> None:
    (path / "bin").mkdir(parents=True, exist_ok=True)
    (path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (path / "lib" / "site-packages").mkdir(parents=True, exist_ok=True)
    (path / "lib" / "site-packages" / "secret_dep.py").write_text(f"# {MARKER}\n")


def _state(path: Path) -> None:
    """What a state directory holds after `make demo`: issuer key, an index, an outbox entry."""
    DevIssuer(path / "dev-issuer")
    (path / "vectors").mkdir(parents=True, exist_ok=True)
    (path / "vectors" / "memory-acme.sqlite").write_text(MARKER)
    (path / "outbox").mkdir(parents=True, exist_ok=True)
    (path / "outbox" / "acme-conversation.json").write_text(f'{{"transcript": "{MARKER}"}}')


def _default_locations(tree: Path) -> dict[str, Path]:
    """Where the project's own commands write by default, resolved from the working copy."""
    from agent.demo import _parser as demo_parser
    from agent.settings import Settings
    from auth.dev_issuer import default_state_dir

    ci_venv = re.search(r'VENV:-([^}"]+)', (tree / ".ci" / "run").read_text())
    makefile = (tree / "Makefile").read_text()
    bench = re.search(r"^BENCH_RESULTS \?= (\S+)", makefile, re.M) or re.search(r"mkdir -p (\S+)", makefile)
    assert ci_venv and bench, "the CI venv and the benchmark results must have a default location"
    return {
        "app state (AGENT_STATE_DIR default)": Settings(auth_mode="dev").state_dir,
        "demo state": demo_parser().parse_args([]).state_dir,
        "dev issuer": default_state_dir(),
        "make install venv": Path(".venv"),
        "CI venv": Path(ci_venv.group(1)),
        "benchmark results": Path(bench.group(1)),
    }


def test_the_toolkit_uploads_no_key_index_transcript_venv_or_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _working_copy(tmp_path / "project")
    monkeypatch.chdir(tree)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the user's state directory lives here
    for name in ("XDG_STATE_HOME", "AUTH_DEV_STATE_DIR", "DOCKER_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    for what, location in _default_locations(tree).items():
        path = (tree / location).resolve()
        if not path.is_relative_to(tree):
            continue  # outside the source tree: never uploaded
        if "venv" in what:
            _venv(path)
        elif what == "benchmark results":
            path.mkdir(parents=True, exist_ok=True)
            (path / "bench_app.jsonl").write_text(f'{{"run": "{MARKER}"}}\n')
        else:
            _state(path)
    _venv(tree / ".venv")  # whatever else the defaults say, a developer venv is there too

    archive = _toolkit_zip(tree)
    names = archive.namelist()
    assert "agent/app.py" in names and "requirements.txt" in names  # the app itself is uploaded
    leaked = [n for n in names if n.endswith(("pyvenv.cfg", ".pem", "jwks.json")) or MARKER.encode() in archive.read(n)]
    assert leaked == []
