"""Tenant ids: validated before they become index names or STS session tags, never normalised."""

from __future__ import annotations

import re
from typing import Mapping

from memory.errors import InvalidTenantId

#: Prefix of every tenant's index; S3 Vectors index names are 3-63 chars of [a-z0-9.-].
INDEX_PREFIX = "memory-"
MAX_TENANT_ID_LENGTH = 63 - len(INDEX_PREFIX)

# Lowercase letters, digits and single inner hyphens; starts and ends alphanumeric. This is a
# subset of both the S3 Vectors index-name alphabet and the STS session-tag value alphabet,
# so a valid id maps to exactly one index and one tag value.
#: The key of the tenant id in a tenant-context dict (``{"tenantId": ..., "tenantName": ...}``).
TENANT_ID_FIELD = "tenantId"

_TENANT_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def validate_tenant_id(tenant_id: object) -> str:
    """Check a tenant id before it becomes an index name or an STS session tag.

    Args:
        tenant_id: The candidate (1-56 lowercase letters, digits, single inner hyphens).

    Returns:
        ``tenant_id`` unchanged (never normalised).

    Raises:
        InvalidTenantId: Not a string, or not of that form.
    """
    if not isinstance(tenant_id, str):
        raise InvalidTenantId("tenant id must be a string")
    if not 1 <= len(tenant_id) <= MAX_TENANT_ID_LENGTH:
        raise InvalidTenantId(f"tenant id must be 1-{MAX_TENANT_ID_LENGTH} characters")
    if not _TENANT_ID.fullmatch(tenant_id) or "--" in tenant_id:
        raise InvalidTenantId(
            "tenant id may contain only lowercase letters, digits and single inner hyphens"
        )
    return tenant_id


def index_name_for(tenant_id: str) -> str:
    """The S3 Vectors index name of a tenant.

    Args:
        tenant_id: The tenant (validated).

    Returns:
        ``memory-<tenantId>``.

    Raises:
        InvalidTenantId: An invalid tenant id.
    """
    return INDEX_PREFIX + validate_tenant_id(tenant_id)


def tenant_id_from_context(tenant_context: object) -> str:
    """The validated tenant id named by a tenant context.

    Args:
        tenant_context: A tenant id string, or a mapping with a ``tenantId`` entry (the format of
            ``strands-s3-vectors-memory``, e.g. ``{"tenantId": "tenant-001", "tenantName": "Acme"}``).

    Returns:
        The tenant id, unchanged.

    Raises:
        InvalidTenantId: Another type, a mapping without ``tenantId``, or an invalid tenant id.
    """
    if isinstance(tenant_context, Mapping):
        if TENANT_ID_FIELD not in tenant_context:
            raise InvalidTenantId(f"the tenant context is a dict without {TENANT_ID_FIELD!r}")
        return validate_tenant_id(tenant_context[TENANT_ID_FIELD])
    if not isinstance(tenant_context, str):
        raise InvalidTenantId(f"the tenant context must be a tenant id string or a dict with {TENANT_ID_FIELD!r}")
    return validate_tenant_id(tenant_context)
