"""The verified caller: tenant and user taken from a verified token, never from a payload."""

from __future__ import annotations

from dataclasses import dataclass

from auth.errors import AuthError
from tenant_ids import tenant_id_problem


@dataclass(frozen=True)
class Identity:
    """Who is calling, as asserted by a verified token.

    ``tenant_id`` is checked with :func:`tenant_ids.tenant_id_problem` and never
    normalised: an id that is not already safe raises ``AuthError("invalid_tenant")``. A
    ``user_id`` that is blank (whitespace only, which no turn runs under: ``memory.plugin.invocation``)
    or not valid Unicode raises ``AuthError("malformed")``.
    """

    tenant_id: str
    user_id: str
    tenant_name: str | None = None
    tier: str | None = None
    groups: tuple[str, ...] = ()
    email: str | None = None
    token_use: str = "id"
    client_id: str | None = None

    def __post_init__(self) -> None:
        if tenant_id_problem(self.tenant_id) is not None:
            raise AuthError("invalid_tenant")
        if not isinstance(self.user_id, str) or not self.user_id.strip() or not _is_unicode(self.user_id):
            raise AuthError("malformed")
        if not isinstance(self.groups, tuple) or not all(isinstance(g, str) for g in self.groups):
            raise AuthError("malformed")


def _is_unicode(text: str) -> bool:
    """False for text with lone surrogates (a JSON "\\ud800" escape), which no UTF-8 writer accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
