"""The ``invocation_state`` contract: its keys and their parsing, defined once.

A Strands agent carrying the memory plugin is called as
``agent(prompt, invocation_state=Invocation(...).to_state())`` (the app, the orchestrator) or
with a hand-written dict using the keys below (the seed package's documented usage):

* ``user_id`` (str) and ``conversation_id`` (str): whose memories and which conversation;
* ``tenant_context``: the tenant, as a plain tenant id string or as the seed's dict
  ``{"tenantId": "tenant-001", "tenantName": "Acme Corp"}`` (only ``tenantId`` is read); both
  are validated by ``memory.tenants.validate_tenant_id``; absent for a single-tenant store;
* ``end_session`` (bool, default False): end the conversation after this turn.

Given deprecated ``**kwargs`` as well, Strands nests the caller's dict under ``"invocation_state"``;
it is read there when the top level names no user or conversation.

A state without ``user_id`` or ``conversation_id`` carries no identity (:func:`read_invocation`
returns None; the plugin then runs the turn without memory). A state whose keys are present but
malformed -- a tenant dict without a valid ``tenantId``, an invalid tenant id, an empty user id,
a non-boolean ``end_session`` -- raises :class:`InvalidInvocationState`: the turn fails with a
clear error instead of silently running without memory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final, Mapping

from memory.errors import InvalidTenantId, ValidationError
from memory.tenants import tenant_id_from_context

USER_ID: Final = "user_id"
CONVERSATION_ID: Final = "conversation_id"
TENANT_CONTEXT: Final = "tenant_context"
END_SESSION: Final = "end_session"
#: Where Strands 1.62 puts the caller's ``invocation_state`` when deprecated ``**kwargs`` come
#: with it (``Agent.stream_async``: ``{**kwargs, "invocation_state": invocation_state}``).
NESTED_STATE: Final = "invocation_state"
#: The keys that identify a turn; forwarded unchanged to specialist agents.
IDENTITY_KEYS: Final = (TENANT_CONTEXT, USER_ID, CONVERSATION_ID)
#: Invocations parsed from plain states (strings, a boolean) kept for the next turn that names
#: the same ones: a conversation's every turn carries the same state.
PARSED_CACHE_SIZE: Final = 1024


class InvalidInvocationState(ValidationError):
    """An ``invocation_state`` key is present but malformed (the turn must not run silently)."""


@dataclass(frozen=True)
class Invocation:
    """Identity and conversation of one invocation, parsed from ``invocation_state``.

    Attributes:
        user_id: The user whose memories are read and written.
        conversation_id: The conversation (an AgentCore session id in the app).
        tenant_id: The validated tenant id, or None for a single-tenant store.
        end_session: Whether the conversation ends after this turn.
    """

    user_id: str
    conversation_id: str
    tenant_id: str | None = None
    end_session: bool = False

    def __post_init__(self) -> None:
        _require_text(USER_ID, self.user_id)
        _require_text(CONVERSATION_ID, self.conversation_id)
        if self.tenant_id is not None:
            parse_tenant_context(self.tenant_id)
        if not isinstance(self.end_session, bool):
            raise InvalidInvocationState(f"invocation_state[{END_SESSION!r}] must be a boolean")

    def to_state(self) -> dict[str, Any]:
        """The ``invocation_state`` dict for this invocation (tenant as a plain string)."""
        state: dict[str, Any] = {USER_ID: self.user_id, CONVERSATION_ID: self.conversation_id}
        if self.tenant_id is not None:
            state[TENANT_CONTEXT] = self.tenant_id
        if self.end_session:
            state[END_SESSION] = True
        return state

    def same_conversation(self, other: "Invocation") -> bool:
        """Whether ``other`` continues this conversation (same tenant, user and conversation id)."""
        return (self.tenant_id, self.user_id, self.conversation_id) == (
            other.tenant_id,
            other.user_id,
            other.conversation_id,
        )


def parse_tenant_context(value: object) -> str | None:
    """The tenant id named by a ``tenant_context`` value.

    Args:
        value: None, a tenant id string, or a mapping with a ``tenantId`` entry.

    Returns:
        The validated tenant id, or None when ``value`` is None.

    Raises:
        InvalidInvocationState: The value is another type, a mapping lacks ``tenantId``, or the
            tenant id is invalid.
    """
    if value is None:
        return None
    try:
        return tenant_id_from_context(value)
    except InvalidTenantId as exc:
        raise InvalidInvocationState(f"invocation_state[{TENANT_CONTEXT!r}]: {exc}") from exc


def read_invocation(state: Mapping[str, Any]) -> Invocation | None:
    """Parse ``invocation_state``.

    Args:
        state: The invocation state a Strands agent was called with (the caller's own, also
            when Strands nests it under ``"invocation_state"`` beside deprecated ``**kwargs``).

    Returns:
        The invocation, or None when ``user_id`` or ``conversation_id`` is absent (or None):
        a turn without identity. There is never a default user.

    Raises:
        InvalidInvocationState: A key is present but malformed (see the module docstring).
    """
    nested = state.get(NESTED_STATE)
    if USER_ID not in state and CONVERSATION_ID not in state and isinstance(nested, Mapping):
        state = nested
    user_id, conversation_id = state.get(USER_ID), state.get(CONVERSATION_ID)
    if user_id is None or conversation_id is None:
        return None
    tenant_context, end_session = state.get(TENANT_CONTEXT), state.get(END_SESSION, False)
    plain = type(user_id) is str and type(conversation_id) is str and type(end_session) is bool
    if plain and (tenant_context is None or type(tenant_context) is str):
        return _parsed(user_id, conversation_id, tenant_context, end_session)
    return _parse(user_id, conversation_id, tenant_context, end_session)


def _parse(user_id: Any, conversation_id: Any, tenant_context: Any, end_session: Any) -> Invocation:
    return Invocation(
        user_id=user_id,
        conversation_id=conversation_id,
        tenant_id=parse_tenant_context(tenant_context),
        end_session=end_session,
    )


#: ``_parse`` of hashable plain values, each validated once while cached (an invalid state raises
#: every time: exceptions are not cached).
_parsed = functools.lru_cache(maxsize=PARSED_CACHE_SIZE)(_parse)


def identity_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The identity keys of ``state`` (tenant, user, conversation), e.g. for a specialist agent."""
    return {key: state[key] for key in IDENTITY_KEYS if key in state}


def _require_text(key: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInvocationState(f"invocation_state[{key!r}] must be a non-empty string")
