"""The app's configuration: one typed object parsed once from ``AGENT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: AgentCore Runtime ends a session that reported "Healthy" for this long; our idle timer must fire first.
AGENTCORE_IDLE_TIMEOUT_SECONDS = 15 * 60

CommaList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """The environment does not describe a runnable app (e.g. no authentication configured)."""


class Settings(BaseSettings):
    """Every knob of the app. Environment variable = ``AGENT_`` + field name in upper case."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    # --- server
    host: str | None = None  # None: the SDK picks 127.0.0.1 locally, 0.0.0.0 in a container
    port: int = Field(8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Third-party loggers (botocore, strands...) follow log_level too: logs memory text and prompts.
    unsafe_log_third_party: bool = False
    # Key of the HMAC that pseudonymises user ids in logs; unset: a random key per process.
    log_hash_key: SecretStr | None = None

    # --- memory backend
    tenant_mode: Literal["single", "multi"] = "multi"
    single_tenant_id: str | None = None
    backend: Literal["local", "s3vectors"] = "local"
    state_dir: Path = Path(".state")
    vector_bucket: str | None = None
    tvm_role_arn: str | None = None
    region: str = Field(
        "us-east-1", validation_alias=AliasChoices("AGENT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    embedder: Literal["local", "bedrock"] = "local"
    memory_enabled: bool = True
    top_k: int = Field(5, ge=1, le=100)
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    summary_mode: Literal["auto", "abstractive", "extractive"] = "auto"
    summary_workers: int = Field(2, ge=1, le=32)

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
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    max_prompt_chars: int = Field(16_000, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=256)

    @field_validator("cognito_client_ids", "token_uses", "tenant_claims", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
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
        if self.backend == "s3vectors" and self.tenant_mode == "multi" and not self.tvm_role_arn:
            raise SettingsError("multi-tenant s3vectors needs AGENT_TVM_ROLE_ARN")
        if self.tenant_mode == "single" and not self.single_tenant_id:
            raise SettingsError("AGENT_TENANT_MODE=single needs AGENT_SINGLE_TENANT_ID")
        if self.idle_timeout_seconds + self.reap_interval_seconds >= AGENTCORE_IDLE_TIMEOUT_SECONDS:
            raise SettingsError(
                "AGENT_IDLE_TIMEOUT_SECONDS + AGENT_REAP_INTERVAL_SECONDS must stay below "
                f"AgentCore's {AGENTCORE_IDLE_TIMEOUT_SECONDS} s idle session timeout"
            )
        if not set(self.token_uses) <= {"id", "access"} or not self.token_uses:
            raise SettingsError("AGENT_TOKEN_USES must be a comma list of 'id' and/or 'access'")
        return self

    @property
    def resolved_dev_issuer_dir(self) -> Path:
        """Where the dev issuer keeps its keys (default: ``<state_dir>/dev-issuer``)."""
        return self.dev_issuer_dir or self.state_dir / "dev-issuer"

    @property
    def resolved_cognito_region(self) -> str:
        """The user pool's region (default: the app's region)."""
        return self.cognito_region or self.region


def load_settings() -> Settings:
    """Parse the environment once; raise SettingsError with a readable message if it is unusable."""
    try:
        return Settings()
    except ValidationError as exc:  # the message never echoes input values (they may be secrets)
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
