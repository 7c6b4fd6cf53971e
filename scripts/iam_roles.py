"""Idempotent IAM role documents shared by the role commands (``runtime-role``, ``tvm-role``,
``agentcore``): a trust policy and inline policies brought back to the intended document."""

from __future__ import annotations

from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from scripts.common import Report, canonical, error_code, is_not_found, policy_json


def existing_role(iam: BaseClient, role_name: str) -> dict[str, Any] | None:
    """The role's description (``GetRole``), or None when it does not exist."""
    try:
        return dict(iam.get_role(RoleName=role_name)["Role"])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def create_role(iam: BaseClient, **params: Any) -> dict[str, Any]:
    """``CreateRole``; the role's description. A create whose response was lost (a read timeout)
    is resent by botocore and answered ``EntityAlreadyExists``: the first one made it."""
    try:
        return dict(iam.create_role(**params)["Role"])
    except ClientError as err:
        role = existing_role(iam, params["RoleName"]) if error_code(err) == "EntityAlreadyExists" else None
        if role is None:
            raise
        return role


def ensure_trust(iam: BaseClient, report: Report, role: dict[str, Any], trust: dict[str, Any]) -> None:
    """Bring an existing role's trust policy back to ``trust`` when it differs."""
    name = role["RoleName"]
    if canonical(role["AssumeRolePolicyDocument"]) == canonical(trust):
        report.add("UNCHANGED", f"trust policy of {name}")
        return
    report.change("UPDATE", f"trust policy of {name}", "drift: differed from the intended document")
    if not report.dry_run:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=policy_json(trust))


def inline_policy(iam: BaseClient, role_name: str, name: str) -> dict[str, Any] | None:
    """The role's inline policy ``name``, or None when it has none."""
    try:
        return dict(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def ensure_inline_policy(
    iam: BaseClient, report: Report, role_name: str, name: str, policy: dict[str, Any]
) -> None:
    """Put an inline policy on a role when it is missing or differs from ``policy``."""
    current = inline_policy(iam, role_name, name)
    if current is not None and canonical(current) == canonical(policy):
        report.add("UNCHANGED", f"inline policy {name} on {role_name}")
        return
    detail = "missing" if current is None else "drift: differed from the intended document"
    report.change("UPDATE" if current is not None else "CREATE", f"inline policy {name} on {role_name}", detail)
    if not report.dry_run:
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=policy_json(policy))
