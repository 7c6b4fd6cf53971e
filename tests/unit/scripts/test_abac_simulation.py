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

from scripts.agentcore_cmd import execution_role_policy
from scripts.app_secret import AppSecret
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
_OWN_MARKER = "outbox/tenant-a/erasures/u-0123456789abcdef0123456789abcdef/era-1.json"
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
    *(tenant_call(f"tenant-a {_short(a)} on its own {folder}", "allow", a,
                  object_arn(f"outbox/tenant-a/{folder}/sum-0a1b.json"))
      for folder in ("claims", "dead") for a in OUTBOX_OBJECT_ACTIONS),
    # Erasure markers are written by the operator's `forget` only: a tenant session reads them
    # (every store checks them) and can neither overwrite (e.g. back-date) nor delete one.
    tenant_call("tenant-a GetObject on its own erasure marker", "allow", "s3:GetObject", object_arn(_OWN_MARKER)),
    tenant_call("tenant-a GetObject on its own flat erasure marker", "allow", "s3:GetObject",
                object_arn("outbox/tenant-a/erasures/era-1.json")),
    *(tenant_call(f"tenant-a {_short(a)} on its own erasure marker", "deny", a, object_arn(_OWN_MARKER))
      for a in ("s3:PutObject", "s3:DeleteObject")),
    tenant_call("tenant-a PutObject on its own tenant-wide erasure marker", "deny", "s3:PutObject",
                object_arn("outbox/tenant-a/erasures/all/era-1.json")),
    tenant_call("tenant-a PutObject directly under its prefix", "deny", "s3:PutObject",
                object_arn("outbox/tenant-a/sum-0a1b.json")),
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

#: A single-tenant deployment's execution role (``agentcore --tenant-mode single``) writes the
#: outbox of its one tenant itself: the same folders, markers read-only.
SINGLE_TENANT_APP = execution_role_policy(region=REGION, account=ACCOUNT, model_ids=[], tvm_role_arn=None,
                                          bucket=BUCKET, single_tenant_id="acme", outbox_bucket=OUTBOX)


def single_tenant_app_call(name: str, expect: Expect, action: str, key: str) -> Case:
    return Case(name=name, expect=expect, principal=EXEC_ROLE_ARN, action=action, resource=object_arn(key),
                resource_account=ACCOUNT, identity_policies=[SINGLE_TENANT_APP])


SINGLE_TENANT_CASES: list[Case] = [
    *(single_tenant_app_call(f"single-tenant app {_short(a)} on its {folder}", "allow", a,
                             f"outbox/acme/{folder}/sum-0a1b.json")
      for folder in ("pending", "claims", "dead") for a in OUTBOX_OBJECT_ACTIONS),
    single_tenant_app_call("single-tenant app GetObject on an erasure marker", "allow", "s3:GetObject",
                           "outbox/acme/erasures/all/era-1.json"),
    *(single_tenant_app_call(f"single-tenant app {_short(a)} on an erasure marker", "deny", a,
                             "outbox/acme/erasures/all/era-1.json")
      for a in ("s3:PutObject", "s3:DeleteObject")),
    single_tenant_app_call("single-tenant app GetObject under another tenant", "deny", "s3:GetObject",
                           "outbox/globex/pending/sum-0a1b.json"),
]

#: A multi-tenant app's execution role lists which tenants have pending entries with its own
#: credentials (``S3Outbox.pending``: no tenant role is assumed for a tenant without any), and
#: reads no tenant's objects itself.
MULTI_TENANT_APP = execution_role_policy(region=REGION, account=ACCOUNT, model_ids=[], tvm_role_arn=TVM_ROLE_ARN,
                                         bucket=BUCKET, single_tenant_id=None, outbox_bucket=OUTBOX)
MULTI_TENANT_CASES: list[Case] = [
    *(Case(name=f"multi-tenant app ListBucket {prefix or 'without a prefix'}", expect="allow",
           principal=EXEC_ROLE_ARN, action="s3:ListBucket", resource=f"arn:aws:s3:::{OUTBOX}",
           resource_account=ACCOUNT, identity_policies=[MULTI_TENANT_APP],
           context={"s3:prefix": prefix} if prefix else {})
      for prefix in ("outbox/", "outbox/tenant-a/pending/", "")),
    Case(name="multi-tenant app GetObject of a tenant's entry", expect="deny", principal=EXEC_ROLE_ARN,
         action="s3:GetObject", resource=object_arn(_OWN_ENTRY), resource_account=ACCOUNT,
         identity_policies=[MULTI_TENANT_APP]),
]

#: The app's secret (``agentcore --secrets-id``) under a customer managed key: read through the
#: execution role's ``ReadAppSecret`` / ``DecryptAppSecretThroughSecretsManagerOnly`` statements.
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:agent-memory/app-AbCdEf"
SECRET_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5678abcd-12ab-34cd-56ef-1234567890ab"
SECRET_APP = execution_role_policy(region=REGION, account=ACCOUNT, model_ids=[], tvm_role_arn=TVM_ROLE_ARN,
                                   bucket=BUCKET, single_tenant_id=None, secret=AppSecret(SECRET_ARN, SECRET_KEY))
_VIA_SECRETS_MANAGER = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}


def secret_app_call(name: str, expect: Expect, action: str, resource: str, context: Mapping[str, str] | None = None) -> Case:
    """The execution role calls ``action``; a KMS key has KMS's default key policy (IAM policies decide)."""
    key_policy = _DEFAULT_KEY_POLICY if action.startswith("kms:") else None
    return Case(name=name, expect=expect, principal=EXEC_ROLE_ARN, action=action, resource=resource,
                resource_account=ACCOUNT, identity_policies=[SECRET_APP], resource_policy=key_policy,
                context=dict(context or {}))


SECRET_CASES: list[Case] = [
    secret_app_call("app GetSecretValue on its secret", "allow", "secretsmanager:GetSecretValue", SECRET_ARN),
    secret_app_call("app GetSecretValue on another secret", "deny", "secretsmanager:GetSecretValue",
                    SECRET_ARN.replace("agent-memory/app", "payroll/db")),
    secret_app_call("app PutSecretValue on its secret", "deny", "secretsmanager:PutSecretValue", SECRET_ARN),
    secret_app_call("app kms:Decrypt of its secret through Secrets Manager", "allow", "kms:Decrypt", SECRET_KEY,
                    _VIA_SECRETS_MANAGER),
    secret_app_call("app kms:Decrypt of another key through Secrets Manager", "deny", "kms:Decrypt",
                    SECRET_KEY[:-4] + "ffff", _VIA_SECRETS_MANAGER),
    secret_app_call("app kms:Decrypt on the secret's key directly", "deny", "kms:Decrypt", SECRET_KEY),
    secret_app_call("app kms:Decrypt on the secret's key through S3", "deny", "kms:Decrypt", SECRET_KEY,
                    {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}),
    secret_app_call("app kms:Encrypt on the secret's key through Secrets Manager", "deny", "kms:Encrypt", SECRET_KEY,
                    _VIA_SECRETS_MANAGER),
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
ALL_CASES = [*TENANT_CASES, *OUTBOX_CASES, *SINGLE_TENANT_CASES, *MULTI_TENANT_CASES, *SECRET_CASES, *TRUST_CASES,
             *REFUSED_PRINCIPALS.values()]


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


# -- what the app sends with a tenant session: every request must be allowed ----------------


class _Summaries:
    """Summarizes every transcript to its first line (the pipeline only needs ``digest``)."""

    def digest(self, transcript: Any) -> tuple[str, list[str]]:
        return transcript[0]["text"], []


class _Store:
    """A memory store whose ``store_units`` fails with AccessDenied for the users in ``refused``."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused

    def store_units(self, scope: Any, units: Any, **_: Any) -> list[Any]:
        from memory.errors import AccessDenied

        if scope.user_id in self.refused:
            raise AccessDenied("refused")
        return []

    def forget(self, scope: Any, **_: Any) -> int:
        return 0


def _tenant_requests() -> list[tuple[str, str]]:
    """(operation, key or list prefix) of every S3 request the app's outbox sends with tenant-a's
    client while it checkpoints, stores, dead-letters, drops an erased conversation and, in a
    second process, adopts and replays what the first left (moto; markers written by an operator)."""
    from moto import mock_aws

    from memory.aws import make_client
    from memory.pipeline.background import RetryPolicy, SummaryPipeline
    from memory.pipeline.outbox import ErasureMarker, OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    sent: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params.get("Key") or params.get("Prefix") or ""))

    def entry(user: str, conversation: str, **kwargs: Any) -> OutboxEntry:
        return OutboxEntry("tenant-a", user, "orchestrator", conversation,
                           [{"role": "user", "text": f"fact of {user}"}], **kwargs)

    with mock_aws():
        operator = make_client("s3", region=REGION)
        operator.create_bucket(Bucket=OUTBOX)
        tenant = make_client("s3", region=REGION)
        tenant.meta.events.register("provide-client-params.s3.*", record)

        def outbox() -> S3Outbox:
            return S3Outbox(lambda t: tenant if t == "tenant-a" else operator, OUTBOX, lister=operator)

        erased = entry("bob", "c3")  # started before bob's erasure
        S3Outbox(lambda _t: operator, OUTBOX).add_erasure(ErasureMarker("tenant-a", user_id="bob"))
        S3Outbox(lambda _t: operator, OUTBOX).add_erasure(ErasureMarker("tenant-a"))  # a tenant-wide one, old
        left = outbox()
        left.put(entry("dave", "c-left", open=True))  # a checkpoint of a process that died
        retry = RetryPolicy(max_attempts=1, base_delay=0.0, max_rounds=1)
        pipeline = SummaryPipeline(_Store({"carol"}), outbox(), _Summaries(), max_workers=1, retry=retry)
        try:
            pipeline.checkpoint(entry("alice", "c1"))
            assert pipeline.flush(timeout=30)
            for ended in (entry("alice", "c1"), entry("carol", "c2"), erased):
                pipeline.end_conversation(ended)
            assert pipeline.wait(timeout=30)
        finally:
            pipeline.shutdown()
        later = SummaryPipeline(_Store(set()), outbox(), _Summaries(), max_workers=1, retry=retry)
        try:
            assert later.replay_pending() == 1  # adopts dave's checkpoint
            assert later.wait(timeout=30)
        finally:
            later.shutdown()
        assert pipeline.metrics["dead_lettered"] == 1 and pipeline.metrics["erased_dropped"] == 1
        assert later.metrics["stored"] == 1
    return sent


_S3_ACTIONS = {"PutObject": "s3:PutObject", "GetObject": "s3:GetObject", "DeleteObject": "s3:DeleteObject",
               "ListObjectsV2": "s3:ListBucket"}


def test_every_outbox_request_of_a_tenant_session_is_allowed() -> None:
    """The role allows what the code sends, not only what the tables above name: every request
    the outbox made with tenant-a's client in a run of the pipeline is evaluated."""
    try:
        node()
    except SimulatorMissing as exc:
        pytest.skip(f"IAM policy simulation skipped: {exc}")
    sent = _tenant_requests()
    kinds = {(operation, key.split("/")[2]) for operation, key in sent}
    assert {("PutObject", f) for f in ("pending", "claims", "dead")} <= kinds, kinds
    assert {("DeleteObject", "pending"), ("DeleteObject", "claims"), ("GetObject", "erasures"),
            ("ListObjectsV2", "erasures"), ("ListObjectsV2", "pending")} <= kinds, kinds
    cases = []
    for n, (operation, key) in enumerate(dict.fromkeys(sent)):
        action = _S3_ACTIONS[operation]
        if action == "s3:ListBucket":
            cases.append(tenant_call(f"{n} {operation} {key}", "allow", action, f"arn:aws:s3:::{OUTBOX}",
                                     context={"s3:prefix": key}))
        else:
            cases.append(tenant_call(f"{n} {operation} {key}", "allow", action, object_arn(key)))
    refused = [(o.case.name, o.raw, o.problem) for o in simulate(cases) if o.decision != "allow" or o.problem]
    assert refused == []
