"""``agentcore``: wire the runtime to Cognito and grant its execution role what the app needs.

Patches ``.bedrock_agentcore.yaml`` (the starter toolkit's config: JWT authorizer discovery URL
and allowed clients, the ``Authorization`` header allowlist, region and execution role), puts
one inline policy on the execution role (Bedrock invoke for the chosen models; assume/tag the
TVM role in multi-tenant mode; the tenant index in single-tenant mode) and prints the
``agentcore configure`` / ``agentcore launch`` commands to run. It never runs the toolkit.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any, Sequence

import yaml
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from memory.tenants import index_name_for, validate_tenant_id
from scripts.cognito import discovery_url
from scripts.common import (
    Report,
    ScriptError,
    account_id,
    add_common_args,
    aws_client,
    canonical,
    is_not_found,
    policy_json,
    require_region,
)
from scripts.tvm_role import DEFAULT_OUTBOX_PREFIX, INDEX_USER_ACTIONS, OUTBOX_OBJECT_ACTIONS, add_outbox_args

POLICY_NAME = "agent-memory-app"
DEFAULT_CONFIG = Path(".bedrock_agentcore.yaml")
DEFAULT_CHAT_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
DEFAULT_EMBEDDING_MODEL = "amazon.nova-2-multimodal-embeddings-v1:0"
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
) -> dict[str, Any]:
    """The app's permissions on top of what the toolkit grants (logs, ECR, X-Ray).

    With an outbox bucket: listing it (which tenants have pending entries; key names only, and
    the start-up HeadBucket check) and, in single-tenant mode, the objects under the tenant's
    prefix. Multi-tenant object access goes through the TVM role (``scripts.tvm_role``).
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
            raise ScriptError("single-tenant mode needs --bucket")
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
            statements.append(
                {
                    "Sid": "SingleTenantOutbox",
                    "Effect": "Allow",
                    "Action": list(OUTBOX_OBJECT_ACTIONS),
                    "Resource": f"arn:aws:s3:::{outbox_bucket}/{outbox_prefix}/{single_tenant_id}/*",
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}


def desired_yaml_values(
    *, region: str, pool_id: str, client_ids: Sequence[str], execution_role_arn: str
) -> dict[str, Any]:
    """The agent-level values this command owns, keyed by dotted path."""
    return {
        "authorizer_configuration": {
            "customJWTAuthorizer": {
                "discoveryUrl": discovery_url(region, pool_id),
                "allowedClients": sorted(client_ids),
            }
        },
        "request_header_configuration": {"requestHeaderAllowlist": list(HEADER_ALLOWLIST)},
        "aws.region": region,
        "aws.execution_role": execution_role_arn,
        "aws.execution_role_auto_create": False,
    }


def patch_config(path: Path, agent_name: str | None, values: dict[str, Any], report: Report) -> str:
    """Set ``values`` on the agent's entry of the toolkit config; return the agent name.

    Other keys are kept; headers already allowlisted are kept too. A missing file is
    reported (the printed ``agentcore configure`` creates it with the same values).
    """
    if not path.exists():
        report.add("MISSING", str(path), "run next step 1 (agentcore configure), then re-run this command")
        return agent_name or "agent_memory"
    text = path.read_text()
    config = yaml.safe_load(text) or {}
    agents = config.get("agents") or {}
    name = agent_name or config.get("default_agent") or (next(iter(agents)) if len(agents) == 1 else None)
    if name not in agents:
        raise ScriptError(
            f"agent {name!r} not in {path} (agents: {', '.join(agents) or 'none'}); pass --agent"
        )
    agent = agents[name]
    headers = (agent.get("request_header_configuration") or {}).get("requestHeaderAllowlist") or []
    values = dict(values)
    values["request_header_configuration"] = {
        "requestHeaderAllowlist": list(dict.fromkeys([*headers, *HEADER_ALLOWLIST]))
    }
    dirty = False
    for dotted, want in values.items():
        parent, key = _parent(agent, dotted)
        if parent.get(key) == want:
            report.add("UNCHANGED", f"{path.name}: {dotted}")
            continue
        report.change("UPDATE", f"{path.name}: {dotted}", _diff(parent.get(key), want))
        parent[key] = want
        dirty = True
    if dirty and not report.dry_run:
        path.write_text(_leading_comments(text) + yaml.safe_dump(config, sort_keys=False))
    return str(name)


def _parent(agent: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *heads, key = dotted.split(".")
    node = agent
    for head in heads:
        if not isinstance(node.get(head), dict):
            node[head] = {}
        node = node[head]
    return node, key


def _leading_comments(text: str) -> str:
    """The comment block at the top of the file (kept when the file is rewritten)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _diff(old: Any, new: Any) -> str:
    """Changed leaves as ``key: old -> new`` (values shortened)."""
    before, after = _flatten(old), _flatten(new)
    changes = [
        f"{k or 'value'}: {_short(before.get(k))} -> {_short(after.get(k))}"
        for k in dict.fromkeys([*before, *after])
        if before.get(k) != after.get(k)
    ]
    return "; ".join(changes)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 90 else text[:40] + "..." + text[-47:]


def ensure_role_policy(iam: BaseClient, report: Report, role_name: str, policy: dict[str, Any]) -> None:
    """Put the app's inline policy on the execution role when missing or different."""
    try:
        current = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as err:
        if not is_not_found(err):
            raise
        current = None
    if current is not None and canonical(current) == canonical(policy):
        report.add("UNCHANGED", f"inline policy {POLICY_NAME} on {role_name}")
        return
    detail = "missing" if current is None else "drift: differed from the intended document"
    report.change(
        "UPDATE" if current is not None else "CREATE", f"inline policy {POLICY_NAME} on {role_name}", detail
    )
    if not report.dry_run:
        iam.put_role_policy(RoleName=role_name, PolicyName=POLICY_NAME, PolicyDocument=policy_json(policy))


def runtime_environment(
    args: argparse.Namespace, region: str, pool_id: str, client_ids: Sequence[str]
) -> dict[str, str]:
    """The ``AGENT_*`` variables the deployed app reads (see ``agent/settings.py``)."""
    env = {
        "AGENT_REGION": region,
        "AGENT_BACKEND": "s3vectors",
        "AGENT_EMBEDDER": "bedrock",
        "AGENT_VECTOR_BUCKET": args.bucket,
        "AGENT_AUTH_MODE": "cognito",
        "AGENT_COGNITO_USER_POOL_ID": pool_id,
        "AGENT_COGNITO_CLIENT_IDS": ",".join(client_ids),
        "AGENT_MODEL_PROVIDER": "bedrock",
        "AGENT_MODEL_ID": args.model_id[0] if args.model_id else DEFAULT_CHAT_MODEL,
        "AGENT_STATE_DIR": "/tmp/agent-state",
        "AGENT_TENANT_MODE": args.tenant_mode,
    }
    if args.outbox_bucket:
        env["AGENT_OUTBOX_BUCKET"] = args.outbox_bucket
        env["AGENT_OUTBOX_PREFIX"] = args.outbox_prefix
    if args.tenant_mode == "multi":
        env["AGENT_TVM_ROLE_ARN"] = args.tvm_role_arn
    else:
        env["AGENT_SINGLE_TENANT_ID"] = args.single_tenant_id
    return env


def toolkit_commands(
    *,
    agent: str,
    entrypoint: str,
    region: str,
    execution_role_arn: str,
    authorizer: dict[str, Any],
    env: dict[str, str],
) -> list[str]:
    """The starter-toolkit commands to run next (``launch`` is the older name of ``deploy``)."""
    configure = [
        "agentcore",
        "configure",
        "--non-interactive",
        "--name",
        agent,
        "--entrypoint",
        entrypoint,
        "--region",
        region,
        "--execution-role",
        execution_role_arn,
        "--disable-memory",
        "--authorizer-config",
        json.dumps(authorizer, separators=(",", ":")),
        "--request-header-allowlist",
        ",".join(HEADER_ALLOWLIST),
    ]
    launch = ["agentcore", "launch"]
    for key, value in env.items():
        launch += ["--env", f"{key}={value}"]
    return [shlex.join(configure), shlex.join(launch)]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``agentcore`` command."""
    p = sub.add_parser(
        "agentcore",
        help="patch .bedrock_agentcore.yaml, grant the execution role, print launch commands",
        description=__doc__,
    )
    add_common_args(p)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="toolkit config file to patch")
    p.add_argument("--agent", help="agent entry in the config (default: default_agent)")
    p.add_argument("--entrypoint", default="agent/app.py")
    p.add_argument("--pool-id", required=True, help="Cognito user pool id")
    p.add_argument("--client-id", action="append", required=True, help="allowed app client id (repeatable)")
    p.add_argument("--execution-role-arn", required=True)
    p.add_argument("--bucket", required=True, help="vector bucket name")
    p.add_argument("--tenant-mode", choices=("multi", "single"), default="multi")
    p.add_argument("--tvm-role-arn", help="TVM role ARN (multi-tenant mode)")
    p.add_argument("--single-tenant-id", help="the tenant of single-tenant mode")
    p.add_argument(
        "--model-id",
        action="append",
        default=[],
        help=f"chat model id (repeatable; default {DEFAULT_CHAT_MODEL})",
    )
    p.add_argument("--embedding-model-id", default=DEFAULT_EMBEDDING_MODEL)
    add_outbox_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Patch the config, grant the role, print the toolkit commands."""
    region = require_region(args)
    if args.tenant_mode == "multi" and not args.tvm_role_arn:
        raise ScriptError(
            "multi-tenant mode needs --tvm-role-arn (create it with `python -m scripts tvm-role`)"
        )
    if args.tenant_mode == "single":
        if not args.single_tenant_id:
            raise ScriptError("single-tenant mode needs --single-tenant-id")
        validate_tenant_id(args.single_tenant_id)
    account = account_id(region)
    report = Report("agentcore", dry_run=args.dry_run)
    values = desired_yaml_values(
        region=region,
        pool_id=args.pool_id,
        client_ids=args.client_id,
        execution_role_arn=args.execution_role_arn,
    )
    agent = patch_config(args.config, args.agent, values, report)
    policy = execution_role_policy(
        region=region,
        account=account,
        model_ids=[*(args.model_id or [DEFAULT_CHAT_MODEL]), args.embedding_model_id],
        tvm_role_arn=args.tvm_role_arn if args.tenant_mode == "multi" else None,
        bucket=args.bucket,
        single_tenant_id=args.single_tenant_id if args.tenant_mode == "single" else None,
        outbox_bucket=args.outbox_bucket,
        outbox_prefix=args.outbox_prefix,
    )
    ensure_role_policy(aws_client("iam", region), report, args.execution_role_arn.rsplit("/", 1)[-1], policy)
    env = runtime_environment(args, region, args.pool_id, args.client_id)
    for i, command in enumerate(
        toolkit_commands(
            agent=agent,
            entrypoint=args.entrypoint,
            region=region,
            execution_role_arn=args.execution_role_arn,
            authorizer=values["authorizer_configuration"],
            env=env,
        ),
        1,
    ):
        report.output(f"next step {i}", command)
    return report
