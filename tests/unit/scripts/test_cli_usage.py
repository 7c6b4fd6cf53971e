"""Argument errors of the operations CLI: each one is a usage error, exit 2 (docs/operations.md
"Exit codes"), as argparse's own are, named in one line, nothing done."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.__main__ import main

EXEC = "arn:aws:iam::123456789012:role/agentcore-runtime"
TVM = "arn:aws:iam::123456789012:role/agent-memory-tvm"
REGION = ("--region", "us-east-1")
AGENTCORE = ("agentcore", *REGION, "--pool-id", "us-east-1_abc", "--client-id", "c", "--execution-role-arn", EXEC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``python -m scripts <argv>``, argparse's exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    """Stderr of ``python -m scripts <argv>`` run in ``tmp_path`` with no settings file, which
    must exit 2 (a usage error)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENT_SETTINGS_FILE", raising=False)
    code, err = run(capsys, *argv)
    assert code == 2, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("forget", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--all-users", "--conversation", "c1"), "--conversation needs --user"),
        (("forget", "--backend", "local", "--tenant", "acme", "--user", "ann"), "needs --state-dir"),
        (("forget", *REGION, "--tenant", "acme", "--user", "ann"), "needs --bucket"),
        (("tenant", "list", "--bucket", "mem-bucket"), "no region"),
        (("tenant", "list", *REGION, "--bucket", "b"), "invalid vector bucket name 'b'"),
        (("outbox", "list", *REGION), "needs --outbox-bucket"),
        (("outbox", "purge", *REGION, "--yes"), "needs --outbox-bucket"),
        (("doctor", *REGION), "needs --bucket"),
        (("tvm-role", *REGION, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--outbox-kms-key-arn", "arn:aws:kms:us-east-1:123456789012:key/k"), "needs --outbox-bucket"),
        (("tvm-role", *REGION, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--principal", "*"), "refusing trust principal"),
        (("tvm-role", *REGION, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--service-principal", "lambda.amazonaws.com"), "needs --source-arn"),
        ((*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket"), "needs --outbox-bucket"),
        ((*AGENTCORE, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox"), "needs --tvm-role-arn"),
        ((*AGENTCORE, "--tenant-mode", "single", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox"), "needs --single-tenant-id"),
        ((*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox", "--idle-timeout", "30"), "--idle-timeout"),
        ((*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox", "--idle-timeout", "90"), "at least 105"),
        ((*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox", "--embedding-model-id", "amazon.titan-embed-text-v2:0"), "--embedding-model-id"),
        (("retention", "sweep", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--ttl-days", "0"), "--ttl-days"),
        (("retention", "sweep", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--ttl-days", "nan"), "--ttl-days"),
        (("retention", "sweep", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--ttl-days", "inf"), "--ttl-days"),
        # bytes that are not UTF-8 on the command line (Python decodes them to lone surrogates): no
        # token's sub is such a string; hashing it for the erasure folder raised UnicodeEncodeError
        (("forget", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--user", "al\udcffice"), "argument --user: must be UTF-8 text"),
        (("forget", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--user", "ann", "--settle-seconds", "-1"), "--settle-seconds"),
        (("forget", "--backend", "local", "--state-dir", "{dir}", "--tenant", "acme", "--user", "ann", "--settle-seconds", "inf"), "--settle-seconds"),
        (("tenant", "onboard", *REGION, "--bucket", "mem-bucket", "--tenant", "acme", "--dimension", "0", "--dry-run"), "must be 1-4096"),
        (("tenant", "onboard", *REGION, "--bucket", "mem-bucket", "--tenant", "acme", "--dimension", "4097"), "must be 1-4096"),
        (("tenant", "onboard", *REGION, "--bucket", "mem-bucket", "--tenant", "acme", "--dimension", "1.5"), "not a whole number"),
        (("doctor", *REGION, "--bucket", "mem-bucket", "--dimension", "0"), "must be 1-4096"),
    ],
)
def test_an_argument_error_is_a_usage_error_exit_2(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no agentcore.env or toolkit config of the checkout
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AGENT_SETTINGS_FILE"):
        monkeypatch.delenv(name, raising=False)
    code, err = run(capsys, *(a.replace("{dir}", str(tmp_path)) for a in argv))
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


BAD_BUCKET = ("--bucket", "Mem_Bucket")


@pytest.mark.parametrize(
    "argv",
    [
        ("retention", "sweep", *REGION, *BAD_BUCKET, "--tenant", "acme", "--ttl-days", "1"),
        ("forget", *REGION, *BAD_BUCKET, "--tenant", "acme", "--user", "ann"),
        ("vector-bucket", *REGION, *BAD_BUCKET, "--dry-run"),
        ("tenant", "onboard", *REGION, *BAD_BUCKET, "--tenant", "acme", "--dry-run"),
        ("tenant", "offboard", *REGION, *BAD_BUCKET, "--tenant", "acme"),
        ("tenant", "list", *REGION, *BAD_BUCKET),
        ("tvm-role", *REGION, *BAD_BUCKET, "--execution-role-arn", EXEC, "--dry-run"),
        (*AGENTCORE, "--tvm-role-arn", TVM, *BAD_BUCKET, "--outbox-bucket", "mem-outbox"),
        ("doctor", *REGION, *BAD_BUCKET),
    ],
)
def test_a_vector_bucket_name_s3_vectors_refuses_is_a_usage_error_of_every_command(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    """Names were checked only when an index was built, after the first AWS calls: ``retention
    sweep --bucket Mem_Bucket`` asked AWS for its index and exited 1."""
    err = usage_error(capsys, tmp_path, monkeypatch, *argv)
    assert "argument --bucket: invalid vector bucket name 'Mem_Bucket'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


BAD_OUTBOX = ("--outbox-bucket", "Mem_Bucket")


@pytest.mark.parametrize(
    "argv",
    [
        ("outbox", "list", *REGION, *BAD_OUTBOX),
        ("forget", *REGION, "--bucket", "mem-bucket", *BAD_OUTBOX, "--tenant", "acme", "--user", "ann"),
        ("retention", "sweep", *REGION, "--bucket", "mem-bucket", *BAD_OUTBOX, "--tenant", "acme", "--ttl-days", "1"),
        ("vector-bucket", *REGION, "--bucket", "mem-bucket", *BAD_OUTBOX, "--dry-run"),
        ("tvm-role", *REGION, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, *BAD_OUTBOX, "--dry-run"),
        (*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket", *BAD_OUTBOX),
        ("doctor", *REGION, "--bucket", "mem-bucket", *BAD_OUTBOX),
    ],
)
def test_an_outbox_bucket_name_s3_refuses_is_a_usage_error_of_every_command(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    """``--outbox-bucket Mem_Bucket`` went to AWS and exited 1 (or, where the app reads it as
    AGENT_OUTBOX_BUCKET, was taken for a missing bucket): refused at parsing as the app refuses it."""
    err = usage_error(capsys, tmp_path, monkeypatch, *argv)
    assert "argument --outbox-bucket: not an S3 bucket name: not 3-63 lower-case letters" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_doctor_refuses_a_settings_file_s_vector_bucket_name_before_any_aws_call(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_SETTINGS_FILE", raising=False)
    settings = tmp_path / "agentcore.env"
    settings.write_text("AGENT_AUTH_MODE=dev\nAGENT_BACKEND=s3vectors\nAGENT_TENANT_MODE=single\n"
                        "AGENT_SINGLE_TENANT_ID=acme\nAGENT_OUTBOX_BACKEND=local\nAGENT_VECTOR_BUCKET=Mem_Bucket\n")
    code, err = run(capsys, "doctor", *REGION, "--settings-file", str(settings))
    assert code == 1, err  # as the file's other values doctor refuses
    assert "AGENT_VECTOR_BUCKET is not a vector bucket name: 3-63 lowercase letters" in err


PASTED = '{"AGENT_MODEL_API_KEY": "sk-pasted-0123456789-very-secret"}'


@pytest.mark.parametrize(
    "argv",
    [
        (*AGENTCORE, "--tvm-role-arn", TVM, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox", "--secrets-id", PASTED),
        ("doctor", *REGION, "--bucket", "mem-bucket", "--secrets-id", PASTED),
    ],
)
def test_a_secret_value_given_as_secrets_id_is_a_usage_error_that_never_echoes_it(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    """A value pasted where the id goes was sent to Secrets Manager and quoted back (agentcore:
    '--secrets-id {...}: no Secrets Manager secret with that name or ARN'; doctor: its row 'secret {...}')."""
    err = usage_error(capsys, tmp_path, monkeypatch, *argv)
    assert "--secrets-id is not a secret id" in err
    assert "very-secret" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_a_request_botocore_refuses_is_one_line_naming_the_parameter(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's own report was printed as it is: 'Parameter validation failed:' and, on the
    next line, its check (for an S3 bucket name, two regular expressions). ``--outbox-bucket`` is
    checked at parsing now: that check is lifted to reach botocore's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("scripts.targets.s3_bucket", str)
    code, err = run(capsys, "outbox", "list", *REGION, "--outbox-bucket", "a b")
    assert code == 2, err
    assert err == "error: the AWS API refuses the value of parameter Bucket (invalid bucket name); nothing was sent: check the argument that sets it\n"


def test_each_parameter_and_limit_of_botocore_s_report_is_named_on_one_line(
    aws, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ParamValidationError

    import scripts.vectors

    def refuse(*_: object) -> None:
        raise ParamValidationError(
            report='Invalid length for parameter vectorBucketName, value: 1, valid min length: 3\n'
            'Missing required parameter in input: "indexName"\n'
            "Invalid type for parameter maxResults, value: hunter2, type: <class 'str'>, valid types: <class 'int'>"
        )

    monkeypatch.setattr(scripts.vectors, "require_bucket", refuse)
    code, err = run(capsys, "tenant", "list", *REGION, "--bucket", "mem-bucket")
    assert code == 2, err
    assert err == (
        "error: the AWS API refuses the value of parameter vectorBucketName, indexName, maxResults (invalid length, "
        "valid min length: 3; missing required; invalid type, valid types: <class 'int'>); nothing was sent: "
        "check the argument that sets it\n"
    )
    assert "hunter2" not in err  # the report quotes values


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({}, ("tenant", "list", "--region", "xx-fake-9", "--bucket", "mem-bucket")),
        ({"AWS_REGION": "xx-fake-9"}, ("tenant", "list", "--bucket", "mem-bucket")),
        ({"AWS_DEFAULT_REGION": "xx-fake-9"}, ("vector-bucket", "--bucket", "mem-bucket", "--dry-run")),
        ({"AWS_REGION": "xx-fake-9"}, ("forget", "--bucket", "mem-bucket", "--tenant", "acme", "--user", "ann")),
        ({}, ("doctor", "--region", "xx-fake-9", "--bucket", "mem-bucket")),
        ({"AGENT_REGION": "xx-fake-9"}, ("doctor", "--bucket", "mem-bucket")),
    ],
)
def test_a_region_not_of_aws_s_shape_is_a_usage_error(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: tuple[str, ...]
) -> None:
    """A made-up region was sent to AWS (s3vectors.xx-fake-9.api.aws: cannot connect, exit 1)."""
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AGENT_REGION", "AGENT_SETTINGS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert "'xx-fake-9' is not an AWS region" in err
    assert "Traceback" not in err


def test_a_request_botocore_refuses_inside_the_memory_library_is_a_usage_error_too(
    aws, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library turns botocore's refusal into its ValidationError (the cause kept): the CLI
    reported it as a run-time error, exit 1 ('list outbox tenants in a b: ParamValidationError').
    ``--outbox-bucket``'s own check is lifted to reach botocore's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("scripts.targets.s3_bucket", str)
    code, err = run(capsys, "outbox", "list", *REGION, "--outbox-bucket", "a b", "--outbox-prefix", "ob")
    assert code == 2, err
    assert err == "error: the AWS API refuses the value of parameter Bucket (invalid bucket name); nothing was sent: check the argument that sets it\n"
