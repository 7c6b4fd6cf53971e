"""The verified caller: tenant and user taken from a verified token, never from a payload."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from auth.errors import AuthError
from tenant_ids import tenant_id_problem


@dataclass(frozen=True)
class Identity:
    """Who is calling, as asserted by a verified token.

    ``tenant_id`` is checked with :func:`tenant_ids.tenant_id_problem` and never
    normalised: an id that is not already safe raises ``AuthError("invalid_tenant")``. A
    ``user_id`` that is blank (whitespace only, which no turn runs under: ``memory.plugin.invocation``),
    not valid Unicode, or holding a control, format or line/paragraph separator character (which
    no identity provider's user id holds and which would reach index metadata, erasure folders
    and logs as invisible differences) raises ``AuthError("malformed")``.
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
        if not isinstance(self.user_id, str) or not self.user_id.strip() or not _is_plain_text(self.user_id):
            raise AuthError("malformed")
        if not isinstance(self.groups, tuple) or not all(isinstance(g, str) for g in self.groups):
            raise AuthError("malformed")


#: Unicode categories refused in a user id: controls (NUL, newline, DEL), format characters
#: (zero-width, bidi overrides, BOM), line and paragraph separators, lone surrogates.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _is_plain_text(text: str) -> bool:
    """False for text holding a character of the :data:`_INVISIBLE` categories (a lone surrogate
    comes from a JSON "\\ud800" escape, which no UTF-8 writer accepts)."""
    return not any(unicodedata.category(c) in _INVISIBLE for c in text)
