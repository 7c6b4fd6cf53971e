"""Settings: parsed from AGENT_* variables, refuse to start without auth, .env.example in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import Settings, SettingsError, load_settings

ENV_EXAMPLE = Path(__file__).resolve().parents[3] / ".env.example"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AGENT_") or name == "AWS_REGION":
            monkeypatch.delenv(name)


def _example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_refuses_to_start_without_auth() -> None:
    with pytest.raises(SettingsError, match="no authentication configured"):
        load_settings()


def test_cognito_needs_pool_and_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "cognito")
    with pytest.raises(SettingsError, match="AGENT_COGNITO_USER_POOL_ID"):
        load_settings()
    monkeypatch.setenv("AGENT_COGNITO_USER_POOL_ID", "us-east-1_abc")
    monkeypatch.setenv("AGENT_COGNITO_CLIENT_IDS", " c1 ,c2,")
    settings = load_settings()
    assert settings.cognito_client_ids == ("c1", "c2")
    assert settings.resolved_cognito_region == "us-east-1"


def test_unknown_auth_mode_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "none")
    with pytest.raises(SettingsError, match="auth_mode"):
        load_settings()


def test_errors_never_echo_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODEL_API_KEY", "sk-very-secret")
    monkeypatch.setenv("AGENT_TOP_K", "many")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "top_k" in str(info.value) and "sk-very-secret" not in str(info.value)


def test_idle_timeout_must_beat_agentcore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_IDLE_TIMEOUT_SECONDS", "900")
    with pytest.raises(SettingsError, match="AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS"):
        load_settings()


@pytest.mark.parametrize("claim", ["email", "phone_number", "custom:tenantName", "cognito:groups"])
def test_a_user_claim_a_user_can_change_is_refused(monkeypatch: pytest.MonkeyPatch, claim: str) -> None:
    """Memories are keyed by the user claim: with ``email`` (which the app client lets a user
    write) a user who sets another's address reads that user's memories."""
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_USER_CLAIM", claim)
    with pytest.raises(SettingsError, match="AGENT_USER_CLAIM"):
        load_settings()
    for kept in ("sub", "cognito:username", "username"):
        monkeypatch.setenv("AGENT_USER_CLAIM", kept)
        assert load_settings().user_claim == kept


def test_s3vectors_needs_bucket_and_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_BACKEND", "s3vectors")
    with pytest.raises(SettingsError, match="AGENT_VECTOR_BUCKET"):
        load_settings()
    monkeypatch.setenv("AGENT_VECTOR_BUCKET", "mem-vectors")
    with pytest.raises(SettingsError, match="AGENT_TVM_ROLE_ARN"):
        load_settings()


def test_dev_defaults_and_derived_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AGENT_MIN_SCORE", "")  # empty = unset
    settings = load_settings()
    assert settings.resolved_dev_issuer_dir == tmp_path / "dev-issuer"
    assert settings.min_score is None and settings.idle_timeout_seconds < 900


def test_env_example_lists_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    example = _example()
    expected = {f"AGENT_{name.upper()}" for name in Settings.model_fields}
    assert set(example) == expected
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    defaults = load_settings()
    for name in Settings.model_fields:
        written = example[f"AGENT_{name.upper()}"]
        value = getattr(defaults, name)
        if name in ("auth_mode", "state_dir"):  # required / computed (user state dir or /tmp)
            assert written == ""
            continue
        if value is None or value == ():
            assert written == "", name
        elif isinstance(value, tuple):
            assert written == ",".join(value), name
        elif isinstance(value, bool):
            assert written == str(value).lower(), name
        else:
            assert written == str(value), name


def test_tenant_claim_singular_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert load_settings().tenant_claims == ("custom:tenantId", "tenantId")
    monkeypatch.setenv("AGENT_TENANT_CLAIM", "tenantId")
    assert load_settings().tenant_claims == ("tenantId",)


def test_the_s3_outbox_comes_with_s3vectors_and_needs_its_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AGENT_AUTH_MODE", "dev"), ("AGENT_BACKEND", "s3vectors"),
                        ("AGENT_VECTOR_BUCKET", "mem-vectors"), ("AGENT_TVM_ROLE_ARN", "arn:aws:iam::1:role/t")):
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="AGENT_OUTBOX_BUCKET"):
        load_settings()
    monkeypatch.setenv("AGENT_OUTBOX_BUCKET", "outbox-bucket")
    settings = load_settings()
    assert settings.resolved_outbox_backend == "s3"
    assert settings.resolved_orphan_after_seconds == settings.idle_timeout_seconds + settings.reap_interval_seconds + 60
    monkeypatch.setenv("AGENT_BACKEND", "local")
    local = load_settings()
    assert local.resolved_outbox_backend == "local" and local.resolved_orphan_after_seconds == 0


def test_busy_time_must_stay_below_agentcore_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_SUMMARY_MAX_BUSY_SECONDS", "900")
    with pytest.raises(SettingsError, match="AGENT_SUMMARY_MAX_BUSY_SECONDS"):
        load_settings()


def test_busy_time_must_stay_below_the_configured_runtime_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked against AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS, not AgentCore's default 900 s (a
    runtime configured with --idle-timeout 600 accepted 700 s of busy time); unset, the bound
    fits the configured timeout."""
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert load_settings().resolved_summary_max_busy_seconds == 300  # under the default 900 s
    monkeypatch.setenv("AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS", "300")
    monkeypatch.setenv("AGENT_IDLE_TIMEOUT_SECONDS", "225")
    assert load_settings().resolved_summary_max_busy_seconds == 240  # 300 s less the 60 s margin
    monkeypatch.setenv("AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("AGENT_IDLE_TIMEOUT_SECONDS", "500")
    monkeypatch.setenv("AGENT_SUMMARY_MAX_BUSY_SECONDS", "599")
    assert load_settings().resolved_summary_max_busy_seconds == 599
    monkeypatch.setenv("AGENT_SUMMARY_MAX_BUSY_SECONDS", "700")
    with pytest.raises(SettingsError, match=r"AGENT_SUMMARY_MAX_BUSY_SECONDS \(700\).*AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS \(600"):
        load_settings()
    monkeypatch.setenv("AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS", "3600")
    monkeypatch.setenv("AGENT_SUMMARY_MAX_BUSY_SECONDS", "1200")  # a longer runtime timeout allows more
    assert load_settings().resolved_summary_max_busy_seconds == 1200


@pytest.mark.parametrize("budget", ["inf", "1e12"])
def test_a_shutdown_budget_no_wait_can_take_is_refused(monkeypatch: pytest.MonkeyPatch, budget: str) -> None:
    """Every wait of the shutdown is a share of the budget: past ``threading.TIMEOUT_MAX`` (about
    292 years) a lock or join raised OverflowError, so SIGTERM left open conversations unended
    (only their checkpoints, adopted after the orphan delay) and skipped the telemetry flush."""
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_SHUTDOWN_GRACE_SECONDS", budget)
    with pytest.raises(SettingsError, match="shutdown_grace_seconds"):
        load_settings()
    monkeypatch.setenv("AGENT_SHUTDOWN_GRACE_SECONDS", "3600")
    assert load_settings().shutdown_grace_seconds == 3600


@pytest.mark.parametrize("name", ["agent_region", "aws_region", "agent_model_id", "agent_settings_file"])
def test_a_setting_named_in_the_environment_not_in_upper_case_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """pydantic-settings matched such a name (any case), where the app's own precedence checks the
    upper-case one: ``agent_region`` lost to the settings file's AGENT_REGION, which the
    environment overrides; ``agent_settings_file`` was ignored."""
    path = tmp_path / "agentcore.env"
    path.write_text("AGENT_AUTH_MODE=dev\nAGENT_REGION=eu-west-1\n")
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(path))
    monkeypatch.setenv(name, "us-west-2")
    with pytest.raises(SettingsError, match=f"{name} is not upper case.*{name.upper()}") as info:
        load_settings()
    assert "setting names are upper case only; rename it" in str(info.value)  # it once read "are, rename"


@pytest.mark.parametrize("name", ["agent_region", "Agent_Memory_Ttl_Days", "aws_region"])
def test_a_setting_named_in_the_settings_file_not_in_upper_case_is_refused_naming_the_upper_case_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The file's names are matched in upper case only: ``agent_region`` was refused as an
    "unknown setting", which sent the reader looking for a typo rather than the case."""
    path = tmp_path / "agentcore.env"
    path.write_text(f"AGENT_AUTH_MODE=dev\n{name}=eu-west-1\n")
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(path))
    with pytest.raises(SettingsError, match=f"agentcore.env: {name} is not upper case.*rename it {name.upper()}"):
        load_settings()


def test_the_file_only_reading_ignores_the_environment_s_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agentcore.env"
    path.write_text("AGENT_AUTH_MODE=dev\nAGENT_REGION=eu-west-1\n")
    monkeypatch.setenv("agent_region", "us-west-2")
    assert load_settings(path, file_only=True).region == "eu-west-1"


@pytest.mark.parametrize(
    ("name", "shown"),
    [("AGENT_REGION", "AGENT_REGION"), ("AWS_REGION", "AGENT_REGION (else AWS_REGION"),
     ("AGENT_COGNITO_REGION", "AGENT_COGNITO_REGION")],
)
def test_a_region_not_of_aws_shape_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, shown: str
) -> None:
    """``xx-fake-9`` passed validation and failed at the first AWS call (the user pool's keys,
    S3 Vectors): refused at start-up, naming the variable, not the value."""
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv(name, "xx-fake-9")
    with pytest.raises(SettingsError, match=r"is not an AWS region") as info:
        load_settings()
    assert shown in str(info.value) and "xx-fake-9" not in str(info.value)
    monkeypatch.setenv(name, "eu-west-3")
    load_settings()


@pytest.mark.parametrize("bucket", ["Mem_Bucket", "xn--outbox", "outbox-s3alias", "192.168.5.4"])
def test_an_outbox_bucket_name_s3_refuses_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    """``Mem_Bucket`` passed validation and the app failed on it at AWS (exit 1, or a missing
    bucket): refused here, as the setup CLIs refuse it as ``--outbox-bucket``, naming the variable."""
    for name, value in (("AGENT_AUTH_MODE", "dev"), ("AGENT_BACKEND", "s3vectors"), ("AGENT_VECTOR_BUCKET", "mem-vectors"),
                        ("AGENT_TVM_ROLE_ARN", "arn:aws:iam::1:role/t"), ("AGENT_OUTBOX_BUCKET", bucket)):
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="AGENT_OUTBOX_BUCKET is not an S3 bucket name") as info:
        load_settings()
    assert bucket not in str(info.value)


@pytest.mark.parametrize("backend", ["s3vectors", "local"])
@pytest.mark.parametrize("bucket", ["ab", "b" * 64, "Mem_Bucket", "mem.vectors", "-mem", "mem-"])
def test_a_vector_bucket_name_s3_vectors_refuses_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, backend: str, bucket: str
) -> None:
    """``Mem_Bucket`` passed validation and was refused only when the index was built: refused
    here, by the check ``--bucket`` gets at parsing, naming the variable, not the value."""
    for name, value in (("AGENT_AUTH_MODE", "dev"), ("AGENT_BACKEND", backend), ("AGENT_VECTOR_BUCKET", bucket),
                        ("AGENT_TVM_ROLE_ARN", "arn:aws:iam::1:role/t"), ("AGENT_OUTBOX_BUCKET", "outbox-bucket")):
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="AGENT_VECTOR_BUCKET is not a vector bucket name: 3-63 lowercase") as info:
        load_settings()
    assert bucket not in str(info.value)
