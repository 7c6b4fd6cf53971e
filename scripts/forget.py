"""``forget``: right to erasure — delete one user's memories (or one conversation's) in a tenant.

Uses the memory library's own ``SingleTenantStore.forget`` on the tenant's index (every vector is
listed with its metadata, those of the user — and conversation — are deleted in batches),
with the operator's credentials. A conversation id is the AgentCore session id: every summary
stored under that id (a session id reused after a restart stores a second one) is deleted.
Without ``--yes`` it only reports what it would delete.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from memory.embedders.protocol import EmbeddingPurpose
from memory.errors import ConfigurationError
from memory.factory import create_store
from memory.stores.single_tenant import SingleTenantStore
from memory.tenants import index_name_for, validate_tenant_id
from memory.types import Scope
from scripts.common import Report, ScriptError, add_common_args, aws_client, require_region
from scripts.vectors import get_index


class _NoEmbedder:
    """Satisfies SingleTenantStore's dimension check; forgetting never embeds."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        raise ConfigurationError("forget never embeds text")


def forget(
    store: SingleTenantStore, report: Report, *, scope: Scope, conversation_id: str | None, confirmed: bool
) -> int:
    """Delete (when ``confirmed``) the scope's memories; return how many matched."""
    what = f"user {scope.user_id}" + (f", conversation {conversation_id}" if conversation_id else "")
    resource = f"index {store.index.name}"
    if not confirmed:
        matching = [
            m for m in store.list(scope) if conversation_id is None or m.conversation_id == conversation_id
        ]
        if matching:
            report.add("WOULD DELETE", resource, f"{len(matching)} memories of {what}; re-run with --yes")
        else:
            report.add("UNCHANGED", resource, f"no memories of {what}")
        return len(matching)
    deleted = store.forget(scope, conversation_id=conversation_id)
    if deleted:
        report.add("DELETED", resource, f"{deleted} memories of {what}")
    else:
        report.add("UNCHANGED", resource, f"no memories of {what}")
    return deleted


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``forget`` command."""
    p = sub.add_parser("forget", help="delete a user's memories (right to erasure)", description=__doc__)
    add_common_args(p, mutating=False)
    p.add_argument("--bucket", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--user", required=True, help="user id (the token's sub)")
    p.add_argument(
        "--conversation",
        help="only this conversation id (the AgentCore session id; every conversation held under it)",
    )
    p.add_argument("--yes", action="store_true", help="really delete (otherwise only report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Forget the user's memories in the tenant's index."""
    tenant = validate_tenant_id(args.tenant)
    name = index_name_for(tenant)
    s3v = aws_client("s3vectors", require_region(args))
    description = get_index(s3v, args.bucket, name)
    if description is None:  # checked first: the store would create a missing index
        raise ScriptError(f"tenant {tenant!r} has no index {name} in bucket {args.bucket!r}")
    dimension = int(description["dimension"])
    store = create_store(
        backend="s3vectors",
        tenancy="single",
        embedder=_NoEmbedder(dimension),
        bucket=args.bucket,
        tenant_id=tenant,
        s3vectors_client=s3v,  # the operator's credentials, not a tenant's
    )
    report = Report("forget", dry_run=not args.yes)
    forget(
        store,
        report,
        scope=Scope(user_id=args.user, tenant_id=tenant),
        conversation_id=args.conversation,
        confirmed=args.yes,
    )
    return report
