"""Settings that survive redeploys and container-safe defaults (agent/settings.py, agent/services.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import agent.settings
from agent.services import check_dependencies
from agent.settings import Settings, SettingsError, load_settings
from auth.local_state import state_root

REPO = Path(__file__).resolve().parents[3]
COGNITO = {
    "AGENT_AUTH_MODE": "cognito",
    "AGENT_COGNITO_USER_POOL_ID": "us-east-1_pool",
    "AGENT_COGNITO_CLIENT_IDS": "client-1",
    "AGENT_BACKEND": "s3vectors",
    "AGENT_VECTOR_BUCKET": "vectors",
    "AGENT_OUTBOX_BUCKET": "outbox",
    "AGENT_TVM_ROLE_ARN": "arn:aws:iam::123456789012:role/tvm",
    "AGENT_EMBEDDER": "bedrock",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AGENT_") or name in ("DOCKER_CONTAINER", "XDG_STATE_HOME"):
            monkeypatch.delenv(name)


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Inside the toolkit's image: DOCKER_CONTAINER=1, the project root holding agentcore.env."""
    monkeypatch.setenv("DOCKER_CONTAINER", "1")
    monkeypatch.setattr(agent.settings, "PROJECT_ROOT", tmp_path)
    return tmp_path / "agentcore.env"


def _write(path: Path, values: dict[str, str]) -> None:
    path.write_text("# written by the setup CLI\n" + "".join(f"{k}={v}\n" for k, v in values.items()))


def test_the_settings_file_configures_the_container_and_the_environment_overrides_it(
    container: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(container, COGNITO)
    settings = load_settings()  # no AGENT_* in the environment: a launch without --env
    assert settings.auth_mode == "cognito" and settings.cognito_client_ids == ("client-1",)
    assert settings.backend == "s3vectors" and settings.tvm_role_arn == COGNITO["AGENT_TVM_ROLE_ARN"]
    monkeypatch.setenv("AGENT_COGNITO_CLIENT_IDS", "client-2")
    assert load_settings().cognito_client_ids == ("client-2",)


def test_the_settings_file_refuses_secrets_and_unknown_names(container: Path) -> None:
    _write(container, {**COGNITO, "AGENT_MODEL_API_KEY": "sk-live-123"})
    with pytest.raises(SettingsError, match="AGENT_MODEL_API_KEY is a secret") as info:
        load_settings()
    assert "sk-live-123" not in str(info.value)
    _write(container, {**COGNITO, "AGENT_COGNITO_CLIENT_ID": "typo"})
    with pytest.raises(SettingsError, match="unknown setting AGENT_COGNITO_CLIENT_ID"):
        load_settings()


def test_outside_the_container_the_file_is_read_only_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent.settings, "PROJECT_ROOT", tmp_path)
    _write(tmp_path / "agentcore.env", COGNITO)
    with pytest.raises(SettingsError, match="no authentication configured"):
        load_settings()  # a developer's local run is not configured by the deployment's file
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(tmp_path / "agentcore.env"))
    assert load_settings().auth_mode == "cognito"
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(tmp_path / "absent.env"))
    with pytest.raises(SettingsError, match="names a missing file"):
        load_settings()


def test_the_files_region_is_not_overridden_by_the_aws_region_fallbacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AGENT_REGION "falls back to AWS_REGION / AWS_DEFAULT_REGION when unset": set in the settings
    file, it is the region (a shell with AWS_REGION, e.g. CloudShell or CI, would otherwise send
    every call, and the Cognito JWKS lookup, to another region than doctor checks); AGENT_REGION
    in the environment still overrides the file, and without it anywhere the fallbacks apply."""
    settings_file = tmp_path / "local.env"
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    _write(settings_file, {**COGNITO, "AGENT_REGION": "us-west-2"})
    assert load_settings().region == "us-west-2"
    monkeypatch.setenv("AGENT_REGION", "ap-south-1")
    assert load_settings().region == "ap-south-1"
    monkeypatch.delenv("AGENT_REGION")
    _write(settings_file, COGNITO)
    assert load_settings().region == "eu-west-1"


def test_default_state_dir_is_outside_the_source_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    local = load_settings().state_dir
    assert local == state_root() and not local.resolve().is_relative_to(REPO)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_settings().state_dir == tmp_path / "xdg" / "agent-memory"


def test_in_the_container_state_goes_to_tmp(container: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    _write(container, COGNITO)
    assert load_settings().state_dir == Path(tempfile.gettempdir()) / "agent-memory"
    monkeypatch.setattr(tempfile, "tempdir", str(container.parent))  # what $TMPDIR selects
    assert load_settings().state_dir == container.parent / "agent-memory"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"AGENT_AUTH_MODE": "dev"}, "AGENT_UNSAFE_ALLOW_DEV_AUTH_IN_CONTAINER"),
        ({"AGENT_BACKEND": "local"}, "AGENT_UNSAFE_ALLOW_LOCAL_BACKEND_IN_CONTAINER"),
        # S3 Vectors with the outbox on the microVM's disk: accepted ends lost with the session
        ({"AGENT_OUTBOX_BACKEND": "local"}, "AGENT_UNSAFE_ALLOW_LOCAL_BACKEND_IN_CONTAINER"),
    ],
)
def test_container_refuses_dev_auth_and_the_local_backend_unless_explicitly_unsafe(
    container: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], named: str
) -> None:
    _write(container, {**COGNITO, **change})
    with pytest.raises(SettingsError, match=named):
        load_settings()
    monkeypatch.setenv(named, "true")
    assert load_settings()


def test_the_same_settings_are_fine_outside_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert load_settings().backend == "local"


def test_idle_timer_must_stay_comfortably_below_the_runtime_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert load_settings().runtime_idle_timeout_seconds == 900  # AgentCore's default
    monkeypatch.setenv("AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS", "614")  # 600 + 15 + 60 > 614
    with pytest.raises(SettingsError, match="runtime would end sessions before the app summarizes"):
        load_settings()
    monkeypatch.setenv("AGENT_IDLE_TIMEOUT_SECONDS", "500")
    assert load_settings().idle_timeout_seconds == 500


def test_a_missing_optional_package_stops_start_up_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wordllama" else real(name, *a))
    local = Settings(auth_mode="dev", embedder="local")
    with pytest.raises(SettingsError, match="AGENT_EMBEDDER=local needs the 'wordllama' package"):
        check_dependencies(local)
    check_dependencies(Settings(auth_mode="dev", embedder="bedrock"))
    check_dependencies(Settings(auth_mode="dev", embedder="local", memory_enabled=False))


def test_a_copy_of_env_example_named_by_agent_settings_file_configures_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.env.example lists every setting, the secrets with empty values: a copy of it (auth filled
    in) is a valid settings file; only a secret that has a value is refused."""
    copy = tmp_path / "my.env"
    copy.write_text((REPO / ".env.example").read_text().replace("\nAGENT_AUTH_MODE=\n", "\nAGENT_AUTH_MODE=dev\n"))
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(copy))
    settings = load_settings()
    assert settings.auth_mode == "dev" and settings.model_api_key is None and settings.log_hash_key is None
    copy.write_text(copy.read_text().replace("\nAGENT_LOG_HASH_KEY=\n", "\nAGENT_LOG_HASH_KEY=k3y\n"))
    with pytest.raises(SettingsError, match="AGENT_LOG_HASH_KEY is a secret"):
        load_settings()
