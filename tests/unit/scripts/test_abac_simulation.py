"""ABAC isolation of the TVM role, evaluated by an IAM policy simulator (not by moto).

The documents are the ones ``scripts tvm-role`` writes (``permission_policy``, ``trust_policy``);
each case is one request with the decision IAM must reach. The tables are data: to cover a new
statement (e.g. the S3 outbox prefix ``.../<prefix>/${aws:PrincipalTag/TenantID}/*``), append
``tenant_call(...)`` rows to ``TENANT_CASES`` (and ``assume(...)`` rows to ``TRUST_CASES`` for
the trust policy). ``pytest -v`` lists every case; ``-s`` also prints the decision table.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import pytest

from scripts.common import ScriptError
from scripts.tvm_role import INDEX_USER_ACTIONS, OUTBOX_OBJECT_ACTIONS, permission_policy, trust_policy
from tests.support.iam_simulator import Case, Expect, Outcome, SimulatorMissing, node, simulate, table

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "us-east-1"
BUCKET = "mem-bucket"
OUTBOX = "mem-outbox"
TVM_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agent-memory-tvm"
EXEC_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"
SERVICE = "bedrock-agentcore.amazonaws.com"
RUNTIME_ARN = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/memory_agent-AbCdEf1234"

OUTBOX_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PERMISSIONS = permission_policy(REGION, ACCOUNT, BUCKET, outbox_bucket=OUTBOX, outbox_kms_key_arn=OUTBOX_KEY)
TRUST = trust_policy([EXEC_ROLE_ARN], account=ACCOUNT, service_principals=[SERVICE], source_arn=RUNTIME_ARN)
#: Every calling role may call sts:AssumeRole/TagSession on anything: only the trust policy keeps it out.
CALLER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}],
}
TENANT_TAG = {"TenantID": "tenant-a"}


def bucket_arn(bucket: str = BUCKET, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:s3vectors:{region}:{account}:bucket/{bucket}"


def index_arn(index: str, bucket: str = BUCKET, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"{bucket_arn(bucket, region=region, account=account)}/index/{index}"


def tenant_call(
    name: str,
    expect: Expect,
    action: str,
    resource: str,
    *,
    tenant: str | None = "tenant-a",
    context: Mapping[str, str] | None = None,
    resource_policy: Mapping[str, Any] | None = None,
) -> Case:
    """A TVM role session tagged ``TenantID=<tenant>`` (None: untagged) calls ``action``
    (``context``: further request keys, e.g. ``s3:prefix``)."""
    session = tenant or "untagged"
    return Case(
        name=name,
        expect=expect,
        principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/agent-memory-tvm/{session}",
        action=action,
        resource=resource,
        resource_account=(resource.split(":") + [""] * 5)[4] or ACCOUNT,
        identity_policies=[PERMISSIONS],
        resource_policy=resource_policy,
        context={**({"aws:PrincipalTag/TenantID": tenant} if tenant else {}), **(context or {})},
    )


def assume(
    name: str,
    expect: Expect,
    *,
    principal: str = EXEC_ROLE_ARN,
    tags: Mapping[str, str] = TENANT_TAG,
    action: str = "sts:AssumeRole",
    source: Mapping[str, str] | None = None,
    trust: Mapping[str, Any] = TRUST,
) -> Case:
    """``principal`` asks STS to assume the TVM role with session ``tags`` (``source``: aws:Source* keys)."""
    context: dict[str, str | list[str]] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = list(tags)
    context.update(source or {})
    is_service = principal.endswith(".amazonaws.com")
    return Case(
        name=name,
        expect=expect,
        principal=principal,
        action=action,
        resource=TVM_ROLE_ARN,
        resource_account=ACCOUNT,
        identity_policies=[] if is_service else [CALLER_POLICY],
        resource_policy=trust,
        context=context,
    )


def _short(action: str) -> str:
    return action.split(":", 1)[1]


TENANT_CASES: list[Case] = [
    *(tenant_call(f"tenant-a {_short(a)} on memory-tenant-a", "allow", a, index_arn("memory-tenant-a"))
      for a in INDEX_USER_ACTIONS),
    *(tenant_call(f"tenant-a {_short(a)} on memory-tenant-b", "deny", a, index_arn("memory-tenant-b"))
      for a in INDEX_USER_ACTIONS),
    *(tenant_call(f"tenant-a {_short(a)} on memory-tenant-a in other-bucket", "deny", a,
                  index_arn("memory-tenant-a", "other-bucket"))
      for a in INDEX_USER_ACTIONS),
    tenant_call("tenant-b PutVectors on memory-tenant-b", "allow", "s3vectors:PutVectors",
                index_arn("memory-tenant-b"), tenant="tenant-b"),
    tenant_call("tenant-b QueryVectors on memory-tenant-a", "deny", "s3vectors:QueryVectors",
                index_arn("memory-tenant-a"), tenant="tenant-b"),
    tenant_call("tenant-a PutVectors on memory-tenant-ab (longer name)", "deny", "s3vectors:PutVectors",
                index_arn("memory-tenant-ab")),
    tenant_call("tenant-a PutVectors on memory-tenant-a in another region", "deny", "s3vectors:PutVectors",
                index_arn("memory-tenant-a", region="eu-west-1")),
    tenant_call("tenant-a PutVectors on memory-tenant-a in another account", "deny", "s3vectors:PutVectors",
                index_arn("memory-tenant-a", account=OTHER_ACCOUNT)),
    tenant_call("untagged session QueryVectors on memory-tenant-a", "deny", "s3vectors:QueryVectors",
                index_arn("memory-tenant-a"), tenant=None),
    *(tenant_call(f"tenant-a {_short(a)} on memory-tenant-a", "deny", a, index_arn("memory-tenant-a"))
      for a in ("s3vectors:CreateIndex", "s3vectors:DeleteIndex", "s3vectors:TagResource",
                "s3vectors:UntagResource", "s3vectors:ListTagsForResource")),
    *(tenant_call(f"tenant-a {_short(a)} on the bucket", "deny", a, bucket_arn())
      for a in ("s3vectors:CreateVectorBucket", "s3vectors:DeleteVectorBucket", "s3vectors:GetVectorBucket",
                "s3vectors:ListIndexes", "s3vectors:PutVectorBucketPolicy", "s3vectors:GetVectorBucketPolicy",
                "s3vectors:DeleteVectorBucketPolicy", "s3vectors:TagResource", "s3vectors:UntagResource")),
    tenant_call("tenant-a ListVectorBuckets", "deny", "s3vectors:ListVectorBuckets", "*"),
]

def object_arn(key: str, bucket: str = OUTBOX) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


_OWN_ENTRY = "outbox/tenant-a/pending/sum-0a1b.json"
_VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
#: A KMS key is used only if its key policy lets IAM policies grant it: KMS's default key policy.
_DEFAULT_KEY_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*", "Resource": "*"}]}


def key_call(name: str, expect: Expect, action: str, key: str = "", *, context: Mapping[str, str] | None = None) -> Case:
    """A tenant-a session calls a KMS ``action`` on ``key`` (the outbox key), which has the default key policy."""
    return tenant_call(name, expect, action, key or OUTBOX_KEY, context=context, resource_policy=_DEFAULT_KEY_POLICY)
OUTBOX_CASES: list[Case] = [
    *(tenant_call(f"tenant-a {_short(a)} on its own outbox object", "allow", a, object_arn(_OWN_ENTRY))
      for a in OUTBOX_OBJECT_ACTIONS),
    *(tenant_call(f"tenant-a {_short(a)} on tenant-b's outbox object", "deny", a,
                  object_arn("outbox/tenant-b/pending/sum-0a1b.json"))
      for a in OUTBOX_OBJECT_ACTIONS),
    tenant_call("tenant-a PutObject on tenant-b's erasure markers", "deny", "s3:PutObject",
                object_arn("outbox/tenant-b/erasures/era-1.json")),
    tenant_call("tenant-a GetObject under tenant-ab (longer name)", "deny", "s3:GetObject",
                object_arn("outbox/tenant-ab/pending/sum-0a1b.json")),
    tenant_call("tenant-a PutObject outside the outbox prefix", "deny", "s3:PutObject", object_arn("tenant-a/x.json")),
    tenant_call("tenant-a PutObject in another bucket", "deny", "s3:PutObject", object_arn(_OWN_ENTRY, "other-bucket")),
    tenant_call("untagged session GetObject under tenant-a", "deny", "s3:GetObject", object_arn(_OWN_ENTRY), tenant=None),
    tenant_call("tenant-b GetObject under tenant-a", "deny", "s3:GetObject", object_arn(_OWN_ENTRY), tenant="tenant-b"),
    tenant_call("tenant-a ListBucket its own prefix", "allow", "s3:ListBucket", f"arn:aws:s3:::{OUTBOX}",
                context={"s3:prefix": "outbox/tenant-a/pending/"}),
    tenant_call("tenant-a ListBucket tenant-b's prefix", "deny", "s3:ListBucket", f"arn:aws:s3:::{OUTBOX}",
                context={"s3:prefix": "outbox/tenant-b/pending/"}),
    tenant_call("tenant-a ListBucket every tenant (outbox/)", "deny", "s3:ListBucket", f"arn:aws:s3:::{OUTBOX}",
                context={"s3:prefix": "outbox/"}),
    tenant_call("tenant-a ListBucket without a prefix", "deny", "s3:ListBucket", f"arn:aws:s3:::{OUTBOX}"),
    *(key_call(f"tenant-a {_short(a)} on the outbox key through S3", "allow", a, context=_VIA_S3)
      for a in ("kms:GenerateDataKey", "kms:Decrypt")),
    key_call("tenant-a kms:Decrypt on the outbox key directly", "deny", "kms:Decrypt"),
    key_call("tenant-a kms:Decrypt on the outbox key through another service", "deny", "kms:Decrypt",
             context={"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}),
    key_call("tenant-a kms:GenerateDataKey on another key through S3", "deny", "kms:GenerateDataKey",
             OUTBOX_KEY[:-4] + "ffff", context=_VIA_S3),
    key_call("tenant-a kms:Encrypt on the outbox key through S3", "deny", "kms:Encrypt", context=_VIA_S3),
    *(tenant_call(f"tenant-a {_short(a)} on the outbox bucket", "deny", a, f"arn:aws:s3:::{OUTBOX}")
      for a in ("s3:DeleteBucket", "s3:PutBucketPolicy", "s3:PutEncryptionConfiguration",
                "s3:PutBucketPublicAccessBlock")),
]

_RUNTIME = {"aws:SourceArn": RUNTIME_ARN, "aws:SourceAccount": ACCOUNT}
TRUST_CASES: list[Case] = [
    assume("execution role AssumeRole with TenantID", "allow"),
    assume("execution role TagSession with TenantID", "allow", action="sts:TagSession"),
    assume("execution role AssumeRole without tags", "deny", tags={}),
    assume("execution role AssumeRole with an empty TenantID", "deny", tags={"TenantID": ""}),
    assume("execution role AssumeRole with an extra tag", "deny", tags={**TENANT_TAG, "Admin": "true"}),
    assume("execution role TagSession with an extra tag", "deny", tags={**TENANT_TAG, "Admin": "true"},
           action="sts:TagSession"),
    assume("execution role AssumeRole with lower-case key tenantid", "deny", tags={"tenantid": "tenant-a"}),
    assume("execution role TagSession with lower-case key tenantid", "deny", tags={"tenantid": "tenant-a"},
           action="sts:TagSession"),
    assume("another role of the account", "deny", principal=f"arn:aws:iam::{ACCOUNT}:role/ops"),
    assume("a user of the account", "deny", principal=f"arn:aws:iam::{ACCOUNT}:user/alice"),
    assume("same role name in another account", "deny",
           principal=f"arn:aws:iam::{OTHER_ACCOUNT}:role/agentcore-runtime"),
    assume("service for its runtime", "allow", principal=SERVICE, source=_RUNTIME),
    assume("service for its runtime without tags", "deny", principal=SERVICE, source=_RUNTIME, tags={}),
    assume("service for another runtime of the account", "deny", principal=SERVICE,
           source={**_RUNTIME, "aws:SourceArn": f"{RUNTIME_ARN[:-10]}ZzZzZz9999"}),
    assume("service for a runtime of another account", "deny", principal=SERVICE,
           source={"aws:SourceArn": RUNTIME_ARN.replace(ACCOUNT, OTHER_ACCOUNT), "aws:SourceAccount": OTHER_ACCOUNT}),
    assume("service without source keys", "deny", principal=SERVICE),
]


def _trust_without_tag_session() -> dict[str, Any]:
    """TRUST with ``sts:AssumeRole`` only (the tag conditions kept): what ``doctor`` reports as drift."""
    doc = copy.deepcopy(TRUST)
    for statement in doc["Statement"]:
        statement["Action"] = "sts:AssumeRole"
    return doc


#: STS authorises a tagged AssumeRole as two actions: a trust policy without sts:TagSession
#: refuses the TVM's request (it always passes the TenantID tag), whatever its tag conditions.
TRUST_CASES.append(
    assume("trust without sts:TagSession: TagSession with TenantID", "deny", action="sts:TagSession",
           trust=_trust_without_tag_session())
)


def _exec_trust_naming(principal: str) -> dict[str, Any]:
    """The execution-role statement of TRUST naming ``principal`` instead (bypasses tvm-role's checks)."""
    doc = copy.deepcopy(TRUST)
    doc["Statement"] = [s for s in doc["Statement"] if "AWS" in s["Principal"]]
    doc["Statement"][0]["Principal"] = {"AWS": principal}
    return doc


#: Why ``tvm-role`` refuses these principals: with them IAM lets outsiders in (decision "allow").
REFUSED_PRINCIPALS: dict[str, Case] = {
    "*": assume("if '*' were trusted: a role of another account", "allow",
                principal=f"arn:aws:iam::{OTHER_ACCOUNT}:role/attacker", trust=_exec_trust_naming("*")),
    f"arn:aws:iam::{ACCOUNT}:root": assume(
        "if the account root were trusted: any role of the account", "allow",
        principal=f"arn:aws:iam::{ACCOUNT}:role/ops", trust=_exec_trust_naming(f"arn:aws:iam::{ACCOUNT}:root")),
}
ALL_CASES = [*TENANT_CASES, *OUTBOX_CASES, *TRUST_CASES, *REFUSED_PRINCIPALS.values()]


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[str, Outcome]:
    """Every case evaluated in one simulator run; the decision table is shown with ``-v`` or ``-s``."""
    try:
        node()
    except SimulatorMissing as exc:
        pytest.skip(f"IAM policy simulation skipped: {exc}")
    results = simulate(ALL_CASES)
    report = f"IAM policy simulation (@cloud-copilot/iam-simulate), {len(results)} cases:\n{table(results)}"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if request.config.get_verbosity() > 0 and capture is not None:
        with capture.global_and_fixture_disabled():  # what capsys.disabled() does, module-wide
            print(f"\n{report}")
    else:
        print(f"\n{report}")  # shown with -s
    return {o.case.name: o for o in results}


def test_case_names_are_unique() -> None:
    assert len({c.name for c in ALL_CASES}) == len(ALL_CASES)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_iam_decides_as_expected(outcomes: dict[str, Outcome], case: Case) -> None:
    outcome = outcomes[case.name]
    assert outcome.problem is None, outcome.problem
    assert outcome.decision == case.expect, f"{case.name}: expected {case.expect}, IAM says {outcome.raw}"


@pytest.mark.parametrize("principal", list(REFUSED_PRINCIPALS))
def test_tvm_role_refuses_the_principals_that_let_outsiders_in(principal: str) -> None:
    with pytest.raises(ScriptError, match="refusing trust principal"):
        trust_policy([EXEC_ROLE_ARN, principal], account=ACCOUNT)
