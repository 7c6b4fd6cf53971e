"""``retention sweep``: delete a tenant's memories older than ``--ttl-days`` (AGENT_MEMORY_TTL_DAYS).

The app never injects or recalls expired memories; this sweep deletes them (S3 Vectors has no
TTL of its own: every vector is listed with its metadata and those whose ``stored_at_epoch``
is older are deleted in batches, with the undated memories of strands-s3-vectors-memory), and the tenant's dead letters of conversations as old (their
transcripts). Without ``--yes`` it only counts them.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from memory.pipeline.outbox import expired_dead_letters
from memory.stores.scoping import is_expired
from memory.tenants import validate_tenant_id
from scripts.common import Report, add_common_args, add_subcommand, positive_float
from scripts.targets import Target, add_target_args, open_outbox, open_target, require_tenant


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``retention`` command."""
    p = sub.add_parser("retention", help="delete expired memories", description=__doc__)
    cmds = p.add_subparsers(dest="retention_command", required=True, metavar="SUBCOMMAND")
    s = add_subcommand(cmds, "sweep", "delete a tenant's memories older than --ttl-days")
    add_common_args(s, mutating=False)
    add_target_args(s)
    s.add_argument("--tenant", action="append", required=True, help="tenant id (repeatable)")
    s.add_argument("--ttl-days", type=positive_float, required=True)
    s.add_argument("--yes", action="store_true", help="really delete (otherwise only count)")
    s.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> Report:
    """Sweep each tenant's index."""
    report = Report("retention sweep", dry_run=not args.yes)
    cutoff = int(time.time() - args.ttl_days * 86400)
    tenants = [validate_tenant_id(t) for t in args.tenant]
    outbox = open_outbox(args)  # once: its default-prefix check lists the bucket's root
    targets = {tenant: open_target(args, tenant, outbox) for tenant in tenants}
    for tenant, target in targets.items():  # a mistyped tenant fails the run before anything is swept
        require_tenant(args, target, tenant, "sweep")
    for tenant, target in targets.items():
        if target.outbox is not None:
            _sweep_dead_letters(report, target, tenant, cutoff, args)
        elif args.backend == "s3vectors":  # a local state dir without an outbox folder has no dead letters
            report.add("WARNING", target.outbox_resource, "dead letters (whole transcripts) not swept: pass the outbox")
        if target.store is None:
            report.add("ABSENT", target.index_resource, "no index")
            continue
        if not args.yes:
            expired = sum(1 for r in target.store.index.list() if is_expired(r.metadata, cutoff))  # the sweep's rule
            status = "WOULD DELETE" if expired else "UNCHANGED"
            report.add(status, target.index_resource, f"{expired} memories older than {args.ttl_days:g} days")
            continue
        target.store.ttl_seconds = args.ttl_days * 86400
        deleted = target.store.sweep_expired(tenant)
        report.add("DELETED" if deleted else "UNCHANGED", target.index_resource, f"{deleted} expired memories")
    return report


def _sweep_dead_letters(report: Report, target: Target, tenant: str, cutoff: int, args: argparse.Namespace) -> None:
    """Purge (count, without ``--yes``) the tenant's dead letters of expired conversations."""
    assert target.outbox is not None
    letters = expired_dead_letters(target.outbox, tenant, datetime.fromtimestamp(cutoff, timezone.utc))
    if not args.yes:
        status = "WOULD DELETE" if letters else "UNCHANGED"
        report.add(status, target.outbox_resource, f"{len(letters)} dead letters older than {args.ttl_days:g} days")
        return
    for letter in letters:
        target.outbox.purge(letter.entry.entry_id, letter.entry.tenant_id)
    report.add("DELETED" if letters else "UNCHANGED", target.outbox_resource, f"{len(letters)} expired dead letters")
