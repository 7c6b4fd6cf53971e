"""Where the operations CLIs find a tenant's memories and outbox: S3 (Vectors) or a local state dir.

``--backend s3vectors`` (default): the tenant's index in ``--bucket`` and, with
``--outbox-bucket``, the S3 outbox under ``--outbox-prefix``, both with the operator's
credentials. ``--backend local``: ``<state-dir>/vectors`` and ``<state-dir>/outbox``, the files
the local app writes (``AGENT_STATE_DIR``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from memory.embedders.protocol import EmbeddingPurpose
from memory.errors import ConfigurationError
from memory.factory import create_store
from memory.index.local import stored_dimension
from memory.index.s3vectors import S3VectorsIndex
from memory.pipeline.outbox import Outbox
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.outbox_s3 import S3Outbox
from memory.stores.single_tenant import SingleTenantStore
from memory.tenants import INDEX_PREFIX, index_name_for
from scripts.common import ScriptError, UsageError, aws_client, outbox_prefix, require_region, s3_bucket, vector_bucket
from scripts.tvm_role import DEFAULT_OUTBOX_PREFIX
from scripts.vectors import get_index, require_bucket


class NoEmbedder:
    """Satisfies SingleTenantStore's dimension check; operations tools never embed."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        raise ConfigurationError("operations tools never embed text")


class ExistingIndex(S3VectorsIndex):
    """A tenant's index as it exists (``open_target`` found it): never created, and its
    configuration not checked. The operations tools only list and delete, so an index the app
    refuses (another distance metric, filterable memory text: drift until it is offboarded)
    still has its memories erased and swept."""

    def ensure(self) -> None:
        """Nothing to create or verify."""


@dataclass
class Target:
    """A tenant's store (None when it has no index) and the outbox (None when not configured)."""

    store: SingleTenantStore | None
    outbox: Outbox | None
    index_resource: str
    outbox_resource: str


def add_target_args(p: argparse.ArgumentParser, *, index: bool = True) -> None:
    """``--backend`` and where that backend keeps things."""
    p.add_argument("--backend", choices=("s3vectors", "local"), default="s3vectors")
    if index:
        p.add_argument("--bucket", type=vector_bucket, help="vector bucket (s3vectors)")
    p.add_argument("--outbox-bucket", type=s3_bucket, help="S3 outbox bucket, AGENT_OUTBOX_BUCKET (s3vectors)")
    p.add_argument(
        "--outbox-prefix", type=outbox_prefix, help=f"AGENT_OUTBOX_PREFIX (default {DEFAULT_OUTBOX_PREFIX})"
    )
    p.add_argument(
        "--outbox-kms-key-arn",
        help="AGENT_OUTBOX_KMS_KEY_ID: write outbox objects (markers, revived entries) with this key, as the app does",
    )
    p.add_argument("--state-dir", type=Path, help="AGENT_STATE_DIR of the local app (local)")


def open_outbox(args: argparse.Namespace) -> tuple[Outbox | None, str]:
    """The outbox the arguments name and how to call it in a report."""
    if args.backend == "local":
        if args.state_dir is None:
            raise UsageError("--backend local needs --state-dir (the app's AGENT_STATE_DIR)")
        folder = args.state_dir / "outbox"
        return (LocalOutbox(folder) if folder.exists() else None), f"outbox {folder}"
    if not args.outbox_bucket:
        return None, "outbox (none: pass --outbox-bucket)"
    s3 = aws_client("s3", require_region(args))
    prefix = args.outbox_prefix
    if prefix is None:  # the default: the app may use another one (a prefix given is the operator's word)
        prefix = DEFAULT_OUTBOX_PREFIX
        _require_prefix(s3, args.outbox_bucket, prefix)
    outbox = S3Outbox(lambda _tenant: s3, args.outbox_bucket, prefix=prefix, lister=s3, kms_key_id=args.outbox_kms_key_arn)
    return outbox, f"outbox s3://{args.outbox_bucket}/{prefix}"


def _require_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """A clear error when the outbox bucket holds folders but not ``<prefix>/`` (the default
    prefix, not given): the app's AGENT_OUTBOX_PREFIX is probably another one, where its entries
    are and where it reads markers. A bucket shared with another deployment whose app has written
    nothing yet under the default prefix passes it as ``--outbox-prefix``."""
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    folders = [p["Prefix"] for p in listed.get("CommonPrefixes", [])]
    if folders and f"{prefix}/" not in folders and not listed.get("IsTruncated"):
        raise ScriptError(
            f"outbox bucket {bucket!r} has no '{prefix}/' folder (it has {', '.join(repr(f) for f in folders[:5])}): "
            "pass the app's AGENT_OUTBOX_PREFIX as --outbox-prefix"
        )


def where_tenants_are(args: argparse.Namespace) -> str:
    """How to see which tenants exist for the arguments' backend (for a mistyped tenant id)."""
    if args.backend == "local":
        files = sorted((args.state_dir / "vectors").glob(f"{INDEX_PREFIX}*.sqlite3"))
        names = ", ".join(f.name.removeprefix(INDEX_PREFIX).removesuffix(".sqlite3") for f in files)
        return f"tenants with an index here: {names or 'none'}"
    return "`python -m scripts tenant list` shows the onboarded tenants"


def require_tenant(args: argparse.Namespace, target: Target, tenant: str, action: str) -> None:
    """Refuse a tenant with no index and nothing in the outbox (no entries, dead letters or
    erasure markers): typically a mistyped tenant id, which must not look like a clean run."""
    outbox = target.outbox
    if target.store is None and (
        outbox is None or not (outbox.pending(tenant) or outbox.dead_letters(tenant) or outbox.erasures(tenant))
    ):
        raise ScriptError(
            f"tenant {tenant!r} has no index and no outbox entries here ({target.index_resource}, "
            f"{target.outbox_resource}); nothing to {action}. Check the tenant id: {where_tenants_are(args)}"
        )


def open_target(
    args: argparse.Namespace, tenant: str, opened: tuple[Outbox | None, str] | None = None
) -> Target:
    """The tenant's store and the outbox (the store is None when the tenant has no index).

    The store uses the operator's credentials, never a tenant's; a missing index is checked
    first, and an existing one is used as it is (``ExistingIndex``). ``opened``: the outbox
    ``open_outbox`` already returned (a run over several tenants opens, and checks, it once).
    """
    outbox, outbox_resource = opened or open_outbox(args)
    name = index_name_for(tenant)
    if args.backend == "local":
        root = args.state_dir / "vectors"
        dimension = stored_dimension(root, name)
        store = None
        if dimension is not None:
            store = create_store(
                backend="local", tenancy="single", embedder=NoEmbedder(dimension), local_dir=root, tenant_id=tenant
            )
        return Target(store, outbox, f"index {root / name}", outbox_resource)
    if not args.bucket:
        raise UsageError("--backend s3vectors needs --bucket")
    s3v = aws_client("s3vectors", require_region(args))
    description: dict[str, Any] | None = get_index(s3v, args.bucket, name)
    store = None
    if description is None:
        require_bucket(s3v, args.bucket)  # no index in a mistyped bucket: not "no memories"
    else:
        dimension = int(description["dimension"])
        index = ExistingIndex(s3v, args.bucket, name, dimension)  # the operator's credentials
        store = SingleTenantStore(index, NoEmbedder(dimension), tenant_id=tenant)
    return Target(store, outbox, f"index {name}", outbox_resource)
