"""The deploy rehearsal's world: AWS under a moto server, Bedrock and Cognito's host on loopback,
and a clean copy of the project deployed by following the README's numbered steps."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

import memory.aws
from scripts.__main__ import main as scripts_main
from tests.deploy.runtime_image import Dockerfile, build_venv, extract_upload
from tests.support.bedrock_standin import BedrockStandIn
from tests.support.s3vectors_double import install_s3vectors_double
from tests.support.scripts_cli import outputs

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
EMAIL = "ann@acme.example"
AGENT = "agent_memory"
#: The DNS stand-in: inside the runtime's Python, https://cognito-idp.<region>.amazonaws.com/...
#: (the JWKS the app derives from the pool id) is fetched from the moto server instead.
DNS_SHIM = '''
import os
_target = os.environ.get("REHEARSAL_COGNITO_ENDPOINT")
if _target:
    import urllib.request
    _open = urllib.request.OpenerDirector.open

    def _moved(self, fullurl, *args, **kwargs):
        request = fullurl if isinstance(fullurl, urllib.request.Request) else urllib.request.Request(fullurl)
        if request.full_url.startswith("https://cognito-idp.") and ".amazonaws.com/" in request.full_url:
            moved = _target + "/" + request.full_url.split(".amazonaws.com/", 1)[1]
            fullurl = urllib.request.Request(moved, headers=dict(request.header_items()))
        return _open(self, fullurl, *args, **kwargs)

    urllib.request.OpenerDirector.open = _moved
'''


@dataclass
class Deployment:
    """What the README's steps produced, and how to run the image they describe."""

    project: Path  # the clean clone the operator works in
    cli_output: dict[str, str]  # every `python -m scripts` run, by step
    toolkit_config: dict
    dockerfile: Dockerfile
    upload: bytes  # source.zip as the toolkit's own upload code built it
    venv: Path
    tokens: dict[str, str]  # token kind -> Cognito token of ann@acme (tenant acme)
    moto_url: str
    bedrock: BedrockStandIn
    work: Path

    def fresh_app_dir(self, name: str) -> Path:
        """A new root-owned copy of the uploaded tree (each microVM starts from the image)."""
        return extract_upload(self.upload, self.work / name)

    def plumbing(self) -> dict[str, str]:
        """The environment around the app that the runtime, not the user, provides.

        Credentials (the runtime gives the execution role's), where AWS and Bedrock answer
        (moto and the stand-in instead of AWS), Cognito's host (the DNS shim), a private /tmp
        (each microVM has its own) and the port (8080 is shared on a CI host: port 0 makes the app
        bind a free one and print it). No app setting.
        """
        tmp = Path(tempfile.mkdtemp(dir=self.work, prefix="tmp-"))
        tmp.chmod(0o1777)
        return {
            "AWS_ACCESS_KEY_ID": "runtime-role",
            "AWS_SECRET_ACCESS_KEY": "runtime-role",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.bedrock.url,
            "REHEARSAL_COGNITO_ENDPOINT": self.moto_url,
            "OTEL_SDK_DISABLED": "true",
            "TMPDIR": str(tmp),
            "AGENT_PORT": "0",
        }


def _clean_clone(dest: Path) -> Path:
    """The tracked files only, as `git clone` would give them (plus uncommitted edits)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _toolkit(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the pinned starter toolkit's CLI (the `agentcore` entry point of this venv)."""
    agentcore = Path(sys.executable).parent / "agentcore"
    done = subprocess.run([str(agentcore), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _toolkit_upload(project: Path, config: dict) -> bytes:
    """Build and upload source.zip with the toolkit's own CodeBuild code; read it back from S3."""
    from bedrock_agentcore_starter_toolkit.services.codebuild import CodeBuildService

    agent = config["agents"][AGENT]
    service = CodeBuildService(boto3.Session(region_name=REGION))
    location = service.upload_source(
        agent_name=AGENT,
        source_dir=agent["source_path"],
        dockerfile_dir=str(project / ".bedrock_agentcore" / AGENT),
    )
    bucket, key = location.removeprefix("s3://").split("/", 1)
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, and the runtime user must reach
    # its working directory.
    work = Path(tempfile.mkdtemp(prefix="agent-memory-deploy-"))
    work.chmod(0o755)
    project = _clean_clone(work / "project")
    with pytest.MonkeyPatch.context() as mp, BedrockStandIn() as bedrock:
        install_s3vectors_double(mp)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        env = {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "operator",
            "AWS_SECRET_ACCESS_KEY": "operator",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AGENTCORE_SUPPRESS_RECOMMENDATION": "1",
        }
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setattr(memory.aws, "_default_session", None)
        mp.chdir(project)
        try:
            yield _deploy(work, project, moto_url, bedrock, {**os.environ, **env})
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)


def _run_scripts(command: str) -> str:
    """`python -m scripts <command>` in-process; its printed report."""
    out = io.StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        code = scripts_main(shlex.split(command))
    finally:
        sys.stdout = real
    assert code == 0, f"python -m scripts {command} -> {code}\n{out.getvalue()}"
    return out.getvalue()


#: Report outputs of the setup CLIs -> the README's `$NAME`s.
OUTPUT_VARIABLES = {
    "user pool id": "POOL_ID",
    "app client id": "CLIENT_ID",
    "password (shown once, store it now)": "PASSWORD",
    "execution role ARN": "RUNTIME_ROLE_ARN",
    "role ARN": "TVM_ROLE_ARN",
    "next step 1": "NEXT_STEP_1",
    "next step 2": "NEXT_STEP_2",
}
_STEP = re.compile(r"^(\d+)\. `([^`]+)`", re.M)


def readme_steps() -> list[str]:
    """The command of each numbered step of the README's "Deploy on AWS" section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Deploy on AWS\n", 1)[1].split("\n## ", 1)[0].split("\n#### ", 1)[0]
    numbered = _STEP.findall(section)
    assert [int(n) for n, _ in numbered] == list(range(1, len(numbered) + 1)), "steps must be numbered 1..n"
    return [command for _, command in numbered]


def _deploy(work: Path, project: Path, moto_url: str, bedrock: BedrockStandIn, env: dict[str, str]) -> Deployment:
    """The README's "Deploy on AWS" steps, in order, as written (see readme_steps)."""
    values: dict[str, str] = {}
    runs: dict[str, str] = {}
    upload = b""
    for command in readme_steps():
        if command.startswith("export "):
            values.update(pair.split("=", 1) for pair in shlex.split(command)[1:])
            assert values.get("AWS_REGION", REGION) == REGION
        elif command.startswith("python -m scripts "):
            report = _run_scripts(string.Template(command.removeprefix("python -m scripts ")).substitute(values))
            runs[command] = report
            values.update((OUTPUT_VARIABLES[k], v) for k, v in outputs(report).items() if k in OUTPUT_VARIABLES)
        elif command.startswith("agentcore configure"):
            runs[command] = _toolkit(shlex.split(values["NEXT_STEP_1"]), project, env)
        elif command.startswith("agentcore launch"):
            assert command == values["NEXT_STEP_2"], "the README's launch must be the one the CLI prints"
            upload = _toolkit_upload(project, yaml.safe_load((project / ".bedrock_agentcore.yaml").read_text()))
        elif not command.startswith("agentcore invoke"):  # invoke: driven over HTTP by the tests
            raise AssertionError(f"the rehearsal does not know README step {command!r}")
    assert upload, "the README's steps never launch"
    toolkit_config = yaml.safe_load((project / ".bedrock_agentcore.yaml").read_text())
    dockerfile = Dockerfile.parse((project / ".bedrock_agentcore" / AGENT / "Dockerfile").read_text())
    venv = build_venv(dockerfile, project)
    _install_dns_shim(venv)
    idp = boto3.client("cognito-idp", region_name=REGION)
    auth = idp.initiate_auth(
        ClientId=values["CLIENT_ID"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": EMAIL, "PASSWORD": values["PASSWORD"]},
    )["AuthenticationResult"]
    tokens = {"id": auth["IdToken"], "access": auth["AccessToken"]}
    return Deployment(project, runs, toolkit_config, dockerfile, upload, venv, tokens, moto_url, bedrock, work)


def _install_dns_shim(venv: Path) -> None:
    """The Cognito-host redirect, loaded by site (a .pth line) only when its variable is set."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "agent_memory_rehearsal_dns.py").write_text(DNS_SHIM)
    (site / "agent_memory_rehearsal_dns.pth").write_text("import agent_memory_rehearsal_dns\n")


@pytest.fixture
def home(deployment: Deployment) -> Path:
    """A home directory for the runtime user (the image's useradd -m creates one)."""
    path = Path(tempfile.mkdtemp(dir=deployment.work, prefix="home-"))
    os.chown(path, 1000, 1000)
    return path
