"""``forget``: right to erasure — delete one user's memories (or one conversation's) in a tenant.

Lists every vector of the tenant's index with its metadata, selects those whose ``user_id``
(and ``conversation_id``) match, and deletes them in batches. Without ``--yes`` it only
reports what it would delete.
"""

from __future__ import annotations

import argparse
from typing import Iterable

from memory.errors import NotFound
from memory.models import VectorRecord
from memory.protocols import VectorIndex
from memory.s3vectors_index import S3VectorsIndex
from memory.tenants import index_name_for, validate_tenant_id
from scripts.common import Report, ScriptError, add_common_args, aws_client, require_region
from scripts.vectors import get_index


def select_keys(records: Iterable[VectorRecord], user_id: str, conversation_id: str | None = None) -> list[str]:
    """Keys of the records that belong to ``user_id`` (and ``conversation_id`` when given)."""
    return [
        r.key
        for r in records
        if r.metadata.get("user_id") == user_id
        and (conversation_id is None or r.metadata.get("conversation_id") == conversation_id)
    ]


def forget(
    index: VectorIndex, report: Report, *, user_id: str, conversation_id: str | None, confirmed: bool
) -> int:
    """Delete (when ``confirmed``) the user's records from ``index``; return how many matched."""
    records = list(index.list())
    keys = select_keys(records, user_id, conversation_id)
    what = f"user {user_id}" + (f", conversation {conversation_id}" if conversation_id else "")
    if not keys:
        report.add("UNCHANGED", f"index {index.name}", f"no memories of {what} ({len(records)} kept)")
        return 0
    if not confirmed:
        report.add("WOULD DELETE", f"index {index.name}", f"{len(keys)} memories of {what}; re-run with --yes")
        return len(keys)
    index.delete(keys)
    report.add("DELETED", f"index {index.name}", f"{len(keys)} memories of {what}; {len(records) - len(keys)} kept")
    return len(keys)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``forget`` command."""
    p = sub.add_parser("forget", help="delete a user's memories (right to erasure)", description=__doc__)
    add_common_args(p, mutating=False)
    p.add_argument("--bucket", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--user", required=True, help="user id (the token's sub)")
    p.add_argument("--conversation", help="only this conversation (session id)")
    p.add_argument("--yes", action="store_true", help="really delete (otherwise only report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Forget the user's memories in the tenant's index."""
    name = index_name_for(validate_tenant_id(args.tenant))
    s3v = aws_client("s3vectors", require_region(args))
    description = get_index(s3v, args.bucket, name)
    if description is None:
        raise ScriptError(f"tenant {args.tenant!r} has no index {name} in bucket {args.bucket!r}")
    report = Report("forget", dry_run=not args.yes)
    index = S3VectorsIndex(s3v, args.bucket, name, int(description.get("dimension", 1)))
    try:
        forget(index, report, user_id=args.user, conversation_id=args.conversation, confirmed=args.yes)
    except NotFound as err:
        raise ScriptError(f"index {name} disappeared while forgetting: {err}") from err
    return report
