"""``runtime-role``: the AgentCore Runtime execution role, with what the runtime itself needs.

The starter toolkit auto-creates an execution role only at deploy time (``agentcore launch``),
too late for ``tvm-role``, whose trust policy must name an existing role; and a role you pass
with ``--execution-role`` is used as-is (the toolkit adds nothing to it). So this command
creates the role first, trusted by ``bedrock-agentcore.amazonaws.com`` for this account only,
with one inline policy (``agentcore-runtime``): pull the agent's image from ECR, write its logs,
traces and metrics, and exchange a caller's JWT for a workload access token. ``agentcore``
adds the app's own permissions (Bedrock models, the TVM role) as a second inline policy.
"""

from __future__ import annotations

import argparse
from typing import Any

from botocore.client import BaseClient

from scripts.common import Report, account_id, add_common_args, aws_client, policy_json, require_region
from scripts.iam_roles import create_role, ensure_inline_policy, ensure_trust, existing_role

DEFAULT_ROLE_NAME = "agent-memory-runtime"
POLICY_NAME = "agentcore-runtime"
#: ECR repositories the toolkit auto-creates are named ``bedrock-agentcore-<agent>``.
ECR_REPOSITORY_PATTERN = "bedrock-agentcore-*"


def trust_policy(region: str, account: str) -> dict[str, Any]:
    """Only AgentCore, acting for a runtime of this account and region, may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AgentCoreRuntime",
                "Effect": "Allow",
                "Principal": {"Service": "bedrock-agentcore.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:bedrock-agentcore:{region}:{account}:*"},
                },
            }
        ],
    }


def runtime_policy(region: str, account: str) -> dict[str, Any]:
    """What the runtime needs to run the container (AgentCore's documented execution role)."""
    logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/bedrock-agentcore/runtimes/*"
    workload = f"arn:aws:bedrock-agentcore:{region}:{account}:workload-identity-directory/default"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EcrImagePull",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": f"arn:aws:ecr:{region}:{account}:repository/{ECR_REPOSITORY_PATTERN}",
            },
            {"Sid": "EcrToken", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [logs, f"{logs}:log-stream:*"],
            },
            {
                "Sid": "LogGroups",
                "Effect": "Allow",
                "Action": ["logs:DescribeLogGroups"],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:*",
            },
            {
                "Sid": "Traces",
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                "Resource": "*",
            },
            {
                "Sid": "Metrics",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": "bedrock-agentcore"}},
            },
            {
                "Sid": "WorkloadAccessToken",
                "Effect": "Allow",
                "Action": [
                    "bedrock-agentcore:GetWorkloadAccessToken",
                    "bedrock-agentcore:GetWorkloadAccessTokenForJWT",
                ],
                "Resource": [workload, f"{workload}/workload-identity/*"],
            },
        ],
    }


def ensure_runtime_role(iam: BaseClient, report: Report, role_name: str, region: str, account: str) -> str:
    """Create the execution role (or bring its trust and runtime policy back); return its ARN."""
    trust = trust_policy(region, account)
    role = existing_role(iam, role_name)
    arn = f"arn:aws:iam::{account}:role/{role_name}"
    if role is None:
        report.change("CREATE", f"role {role_name}", "trusted by bedrock-agentcore.amazonaws.com")
        if not report.dry_run:
            arn = str(
                create_role(
                    iam,
                    RoleName=role_name,
                    AssumeRolePolicyDocument=policy_json(trust),
                    Description="AgentCore Runtime execution role of the agent-memory app",
                )["Arn"]
            )
    else:
        ensure_trust(iam, report, role, trust)
    ensure_inline_policy(iam, report, role_name, POLICY_NAME, runtime_policy(region, account))
    return arn


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``runtime-role`` command."""
    p = sub.add_parser("runtime-role", help="create/update the AgentCore Runtime execution role", description=__doc__)
    add_common_args(p)
    p.add_argument("--role-name", default=DEFAULT_ROLE_NAME)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> Report:
    """Ensure the execution role and print its ARN."""
    region = require_region(args)
    account = account_id(region)
    report = Report("runtime-role", dry_run=args.dry_run)
    arn = ensure_runtime_role(aws_client("iam", region), report, args.role_name, region, account)
    report.output("execution role ARN", arn)
    return report
