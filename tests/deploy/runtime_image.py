"""The runtime image without a container engine: what the toolkit's Dockerfile installs and runs.

No registry is reachable offline (the Dockerfile's base image cannot be pulled), so the
rehearsal reproduces the image from the rendered Dockerfile itself:

- ``Dockerfile.parse``: its ``ENV``, ``WORKDIR``, ``USER``, ``CMD`` and every ``uv pip
  install`` (a requirements file or quoted specs);
- ``build_venv``: a virtualenv with exactly those installs, by ``uv pip install`` like the
  Dockerfile (uv from the dev extra), cached under the test venv's prefix by a hash of what it
  installs;
- ``RuntimeProcess``: the ``CMD`` run as uid 1000 (``setpriv``) in a root-owned copy of the
  uploaded tree, with the Dockerfile's environment plus only what the caller passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.listening import wait_until_listening

RUNTIME_UID = 1000
CACHE_ROOT = Path(sys.prefix) / "deploy-rehearsal"


@dataclass
class Dockerfile:
    """What the toolkit's Dockerfile sets, installs and runs."""

    python: str = ""  # the base image's Python version, e.g. "3.11"
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    requirement_files: list[str] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    copies_source_as_root: bool = False

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        """Read the instructions the rehearsal reproduces (continuation lines joined)."""
        image = cls()
        for line in re.sub(r"\\\n\s*", " ", text).splitlines():
            op, _, rest = line.strip().partition(" ")
            if op == "FROM":
                match = re.search(r"python(\d+\.\d+)", rest)
                image.python = match.group(1) if match else ""
            elif op == "ENV":
                image.env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
            elif op == "WORKDIR":
                image.workdir = rest.strip()
            elif op == "USER":
                image.user = rest.strip()
            elif op == "CMD":
                image.cmd = json.loads(rest)
            elif op == "COPY" and rest.split() == [".", "."]:
                image.copies_source_as_root = True  # no --chown: the files belong to root
            elif op == "RUN" and rest.startswith("uv pip install"):
                args = shlex.split(rest)[3:]
                if args[:1] == ["-r"]:
                    image.requirement_files.append(args[1])
                else:
                    image.specs.extend(args)
        return image


def runtime_python(version: str) -> str:
    """An interpreter of the image's Python version that uid 1000 can run (the test runner's
    own may live under root's home, as pyenv's does); the rehearsal is skipped, saying so, when
    the machine has none (the image's version is the test runner's, as the toolkit picks it)."""
    for candidate in (shutil.which(f"python{version}"), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if candidate and Path(candidate).exists():
            probe = subprocess.run([*as_runtime_user(), candidate, "-c", "pass"], capture_output=True)
            if probe.returncode == 0:
                return candidate
    pytest.skip(f"no Python {version} that uid {RUNTIME_UID} can run (install python{version} outside root's home)")


def as_runtime_user() -> list[str]:
    """``setpriv`` prefix: uid/gid 1000, no supplementary groups (the image's USER)."""
    return ["setpriv", f"--reuid={RUNTIME_UID}", f"--regid={RUNTIME_UID}", "--clear-groups"]


def build_venv(image: Dockerfile, source: Path) -> Path:
    """A virtualenv with exactly the Dockerfile's installs (cached by their content)."""
    python = runtime_python(image.python)
    requirements = [(source / name).read_text() for name in image.requirement_files]
    key = hashlib.sha256(json.dumps([python, requirements, image.specs]).encode()).hexdigest()[:16]
    venv = CACHE_ROOT / key
    if (venv / "complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    uv = [sys.executable, "-m", "uv", "--quiet"]
    subprocess.run([*uv, "venv", "--python", python, str(venv)], check=True)
    files = [arg for name in image.requirement_files for arg in ("-r", str(source / name))]
    subprocess.run([*uv, "pip", "install", "--python", str(venv / "bin" / "python"), *files, *image.specs], check=True)
    (venv / "complete").touch()
    return venv


def extract_upload(zip_bytes: bytes, dest: Path) -> Path:
    """The uploaded source as the image has it: root-owned, readable, not writable by others."""
    dest.mkdir(parents=True)
    with zipfile.ZipFile(__import__("io").BytesIO(zip_bytes)) as archive:
        archive.extractall(dest)
    for path in [dest, *dest.rglob("*")]:
        os.chown(path, 0, 0)
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


class RuntimeProcess:
    """The image's ``CMD`` as uid 1000 in ``app_dir``; stopped with SIGTERM like the runtime does."""

    def __init__(self, image: Dockerfile, venv: Path, app_dir: Path, home: Path, env: dict[str, str]) -> None:
        self.image = image
        self.app_dir = app_dir
        self.log_path = home / f"runtime-{time.monotonic_ns()}.log"
        self.env = {
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "VIRTUAL_ENV": str(venv),
            **image.env,
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeProcess:
        """Start the CMD (``setpriv`` drops to uid/gid 1000 with no supplementary groups)."""
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [*as_runtime_user(), *self.image.cmd], cwd=self.app_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 90.0) -> str:
        """Wait for ``/ping`` at the address the process printed (``AGENT_PORT=0``); return it.

        ``NotListening`` with the log's tail if the process exits first or is not ready in time.
        """
        assert self.proc is not None
        return wait_until_listening(self.proc, self.log_path, timeout, name="the runtime", poll_seconds=0.2)

    def run_to_exit(self, timeout: float = 90.0) -> int:
        """Start and wait for the process to exit on its own (start-up refusals)."""
        self.start()
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM, then wait (the runtime's stop); kill if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
