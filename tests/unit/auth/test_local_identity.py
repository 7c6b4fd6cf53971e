"""auth.local_identity driven by real boto3 clients, issuing the calls `agentcore invoke --local` makes.

botocore parses every answer with the service models, and each parsed answer is checked against the
operation's output shape, so a wrong shape fails here rather than in the toolkit.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from auth.dev_issuer import DevIssuer
from auth.local_identity import LOCAL_ACCOUNT, LocalIdentityServer

CALLBACK = "http://localhost:8081/oauth2/callback"  # what toolkit 0.3.14 registers


def _serve(state_dir: Path) -> tuple[LocalIdentityServer, threading.Thread]:
    server = LocalIdentityServer(0, state_dir)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


def _stop(server: LocalIdentityServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture()
def stub(tmp_path: Path) -> Iterator[LocalIdentityServer]:
    server, thread = _serve(tmp_path / "identity")
    yield server
    _stop(server, thread)


def _client(service: str, url: str) -> BaseClient:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


def _checked(client: BaseClient, operation: str, response: dict[str, Any]) -> dict[str, Any]:
    """The response without metadata, after validating it against the operation's output shape."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    shape = client.meta.service_model.operation_model(operation).output_shape
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()
    return body


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_the_toolkit_sequence_returns_the_jwt_unchanged(stub: LocalIdentityServer, tmp_path: Path) -> None:
    control = _client("bedrock-agentcore-control", stub.url)
    data = _client("bedrock-agentcore", stub.url)
    token = DevIssuer(tmp_path / "issuer").mint("tenant-001", "alice")

    created = _checked(
        control,
        "CreateWorkloadIdentity",
        control.create_workload_identity(name="workload-1a2b3c4d", allowedResourceOauth2ReturnUrls=[]),
    )
    assert created["name"] == "workload-1a2b3c4d"
    assert created["workloadIdentityArn"].endswith("/workload-identity/workload-1a2b3c4d")

    exchanged = _checked(
        data,
        "GetWorkloadAccessTokenForJWT",
        data.get_workload_access_token_for_jwt(workloadName="workload-1a2b3c4d", userToken=token),
    )
    assert exchanged == {"workloadAccessToken": token}

    before = _checked(control, "GetWorkloadIdentity", control.get_workload_identity(name="workload-1a2b3c4d"))
    assert before["allowedResourceOauth2ReturnUrls"] == []
    assert isinstance(before["createdTime"], datetime) and isinstance(before["lastUpdatedTime"], datetime)

    updated = _checked(
        control,
        "UpdateWorkloadIdentity",
        control.update_workload_identity(name="workload-1a2b3c4d", allowedResourceOauth2ReturnUrls=[CALLBACK]),
    )
    assert updated["allowedResourceOauth2ReturnUrls"] == [CALLBACK]
    after = control.get_workload_identity(name="workload-1a2b3c4d")
    assert after["allowedResourceOauth2ReturnUrls"] == [CALLBACK]
    assert after["lastUpdatedTime"] >= before["lastUpdatedTime"]


def test_sts_get_caller_identity_answers_a_local_account(stub: LocalIdentityServer) -> None:
    sts = _client("sts", stub.url)
    identity = _checked(sts, "GetCallerIdentity", sts.get_caller_identity())
    assert identity["Account"] == LOCAL_ACCOUNT
    assert identity["Arn"].startswith(f"arn:aws:iam::{LOCAL_ACCOUNT}:")


def test_other_sts_actions_are_refused(stub: LocalIdentityServer) -> None:
    sts = _client("sts", stub.url)
    with pytest.raises(ClientError) as exc:
        sts.assume_role(RoleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/x", RoleSessionName="session")
    assert _code(exc) == "InvalidAction"


def test_unknown_workloads_and_duplicates_are_aws_errors(stub: LocalIdentityServer) -> None:
    control = _client("bedrock-agentcore-control", stub.url)
    data = _client("bedrock-agentcore", stub.url)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_workload_identity(name="nope-workload")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.update_workload_identity(name="nope-workload", allowedResourceOauth2ReturnUrls=[CALLBACK])
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_workload_access_token_for_jwt(workloadName="nope-workload", userToken="a.b.c")

    control.create_workload_identity(name="twice")
    with pytest.raises(control.exceptions.ConflictException):
        control.create_workload_identity(name="twice")
    with pytest.raises(control.exceptions.ValidationException):
        control.create_workload_identity(name="bad name!")


def test_operations_that_would_mint_a_token_are_refused(stub: LocalIdentityServer) -> None:
    # Without a JWT there is nothing to pass through: the stand-in never mints tokens.
    control = _client("bedrock-agentcore-control", stub.url)
    data = _client("bedrock-agentcore", stub.url)
    control.create_workload_identity(name="workload-x")
    with pytest.raises(data.exceptions.ValidationException, match="not served"):
        data.get_workload_access_token_for_user_id(workloadName="workload-x", userId="alice")
    with pytest.raises(data.exceptions.ValidationException, match="not served"):
        data.get_workload_access_token(workloadName="workload-x")


def test_workloads_survive_a_restart(tmp_path: Path) -> None:
    # The toolkit saves the workload name in .bedrock_agentcore.yaml and reuses it next time.
    server, thread = _serve(tmp_path / "identity")
    _client("bedrock-agentcore-control", server.url).create_workload_identity(
        name="workload-kept", allowedResourceOauth2ReturnUrls=[CALLBACK]
    )
    _stop(server, thread)

    server, thread = _serve(tmp_path / "identity")
    try:
        again = _client("bedrock-agentcore-control", server.url).get_workload_identity(name="workload-kept")
        assert again["allowedResourceOauth2ReturnUrls"] == [CALLBACK]
    finally:
        _stop(server, thread)


def test_binds_loopback_only(stub: LocalIdentityServer) -> None:
    assert stub.server_address[0] == "127.0.0.1"
    assert stub.url.startswith("http://127.0.0.1:")


def test_the_token_is_never_logged(
    stub: LocalIdentityServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="auth.local_identity")
    token = DevIssuer(tmp_path / "issuer").mint("tenant-001", "alice")
    _client("bedrock-agentcore-control", stub.url).create_workload_identity(name="workload-log")
    data = _client("bedrock-agentcore", stub.url)
    assert data.get_workload_access_token_for_jwt(workloadName="workload-log", userToken=token)
    assert any("GetWorkloadAccessTokenForJWT" in r.getMessage() for r in caplog.records)
    signature = token.rsplit(".", 1)[1]
    assert all(signature not in r.getMessage() for r in caplog.records)


def test_name_limits_are_the_service_models(stub: LocalIdentityServer) -> None:
    """The stand-in refuses exactly the names the service model rules out (botocore checks only
    the minimum length client-side; the maximum and the pattern are the service's to enforce)."""
    control = _client("bedrock-agentcore-control", stub.url)
    shape = control.meta.service_model.operation_model("CreateWorkloadIdentity").input_shape.members["name"]
    low, high = shape.metadata["min"], shape.metadata["max"]
    assert (low, high, shape.metadata["pattern"]) == (3, 255, "[A-Za-z0-9_.-]+")
    for name in ("a" * low, "b" * high, "A-z_0.9"):
        control.create_workload_identity(name=name)
    for name in ("c" * (high + 1), "with space", "slash/name"):
        with pytest.raises(control.exceptions.ValidationException):
            control.create_workload_identity(name=name)


def test_the_readmes_toolkit_config_makes_invoke_local_exchange_the_bearer_token(
    stub: LocalIdentityServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolkit's own CLI on the README's minimal .bedrock_agentcore.yaml, against the stand-in.

    Toolkit 0.3.14 (cli/runtime/commands.py ``invoke``) drops ``--bearer-token`` unless the agent
    has an ``authorizer_configuration``, and then asks GetWorkloadAccessToken (no JWT), which the
    stand-in refuses. Only the final POST to 127.0.0.1:8080 is replaced, to record its token.
    """
    from bedrock_agentcore_starter_toolkit.cli.cli import app
    from bedrock_agentcore_starter_toolkit.services import runtime
    from typer.testing import CliRunner

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("#### `agentcore invoke --local`", 1)[1].split("\n## ", 1)[0]
    config = re.search(r"<<'YAML'\n(.*?)\nYAML\n", section, flags=re.S)
    assert config is not None
    (tmp_path / ".bedrock_agentcore.yaml").write_text(config.group(1) + "\n")
    sent: list[str] = []

    def record(self: Any, session_id: str, payload: str, workload_access_token: str, *args: Any) -> dict[str, Any]:
        sent.append(workload_access_token)
        return {"response": '{"answer": "ok"}'}

    monkeypatch.setattr(runtime.LocalBedrockAgentCoreClient, "invoke_endpoint", record)
    for name, value in {"AWS_ENDPOINT_URL": stub.url, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    token = DevIssuer(tmp_path / "issuer").mint("tenant-001", "alice")
    result = CliRunner().invoke(app, ["invoke", "--local", '{"prompt": "hi"}', "--bearer-token", token,
                                      "--session-id", "my-session-0123456789-0123456789-0001"])
    assert sent == [token], result.output


def test_a_second_start_on_a_taken_port_says_so_and_exits_2(
    stub: LocalIdentityServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running the README's block leaves the first stand-in running (it was started with ``&``):
    the second one must say the port is taken, not print a socket traceback."""
    from auth.local_identity import main

    port = stub.server_address[1]
    assert main(["--port", str(port), "--state-dir", str(tmp_path / "second")]) == 2
    assert f"127.0.0.1:{port} is in use" in capsys.readouterr().err
