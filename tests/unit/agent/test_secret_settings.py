"""AGENT_SECRETS_ID: the secret settings reach the app from Secrets Manager (moto), the environment
wins, and every way the secret can be wrong stops start-up naming the secret, never a value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

import agent.secret_settings
import memory.aws
from agent.settings import SettingsError, load_settings, secret_settings

HASH_KEY = "hash-key-0123456789-very-secret"
API_KEY = "sk-api-key-0123456789-very-secret"


@pytest.fixture
def sm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto account's Secrets Manager in us-east-1 (the shared boto3 session reset)."""
    monkeypatch.setattr(memory.aws, "_default_session", None)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_id: str) -> None:
    """A deployment's settings file naming the secret, as the runtime reads it."""
    path = tmp_path / "agentcore.env"
    path.write_text(f"AGENT_AUTH_MODE=dev\nAGENT_SECRETS_ID={secret_id}\n")
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(path))


def _refusal(secret_id: str, *values: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert f"AGENT_SECRETS_ID {secret_id}" in message
    assert not any(value in message for value in values)
    return message


def test_the_secret_settings_are_the_secret_str_fields() -> None:
    assert secret_settings() == {"AGENT_LOG_HASH_KEY": "log_hash_key", "AGENT_MODEL_API_KEY": "model_api_key"}


def test_values_of_the_secret_named_in_the_settings_file_reach_the_settings(sm, tmp_path, monkeypatch) -> None:
    secret = {"AGENT_LOG_HASH_KEY": HASH_KEY, "AGENT_MODEL_API_KEY": API_KEY}
    sm.create_secret(Name="agent/prod", SecretString=json.dumps(secret))
    _deployed(tmp_path, monkeypatch, "agent/prod")
    settings = load_settings()
    assert settings.secrets_id == "agent/prod"
    assert settings.log_hash_key is not None and settings.log_hash_key.get_secret_value() == HASH_KEY
    assert settings.model_api_key is not None and settings.model_api_key.get_secret_value() == API_KEY
    assert HASH_KEY not in repr(settings) and API_KEY not in repr(settings)


def test_the_environment_wins_over_the_secret(sm, tmp_path, monkeypatch) -> None:
    secret = {"AGENT_LOG_HASH_KEY": HASH_KEY, "AGENT_MODEL_API_KEY": API_KEY}
    sm.create_secret(Name="agent/prod", SecretString=json.dumps(secret))
    _deployed(tmp_path, monkeypatch, "agent/prod")
    monkeypatch.setenv("AGENT_LOG_HASH_KEY", "from-the-environment")
    settings = load_settings()
    assert settings.log_hash_key is not None and settings.log_hash_key.get_secret_value() == "from-the-environment"
    assert settings.model_api_key is not None and settings.model_api_key.get_secret_value() == API_KEY


@pytest.mark.parametrize("name", ["agent_log_hash_key", "Agent_Log_Hash_Key"])
def test_a_secret_setting_named_in_the_environment_not_in_upper_case_is_refused_not_lost_to_the_secret(
    sm, tmp_path, monkeypatch, name: str
) -> None:
    """pydantic-settings reads environment names in any case, but the secret's values were kept
    unless the upper-case name was set: ``agent_log_hash_key`` lost to the secret, silently."""
    sm.create_secret(Name="agent/prod", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}))
    _deployed(tmp_path, monkeypatch, "agent/prod")
    monkeypatch.setenv(name, "from-the-environment-very-secret")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert f"{name} is not upper case" in str(info.value) and "AGENT_LOG_HASH_KEY" in str(info.value)
    assert "very-secret" not in str(info.value)


def test_a_secret_arn_is_read_in_its_own_region(sm, tmp_path, monkeypatch) -> None:
    other = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = other.create_secret(Name="agent/eu", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}))["ARN"]
    _deployed(tmp_path, monkeypatch, arn)  # the app's region stays us-east-1, where no such secret is
    settings = load_settings()
    assert settings.log_hash_key is not None and settings.log_hash_key.get_secret_value() == HASH_KEY


def test_without_a_secrets_id_nothing_is_read(monkeypatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("no secret is named: Secrets Manager must not be called")

    monkeypatch.setattr(agent.secret_settings, "make_client", refuse)
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert load_settings().log_hash_key is None


def test_doctor_and_agentcore_parse_the_file_without_reading_the_secret(tmp_path, monkeypatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the secret is checked on its own, not read by the loader")

    monkeypatch.setattr(agent.secret_settings, "make_client", refuse)
    _deployed(tmp_path, monkeypatch, "agent/prod")
    path = tmp_path / "agentcore.env"
    assert load_settings(path, read_secret=False).secrets_id == "agent/prod"
    assert load_settings(path, file_only=True).secrets_id == "agent/prod"


def test_a_missing_secret_stops_start_up(sm, tmp_path, monkeypatch) -> None:
    _deployed(tmp_path, monkeypatch, "agent/missing")
    assert "no such secret" in _refusal("agent/missing")


def test_a_secret_scheduled_for_deletion_stops_start_up_saying_so(sm, tmp_path, monkeypatch) -> None:
    """GetSecretValue answers InvalidRequestException for a secret scheduled for deletion (the
    service model's first cause; moto answers it too), while DescribeSecret still finds it."""
    arn = sm.create_secret(Name="agent/old", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}))["ARN"]
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    _deployed(tmp_path, monkeypatch, arn)
    message = _refusal(arn, HASH_KEY)
    assert "scheduled for deletion" in message and "restore-secret" in message


def test_a_secret_without_a_value_stops_start_up_saying_so_not_that_it_is_missing(sm, tmp_path, monkeypatch) -> None:
    """A secret created without a value has no AWSCURRENT version: GetSecretValue answers
    ResourceNotFoundException "...can't find the specified secret value for staging label:
    AWSCURRENT" (the service's words, which moto repeats), though the secret exists."""
    sm.create_secret(Name="agent/empty")
    _deployed(tmp_path, monkeypatch, "agent/empty")
    message = _refusal("agent/empty")
    assert "no such secret" not in message
    assert "has no value" in message and "put-secret-value" in message


@pytest.mark.parametrize(
    ("secret_string", "expected"),
    [
        ("AGENT_LOG_HASH_KEY=" + HASH_KEY, "is not JSON"),
        (json.dumps([HASH_KEY]), "must be a JSON object of settings, not a list"),
        (json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY, "AGENT_TOP_K": "5"}), "AGENT_TOP_K is not a secret setting"),
        (json.dumps({HASH_KEY: API_KEY}), "a key that is not a setting name is not a secret setting"),
        (json.dumps({"AGENT_LOG_HASH_KEY": 12345678901234567890}), "AGENT_LOG_HASH_KEY must be a non-empty string"),
        (json.dumps({"AGENT_LOG_HASH_KEY": ""}), "AGENT_LOG_HASH_KEY must be a non-empty string"),
        # Nesting deeper than Python's recursion limit (well within the 64 KB a secret may hold):
        # json raises RecursionError, not ValueError, which ended start-up with a traceback.
        ("[" * 20000 + "]" * 20000, "is not JSON"),
    ],
)
def test_a_secret_that_is_not_a_json_object_of_secret_settings_stops_start_up(
    sm, tmp_path, monkeypatch, secret_string: str, expected: str
) -> None:
    sm.create_secret(Name="agent/bad", SecretString=secret_string)
    _deployed(tmp_path, monkeypatch, "agent/bad")
    message = _refusal("agent/bad", HASH_KEY, API_KEY, "12345678901234567890")
    assert expected in message
    if "is not a secret setting" in expected:  # the message says which keys a secret may have
        assert message.endswith("(allowed keys: AGENT_LOG_HASH_KEY, AGENT_MODEL_API_KEY)")


@pytest.mark.parametrize("value", [API_KEY + "\n", " " + API_KEY, API_KEY[:5] + "\t" + API_KEY[5:]])
def test_a_value_with_a_control_character_or_surrounding_space_stops_start_up(
    sm, tmp_path, monkeypatch, value: str
) -> None:
    """A key pasted with its newline: an OpenAI-compatible model's client puts it in the
    ``Authorization`` header, which h11 refuses with the header, key included, in its message
    (then every turn is a 503 and Strands' span records that exception chain)."""
    sm.create_secret(Name="agent/pasted", SecretString=json.dumps({"AGENT_MODEL_API_KEY": value}))
    _deployed(tmp_path, monkeypatch, "agent/pasted")
    message = _refusal("agent/pasted", API_KEY[5:], API_KEY[:5] + "\t")
    assert "AGENT_MODEL_API_KEY" in message and "a control character or whitespace at an end" in message


def test_a_binary_secret_stops_start_up(sm, tmp_path, monkeypatch) -> None:
    sm.create_secret(Name="agent/binary", SecretBinary=HASH_KEY.encode())
    _deployed(tmp_path, monkeypatch, "agent/binary")
    assert "no SecretString" in _refusal("agent/binary", HASH_KEY)


@set_initial_no_auth_action_count(4)
def test_a_role_that_may_not_read_the_secret_stops_start_up(sm, tmp_path, monkeypatch) -> None:
    """moto enforces IAM by action here: a principal without secretsmanager:GetSecretValue."""
    sm.create_secret(Name="agent/prod", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}))
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="runtime")
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="runtime", PolicyName="no-secrets", PolicyDocument=json.dumps(allow))
    key = iam.create_access_key(UserName="runtime")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(memory.aws, "_default_session", None)
    _deployed(tmp_path, monkeypatch, "agent/prod")
    message = _refusal("agent/prod", HASH_KEY, key["SecretAccessKey"])
    assert "access denied" in message and "secretsmanager:GetSecretValue" in message


def _stubbed(monkeypatch: pytest.MonkeyPatch, code: str, message: str) -> Stubber:
    """Secrets Manager answering GetSecretValue with an error (moto has no KMS key policies)."""
    client = boto3.client("secretsmanager", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("get_secret_value", service_error_code=code, service_message=message, http_status_code=400)
    stubber.activate()
    monkeypatch.setattr(agent.secret_settings, "make_client", lambda *_, **__: client)
    return stubber


@pytest.mark.parametrize(
    ("code", "message"),
    [
        # The service's answers when the role may not use the secret's customer managed key, and
        # when KMS cannot decrypt with it (botocore's secretsmanager model: DecryptionFailure).
        ("AccessDeniedException", "Access to KMS is not allowed"),
        ("DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key."),
    ],
)
def test_a_kms_refusal_stops_start_up_naming_kms_decrypt(tmp_path, monkeypatch, code: str, message: str) -> None:
    stubber = _stubbed(monkeypatch, code, message)
    _deployed(tmp_path, monkeypatch, "agent/cmk")
    assert "kms:Decrypt" in _refusal("agent/cmk")
    stubber.assert_no_pending_responses()


def test_the_app_exits_2_with_the_message(sm, tmp_path, monkeypatch, capsys) -> None:
    from agent.app import main

    sm.create_secret(Name="agent/bad", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY, "X": API_KEY}))
    _deployed(tmp_path, monkeypatch, "agent/bad")
    assert main() == 2
    err = capsys.readouterr().err
    assert "AGENT_SECRETS_ID agent/bad" in err and HASH_KEY not in err and API_KEY not in err


def test_a_secret_id_longer_than_the_api_takes_is_an_invalid_id_naming_the_limit_not_the_value(
    sm, tmp_path, monkeypatch, capsys
) -> None:
    from agent.app import main

    pasted = json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}) * 60  # a value pasted where the id goes
    assert len(pasted) > 2048
    _deployed(tmp_path, monkeypatch, pasted)
    assert main() == 2
    err = capsys.readouterr().err
    assert "AGENT_SECRETS_ID is not a secret id" in err and "1-2048 characters" in err
    assert HASH_KEY not in err and "cannot reach" not in err and "no such secret" not in err


def test_a_secret_id_botocore_refuses_is_an_invalid_id_not_an_unreachable_service(sm, tmp_path, monkeypatch) -> None:
    from botocore.exceptions import ParamValidationError

    def refuse(**_: Any) -> None:
        raise ParamValidationError(report="Invalid length for parameter SecretId")

    client = boto3.client("secretsmanager", region_name="us-east-1")
    monkeypatch.setattr(client, "get_secret_value", refuse)
    monkeypatch.setattr(agent.secret_settings, "make_client", lambda *a, **kw: client)
    _deployed(tmp_path, monkeypatch, "agent/prod")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "AGENT_SECRETS_ID is not a secret id" in str(info.value) and "cannot reach" not in str(info.value)


def test_botocore_debug_dumps_of_the_secret_are_redacted_by_the_log_formatter(sm) -> None:
    """The app reads the secret before it configures logging; with botocore at DEBUG anyway
    (AGENT_UNSAFE_LOG_THIRD_PARTY), its response-body dump holds the value: the formatter and
    the filter of the OpenTelemetry handler drop it."""
    import io
    import logging

    from agent.log_format import KeyValueFormatter, RedactingFilter

    sm.create_secret(Name="agent/prod", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY}))
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    formatted = io.StringIO()
    to_text = logging.StreamHandler(formatted)
    to_text.setFormatter(KeyValueFormatter("%(name)s %(message)s"))
    botocore_log = logging.getLogger("botocore")
    level = botocore_log.level
    botocore_log.setLevel(logging.DEBUG)
    botocore_log.addHandler(collect)
    botocore_log.addHandler(to_text)
    try:
        agent.secret_settings.read_secret_settings("agent/prod", region="us-east-1", allowed={"AGENT_LOG_HASH_KEY"})
    finally:
        botocore_log.removeHandler(collect)
        botocore_log.removeHandler(to_text)
        botocore_log.setLevel(level)
    raw = [r for r in records if HASH_KEY in r.getMessage()]
    assert raw, "botocore no longer dumps the response body at DEBUG: nothing to redact"
    assert HASH_KEY not in formatted.getvalue() and "SecretString: <redacted-credential>" in formatted.getvalue()
    for record in raw:
        RedactingFilter().filter(record)
        assert HASH_KEY not in record.getMessage()


def test_a_malformed_region_stops_start_up_before_the_secret_is_read(sm, tmp_path, monkeypatch, capsys) -> None:
    """The secret is read in the app's region before the settings are validated: a region not of
    AWS's shape (``us_east_1``, which botocore refuses; ``xx-fake-9``, which it accepts and only
    the call fails on) is refused first, naming its variable, with the same exit 2 as without a
    secret; no client is built in it."""
    from agent.app import main

    def no_read(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("the secret was read in a malformed region")

    monkeypatch.setattr("agent.settings.read_secret_settings", no_read)
    _deployed(tmp_path, monkeypatch, "agent/prod")
    for region in ("us_east_1", "xx-fake-9"):
        monkeypatch.setenv("AGENT_REGION", region)
        assert main() == 2
        err = capsys.readouterr().err
        assert "AGENT_REGION is not an AWS region" in err and "AGENT_SECRETS_ID" in err and region not in err


def test_without_aws_credentials_start_up_says_so(tmp_path, monkeypatch, capsys) -> None:
    """AGENT_SECRETS_ID in a settings file run locally (``python -m agent``) without credentials:
    botocore's NoCredentialsError is no network fault, and the message says what to do."""
    from agent.app import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(memory.aws, "_default_session", None)
    _deployed(tmp_path, monkeypatch, "agent/prod")
    assert main() == 2
    err = capsys.readouterr().err
    assert "AGENT_SECRETS_ID agent/prod: no AWS credentials" in err and "cannot reach" not in err


def test_a_secret_value_pasted_as_the_id_is_an_invalid_id_never_echoed(sm, tmp_path, monkeypatch, capsys) -> None:
    """The usual paste is short (one key, well under 2,048 characters): it was sent to Secrets
    Manager as an id and the start-up error quoted it ('AGENT_SECRETS_ID {...}: no such secret')."""
    from agent.app import main

    pasted = json.dumps({"AGENT_LOG_HASH_KEY": HASH_KEY})
    _deployed(tmp_path, monkeypatch, pasted)
    assert main() == 2
    err = capsys.readouterr().err
    assert "AGENT_SECRETS_ID is not a secret id" in err and "no such secret" not in err
    assert HASH_KEY not in err
