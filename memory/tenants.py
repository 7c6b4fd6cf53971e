"""Tenant ids: validated before they become index names or STS session tags, never normalised.

The rule itself is the neutral ``tenant_ids`` package's (shared with ``auth``); this module raises
the library's :class:`~memory.errors.InvalidTenantId` and names the tenant's index.
"""

from __future__ import annotations

from typing import Mapping, cast

from memory.errors import InvalidTenantId
from tenant_ids import MAX_TENANT_ID_LENGTH, tenant_id_problem

#: Prefix of every tenant's index; S3 Vectors index names are 3-63 chars of [a-z0-9.-].
INDEX_PREFIX = "memory-"
#: The key of the tenant id in a tenant-context dict (``{"tenantId": ..., "tenantName": ...}``).
TENANT_ID_FIELD = "tenantId"

__all__ = [
    "INDEX_PREFIX",
    "MAX_TENANT_ID_LENGTH",
    "TENANT_ID_FIELD",
    "index_name_for",
    "tenant_id_from_context",
    "validate_tenant_id",
]


def validate_tenant_id(tenant_id: object) -> str:
    """Check a tenant id before it becomes an index name or an STS session tag.

    Args:
        tenant_id: The candidate (1-56 lowercase letters, digits, single inner hyphens).

    Returns:
        ``tenant_id`` unchanged (never normalised).

    Raises:
        InvalidTenantId: Not a string, or not of that form.
    """
    problem = tenant_id_problem(tenant_id)
    if problem is not None:
        raise InvalidTenantId(problem)
    return cast(str, tenant_id)  # tenant_id_problem checked that it is one


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
