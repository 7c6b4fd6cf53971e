"""The ``/invocations`` payload schema: strict types, size limits, unknown fields rejected."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.errors import BadRequest

#: Upper bound for identity claims a client may echo in the payload (compared, never trusted).
_MAX_CLAIM_CHARS = 256


class InvocationPayload(BaseModel):
    """One request to the agent.

    ``tenant_id``/``user_id`` are accepted only so a client that sends them can be checked
    against the token: identity always comes from the verified token, and a payload that
    claims someone else is rejected by the app.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    prompt: StrictStr | None = None
    end_session: StrictBool = False
    stream: StrictBool = False
    tenant_id: StrictStr | None = Field(None, alias="tenantId", max_length=_MAX_CLAIM_CHARS)
    user_id: StrictStr | None = Field(None, alias="userId", max_length=_MAX_CLAIM_CHARS)

    @field_validator("prompt", "tenant_id", "user_id")
    @classmethod
    def _valid_unicode(cls, value: str | None) -> str | None:
        # JSON "\ud800" escapes decode to lone surrogates, which no UTF-8 writer (response,
        # outbox, tokenizer) can encode: refuse them here instead of failing later.
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode (no lone surrogates)") from None
        return value

    @model_validator(mode="after")
    def _prompt_unless_only_ending(self) -> InvocationPayload:
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt must not be blank")
        if self.prompt is None and not self.end_session:
            raise ValueError("prompt is required unless end_session is true")
        return self


def parse_payload(raw: Any, *, max_prompt_chars: int) -> InvocationPayload:
    """Validate ``raw`` (the decoded JSON body); raise BadRequest naming the first bad field."""
    if not isinstance(raw, dict):
        raise BadRequest("the payload must be a JSON object", field="$")
    try:
        payload = InvocationPayload.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        # an empty location is this model's own rule about the prompt, or a key that is not Unicode
        field = ".".join(str(part) for part in error["loc"]) or ("prompt" if error["type"] == "value_error" else "$")
        message = _message(error)
        raise BadRequest(f"{field}: {message}", field=field) from None
    if payload.prompt is not None and len(payload.prompt) > max_prompt_chars:
        raise BadRequest(f"prompt: at most {max_prompt_chars} characters", field="prompt")
    return payload


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")
