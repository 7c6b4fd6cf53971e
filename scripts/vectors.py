"""``vector-bucket`` and ``tenant onboard|offboard|list``: the S3 vector bucket and per-tenant indexes.

``vector-bucket --outbox-bucket NAME`` also creates (or checks) the regular S3 bucket of the
outbox: default encryption SSE-S3, every public access blocked; existing settings that differ
are brought back. An existing one with versioning enabled is reported as drift (an erased
transcript would stay in an older version).

Each tenant has one index ``memory-<tenant>`` (cosine, float32, ``content`` and
``conversation_id`` not filterable), created with the memory library's own parameters. An
index that exists with another dimension, metric, data type or filterable memory text is
reported as drift, never recreated; a CLASSIC index is moved to ENHANCED (filters first).
Offboarding deletes a tenant's index and every memory in it, so it needs ``--yes``.
"""

from __future__ import annotations

import argparse
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from memory.index.s3vectors import S3VectorsIndex, create_index_params, missing_non_filterable_keys
from memory.tenants import INDEX_PREFIX, index_name_for, validate_tenant_id
from scripts.common import (
    Report,
    ScriptError,
    add_common_args,
    add_subcommand,
    aws_client,
    dimension,
    error_code,
    is_not_found,
    require_region,
    s3_bucket,
    vector_bucket,
)

#: Amazon Nova 2 multimodal embeddings (the AWS embedder) produce 1024-d vectors.
DEFAULT_DIMENSION = 1024


def ensure_bucket(s3v: BaseClient, report: Report, bucket: str) -> None:
    """Create the vector bucket if it does not exist (SSE-S3 encryption)."""
    if vector_bucket_exists(s3v, bucket):
        report.add("UNCHANGED", f"vector bucket {bucket}")
        return
    report.change("CREATE", f"vector bucket {bucket}", "SSE-S3 encryption")
    if not report.dry_run:
        try:
            s3v.create_vector_bucket(vectorBucketName=bucket, encryptionConfiguration={"sseType": "AES256"})
        except ClientError as err:
            # botocore resent a create whose response was lost (the first one made it): ours
            if error_code(err) != "ConflictException":
                raise


def ensure_outbox_bucket(s3: BaseClient, report: Report, bucket: str, region: str) -> None:
    """Create the outbox bucket if missing; make sure it is encrypted and never public."""
    exists = outbox_bucket_state(s3, bucket)
    if exists is None:
        report.change("CREATE", f"outbox bucket {bucket}", "SSE-S3 encryption, public access blocked")
        if report.dry_run:
            return
        params: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**params)
        except ClientError as err:  # the same for a resent CreateBucket (us-east-1 answers 200)
            if error_code(err) != "BucketAlreadyOwnedByYou":
                raise
        exists = {"encrypted": False, "private": False}
    else:
        elsewhere = bucket_region(s3, bucket)
        if elsewhere != region:
            report.add("DRIFT", f"outbox bucket {bucket}", region_drift(elsewhere, region))
        if versioning_enabled(s3, bucket):
            report.add("DRIFT", f"outbox bucket {bucket}", VERSIONING_DRIFT)
        missing = [name for name, ok in exists.items() if not ok]
        if not missing:
            report.add("UNCHANGED", f"outbox bucket {bucket}", "encrypted, public access blocked")
            return
        report.change("UPDATE", f"outbox bucket {bucket}", f"drift: not {' and not '.join(missing)}")
        if report.dry_run:
            return
    if not exists["encrypted"]:
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    if not exists["private"]:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_ALL_BLOCKED)


_ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


#: Why an outbox bucket with versioning enabled is drift.
VERSIONING_DRIFT = (
    "versioning is enabled: forget and the retention sweep delete an entry's current object and S3 "
    "keeps its older versions (whole transcripts); suspend versioning and expire noncurrent versions "
    "with a lifecycle rule"
)


def versioning_enabled(s3: BaseClient, bucket: str) -> bool:
    """Whether the bucket keeps older versions of what is deleted (``VERSIONING_DRIFT``)."""
    return s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"


def outbox_bucket_state(s3: BaseClient, bucket: str) -> dict[str, bool] | None:
    """``{"encrypted": ..., "private": ...}`` of an existing bucket, None if it does not exist."""
    if not bucket_exists(s3, bucket):
        return None
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        encrypted = any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        encrypted = False
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        private = all(block.get(k) for k in _ALL_BLOCKED)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchPublicAccessBlockConfiguration":
            raise
        private = False
    return {"encrypted": encrypted, "private": private}


#: What GetBucketLocation answers for buckets of these regions (None: us-east-1; "EU": the
#: legacy constraint of eu-west-1 buckets).
_LEGACY_LOCATIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}


def bucket_region(s3: BaseClient, bucket: str) -> str:
    """The region an existing S3 bucket lives in."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return str(_LEGACY_LOCATIONS.get(location, location))


def region_drift(bucket_in: str, region: str) -> str:
    """Why an outbox bucket outside the app's region is drift (it cannot be moved)."""
    return (
        f"in {bucket_in}, not {region}: the app's S3 client is for {region}, and with SSE-KMS the tenant "
        f"role's kms:ViaService (s3.{region}) refuses S3's calls; use a bucket in {region}"
    )


def get_index(s3v: BaseClient, bucket: str, name: str) -> dict[str, Any] | None:
    """The index description, None if it does not exist."""
    try:
        return dict(s3v.get_index(vectorBucketName=bucket, indexName=name)["index"])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def index_drift(index: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How an index description differs from ``create_index_params`` output (empty if it matches)."""
    return [
        f"{key} is {index.get(key)}, wanted {wanted[key]}"
        for key in ("dimension", "distanceMetric", "dataType")
        if index.get(key) is not None and index.get(key) != wanted[key]
    ] + [f"{key} is filterable, wanted non-filterable" for key in missing_non_filterable_keys(index)]


def onboard(s3v: BaseClient, report: Report, bucket: str, tenant: str, dimension: int) -> None:
    """Create the tenant's index, or check the existing one's dimension, metric and type."""
    name = index_name_for(tenant)
    wanted = create_index_params(bucket, name, dimension)
    index = get_index(s3v, bucket, name)
    if index is None:
        report.change("CREATE", f"index {name}", f"dimension {dimension}, cosine, float32")
        if not report.dry_run:
            S3VectorsIndex(s3v, bucket, name, dimension).ensure()
            _filter_first(s3v, report, bucket, name, get_index(s3v, bucket, name) or {})
        return
    _filter_first(s3v, report, bucket, name, index)
    drift = index_drift(index, wanted)
    for item in drift:
        report.add("DRIFT", f"index {name}", f"{item} (offboard and onboard again to change it)")
    if not drift:
        report.add("UNCHANGED", f"index {name}", f"dimension {index.get('dimension')}")


def filters_during_search(index: dict[str, Any]) -> bool:
    """Whether an index description is CLASSIC: the metadata filter is applied during the vector
    search, so a filter matching a small fraction of the index (one user's memories among a
    tenant's) can return fewer than topK; ``onboard`` moves it to ENHANCED (filter first)."""
    return index.get("indexMode") == "CLASSIC"


def _filter_first(s3v: BaseClient, report: Report, bucket: str, name: str, index: dict[str, Any]) -> None:
    """Move a CLASSIC index to ENHANCED (``filters_during_search``). Indexes in buckets created
    before 2026-09-30 are CLASSIC by default; a botocore too old to report the mode leaves the
    index as it is."""
    if not filters_during_search(index):
        return
    report.change("UPDATE", f"index {name}", "index mode CLASSIC -> ENHANCED (metadata filter before the search)")
    if not report.dry_run:
        s3v.update_index_mode(vectorBucketName=bucket, indexName=name, indexMode="ENHANCED")


def offboard(s3v: BaseClient, report: Report, bucket: str, tenant: str, confirmed: bool) -> int:
    """Delete the tenant's index when ``confirmed``; return how many vectors it held."""
    name = index_name_for(tenant)
    index = get_index(s3v, bucket, name)
    if index is None:
        report.add("ABSENT", f"index {name}", "nothing to delete")
        return 0
    count = S3VectorsIndex(s3v, bucket, name, int(index.get("dimension", 1))).count()
    if not confirmed:
        report.add("WOULD DELETE", f"index {name}", f"{count} vector(s); re-run with --yes to delete")
        return count
    S3VectorsIndex(s3v, bucket, name, int(index.get("dimension", 1))).drop()
    report.add("DELETED", f"index {name}", f"{count} vector(s)")
    return count


def list_tenants(s3v: BaseClient, report: Report, bucket: str, count: bool) -> list[str]:
    """The tenants that have an index in ``bucket`` (optionally with vector counts)."""
    tenants = []
    for page in s3v.get_paginator("list_indexes").paginate(vectorBucketName=bucket, prefix=INDEX_PREFIX):
        for item in page.get("indexes", []):
            name = item["indexName"]
            tenant = name[len(INDEX_PREFIX) :]
            tenants.append(tenant)
            detail = ""
            if count:
                index = get_index(s3v, bucket, name) or {}
                n = S3VectorsIndex(s3v, bucket, name, int(index.get("dimension", 1))).count()
                detail = f"dimension {index.get('dimension')}, {n} vector(s)"
            report.add("TENANT", tenant, detail)
    if not tenants:
        report.add("EMPTY", f"vector bucket {bucket}", "no tenant indexes")
    return tenants


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``vector-bucket`` and ``tenant`` commands."""
    p = sub.add_parser("vector-bucket", help="create the S3 vector bucket (and the outbox bucket)", description=__doc__)
    add_common_args(p)
    p.add_argument("--bucket", type=vector_bucket, required=True)
    p.add_argument("--outbox-bucket", type=s3_bucket, help="also create/check this S3 bucket for the outbox (AGENT_OUTBOX_BUCKET)")
    p.set_defaults(func=run_bucket)

    t = sub.add_parser(
        "tenant", help="onboard, offboard or list tenants (one index each)", description=__doc__
    )
    cmds = t.add_subparsers(dest="tenant_command", required=True, metavar="SUBCOMMAND")
    on = add_subcommand(cmds, "onboard", "create the tenant's index (idempotent)")
    add_common_args(on)
    on.add_argument("--bucket", type=vector_bucket, required=True)
    on.add_argument("--tenant", action="append", required=True, help="tenant id (repeatable)")
    on.add_argument(
        "--dimension",
        type=dimension,
        default=DEFAULT_DIMENSION,
        help=f"embedding dimension (default {DEFAULT_DIMENSION}, Nova 2; 256 for WordLlama)",
    )
    on.set_defaults(func=run_onboard)
    off = add_subcommand(cmds, "offboard", "delete the tenant's index and all its memories (needs --yes)")
    add_common_args(off, mutating=False)
    off.add_argument("--bucket", type=vector_bucket, required=True)
    off.add_argument("--tenant", required=True)
    off.add_argument("--yes", action="store_true", help="really delete (otherwise only report)")
    off.set_defaults(func=run_offboard)
    ls = add_subcommand(cmds, "list", "list tenants with an index")
    add_common_args(ls, mutating=False)
    ls.add_argument("--bucket", type=vector_bucket, required=True)
    ls.add_argument("--count", action="store_true", help="also count vectors (lists every vector)")
    ls.set_defaults(func=run_list)


def run_bucket(args: argparse.Namespace) -> Report:
    """Ensure the vector bucket."""
    region = require_region(args)
    report = Report("vector-bucket", dry_run=args.dry_run)
    ensure_bucket(aws_client("s3vectors", region), report, args.bucket)
    if args.outbox_bucket:
        ensure_outbox_bucket(aws_client("s3", region), report, args.outbox_bucket, region)
    return report


def run_onboard(args: argparse.Namespace) -> Report:
    """Ensure one index per tenant."""
    tenants = [validate_tenant_id(t) for t in args.tenant]
    s3v = aws_client("s3vectors", require_region(args))
    report = Report("tenant onboard", dry_run=args.dry_run)
    require_bucket(s3v, args.bucket)
    for tenant in tenants:
        onboard(s3v, report, args.bucket, tenant, args.dimension)
    return report


def run_offboard(args: argparse.Namespace) -> Report:
    """Delete a tenant's index (with --yes)."""
    tenant = validate_tenant_id(args.tenant)
    s3v = aws_client("s3vectors", require_region(args))
    report = Report("tenant offboard", dry_run=not args.yes)
    require_bucket(s3v, args.bucket)
    offboard(s3v, report, args.bucket, tenant, args.yes)
    return report


def run_list(args: argparse.Namespace) -> Report:
    """List tenant indexes."""
    s3v = aws_client("s3vectors", require_region(args))
    report = Report("tenant list", read_only=True)
    require_bucket(s3v, args.bucket)
    list_tenants(s3v, report, args.bucket, args.count)
    return report


def require_bucket(s3v: BaseClient, bucket: str) -> None:
    """A clear error when the vector bucket does not exist (a mistyped name: no index in it)."""
    if not vector_bucket_exists(s3v, bucket):
        raise ScriptError(
            f"vector bucket {bucket!r} not found; create it with `python -m scripts vector-bucket --bucket {bucket}`"
        )


def vector_bucket_exists(s3v: BaseClient, bucket: str) -> bool:
    """Whether the vector bucket exists (``GetVectorBucket``)."""
    try:
        s3v.get_vector_bucket(vectorBucketName=bucket)
    except ClientError as err:
        if is_not_found(err):
            return False
        raise
    return True


def bucket_exists(s3: BaseClient, bucket: str) -> bool:
    """Whether the S3 bucket exists (``HeadBucket``; another account's bucket answers 403, a denial)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        if is_not_found(err) or error_code(err) == "NoSuchBucket":
            return False
        raise
    return True
