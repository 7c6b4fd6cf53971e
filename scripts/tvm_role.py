"""``tvm-role``: the IAM role the token vending machine assumes with a ``TenantID`` session tag.

Its permission policy is ABAC: vector actions only on the index named after the session's
tenant tag and, with ``--outbox-bucket``, object actions only under the tenant's outbox prefix
``<prefix>/${aws:PrincipalTag/TenantID}/{pending,claims,dead}/*``, reading only under its
``erasures/`` (which only ``forget`` writes), listing limited to that prefix. Its trust policy
lets only the runtime's execution role (and named principals) assume it, and only with a
``TenantID`` tag.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Sequence

from botocore.client import BaseClient

from memory.pipeline.outbox_s3 import APP_WRITTEN_FOLDERS, ERASURES_FOLDER
from memory.tenants import INDEX_PREFIX
from scripts.common import (
    Report,
    UsageError,
    account_id,
    add_common_args,
    aws_client,
    outbox_prefix,
    policy_json,
    require_region,
    s3_bucket,
    vector_bucket,
)
from scripts.iam_roles import create_role, ensure_inline_policy, ensure_trust, existing_role

TENANT_TAG = "TenantID"
VECTOR_ACTIONS = (
    "s3vectors:PutVectors",
    "s3vectors:QueryVectors",
    "s3vectors:GetVectors",
    "s3vectors:ListVectors",
    "s3vectors:DeleteVectors",
)
#: What the app does with one index: the vector actions plus reading the index's own
#: configuration (the start-up dimension check). Never CreateIndex/DeleteIndex: onboarding
#: and offboarding stay with the operations CLI.
INDEX_USER_ACTIONS = (*VECTOR_ACTIONS, "s3vectors:GetIndex")
#: What the app's outbox does with a tenant's entries, claims and dead letters (``APP_WRITTEN_FOLDERS``);
#: of the erasure markers, which only ``forget`` writes, it only reads them (``s3:GetObject``).
OUTBOX_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
DEFAULT_OUTBOX_PREFIX = "outbox"
#: What S3 asks KMS for when it writes and reads SSE-KMS objects with the caller's credentials.
OUTBOX_KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
POLICY_NAME = "tenant-index-access"
#: IAM's minimum; the TVM asks for 15-minute credentials, well inside it.
MAX_SESSION_SECONDS = 3600
DEFAULT_ROLE_NAME = "agent-memory-tvm"


def tenant_index_arn_pattern(region: str, account: str, bucket: str) -> str:
    """The ARN of the caller's own tenant index, resolved by IAM from the session tag."""
    return (
        f"arn:aws:s3vectors:{region}:{account}:bucket/{bucket}/index/"
        f"{INDEX_PREFIX}${{aws:PrincipalTag/{TENANT_TAG}}}"
    )


#: A tenant's segment of the outbox keys, resolved by IAM from the session tag.
TENANT_SEGMENT = f"${{aws:PrincipalTag/{TENANT_TAG}}}"


def tenant_outbox_prefix_pattern(prefix: str) -> str:
    """The caller's own tenant prefix in the outbox bucket, resolved by IAM from the session tag."""
    return f"{prefix.strip('/')}/{TENANT_SEGMENT}/*"


def outbox_object_statements(bucket: str, prefix: str, tenant: str, sids: tuple[str, str]) -> list[dict[str, Any]]:
    """What the app may do with the objects of ``tenant``'s outbox prefix (``tenant``: an id, or
    ``TENANT_SEGMENT``): read, write and delete its entries, claims and dead letters, and only read
    its erasure markers, which ``forget`` writes with the operator's credentials (a tenant session
    that could overwrite or delete them could undo an erasure)."""
    root = f"arn:aws:s3:::{bucket}/{prefix.strip('/')}/{tenant}"
    return [
        {
            "Sid": sids[0],
            "Effect": "Allow",
            "Action": list(OUTBOX_OBJECT_ACTIONS),
            "Resource": [f"{root}/{folder}/*" for folder in APP_WRITTEN_FOLDERS],
        },
        {"Sid": sids[1], "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{root}/{ERASURES_FOLDER}/*"},
    ]


def permission_policy(
    region: str,
    account: str,
    bucket: str,
    *,
    outbox_bucket: str | None = None,
    outbox_prefix: str = DEFAULT_OUTBOX_PREFIX,
    outbox_kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """The role's only permissions: vector actions on the session tenant's index and, with an
    outbox bucket, object actions (``outbox_object_statements``: erasure markers read-only) and
    listing only under the tenant's outbox prefix; with a
    customer-managed KMS key for the outbox (``AGENT_OUTBOX_KMS_KEY_ID``), that key's data-key
    actions, only when S3 calls them (``kms:ViaService``) for those objects."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "OwnTenantIndexOnly",
            "Effect": "Allow",
            "Action": list(INDEX_USER_ACTIONS),
            "Resource": tenant_index_arn_pattern(region, account, bucket),
        }
    ]
    if outbox_bucket:
        statements += outbox_object_statements(
            outbox_bucket, outbox_prefix, TENANT_SEGMENT, ("OwnTenantOutboxObjectsOnly", "ReadOwnTenantErasureMarkersOnly")
        )
        statements += [
            {
                "Sid": "ListOwnTenantOutboxOnly",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{outbox_bucket}",
                "Condition": {"StringLike": {"s3:prefix": tenant_outbox_prefix_pattern(outbox_prefix)}},
            },
        ]
    if outbox_kms_key_arn:
        if not outbox_bucket:
            raise UsageError("--outbox-kms-key-arn needs --outbox-bucket")
        statements.append(outbox_kms_statement(region, account, outbox_kms_key_arn))
    return {"Version": "2012-10-17", "Statement": statements}


def outbox_kms_statement(region: str, account: str, key_arn: str) -> dict[str, Any]:
    """Use of the outbox's customer-managed key, only when S3 asks for it: S3 requests data keys
    with the caller's credentials when it writes or reads an SSE-KMS object."""
    return {
        "Sid": "OutboxKmsKeyThroughS3Only",
        "Effect": "Allow",
        "Action": list(OUTBOX_KMS_ACTIONS),
        "Resource": check_kms_key_arn(key_arn, region, account),
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    }


def check_kms_key_arn(key_arn: str, region: str, account: str) -> str:
    """A key ARN of this region and account (IAM cannot match a key id or an alias here)."""
    if not _KMS_KEY_ARN.fullmatch(key_arn) or key_arn.split(":")[3:5] != [region, account]:
        raise UsageError(
            f"--outbox-kms-key-arn must be a key ARN of {region} and account {account} "
            f"(arn:aws:kms:{region}:{account}:key/<key id>), not {key_arn!r}"
        )
    return key_arn


#: The only AWS principals a trust statement may name: one IAM role or user, no wildcard.
#: ``*`` would let any account assume the role with any tenant tag, and ``<account>:root``
#: (or a bare account id) any role of the account that has ``sts:AssumeRole``.
_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")
#: A service principal acts for one resource: an exact ARN of this account, no wildcard.
_SOURCE_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):[^*?\s]+")


def _check_principal(principal: str) -> str:
    if not _PRINCIPAL_ARN.fullmatch(principal):
        raise UsageError(
            f"refusing trust principal {principal!r}: name one IAM role or user ARN "
            "(not '*', not an account root or id, no wildcards)"
        )
    return principal


def _check_source_arn(source_arn: str | None, account: str) -> str:
    match = _SOURCE_ARN.fullmatch(source_arn or "")
    if match is None or match.group(1) != account:
        raise UsageError(
            "a --service-principal needs --source-arn: the exact ARN (no wildcards) of the "
            f"resource in account {account} the service assumes the role for"
        )
    return str(source_arn)


def _tag_conditions() -> dict[str, Any]:
    return {
        "StringLike": {f"aws:RequestTag/{TENANT_TAG}": "?*"},
        "ForAllValues:StringEquals": {"aws:TagKeys": [TENANT_TAG]},
    }


def trust_policy(
    principals: Sequence[str],
    *,
    account: str,
    service_principals: Sequence[str] = (),
    source_arn: str | None = None,
) -> dict[str, Any]:
    """Who may assume the role: the given AWS principals (and services), always with a tenant tag.

    Args:
        principals: IAM role or user ARNs (``*``, account roots and wildcards are refused).
        account: This account; service principals are pinned to it (``aws:SourceAccount``).
        service_principals: Services allowed to assume the role, each only for ``source_arn``.
        source_arn: The exact ARN (``aws:SourceArn``) a service acts for; required with a service.

    Raises:
        UsageError: No principal, a refused principal, or a service without a usable source ARN.
    """
    if not principals and not service_principals:
        raise UsageError("the trust policy needs at least one principal (the execution role ARN)")
    for principal in principals:
        _check_principal(principal)
    statements: list[dict[str, Any]] = []
    if principals:
        statements.append(
            {
                "Sid": "RuntimeAssumesWithTenantTag",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(principals))},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": _tag_conditions(),
            }
        )
    if service_principals:
        condition = _tag_conditions()
        condition["StringEquals"] = {"aws:SourceAccount": account}
        condition["ArnEquals"] = {"aws:SourceArn": _check_source_arn(source_arn, account)}
        statements.append(
            {
                "Sid": "ServiceAssumesWithTenantTag",
                "Effect": "Allow",
                "Principal": {"Service": sorted(set(service_principals))},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": condition,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_role(
    iam: BaseClient,
    report: Report,
    *,
    role_name: str,
    trust: dict[str, Any],
    permissions: dict[str, Any],
) -> str | None:
    """Create the role, or bring its two policy documents up to date; return its ARN.

    Other policies found on the role are reported as drift and left alone.
    """
    role = existing_role(iam, role_name)
    if role is None:
        report.change("CREATE", f"role {role_name}", f"max session {MAX_SESSION_SECONDS}s")
        report.change("CREATE", f"inline policy {POLICY_NAME}", "vector actions on own tenant index")
        if report.dry_run:
            return None
        arn = create_role(
            iam,
            RoleName=role_name,
            AssumeRolePolicyDocument=policy_json(trust),
            MaxSessionDuration=MAX_SESSION_SECONDS,
            Description="Token vending machine role: tenant-scoped S3 Vectors access (ABAC on TenantID)",
        )["Arn"]
        iam.put_role_policy(
            RoleName=role_name, PolicyName=POLICY_NAME, PolicyDocument=policy_json(permissions)
        )
        return str(arn)

    arn = str(role["Arn"])
    ensure_trust(iam, report, role, trust)
    if role.get("MaxSessionDuration") != MAX_SESSION_SECONDS:
        report.change(
            "UPDATE",
            f"max session of {role_name}",
            f"{role.get('MaxSessionDuration')}s -> {MAX_SESSION_SECONDS}s",
        )
        if not report.dry_run:
            iam.update_role(RoleName=role_name, MaxSessionDuration=MAX_SESSION_SECONDS)
    ensure_inline_policy(iam, report, role_name, POLICY_NAME, permissions)
    _report_extra_policies(iam, report, role_name)
    return arn


def extra_policies(iam: BaseClient, role_name: str) -> list[str]:
    """Inline policy names and attached policy ARNs on the role other than the ABAC policy."""
    extra = [n for n in iam.list_role_policies(RoleName=role_name)["PolicyNames"] if n != POLICY_NAME]
    attached = [
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    ]
    return extra + attached


def _report_extra_policies(iam: BaseClient, report: Report, role_name: str) -> None:
    for name in extra_policies(iam, role_name):
        report.add(
            "DRIFT",
            f"extra policy {name} on {role_name}",
            "grants more than the ABAC policy; review and remove it",
        )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``tvm-role`` command."""
    p = sub.add_parser(
        "tvm-role", help="create/update the tenant-scoped TVM role (ABAC)", description=__doc__
    )
    add_common_args(p)
    p.add_argument("--role-name", default=DEFAULT_ROLE_NAME)
    p.add_argument("--bucket", type=vector_bucket, required=True, help="vector bucket name")
    p.add_argument("--execution-role-arn", required=True, help="the AgentCore runtime's execution role ARN")
    p.add_argument(
        "--principal",
        action="append",
        default=[],
        help="extra IAM role or user ARN allowed to assume (repeatable; '*' and account roots are refused)",
    )
    p.add_argument(
        "--service-principal",
        action="append",
        default=[],
        help="service principal allowed to assume (needs --source-arn; pinned to this account)",
    )
    p.add_argument("--source-arn", help="exact aws:SourceArn (no wildcards) the service principal must act for")
    add_outbox_args(p)
    p.set_defaults(func=run)


def add_outbox_args(p: argparse.ArgumentParser, *, checked: bool = False) -> None:
    """``--outbox-bucket``, ``--outbox-prefix`` and ``--outbox-kms-key-arn`` (shared with ``agentcore``
    and ``doctor``; ``checked``: doctor's, which check the outbox and default to the deployed settings)."""
    if checked:
        p.add_argument("--outbox-bucket", type=s3_bucket, help="S3 outbox bucket to check (default: the settings' AGENT_OUTBOX_BUCKET)")
        p.add_argument(
            "--outbox-prefix",
            type=outbox_prefix,
            help=f"default: the settings' AGENT_OUTBOX_PREFIX, else {DEFAULT_OUTBOX_PREFIX}",
        )
        p.add_argument(
            "--outbox-kms-key-arn",
            help="the outbox's customer-managed KMS key (ARN; default: the settings' AGENT_OUTBOX_KMS_KEY_ID, "
            "else the key the TVM role grants)",
        )
        return
    p.add_argument("--outbox-bucket", type=s3_bucket, help="S3 outbox bucket (AGENT_OUTBOX_BUCKET): grant each tenant its prefix")
    p.add_argument("--outbox-prefix", type=outbox_prefix, default=DEFAULT_OUTBOX_PREFIX, help="AGENT_OUTBOX_PREFIX")
    p.add_argument(
        "--outbox-kms-key-arn",
        help="the outbox's customer-managed KMS key (ARN; AGENT_OUTBOX_KMS_KEY_ID): tenants may use it through S3",
    )


def run(args: argparse.Namespace) -> Report:
    """Ensure the TVM role and print its ARN."""
    region = require_region(args)
    account = account_id(region)
    report = Report("tvm-role", dry_run=args.dry_run)
    arn = ensure_role(
        aws_client("iam", region),
        report,
        role_name=args.role_name,
        trust=trust_policy(
            [args.execution_role_arn, *args.principal],
            account=account,
            service_principals=args.service_principal,
            source_arn=args.source_arn,
        ),
        permissions=permission_policy(
            region,
            account,
            args.bucket,
            outbox_bucket=args.outbox_bucket,
            outbox_prefix=args.outbox_prefix,
            outbox_kms_key_arn=args.outbox_kms_key_arn,
        ),
    )
    report.output("role ARN", arn or f"arn:aws:iam::{account}:role/{args.role_name} (not created yet)")
    return report
