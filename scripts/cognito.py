"""``cognito setup|create-user``: the user pool and app client that identify tenants and users.

The pool carries an immutable ``custom:tenantId`` (plus ``custom:tenantName`` and
``custom:tier``); the app client has no secret and cannot write ``custom:tenantId``, so a user
can never move to another tenant. Existing pools and clients are never deleted or rewritten:
differences are reported as drift.
"""

from __future__ import annotations

import argparse
import re
import secrets
import string
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from memory.tenants import MAX_TENANT_ID_LENGTH, validate_tenant_id
from scripts.common import (
    DriftError,
    Report,
    ScriptError,
    add_common_args,
    add_subcommand,
    aws_client,
    error_code,
    is_not_found,
    require_region,
)

DEFAULT_POOL_NAME = "agent-memory-users"
DEFAULT_CLIENT_NAME = "agent-memory-app"
TENANT_ATTRIBUTE = "custom:tenantId"
#: custom attribute name -> mutable?
CUSTOM_ATTRIBUTES = {"tenantId": False, "tenantName": True, "tier": True}
AUTH_FLOWS_PROD = ("ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
AUTH_FLOW_DEV = "ALLOW_USER_PASSWORD_AUTH"
READ_ATTRIBUTES = ("email", "email_verified", "custom:tenantId", "custom:tenantName", "custom:tier")
WRITE_ATTRIBUTES = ("email",)
#: The status of a user created with a temporary password that never signed in: what an
#: interrupted ``create-user`` leaves (the password is shown only after it is set permanent).
FIRST_RUN_UNFINISHED = "FORCE_CHANGE_PASSWORD"


def pool_schema() -> list[dict[str, Any]]:
    """The custom attributes of a new pool (tenantId immutable)."""
    schema = []
    for name, mutable in CUSTOM_ATTRIBUTES.items():
        max_len = MAX_TENANT_ID_LENGTH if name == "tenantId" else 128
        schema.append(
            {
                "Name": name,
                "AttributeDataType": "String",
                "Mutable": mutable,
                "StringAttributeConstraints": {"MinLength": "1", "MaxLength": str(max_len)},
            }
        )
    return schema


def auth_flows(password_auth: bool) -> list[str]:
    """Explicit auth flows: SRP and refresh, plus USER_PASSWORD_AUTH for development."""
    return sorted({*AUTH_FLOWS_PROD, *((AUTH_FLOW_DEV,) if password_auth else ())})


def discovery_url(region: str, pool_id: str) -> str:
    """The pool's OpenID discovery URL (what AgentCore's JWT authorizer needs)."""
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}/.well-known/openid-configuration"


def find_pool(idp: BaseClient, name: str) -> str | None:
    """The id of the user pool called ``name``, None if there is none (error if ambiguous)."""
    ids = [
        p["Id"]
        for page in idp.get_paginator("list_user_pools").paginate(MaxResults=60)
        for p in page["UserPools"]
        if p["Name"] == name
    ]
    if len(ids) > 1:
        raise ScriptError(f"{len(ids)} user pools are named {name!r} ({', '.join(ids)}); pass --pool-id")
    return ids[0] if ids else None


def described_pool(idp: BaseClient, pool_id: str) -> dict[str, Any] | None:
    """The user pool ``pool_id`` (``DescribeUserPool``), None if it does not exist or the id is malformed."""
    return _describe(idp, "describe_user_pool", "UserPool", UserPoolId=pool_id)


def described_client(idp: BaseClient, pool_id: str, client_id: str) -> dict[str, Any] | None:
    """The app client ``client_id`` of the pool (``DescribeUserPoolClient``), None if there is none."""
    return _describe(idp, "describe_user_pool_client", "UserPoolClient", UserPoolId=pool_id, ClientId=client_id)


#: The API model's shape of each id parameter.
_ID_SHAPES = {"UserPoolId": "UserPoolIdType", "ClientId": "ClientIdType"}


def _describe(idp: BaseClient, operation: str, answer: str, **ids: str) -> dict[str, Any] | None:
    """``operation``'s ``answer`` for ``ids``, None when one names nothing or is malformed (checked
    against the API model's pattern: botocore does not check patterns, and the service refuses
    a malformed id with a validation error, not "not found")."""
    for name, value in ids.items():
        metadata = idp.meta.service_model.shape_for(_ID_SHAPES[name]).metadata
        if len(value) > metadata["max"] or not re.fullmatch(metadata["pattern"], value):
            return None
    try:
        return dict(getattr(idp, operation)(**ids)[answer])
    except ClientError as err:
        if is_not_found(err):
            return None
        raise


def ensure_pool(idp: BaseClient, report: Report, name: str, pre_token_trigger_arn: str | None) -> str | None:
    """Create the pool if missing, otherwise check it (drift reported, never changed)."""
    pool_id = find_pool(idp, name)
    if pool_id is None:
        report.change("CREATE", f"user pool {name}", "custom:tenantId immutable, tenantName, tier")
        if report.dry_run:
            return None
        kwargs: dict[str, Any] = {}
        if pre_token_trigger_arn:
            kwargs["LambdaConfig"] = {
                "PreTokenGenerationConfig": {"LambdaVersion": "V2_0", "LambdaArn": pre_token_trigger_arn}
            }
        # Not resent: a lost response would leave a second pool of the same name (a re-run finds
        # the one created); a pool has no client token that would make the create idempotent.
        pool = aws_client("cognito-idp", idp.meta.region_name, resend=False).create_user_pool(
            PoolName=name,
            Schema=pool_schema(),
            UsernameAttributes=["email"],
            UsernameConfiguration={"CaseSensitive": False},  # the API's default is case sensitive
            AutoVerifiedAttributes=["email"],
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
            Policies={
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                }
            },
            DeletionProtection="ACTIVE",
            **kwargs,
        )["UserPool"]
        return str(pool["Id"])
    pool = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    _report_drift(report, f"user pool {name}", pool_drift(pool, pre_token_trigger_arn), pool_id)
    return pool_id


def _report_drift(report: Report, resource: str, drift: list[str], unchanged: str) -> None:
    """One DRIFT row per difference, or UNCHANGED (``unchanged`` as the detail)."""
    for item in drift:
        report.add("DRIFT", resource, item)
    if not drift:
        report.add("UNCHANGED", resource, unchanged)


def pool_drift(pool: dict[str, Any], trigger_arn: str | None) -> list[str]:
    """How a described pool differs from the intended one (empty when it matches)."""
    attrs = {a["Name"]: a for a in pool.get("SchemaAttributes", [])}
    drift = []
    for name, mutable in CUSTOM_ATTRIBUTES.items():
        attr = attrs.get(f"custom:{name}")
        if attr is None:
            drift.append(f"custom:{name} missing (add it with add-custom-attributes)")
        elif bool(attr.get("Mutable", True)) != mutable:
            drift.append(
                f"custom:{name} is {'mutable' if attr.get('Mutable', True) else 'immutable'}; "
                "a new pool is needed to change that"
            )
    if not pool.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly", False):
        drift.append(
            "self sign-up is allowed: anyone can create a user and, through any app client of the pool "
            "that may write custom:tenantId, choose its tenant (set AllowAdminCreateUserOnly with update-user-pool)"
        )
    if trigger_arn:
        current = pool.get("LambdaConfig", {}).get("PreTokenGenerationConfig", {}).get(
            "LambdaArn"
        ) or pool.get("LambdaConfig", {}).get("PreTokenGeneration")
        if current != trigger_arn:
            drift.append(
                f"pre-token-generation trigger is {current or 'unset'}, wanted {trigger_arn} "
                "(set it in the console or with update-user-pool)"
            )
    return drift


def ensure_client(
    idp: BaseClient, report: Report, pool_id: str, name: str, password_auth: bool
) -> str | None:
    """Create the app client if missing, otherwise check it (drift reported, never changed)."""
    existing = find_client(idp, pool_id, name)
    flows = auth_flows(password_auth)
    if existing is None:
        report.change("CREATE", f"app client {name}", f"no secret; flows {', '.join(flows)}")
        if report.dry_run:
            return None
        client = aws_client("cognito-idp", idp.meta.region_name, resend=False).create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=name,
            GenerateSecret=False,
            ExplicitAuthFlows=flows,
            ReadAttributes=list(READ_ATTRIBUTES),
            WriteAttributes=list(WRITE_ATTRIBUTES),
            PreventUserExistenceErrors="ENABLED",
            EnableTokenRevocation=True,
        )["UserPoolClient"]
        return str(client["ClientId"])
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=existing)["UserPoolClient"]
    _report_drift(report, f"app client {name}", client_drift(client, flows), existing)
    return existing


def find_client(idp: BaseClient, pool_id: str, name: str) -> str | None:
    """The id of the pool's app client called ``name`` (the first), None if there is none."""
    existing = [
        c["ClientId"]
        for page in idp.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool_id, MaxResults=60)
        for c in page["UserPoolClients"]
        if c["ClientName"] == name
    ]
    return str(existing[0]) if existing else None


def client_drift(client: dict[str, Any], flows: list[str], *, id_tokens: bool = True) -> list[str]:
    """How a described app client differs from the intended one (empty when it matches).

    ``id_tokens``: the app accepts the client's id tokens, which carry only the attributes the
    client may read; without ``ReadAttributes`` a client reads the standard attributes, never a
    custom one (Cognito's UserPoolClientType), so its id tokens name no tenant and are all refused.
    """
    drift = []
    if client.get("ClientSecret"):
        drift.append("has a client secret (public app clients must not)")
    if sorted(client.get("ExplicitAuthFlows", [])) != flows:
        drift.append(f"auth flows are {sorted(client.get('ExplicitAuthFlows', []))}, wanted {flows}")
    if TENANT_ATTRIBUTE in client.get("WriteAttributes", []):
        drift.append(f"users can write {TENANT_ATTRIBUTE}: remove it from the client's write attributes")
    if id_tokens and TENANT_ATTRIBUTE not in client.get("ReadAttributes", []):
        drift.append(
            f"cannot read {TENANT_ATTRIBUTE}: its id tokens carry no tenant and the app refuses them "
            "(add it to the client's read attributes)"
        )
    return drift


def generate_password(length: int = 20) -> str:
    """A random password meeting the pool policy (upper, lower, digit, symbol).

    Its symbols are ones an interactive shell and the AWS CLI's shorthand syntax take literally, so
    it can be typed unquoted into ``--auth-parameters USERNAME=...,PASSWORD=...`` (no ``!``: bash's
    history expansion; no ``=``: a shorthand value cannot start with it).
    """
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "#%+-_"]
    chars = [secrets.choice(c) for c in classes]
    alphabet = "".join(classes)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def create_user(
    idp: BaseClient,
    report: Report,
    *,
    pool_id: str,
    tenant: str,
    email: str,
    tenant_name: str | None = None,
    tier: str | None = None,
) -> str | None:
    """Create a confirmed user of ``tenant``; return the generated password (None if none was set).

    The email is filed in lower case: one address, one user (and one ``sub``), whatever capitals
    a later run uses, even in a case-sensitive pool.
    """
    validate_tenant_id(tenant)
    email = email.strip().lower()
    try:
        user = idp.admin_get_user(UserPoolId=pool_id, Username=email)
    except ClientError as err:
        if not is_not_found(err):
            raise
        user = None
    if user is not None:
        current = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}.get(TENANT_ATTRIBUTE)
        if current != tenant:
            raise DriftError(
                f"user {email} exists with tenant {current!r}, not {tenant!r}; tenant ids are immutable"
            )
        if user.get("UserStatus") != FIRST_RUN_UNFINISHED:
            report.add("UNCHANGED", f"user {email}", f"tenant {tenant}; password not changed")
            return None
        # An earlier run stopped before setting the password: its temporary one was never shown.
        report.change("UPDATE", f"user {email}", f"tenant {tenant}; never signed in, password set")
        if report.dry_run:
            return None
        password = generate_password()
        idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
        return password
    report.change("CREATE", f"user {email}", f"tenant {tenant}")
    if report.dry_run:
        return None
    attributes = [
        {"Name": "email", "Value": email},
        {"Name": "email_verified", "Value": "true"},
        {"Name": TENANT_ATTRIBUTE, "Value": tenant},
    ]
    if tenant_name:
        attributes.append({"Name": "custom:tenantName", "Value": tenant_name})
    if tier:
        attributes.append({"Name": "custom:tier", "Value": tier})
    password = generate_password()
    try:
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=attributes,
            MessageAction="SUPPRESS",
            TemporaryPassword=password,
        )
    except ClientError as err:  # botocore resent a create whose response was lost: the user is ours
        if error_code(err) != "UsernameExistsException" or not _unfinished_of(idp, pool_id, email, tenant):
            raise
    idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    return password


def _unfinished_of(idp: BaseClient, pool_id: str, email: str, tenant: str) -> bool:
    """Whether the user exists in ``tenant`` and never signed in (what a lost create leaves)."""
    user = idp.admin_get_user(UserPoolId=pool_id, Username=email)
    attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
    return attributes.get(TENANT_ATTRIBUTE) == tenant and user.get("UserStatus") == FIRST_RUN_UNFINISHED


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``cognito`` command and its ``setup`` / ``create-user`` subcommands."""
    p = sub.add_parser("cognito", help="user pool, app client and users", description=__doc__)
    cmds = p.add_subparsers(dest="cognito_command", required=True, metavar="SUBCOMMAND")
    setup = add_subcommand(cmds, "setup", "create or check the user pool and app client")
    add_common_args(setup)
    setup.add_argument("--pool-name", default=DEFAULT_POOL_NAME)
    setup.add_argument("--client-name", default=DEFAULT_CLIENT_NAME)
    setup.add_argument("--pre-token-trigger-arn", help="Lambda adding the tenant claim to access tokens")
    setup.add_argument(
        "--no-password-auth",
        action="store_true",
        help="omit USER_PASSWORD_AUTH (production: SRP and refresh only)",
    )
    setup.set_defaults(func=run_setup)
    user = add_subcommand(cmds, "create-user", "create a user of a tenant with a generated password")
    add_common_args(user)
    target = user.add_mutually_exclusive_group()
    target.add_argument("--pool-id")
    target.add_argument("--pool-name", default=DEFAULT_POOL_NAME)
    user.add_argument("--tenant", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--tenant-name")
    user.add_argument("--tier")
    user.set_defaults(func=run_create_user)


def run_setup(args: argparse.Namespace) -> Report:
    """Ensure pool and client; print the ids and the authorizer discovery URL."""
    region = require_region(args)
    idp = aws_client("cognito-idp", region)
    report = Report("cognito setup", dry_run=args.dry_run)
    pool_id = ensure_pool(idp, report, args.pool_name, args.pre_token_trigger_arn)
    if pool_id is None:
        report.change("CREATE", f"app client {args.client_name}", "after the pool")
        return report
    client_id = ensure_client(idp, report, pool_id, args.client_name, not args.no_password_auth)
    report.output("user pool id", pool_id)
    report.output("app client id", client_id or "(not created yet)")
    report.output("discovery URL", discovery_url(region, pool_id))
    return report


def run_create_user(args: argparse.Namespace) -> Report:
    """Create a user; print the generated password once."""
    region = require_region(args)
    validate_tenant_id(args.tenant)
    idp = aws_client("cognito-idp", region)
    pool_id = args.pool_id or find_pool(idp, args.pool_name)
    if pool_id is None:
        raise ScriptError(
            f"no user pool named {args.pool_name!r}; run `python -m scripts cognito setup` first"
        )
    report = Report("cognito create-user", dry_run=args.dry_run)
    password = create_user(
        idp,
        report,
        pool_id=pool_id,
        tenant=args.tenant,
        email=args.email,
        tenant_name=args.tenant_name,
        tier=args.tier,
    )
    if password:
        report.output("password (shown once, store it now)", password)
    return report
