"""``agentcore``: everything the starter toolkit needs to deploy this app, in one step.

1. Writes the deployment's settings file ``agentcore.env`` (dotenv, no secrets) at the project
   root. The toolkit uploads it with the source, so the deployed app reads its settings from
   it and ``agentcore launch`` needs no ``--env`` flag: a launch without them sends an empty
   environment, which used to wipe every setting on redeploy. Environment variables still
   override the file.
2. Puts the app's inline policy on the execution role (Bedrock invoke for the chosen models;
   assume/tag the TVM role in multi-tenant mode; the tenant index in single-tenant mode; with
   ``--secrets-id``, reading that secret: ``scripts.app_secret``). The runtime's own needs (ECR,
   logs, X-Ray, metrics) come from ``runtime-role``.
3. Refuses a toolkit config whose agent is not a container deployment (the toolkit cannot
   change the type in place; direct code deploy runs ``python agent/app.py``, where ``agent``
   is not importable).
4. Prints the commands to run next: ``agentcore configure`` with every flag (container
   deployment, the pool's discovery URL, the audience/client check matching the token type
   the app accepts, ``Authorization`` allowlisted, idle timeout and max lifetime), then
   ``agentcore launch``. It never runs the toolkit.

Before any of it, the user pool, client ids, buckets and roles the flags name are looked up
(``unknown_resources``): one that does not exist fails the run and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tempfile
from pathlib import Path
from typing import Any, Sequence

import yaml

from agent.settings import IDLE_MARGIN_SECONDS, Settings, SettingsError, load_settings
from memory.embedders.bedrock import NOVA_MODEL_ID
from memory.tenants import index_name_for, validate_tenant_id
from scripts import cognito
from scripts.app_secret import AppSecret, described_secret, secret_statements
from scripts.common import (
    Report,
    ScriptError,
    UsageError,
    account_id,
    add_common_args,
    aws_client,
    require_region,
    secret_id,
    vector_bucket,
)
from scripts.iam_roles import ensure_inline_policy, existing_role
from scripts.tvm_role import (
    DEFAULT_OUTBOX_PREFIX,
    INDEX_USER_ACTIONS,
    add_outbox_args,
    check_kms_key_arn,
    outbox_kms_statement,
    outbox_object_statements,
)
from scripts.vectors import bucket_exists, vector_bucket_exists

DEFAULT_AGENT = "agent_memory"
TOOLKIT_CONFIG = Path(".bedrock_agentcore.yaml")
SETTINGS_FILE = Path("agentcore.env")
ENTRYPOINT = "agent/app.py"
REQUIREMENTS = "requirements.txt"
#: AgentCore's defaults (``--idle-timeout`` 60-28,800 s, ``--max-lifetime`` up to 28,800 s).
DEFAULT_IDLE_TIMEOUT = 900
DEFAULT_MAX_LIFETIME = 28_800
#: The app's idle timer default, its reaper tick, and the shortest idle timer we would set.
APP_IDLE_DEFAULT = int(Settings.model_fields["idle_timeout_seconds"].default)
REAP_INTERVAL = int(Settings.model_fields["reap_interval_seconds"].default)
MIN_APP_IDLE = 30

POLICY_NAME = "agent-memory-app"
DEFAULT_CHAT_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
DEFAULT_EMBEDDING_MODEL = NOVA_MODEL_ID
#: Prefixes of cross-region inference profile ids (``us.anthropic...``).
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
#: Converse/ConverseStream are authorised by these two actions.
BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
HEADER_ALLOWLIST = ("Authorization",)


def model_resources(region: str, account: str, model_id: str) -> list[str]:
    """ARNs a model id needs: the foundation model, or an inference profile and its models."""
    if model_id.startswith("arn:"):
        return [model_id]
    if model_id.startswith(PROFILE_PREFIXES):
        base = model_id.split(".", 1)[1]
        return [
            f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}",
            f"arn:aws:bedrock:*::foundation-model/{base}",
        ]
    return [f"arn:aws:bedrock:{region}::foundation-model/{model_id}"]


def execution_role_policy(
    *,
    region: str,
    account: str,
    model_ids: Sequence[str],
    tvm_role_arn: str | None,
    bucket: str | None,
    single_tenant_id: str | None,
    outbox_bucket: str | None = None,
    outbox_prefix: str = DEFAULT_OUTBOX_PREFIX,
    outbox_kms_key_arn: str | None = None,
    secret: AppSecret | None = None,
) -> dict[str, Any]:
    """The app's permissions on top of the runtime's own (``runtime-role``: logs, ECR, X-Ray; the
    toolkit adds nothing to a supplied role).

    With an outbox bucket: listing it (which tenants have pending entries; key names only, and
    the start-up HeadBucket check) and, in single-tenant mode, the objects under the tenant's
    prefix (``outbox_object_statements``: erasure markers read-only) and, with a
    customer-managed key, that key through S3. Multi-tenant object access
    goes through the TVM role (``scripts.tvm_role``), which gets the key instead.

    With the app's ``secret`` (``AGENT_SECRETS_ID``): ``GetSecretValue`` on exactly its ARN, and
    ``kms:Decrypt`` of its customer managed key for that secret through Secrets Manager only.
    """
    resources = sorted({arn for m in model_ids for arn in model_resources(region, account, m)})
    statements: list[dict[str, Any]] = [
        {
            "Sid": "InvokeChosenModels",
            "Effect": "Allow",
            "Action": list(BEDROCK_ACTIONS),
            "Resource": resources,
        }
    ]
    if tvm_role_arn:
        statements.append(
            {
                "Sid": "AssumeTenantRoleWithTag",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": tvm_role_arn,
            }
        )
    if single_tenant_id:
        if not bucket:
            raise UsageError("single-tenant mode needs --bucket")
        index = index_name_for(single_tenant_id)
        statements.append(
            {
                "Sid": "SingleTenantIndex",
                "Effect": "Allow",
                "Action": list(INDEX_USER_ACTIONS),
                "Resource": f"arn:aws:s3vectors:{region}:{account}:bucket/{bucket}/index/{index}",
            }
        )
    if outbox_bucket:
        statements.append(
            {
                "Sid": "ListOutbox",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{outbox_bucket}",
            }
        )
        if single_tenant_id:
            statements += outbox_object_statements(
                outbox_bucket, outbox_prefix, single_tenant_id, ("SingleTenantOutbox", "SingleTenantErasureMarkers")
            )
            if outbox_kms_key_arn:
                statements.append(outbox_kms_statement(region, account, outbox_kms_key_arn))
    if secret is not None:
        statements += secret_statements(secret)
    return {"Version": "2012-10-17", "Statement": statements}


def authorizer_config(region: str, pool_id: str, client_ids: Sequence[str], token_use: str) -> dict[str, Any]:
    """The runtime's JWT authorizer, checking the claim that carries the client in ``token_use`` tokens.

    Cognito id tokens carry the app client in ``aud`` (no ``client_id``): ``allowedAudience``.
    Access tokens carry ``client_id`` (no ``aud``): ``allowedClients``. AgentCore does not
    document how the two combine when both are set, so only the one that the accepted token
    type carries is set, and the app is told to accept that token type only.
    """
    check = "allowedAudience" if token_use == "id" else "allowedClients"
    return {"customJWTAuthorizer": {"discoveryUrl": cognito.discovery_url(region, pool_id), check: sorted(client_ids)}}


def app_idle_timeout(runtime_idle_timeout: int) -> int:
    """The app's idle timer for a runtime idle timeout: the default, or shorter when it must be."""
    fitting = runtime_idle_timeout - REAP_INTERVAL - int(IDLE_MARGIN_SECONDS)
    if fitting < MIN_APP_IDLE:
        raise UsageError(
            f"--idle-timeout {runtime_idle_timeout} leaves the app no time to end sessions before the "
            f"runtime does; use at least {MIN_APP_IDLE + REAP_INTERVAL + int(IDLE_MARGIN_SECONDS)}"
        )
    return min(APP_IDLE_DEFAULT, fitting)


#: Every setting ``runtime_settings`` writes, in any mode.
WRITTEN_SETTINGS = frozenset({
    "AGENT_REGION", "AGENT_AUTH_MODE", "AGENT_COGNITO_USER_POOL_ID", "AGENT_COGNITO_CLIENT_IDS",
    "AGENT_TOKEN_USES", "AGENT_TENANT_CLAIMS", "AGENT_BACKEND", "AGENT_VECTOR_BUCKET", "AGENT_EMBEDDER",
    "AGENT_MODEL_PROVIDER", "AGENT_MODEL_ID", "AGENT_TENANT_MODE", "AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS",
    "AGENT_IDLE_TIMEOUT_SECONDS", "AGENT_OUTBOX_BUCKET", "AGENT_OUTBOX_PREFIX", "AGENT_OUTBOX_KMS_KEY_ID",
    "AGENT_TVM_ROLE_ARN", "AGENT_SINGLE_TENANT_ID", "AGENT_SECRETS_ID",
})  # fmt: skip


def runtime_settings(args: argparse.Namespace, region: str, secret: AppSecret | None = None) -> dict[str, str]:
    """The deployed app's non-secret ``AGENT_*`` settings (see ``agent/settings.py``); ``secret``
    is named by its ARN (``AGENT_SECRETS_ID``), the one the execution role may read."""
    values = {
        "AGENT_REGION": region,
        "AGENT_AUTH_MODE": "cognito",
        "AGENT_COGNITO_USER_POOL_ID": args.pool_id,
        "AGENT_COGNITO_CLIENT_IDS": ",".join(sorted(args.client_id)),
        "AGENT_TOKEN_USES": args.token_use,
        "AGENT_TENANT_CLAIMS": "custom:tenantId" if args.token_use == "id" else "tenantId",
        "AGENT_BACKEND": "s3vectors",
        "AGENT_VECTOR_BUCKET": args.bucket,
        "AGENT_EMBEDDER": "bedrock",
        "AGENT_MODEL_PROVIDER": "bedrock",
        "AGENT_MODEL_ID": args.model_id[0] if args.model_id else DEFAULT_CHAT_MODEL,
        "AGENT_TENANT_MODE": args.tenant_mode,
        "AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS": str(args.idle_timeout),
        "AGENT_IDLE_TIMEOUT_SECONDS": str(app_idle_timeout(args.idle_timeout)),
    }
    if args.outbox_bucket:
        values["AGENT_OUTBOX_BUCKET"] = args.outbox_bucket
        values["AGENT_OUTBOX_PREFIX"] = args.outbox_prefix
        if args.outbox_kms_key_arn:
            values["AGENT_OUTBOX_KMS_KEY_ID"] = args.outbox_kms_key_arn
    if args.tenant_mode == "multi":
        values["AGENT_TVM_ROLE_ARN"] = args.tvm_role_arn
    else:
        values["AGENT_SINGLE_TENANT_ID"] = args.single_tenant_id
    if secret is not None:
        values["AGENT_SECRETS_ID"] = secret.arn
    return values


#: Heads the lines an existing settings file had for settings this command does not write.
KEPT_HEADER = "# Added by hand (kept when this command rewrites the file):"


def render_settings(values: dict[str, str], kept: Sequence[str] = ()) -> str:
    """The settings file's text (dotenv; values are ids and ARNs, never secrets), then the
    ``kept`` lines of the operator's own settings (``operator_lines``)."""
    lines = [
        "# Written by `python -m scripts agentcore`; uploaded with the source by `agentcore launch`.",
        "# The deployed app reads it at start-up; environment variables override it. No secrets here.",
        *(f"{key}={value}" for key, value in values.items()),
    ]
    if kept:
        lines += [KEPT_HEADER, *kept]
    return "\n".join(lines) + "\n"


def existing_settings(path: Path) -> list[tuple[str, str]]:
    """The ``(key, line)`` settings of an existing settings file (none if it is missing)."""
    try:
        text = path.read_text() if path.is_file() else ""
    except OSError as err:
        raise ScriptError(f"cannot read {path}: {err.strerror}") from err
    return [
        (line.split("=", 1)[0].strip().removeprefix("export ").strip(), line)
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]


def operator_lines(existing: Sequence[tuple[str, str]]) -> list[str]:
    """The lines of an existing settings file that set what this command never writes (e.g.
    ``AGENT_MEMORY_TTL_DAYS``, which has no flag): a re-run keeps them instead of dropping them.
    Its own settings (``WRITTEN_SETTINGS``) are never kept: a key or mode left out is gone."""
    return [line for key, line in existing if key not in WRITTEN_SETTINGS]


def dropped_settings(existing: Sequence[tuple[str, str]], values: dict[str, str]) -> list[str]:
    """The settings this command wrote before and leaves out now (a flag not given again, e.g.
    ``--secrets-id``): reported, since the next launch's app starts without them."""
    return sorted(({key for key, _ in existing} & WRITTEN_SETTINGS) - set(values))


def check_deployable(text: str) -> None:
    """Refuse settings the deployed app would refuse (a hand-added line with a typo, a secret,
    a value out of range): read as the runtime reads them, from the file alone."""
    with tempfile.TemporaryDirectory(prefix="agentcore-env-") as folder:
        path = Path(folder) / SETTINGS_FILE.name
        path.write_text(text)
        try:
            load_settings(path, file_only=True)
        except SettingsError as err:
            raise ScriptError(f"nothing written: the deployed app would refuse this settings file: {err}") from None


def write_settings(path: Path, text: str, report: Report) -> None:
    """Write the settings file when it is missing or different."""
    current = path.read_text() if path.exists() else None
    if current == text:
        report.add("UNCHANGED", str(path))
        return
    report.change("CREATE" if current is None else "UPDATE", str(path), "settings of the deployed app")
    if not report.dry_run:
        try:
            path.write_text(text)
        except OSError as err:
            raise ScriptError(f"cannot write {path}: {err.strerror}") from err


def check_embedding_model(model_id: str) -> None:
    """Refuse an embedding model the app never invokes: it always embeds with Nova 2 (no setting
    selects another), so a grant for another model leaves every embedding call denied."""
    base = model_id.rsplit("/", 1)[-1]
    if base.startswith(PROFILE_PREFIXES):
        base = base.split(".", 1)[1]
    if base != DEFAULT_EMBEDDING_MODEL:
        raise UsageError(
            f"--embedding-model-id {model_id}: the app embeds with {DEFAULT_EMBEDDING_MODEL} only "
            "(memory.embedders.bedrock); pass that model or an inference profile of it"
        )


#: An IAM role ARN: account, path, role name.
ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]+)")


def unknown_resources(args: argparse.Namespace, region: str) -> list[str]:
    """What the flags name that does not exist in this account and region, one line per flag.

    The settings file and the role's policy carry these names: a typo deploys an app that fails
    on every request. Checked with the calls ``doctor`` and the setup commands use (Cognito
    DescribeUserPool / DescribeUserPoolClient, GetVectorBucket, HeadBucket, GetRole).
    """
    idp = aws_client("cognito-idp", region)
    problems = []
    if cognito.described_pool(idp, args.pool_id) is None:
        problems.append(f"--pool-id {args.pool_id}: no Cognito user pool with that id in {region}")
    else:
        problems += [
            f"--client-id {client}: no app client with that id in user pool {args.pool_id}"
            for client in args.client_id
            if cognito.described_client(idp, args.pool_id, client) is None
        ]
    if not vector_bucket_exists(aws_client("s3vectors", region), args.bucket):
        problems.append(f"--bucket {args.bucket}: no S3 vector bucket with that name in {region}")
    if not bucket_exists(aws_client("s3", region), args.outbox_bucket):
        problems.append(f"--outbox-bucket {args.outbox_bucket}: no S3 bucket with that name")
    iam = aws_client("iam", region)
    roles = [("--execution-role-arn", args.execution_role_arn)]
    if args.tenant_mode == "multi":
        roles.append(("--tvm-role-arn", args.tvm_role_arn))
    for flag, arn in roles:
        named = ROLE_ARN.fullmatch(arn)
        found = existing_role(iam, named["name"]) if named else None
        if found is None:
            problems.append(f"{flag} {arn}: no IAM role with that name in this account")
        elif found["Arn"] != arn:
            problems.append(f"{flag} {arn}: the role of that name in this account is {found['Arn']}")
    return problems


def check_toolkit_config(path: Path, agent: str) -> None:
    """Refuse an existing toolkit config whose agent is not a container deployment."""
    if not path.exists():
        return
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ScriptError(f"{path} is not valid YAML ({err.__class__.__name__}); fix or remove it") from err
    entry = (config.get("agents") or {}).get(agent)
    if entry and entry.get("deployment_type", "container") != "container":
        raise ScriptError(
            f"{path}: agent {agent!r} is a {entry['deployment_type']} deployment, which runs "
            f"`python {ENTRYPOINT}` (package imports fail) and cannot be changed in place: run "
            f"`agentcore destroy --agent {agent}` (or delete its entry), then re-run this command"
        )


def toolkit_commands(
    *,
    agent: str,
    region: str,
    execution_role_arn: str,
    authorizer: dict[str, Any],
    idle_timeout: int,
    max_lifetime: int,
) -> list[str]:
    """``agentcore configure`` with every flag, then ``agentcore launch`` (no ``--env`` needed)."""
    configure = [
        "agentcore", "configure", "--non-interactive",
        "--name", agent,
        "--entrypoint", ENTRYPOINT,
        "--requirements-file", REQUIREMENTS,
        "--deployment-type", "container",
        "--region", region,
        "--execution-role", execution_role_arn,
        "--ecr", "auto",
        "--disable-memory",
        "--protocol", "HTTP",
        "--authorizer-config", json.dumps(authorizer, separators=(",", ":")),
        "--request-header-allowlist", ",".join(HEADER_ALLOWLIST),
        "--idle-timeout", str(idle_timeout),
        "--max-lifetime", str(max_lifetime),
    ]  # fmt: skip
    return [shlex.join(configure), shlex.join(["agentcore", "launch", "--agent", agent])]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``agentcore`` command."""
    p = sub.add_parser(
        "agentcore",
        help="write agentcore.env, grant the execution role, print the configure/launch commands",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_args(p)
    p.add_argument("--agent", default=DEFAULT_AGENT, help=f"agent name (default {DEFAULT_AGENT})")
    p.add_argument("--settings-file", type=Path, default=SETTINGS_FILE, help="settings file to write")
    p.add_argument("--toolkit-config", type=Path, default=TOOLKIT_CONFIG, help="existing toolkit config to check")
    p.add_argument("--pool-id", required=True, help="Cognito user pool id")
    p.add_argument("--client-id", action="append", required=True, help="allowed app client id (repeatable)")
    p.add_argument(
        "--token-use",
        choices=("id", "access"),
        default="id",
        help="token type callers send: id (default; aud checked) or access (client_id checked; needs "
        "the pre-token-generation trigger for the tenant claim)",
    )
    p.add_argument("--execution-role-arn", required=True, help="from `python -m scripts runtime-role`")
    p.add_argument("--bucket", type=vector_bucket, required=True, help="vector bucket name")
    p.add_argument("--tenant-mode", choices=("multi", "single"), default="multi")
    p.add_argument("--tvm-role-arn", help="TVM role ARN (multi-tenant mode)")
    p.add_argument("--single-tenant-id", help="the tenant of single-tenant mode")
    p.add_argument(
        "--model-id",
        action="append",
        default=[],
        help=f"chat model id (repeatable; the first is the app's; default {DEFAULT_CHAT_MODEL})",
    )
    p.add_argument("--embedding-model-id", default=DEFAULT_EMBEDDING_MODEL)
    p.add_argument("--idle-timeout", type=int, default=DEFAULT_IDLE_TIMEOUT, help="runtime idle session timeout (s)")
    p.add_argument("--max-lifetime", type=int, default=DEFAULT_MAX_LIFETIME, help="runtime max lifetime (s)")
    add_outbox_args(p)
    p.add_argument(
        "--secrets-id",
        type=secret_id,
        help="ARN or name of the Secrets Manager secret holding the app's secret settings "
        "(AGENT_SECRETS_ID; written as its ARN): the execution role may read it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Write the settings file, grant the role, print the toolkit commands."""
    region = require_region(args)
    if args.tenant_mode == "multi" and not args.tvm_role_arn:
        raise UsageError(
            "multi-tenant mode needs --tvm-role-arn (create it with `python -m scripts tvm-role`)"
        )
    if not args.outbox_bucket:
        raise UsageError(
            "agentcore needs --outbox-bucket: the deployed app keeps its outbox in S3 and refuses to start "
            "without AGENT_OUTBOX_BUCKET (create it with `python -m scripts vector-bucket --outbox-bucket ...`)"
        )
    if args.tenant_mode == "single":
        if not args.single_tenant_id:
            raise UsageError("single-tenant mode needs --single-tenant-id")
        validate_tenant_id(args.single_tenant_id)
    if not 60 <= args.idle_timeout <= args.max_lifetime <= DEFAULT_MAX_LIFETIME:
        raise UsageError("need 60 <= --idle-timeout <= --max-lifetime <= 28800")
    app_idle_timeout(args.idle_timeout)  # refuses one too short for the app's timer, before any AWS call
    check_embedding_model(args.embedding_model_id)
    check_toolkit_config(args.toolkit_config, args.agent)
    unknown = unknown_resources(args, region)
    secret = described_secret(args.secrets_id, region) if args.secrets_id else None
    if args.secrets_id and secret is None:
        unknown.append(f"--secrets-id {args.secrets_id}: no Secrets Manager secret with that name or ARN")
    if unknown:
        raise ScriptError("nothing written; these do not exist:\n  " + "\n  ".join(unknown))
    if secret is not None and secret.unreadable:
        problem, fix = secret.unreadable
        raise ScriptError(
            f"nothing written; the app could not read --secrets-id {args.secrets_id}: {problem} (fix: {fix})"
        )
    values = runtime_settings(args, region, secret)
    existing = existing_settings(args.settings_file)
    settings = render_settings(values, operator_lines(existing))
    check_deployable(settings)
    account = account_id(region)
    if args.outbox_kms_key_arn:  # a key ARN here, as tvm-role (which grants it to tenants) requires
        check_kms_key_arn(args.outbox_kms_key_arn, region, account)
    policy = execution_role_policy(
        region=region,
        account=account,
        model_ids=[*(args.model_id or [DEFAULT_CHAT_MODEL]), args.embedding_model_id],
        tvm_role_arn=args.tvm_role_arn if args.tenant_mode == "multi" else None,
        bucket=args.bucket,
        single_tenant_id=args.single_tenant_id if args.tenant_mode == "single" else None,
        outbox_bucket=args.outbox_bucket,
        outbox_prefix=args.outbox_prefix,
        outbox_kms_key_arn=args.outbox_kms_key_arn,
        secret=secret,
    )
    report = Report("agentcore", dry_run=args.dry_run)
    for key in dropped_settings(existing, values):
        report.change("DELETE", f"{key} in {args.settings_file.name}", "its flag was not given again: pass it to keep it")
    write_settings(args.settings_file, settings, report)
    role_name = args.execution_role_arn.rsplit("/", 1)[-1]
    ensure_inline_policy(aws_client("iam", region), report, role_name, POLICY_NAME, policy)
    commands = toolkit_commands(
        agent=args.agent,
        region=region,
        execution_role_arn=args.execution_role_arn,
        authorizer=authorizer_config(region, args.pool_id, args.client_id, args.token_use),
        idle_timeout=args.idle_timeout,
        max_lifetime=args.max_lifetime,
    )
    for i, command in enumerate(commands, 1):
        report.output(f"next step {i}", command)
    return report
