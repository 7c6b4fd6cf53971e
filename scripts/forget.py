"""``forget``: right to erasure, for a user, one of a user's conversations, or a whole tenant.

With ``--yes`` it runs ``memory.pipeline.erasure.erase``: first a durable erasure marker in
the outbox (which every store path of the app checks, so no replay, shutdown or other process
brings the erased conversations back), then the matching outbox entries (open checkpoints,
closed entries, dead letters), then the memories, every unit of every matching conversation,
found by metadata. It reports what it removed. Without ``--yes`` it only reports what matches.

``--backend s3vectors`` (default) uses the operator's credentials on ``--bucket`` and
``--outbox-bucket``; ``--backend local`` works on a local app's ``--state-dir``. A
conversation id is the AgentCore session id: every conversation held under it is erased.
"""

from __future__ import annotations

import argparse

from memory.pipeline.erasure import ERASURE_SETTLE_SECONDS, erase
from memory.pipeline.outbox import ErasureMarker
from memory.tenants import validate_tenant_id
from memory.types import Scope
from scripts.common import Report, UsageError, add_common_args, non_negative_float, nonempty
from scripts.targets import Target, add_target_args, open_target, require_tenant

#: What each erasure marker ``erase`` writes is for, in its order (two identical lines puzzled readers).
MARKER_ROLES = ("written before deleting", "written after deleting: covers conversations begun meanwhile")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``forget`` command."""
    p = sub.add_parser("forget", help="erase a user's, a conversation's or a tenant's memories", description=__doc__)
    add_common_args(p, mutating=False)
    add_target_args(p)
    p.add_argument("--tenant", required=True)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=nonempty, help="user id (the token's sub)")
    who.add_argument("--all-users", action="store_true", help="erase the whole tenant")
    p.add_argument(
        "--conversation",
        type=nonempty,
        help="only this conversation id (the AgentCore session id; every conversation held under it)",
    )
    p.add_argument("--yes", action="store_true", help="really erase (otherwise only report)")
    p.add_argument(
        "--settle-seconds",
        type=non_negative_float,
        default=ERASURE_SETTLE_SECONDS,
        help="wait this long, then sweep the outbox once more: a running app may write a live "
        "conversation's checkpoint again until it has read the new marker",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Erase (with --yes) or report what matches."""
    tenant = validate_tenant_id(args.tenant)
    if args.conversation and not args.user:
        raise UsageError("--conversation needs --user")
    target = open_target(args, tenant)
    require_tenant(args, target, tenant, "erase")
    user = None if args.all_users else args.user
    what = ("every user" if user is None else f"user {user}") + (
        f", conversation {args.conversation}" if args.conversation else ""
    )
    report = Report("forget", dry_run=not args.yes)
    if not args.yes:
        _preview(target, report, tenant, user, args.conversation, what)
        return report
    if target.outbox is None:
        report.add("WARNING", target.outbox_resource, "no erasure marker written: pass the outbox to make erasure hold")
        memories = _forget_memories(target, tenant, user, args.conversation)
        _row(report, target.index_resource, memories, f"memories of {what}")
        return report
    result = erase(
        target.outbox,
        target.store,
        tenant_id=tenant,
        user_id=user,
        conversation_id=args.conversation,
        settle_seconds=args.settle_seconds,
    )
    for marker, when in zip(result.markers, MARKER_ROLES):
        report.add("CREATED", target.outbox_resource, f"erasure marker {marker.marker_id} for {what} ({when})")
    _row(report, target.outbox_resource, result.outbox_entries, f"outbox entries of {what}")
    _row(report, target.outbox_resource, result.dead_letters, f"dead letters of {what}")
    _row(report, target.index_resource, result.memories, f"memories of {what}")
    return report


def _row(report: Report, resource: str, count: int, what: str) -> None:
    if count:
        report.add("DELETED", resource, f"{count} {what}")
    else:
        report.add("UNCHANGED", resource, f"no {what}")


def _forget_memories(target: Target, tenant: str, user: str | None, conversation: str | None) -> int:
    if target.store is None:
        return 0
    if user is None:
        return target.store.forget_tenant(tenant)
    return target.store.forget(Scope(user_id=user, tenant_id=tenant), conversation_id=conversation)


def _preview(
    target: Target, report: Report, tenant: str, user: str | None, conversation: str | None, what: str
) -> None:
    probe = ErasureMarker(tenant_id=tenant, user_id=user, conversation_id=conversation)
    if target.outbox is not None:
        entries = sum(1 for e in target.outbox.pending(tenant) if probe.covers(e))
        letters = sum(1 for d in target.outbox.dead_letters(tenant) if probe.covers(d.entry))
        for count, kind in ((entries, "outbox entries"), (letters, "dead letters")):
            if count:
                report.add("WOULD DELETE", target.outbox_resource, f"{count} {kind} of {what}; re-run with --yes")
    memories = 0
    if target.store is not None and user is None:
        memories = sum(1 for _ in target.store.index.keys())  # the whole tenant: keys only, like forget_tenant
    elif target.store is not None:
        memories = sum(
            1
            for r in target.store.index.list()
            if r.metadata.get("user_id") == user
            and (conversation is None or r.metadata.get("conversation_id") == conversation)
        )
    if memories:
        report.add("WOULD DELETE", target.index_resource, f"{memories} memories of {what}; re-run with --yes")
    else:
        report.add("UNCHANGED", target.index_resource, f"no memories of {what}")
