"""``outbox list|retry|purge``: inspect and replay the outbox's dead letters.

A dead letter is a conversation whose summary kept failing (the reason is the error type: e.g.
``AccessDenied`` before the model access is granted, ``NotFound`` before the tenant is
onboarded). ``list`` shows pending entries and dead letters (ids, tenant, conversation,
reason; never transcript text). ``retry`` moves dead letters back to pending; the app stores
them at its next start (or any running app's replay). ``purge`` deletes them for good and needs
``--yes``.
"""

from __future__ import annotations

import argparse

from memory.pipeline.outbox import DeadLetter, Outbox, OutboxEntry, parse_time
from memory.pipeline.outbox_s3 import S3Outbox
from memory.tenants import validate_tenant_id
from scripts.common import Report, ScriptError, UsageError, add_common_args, add_subcommand
from scripts.targets import add_target_args, open_outbox


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``outbox`` command."""
    p = sub.add_parser("outbox", help="list, retry or purge dead-lettered conversations", description=__doc__)
    cmds = p.add_subparsers(dest="outbox_command", required=True, metavar="SUBCOMMAND")
    for name, func, text in (
        ("list", run_list, "list pending entries and dead letters"),
        ("retry", run_retry, "move dead letters back to pending"),
        ("purge", run_purge, "delete dead letters for good (needs --yes)"),
    ):
        c = add_subcommand(cmds, name, text)
        add_common_args(c, mutating=False)
        add_target_args(c, index=False)
        c.add_argument("--tenant", help="only this tenant")
        if name != "list":
            c.add_argument("--entry", action="append", default=[], help="entry id (repeatable; default: all)")
        if name == "purge":
            c.add_argument("--yes", action="store_true", help="really delete")
        c.set_defaults(func=func)


def _outbox(args: argparse.Namespace) -> tuple[Outbox, str, str | None]:
    outbox, resource = open_outbox(args)
    if outbox is None:
        if args.backend == "s3vectors":
            raise UsageError("--backend s3vectors needs --outbox-bucket (the app's AGENT_OUTBOX_BUCKET)")
        raise ScriptError(f"no outbox: {resource}")
    tenant = None if args.tenant is None else validate_tenant_id(args.tenant)
    return outbox, resource, tenant


def _selected(outbox: Outbox, tenant: str | None, entries: list[str], report: Report) -> list[DeadLetter]:
    """The dead letters ``--entry`` names (all without it); an id that names none is MISSING."""
    letters = outbox.dead_letters(tenant)
    found = {d.entry.entry_id for d in letters}
    for entry_id in dict.fromkeys(e for e in entries if e not in found):
        report.add("MISSING", entry_id, "no dead letter with this id" + (f" of tenant {tenant}" if tenant else "") + " (see `outbox list`)")
    return [d for d in letters if not entries or d.entry.entry_id in entries]


def _pending(outbox: Outbox, tenant: str | None) -> list[OutboxEntry]:
    """Pending entries of ``tenant`` or of every tenant. The S3 outbox's listing of every tenant
    skips one whose prefix it cannot read (the app's replay must not wait for it): here each
    tenant is read on its own, so a refusal is the command's error, not "nothing pending"."""
    if tenant is not None or not isinstance(outbox, S3Outbox):
        return outbox.pending(tenant)
    tenants = outbox.tenants()
    entries = [e for t in tenants if t is not None for e in outbox.pending(t)]
    if None in tenants:  # a tenant-less app's folder: only the every-tenant listing reads it
        entries += [e for e in outbox.pending(None) if e.tenant_id is None]
    return sorted(entries, key=lambda e: e.created_at)


def run_list(args: argparse.Namespace) -> Report:
    """Pending entries and dead letters."""
    outbox, resource, tenant = _outbox(args)
    report = Report("outbox list", read_only=True)
    for entry in _pending(outbox, tenant):
        state = "open" if entry.open else "closed"
        report.add("PENDING", entry.entry_id, f"tenant {entry.tenant_id}, conversation {entry.conversation_id}, {state}, attempts {entry.attempts}")
    for letter in outbox.dead_letters(tenant):
        entry = letter.entry
        report.add("DEAD", entry.entry_id, f"tenant {entry.tenant_id}, conversation {entry.conversation_id}, reason {letter.reason}, since {letter.dead_at}")
    if not report.rows:
        report.add("EMPTY", resource, "nothing pending, no dead letters")
    return report


def run_retry(args: argparse.Namespace) -> Report:
    """Move dead letters back to pending."""
    outbox, resource, tenant = _outbox(args)
    report = Report("outbox retry")
    for letter in _selected(outbox, tenant, args.entry, report):
        entry = letter.entry
        pending = outbox.get(entry.entry_id, entry.tenant_id)
        if pending is not None and parse_time(pending.created_at) > parse_time(entry.created_at):
            # its process wrote the conversation on and died before purging this letter
            report.add("UNCHANGED", entry.entry_id, "a newer version is pending: this dead letter is superseded (purge it)")
        elif outbox.revive(entry.entry_id, entry.tenant_id) is not None:
            report.add("UPDATED", letter.entry.entry_id, "back to pending; stored at the app's next replay")
    if not report.rows:
        report.add("UNCHANGED", resource, "no matching dead letters")
    return report


def run_purge(args: argparse.Namespace) -> Report:
    """Delete dead letters (with --yes)."""
    outbox, resource, tenant = _outbox(args)
    report = Report("outbox purge", dry_run=not args.yes)
    for letter in _selected(outbox, tenant, args.entry, report):
        if not args.yes:
            report.add("WOULD DELETE", letter.entry.entry_id, f"reason {letter.reason}; re-run with --yes")
        elif outbox.purge(letter.entry.entry_id, letter.entry.tenant_id):
            report.add("DELETED", letter.entry.entry_id, f"reason {letter.reason}")
    if not report.rows:
        report.add("UNCHANGED", resource, "no matching dead letters")
    return report
