"""Tenant ids: the one rule for what a tenant id may be, checked before it is used anywhere.

``auth`` checks a token's tenant claim with it, ``memory`` every id before it becomes an index
name (``memory-<tenant>``: S3 Vectors allows 3-63 characters of ``[a-z0-9.-]``) or an STS
session tag, and the CLIs every id they are given. It lives outside both packages so that
``auth`` does not depend on ``memory``; each raises its own error (``AuthError("invalid_tenant")``,
``memory.errors.InvalidTenantId``). Ids are never normalised: an id that is not already valid is
refused.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TENANT_ID_LENGTH", "tenant_id_problem"]

#: Longest tenant id: ``memory-<tenant>`` must fit an S3 Vectors index name (63 characters).
MAX_TENANT_ID_LENGTH = 56

# Lowercase letters, digits and single inner hyphens; starts and ends alphanumeric. This is a
# subset of both the S3 Vectors index-name alphabet and the STS session-tag value alphabet,
# so a valid id maps to exactly one index and one tag value.
_TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def tenant_id_problem(tenant_id: object) -> str | None:
    """What is wrong with a candidate tenant id, or None when it is valid.

    Args:
        tenant_id: The candidate (1-56 lowercase letters, digits, single inner hyphens).

    Returns:
        None for a valid id; otherwise a message safe to show (it never quotes the value).
    """
    if not isinstance(tenant_id, str):
        return "tenant id must be a string"
    if not 1 <= len(tenant_id) <= MAX_TENANT_ID_LENGTH:
        return f"tenant id must be 1-{MAX_TENANT_ID_LENGTH} characters"
    if not _TENANT_ID.fullmatch(tenant_id) or "--" in tenant_id:
        return "tenant id may contain only lowercase letters, digits and single inner hyphens"
    return None
