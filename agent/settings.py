"""The app's configuration: one typed object parsed once from ``AGENT_*`` settings.

Sources, highest priority first: environment variables, then the deployment's settings file
(``agentcore.env`` at the project root, dotenv format, written by ``python -m scripts
agentcore`` and uploaded with the source, so a redeploy without ``--env`` flags keeps every
setting), then the defaults below. The file is read inside the runtime container (or wherever
``AGENT_SETTINGS_FILE`` points); it may not hold secrets (``AGENT_MODEL_API_KEY``,
``AGENT_LOG_HASH_KEY``) nor unknown ``AGENT_*`` names. A deployment's secrets come from the
AWS Secrets Manager secret that ``AGENT_SECRETS_ID`` names (``agent.secret_settings``), read
once before the settings are validated; a secret set in the environment wins over the secret's.

Inside the runtime container (``auth.local_state.in_runtime_container``) the app refuses what
cannot work there: dev auth (unless ``AGENT_UNSAFE_ALLOW_DEV_AUTH_IN_CONTAINER=true``) and the
local backend, whose files die with the microVM (unless
``AGENT_UNSAFE_ALLOW_LOCAL_BACKEND_IN_CONTAINER=true``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from agent.secret_settings import SECRETS_ID_ENV, SecretSettingsError, read_secret_settings
from auth.local_state import in_runtime_container, state_root
from auth.verifier import USER_CLAIMS
from memory.aws import is_region, s3_bucket_name_problem
from memory.index.limits import bucket_name_problem
from memory.plugin.deadline import DEFAULT_RETRIEVAL_TIMEOUT_SECONDS

#: AgentCore Runtime's default idle session timeout (``--idle-timeout``, 60-28,800 s).
AGENTCORE_IDLE_TIMEOUT_SECONDS = 15 * 60
#: Time the app keeps between its idle timer (plus one reaper tick) and the runtime's idle
#: timeout: ending a session writes the outbox and registers the summary task (HealthyBusy).
IDLE_MARGIN_SECONDS = 60.0
#: AGENT_SUMMARY_MAX_BUSY_SECONDS' default under the runtime's default idle timeout.
SUMMARY_MAX_BUSY_SECONDS = 300.0
#: AGENT_SHUTDOWN_GRACE_SECONDS' default, under AgentCore's 15 s termination window.
SHUTDOWN_BUDGET_SECONDS = 10.0
#: The deployment's settings file, at the project root (uploaded with the source).
SETTINGS_FILE_NAME = "agentcore.env"
#: AGENT_OUTBOX_PREFIX: one key segment (the setup CLIs check ``--outbox-prefix`` against it too).
OUTBOX_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE_ENV = "AGENT_SETTINGS_FILE"

CommaList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """The environment does not describe a runnable app (e.g. no authentication configured)."""


#: Where the app's region comes from, first set wins (the settings file's AGENT_REGION second).
REGION_SOURCES = "AGENT_REGION (else AWS_REGION, else AWS_DEFAULT_REGION)"


def not_a_region(variable: str) -> str:
    """The start-up error for a region not of AWS's shape (``memory.aws.is_region``), naming
    ``variable`` but not the value: refused before any AWS call, which would fail on it."""
    return f"{variable} is not an AWS region (such as us-east-1 or eu-west-3)"


class Settings(BaseSettings):
    """Every knob of the app. Environment variable = ``AGENT_`` + field name in upper case."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    # --- server
    host: str | None = None  # None: the SDK picks 127.0.0.1 locally, 0.0.0.0 in a container
    port: int = Field(8080, ge=0, le=65535)  # 0: a free port, printed at start-up (tests, dev)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Third-party loggers (botocore, strands...) follow log_level too: logs memory text and prompts.
    unsafe_log_third_party: bool = False
    # Key of the HMAC that pseudonymises user ids in logs; unset: a random key per process.
    log_hash_key: SecretStr | None = None
    # ARN or name of a Secrets Manager secret holding the secret settings (agent.secret_settings).
    secrets_id: str | None = None
    otel_console: bool = False  # print spans and metrics on stdout (agent.observability)
    otel_capture_content: bool = False  # let Strands' spans carry prompts, messages, tool results

    # --- memory backend
    tenant_mode: Literal["single", "multi"] = "multi"
    single_tenant_id: str | None = None
    backend: Literal["local", "s3vectors"] = "local"
    state_dir: Path = Field(default_factory=state_root)  # outside the source tree
    vector_bucket: str | None = None
    tvm_role_arn: str | None = None
    region: str = Field(
        "us-east-1", validation_alias=AliasChoices("AGENT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    embedder: Literal["local", "bedrock"] = "local"
    memory_enabled: bool = True
    top_k: int = Field(5, ge=1, le=100)
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    retrieval_timeout_seconds: float = Field(DEFAULT_RETRIEVAL_TIMEOUT_SECONDS, gt=0)
    summary_mode: Literal["auto", "abstractive", "extractive"] = "auto"
    summary_max_facts: int = Field(10, ge=0, le=50)  # memory.pipeline.summarizer.MAX_FACTS
    summary_workers: int = Field(2, ge=1, le=32)
    memory_ttl_days: float | None = Field(None, gt=0)
    retention_sweep_seconds: float = Field(3600.0, gt=0)  # with a TTL: in-app sweep period

    # --- outbox (durable conversations, claims, dead letters, erasure markers)
    outbox_backend: Literal["auto", "local", "s3"] = "auto"  # auto: s3 with AGENT_BACKEND=s3vectors
    outbox_bucket: str | None = None
    outbox_prefix: str = Field("outbox", pattern=OUTBOX_PREFIX_PATTERN)
    outbox_kms_key_id: str | None = None
    checkpoint_interval_seconds: float = Field(1.0, ge=0, le=60)
    summary_max_rounds: int = Field(3, ge=1, le=20)
    summary_max_busy_seconds: float | None = Field(None, gt=0)
    orphan_after_seconds: float | None = Field(None, ge=0)

    # --- authentication (required: "cognito" or "dev"; there is no way to switch it off)
    auth_mode: Literal["cognito", "dev"] | None = None
    cognito_region: str | None = None
    cognito_user_pool_id: str | None = None
    cognito_client_ids: CommaList = ()
    token_uses: CommaList = ("id", "access")
    tenant_claims: CommaList = Field(
        ("custom:tenantId", "tenantId"),
        validation_alias=AliasChoices("AGENT_TENANT_CLAIMS", "AGENT_TENANT_CLAIM"),  # singular: alias
    )
    user_claim: str = "sub"
    # Longest accepted token lifetime (exp - iat); Cognito's id/access tokens live at most 1 day.
    max_token_lifetime_seconds: int = Field(2 * 24 * 3600, ge=60)
    dev_issuer_dir: Path | None = None

    # --- chat model
    model_provider: str = "bedrock"
    model_id: str | None = None
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_max_tokens: int | None = Field(None, ge=1)
    model_temperature: float | None = Field(None, ge=0.0, le=2.0)
    local_model_path: Path | None = None

    # --- sessions and payloads
    max_sessions: int = Field(256, ge=1)
    reap_interval_seconds: float = Field(15.0, gt=0)
    idle_timeout_seconds: float = Field(600.0, gt=0)
    runtime_idle_timeout_seconds: int = Field(AGENTCORE_IDLE_TIMEOUT_SECONDS, ge=60, le=28_800)
    #: The whole shutdown's budget from SIGTERM (``agent.shutdown``): AgentCore kills a stopping
    #: session's process after up to 15 s, so the default leaves 5 s for the signal's delivery,
    #: uvicorn's exit and the interpreter's; what the budget cuts is in the outbox. At most an
    #: hour: every wait of the shutdown takes a share of it (a lock past ``threading.TIMEOUT_MAX``
    #: raises OverflowError, and ``inf`` would wait for a hung turn forever).
    shutdown_grace_seconds: float = Field(SHUTDOWN_BUDGET_SECONDS, ge=0, le=3600)
    max_prompt_chars: int = Field(16_000, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=256)

    # --- escape hatches inside the runtime container (names say what they risk)
    unsafe_allow_dev_auth_in_container: bool = False
    unsafe_allow_local_backend_in_container: bool = False

    @field_validator("cognito_client_ids", "token_uses", "tenant_claims", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if not is_region(self.region):
            raise SettingsError(not_a_region(REGION_SOURCES))
        if self.cognito_region is not None and not is_region(self.cognito_region):
            raise SettingsError(not_a_region("AGENT_COGNITO_REGION"))
        if self.auth_mode is None:
            raise SettingsError(
                "no authentication configured: set AGENT_AUTH_MODE=cognito (with "
                "AGENT_COGNITO_USER_POOL_ID and AGENT_COGNITO_CLIENT_IDS) or AGENT_AUTH_MODE=dev"
            )
        if self.auth_mode == "cognito" and not (self.cognito_user_pool_id and self.cognito_client_ids):
            raise SettingsError(
                "AGENT_AUTH_MODE=cognito needs AGENT_COGNITO_USER_POOL_ID and AGENT_COGNITO_CLIENT_IDS"
            )
        if self.backend == "s3vectors" and not self.vector_bucket:
            raise SettingsError("AGENT_BACKEND=s3vectors needs AGENT_VECTOR_BUCKET")
        vector_bucket_problem = bucket_name_problem(self.vector_bucket) if self.vector_bucket else None
        if vector_bucket_problem:
            raise SettingsError(f"AGENT_VECTOR_BUCKET is not a vector bucket name: {vector_bucket_problem}")
        if self.backend == "s3vectors" and self.tenant_mode == "multi" and not self.tvm_role_arn:
            raise SettingsError("multi-tenant s3vectors needs AGENT_TVM_ROLE_ARN")
        bucket_problem = s3_bucket_name_problem(self.outbox_bucket) if self.outbox_bucket else None
        if bucket_problem:
            raise SettingsError(f"AGENT_OUTBOX_BUCKET is not an S3 bucket name: {bucket_problem}")
        if self.resolved_outbox_backend == "s3" and not self.outbox_bucket:
            raise SettingsError(
                "the S3 outbox (chosen with AGENT_BACKEND=s3vectors) needs AGENT_OUTBOX_BUCKET; "
                "create it with `python -m scripts vector-bucket --outbox-bucket ...`"
            )
        if self.resolved_summary_max_busy_seconds >= self.runtime_idle_timeout_seconds:
            raise SettingsError(
                f"AGENT_SUMMARY_MAX_BUSY_SECONDS ({self.resolved_summary_max_busy_seconds:g}) must stay below "
                f"AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS ({self.runtime_idle_timeout_seconds}, the runtime's "
                "idle session timeout)"
            )
        if self.tenant_mode == "single" and not self.single_tenant_id:
            raise SettingsError("AGENT_TENANT_MODE=single needs AGENT_SINGLE_TENANT_ID")
        latest_end = self.idle_timeout_seconds + self.reap_interval_seconds + IDLE_MARGIN_SECONDS
        if latest_end > self.runtime_idle_timeout_seconds:
            raise SettingsError(
                f"AGENT_IDLE_TIMEOUT_SECONDS ({self.idle_timeout_seconds:g}) + AGENT_REAP_INTERVAL_SECONDS "
                f"({self.reap_interval_seconds:g}) + {IDLE_MARGIN_SECONDS:g} s margin must not exceed "
                f"AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS ({self.runtime_idle_timeout_seconds}, the runtime's "
                "--idle-timeout): the runtime would end sessions before the app summarizes them"
            )
        if not set(self.token_uses) <= {"id", "access"} or not self.token_uses:
            raise SettingsError("AGENT_TOKEN_USES must be a comma list of 'id' and/or 'access'")
        if self.user_claim not in USER_CLAIMS:
            raise SettingsError(
                f"AGENT_USER_CLAIM must be one of {', '.join(USER_CLAIMS)}: memories are keyed by it, "
                "and a user can change other claims (email) to another user's value"
            )
        if in_runtime_container():
            self._check_container()
        return self

    def _check_container(self) -> None:
        if self.auth_mode == "dev" and not self.unsafe_allow_dev_auth_in_container:
            raise SettingsError(
                "AGENT_AUTH_MODE=dev is refused inside the runtime container (anyone holding the dev "
                "key could mint tokens): use AGENT_AUTH_MODE=cognito, or set "
                "AGENT_UNSAFE_ALLOW_DEV_AUTH_IN_CONTAINER=true for a local container test"
            )
        if self.backend == "local" and not self.unsafe_allow_local_backend_in_container:
            raise SettingsError(
                "AGENT_BACKEND=local is refused inside the runtime container (its files are lost with "
                "the session's microVM): use AGENT_BACKEND=s3vectors, or set "
                "AGENT_UNSAFE_ALLOW_LOCAL_BACKEND_IN_CONTAINER=true for a local container test"
            )
        if self.resolved_outbox_backend == "local" and not self.unsafe_allow_local_backend_in_container:
            raise SettingsError(
                "AGENT_OUTBOX_BACKEND=local is refused inside the runtime container (an accepted end "
                "would be lost with the session's microVM): use AGENT_OUTBOX_BACKEND=s3, or set "
                "AGENT_UNSAFE_ALLOW_LOCAL_BACKEND_IN_CONTAINER=true for a local container test"
            )

    @property
    def resolved_dev_issuer_dir(self) -> Path:
        """Where the dev issuer keeps its keys (default: ``<state_dir>/dev-issuer``)."""
        return self.dev_issuer_dir or self.state_dir / "dev-issuer"

    @property
    def resolved_outbox_backend(self) -> Literal["local", "s3"]:
        """Where the outbox lives: S3 with the S3 Vectors backend unless set explicitly."""
        if self.outbox_backend == "auto":
            return "s3" if self.backend == "s3vectors" else "local"
        return self.outbox_backend

    @property
    def resolved_summary_max_busy_seconds(self) -> float:
        """How long a failing summary (and the app, while summaries fail) may stay busy: the
        setting, else ``SUMMARY_MAX_BUSY_SECONDS`` or, under a shorter runtime idle timeout,
        that timeout less ``IDLE_MARGIN_SECONDS`` (the bound must stay below the timeout)."""
        if self.summary_max_busy_seconds is not None:
            return self.summary_max_busy_seconds
        return min(SUMMARY_MAX_BUSY_SECONDS, self.runtime_idle_timeout_seconds - IDLE_MARGIN_SECONDS)

    @property
    def resolved_orphan_after_seconds(self) -> float:
        """How old an open outbox entry must be before another process adopts it.

        A live conversation's checkpoint is rewritten after every turn and its own idle timer
        closes it after ``idle_timeout_seconds``; older open entries belong to a dead process.
        A local outbox is owned by one process: its open entries are adopted at once.
        """
        if self.orphan_after_seconds is not None:
            return self.orphan_after_seconds
        if self.resolved_outbox_backend == "local":
            return 0.0
        return self.idle_timeout_seconds + self.reap_interval_seconds + 60.0

    @property
    def resolved_cognito_region(self) -> str:
        """The user pool's region (default: the app's region)."""
        return self.cognito_region or self.region


def settings_file() -> Path | None:
    """The settings file to read: ``$AGENT_SETTINGS_FILE``, else ``agentcore.env`` in the container."""
    explicit = os.environ.get(SETTINGS_FILE_ENV)
    if explicit:
        return Path(explicit)
    return PROJECT_ROOT / SETTINGS_FILE_NAME if in_runtime_container() else None


def secret_settings() -> dict[str, str]:
    """The env names of the secret (``SecretStr``) settings, with their field names."""
    return {f"AGENT_{name.upper()}": name for name, info in Settings.model_fields.items() if _is_secret(info)}


def _is_secret(info: FieldInfo) -> bool:
    return info.annotation == SecretStr | None


def _setting_names() -> dict[str, FieldInfo]:
    """The environment names of the settings (``AGENT_<FIELD>`` and the aliases), with their fields."""
    fields = {}
    for name, info in Settings.model_fields.items():
        aliases = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
        for key in (f"AGENT_{name.upper()}", *(a for a in aliases if isinstance(a, str))):
            fields[key] = info
    return fields


def _check_environment() -> None:
    """Refuse a setting named in the environment in another case than upper (``agent_region``).

    pydantic-settings matches names in any case, but which source wins (the environment over
    the settings file's AGENT_REGION and over the secret's values) is decided by the upper-case
    name, as ``AGENT_SETTINGS_FILE`` is read: such a name lost to both, silently. The message
    names the variable, never its value.
    """
    names = {*_setting_names(), SETTINGS_FILE_ENV}
    for key in os.environ:
        if key != key.upper() and key.upper() in names:
            raise SettingsError(_case_message(f"environment variable {key}", key))


def _case_message(where: str, key: str) -> str:
    """The refusal of a setting name ``key`` (found at ``where``) written in another case than upper."""
    return f"{where} is not upper case: setting names are upper case only; rename it {key.upper()}"


def _check_file(path: Path) -> dict[str, str | None]:
    """Refuse a settings file that names a secret or an unknown setting (typos would be ignored);
    returns its values."""
    fields = _setting_names()
    values = dotenv_values(path)
    for key, value in values.items():
        info = fields.get(key)
        if info is None and key.upper() in fields:
            raise SettingsError(_case_message(f"{path.name}: {key}", key))
        if info is None:
            raise SettingsError(f"{path.name}: unknown setting {key}")
        if value and _is_secret(info):  # empty is unset (.env.example lists them)
            raise SettingsError(
                f"{path.name}: {key} is a secret; put it in the Secrets Manager secret {SECRETS_ID_ENV} "
                "names (or the environment), never in this file"
            )
    return values


class _FileOnlySettings(Settings):
    """Settings from the file alone: what the runtime, which sets no ``AGENT_*`` variable, reads."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, dotenv_settings


def _file_region(values: dict[str, str | None]) -> dict[str, str]:
    """The settings file's AGENT_REGION (``values``), unless the environment sets AGENT_REGION itself.

    AWS_REGION / AWS_DEFAULT_REGION are only fallbacks of AGENT_REGION, but pydantic-settings
    lets any alias found in the environment beat the file: passed explicitly, the file's value
    wins over them (the environment's AGENT_REGION still wins over both).
    """
    if os.environ.get("AGENT_REGION"):
        return {}
    region = values.get("AGENT_REGION")
    return {"AGENT_REGION": region} if region else {}


def _from_secret(values: dict[str, str | None]) -> dict[str, str]:
    """The secret settings of the secret that AGENT_SECRETS_ID names (environment, else the
    file's ``values``), by field name, less those the environment sets (the environment wins)."""
    secret_id = os.environ.get(SECRETS_ID_ENV) or values.get(SECRETS_ID_ENV)
    if not secret_id:
        return {}
    sources = (
        ("AGENT_REGION", os.environ.get("AGENT_REGION")),
        ("the settings file's AGENT_REGION", values.get("AGENT_REGION")),
        ("AWS_REGION", os.environ.get("AWS_REGION")),
        ("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION")),
    )
    source, region = next(
        ((name, value) for name, value in sources if value),
        ("the default region", Settings.model_fields["region"].default),
    )
    if not is_region(str(region)):  # refused before a client is built in it: the message names its source
        raise SettingsError(f"{not_a_region(source)}; the secret {SECRETS_ID_ENV} names was not read")
    fields = secret_settings()
    try:
        found = read_secret_settings(secret_id, region=str(region), allowed=fields)
    except SecretSettingsError as exc:
        raise SettingsError(str(exc)) from None
    return {fields[key]: value for key, value in found.items() if not os.environ.get(key)}


def load_settings(path: Path | None = None, *, file_only: bool = False, read_secret: bool = True) -> Settings:
    """Parse the environment (over the settings file) once; raise SettingsError if it is unusable.

    Args:
        path: an existing settings file to read instead of ``settings_file()`` (``doctor``
            checks a deployment's file this way, with the app's own parser and checks).
        file_only: ignore the environment and the secret: read ``path`` as the runtime
            container would (``agentcore`` checks the file it writes this way).
        read_secret: read the secret that ``AGENT_SECRETS_ID`` names (``doctor`` checks it
            on its own instead).

    Raises:
        SettingsError: the settings are unusable, or the environment names a setting in
            another case than upper (``_check_environment``).
    """
    if not file_only:
        _check_environment()
    if path is None:
        path = settings_file()
        if path is not None and not path.is_file():
            if os.environ.get(SETTINGS_FILE_ENV):
                raise SettingsError(f"{SETTINGS_FILE_ENV} names a missing file: {path}")
            path = None
    values = _check_file(path) if path is not None else {}
    try:
        if file_only:
            return _FileOnlySettings(_env_file=path)
        secrets = _from_secret(values) if read_secret else {}
        return Settings(_env_file=path, **_file_region(values), **secrets)
    except ValidationError as exc:  # the message never echoes input values (they may be secrets)
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
