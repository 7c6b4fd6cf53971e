"""The app as deployed on AWS, in-process, under simulation: the real ``create_app`` and
``build_services`` with S3 Vectors (moto + the QueryVectors route), Nova embeddings on Bedrock
(every ``InvokeModel`` request checked against the Nova schema), the token vending machine
against moto STS, Cognito tokens issued by moto and verified against its JWKS (moto server,
reached through the real JWKS URL the app derives), and the echo scripted model.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import boto3
import pytest
from botocore.response import StreamingBody
from jwt import PyJWKClient
from moto import mock_aws
from moto.server import ThreadedMotoServer
from starlette.testclient import TestClient

import memory.aws
from agent.app import create_app
from agent.log_setup import OWN_PACKAGES, SDK_LOGGER, configure_logging
from agent.services import Services, build_services
from agent.settings import Settings
from auth.dev_issuer import DevIssuer
from memory.embedders.bedrock import NOVA_MODEL_ID
from memory.errors import BackendUnavailable, ConfigurationError, NotFound
from memory.index.s3vectors import S3VectorsIndex, create_index_params
from memory.tenants import index_name_for
from scripts.__main__ import main
from scripts.common import Report, aws_client
from scripts.tvm_role import ensure_role, permission_policy, trust_policy
from scripts.vectors import ensure_bucket, ensure_outbox_bucket, onboard
from tests.support.bedrock_standin import bag_of_words_vector
from tests.support.s3vectors_double import install_s3vectors_double

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
BUCKET = "agent-memory-vectors"
OUTBOX = "agent-memory-outbox"
DIMENSION = 1024
ECHO_MODEL = "import:tests.support.scripted_model:build_echo_model"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
COGNITO_HOST = f"https://cognito-idp.{REGION}.amazonaws.com"
PASSWORD = "Passw0rd!Passw0rd"


@dataclass
class AwsCalls:
    """What the app sent to STS and Bedrock (recorded at the botocore layer)."""

    assume_role: list[dict[str, Any]] = field(default_factory=list)
    credentials: list[dict[str, Any]] = field(default_factory=list)
    embeddings: list[dict[str, Any]] = field(default_factory=list)
    jwks_urls: list[str] = field(default_factory=list)
    bad_requests: list[str] = field(default_factory=list)


def _install_recorders(monkeypatch: pytest.MonkeyPatch, calls: AwsCalls, jwks_endpoint: str | None) -> None:
    """Record STS AssumeRole requests, answer Bedrock InvokeModel (Nova-shaped, request checked),
    and route the verifier's Cognito JWKS fetch to the moto server."""
    session = boto3.Session()

    def on_assume_role(params: dict[str, Any], **_: Any) -> None:
        calls.assume_role.append(dict(params))

    def on_credentials(parsed: dict[str, Any], **_: Any) -> None:
        calls.credentials.append(dict(parsed["Credentials"]))

    def on_invoke_model(model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        try:  # the serialised request, after botocore validated it against the service model
            body = json.loads(params["body"])
            assert params["url_path"] == f"/model/{quote(NOVA_MODEL_ID, safe='')}/invoke"
            assert params["headers"]["Content-Type"] == "application/json"
            assert body["schemaVersion"] == "nova-multimodal-embed-v1"
            assert body["taskType"] == "SINGLE_EMBEDDING"
            single = body["singleEmbeddingParams"]
            assert single["embeddingPurpose"] in ("GENERIC_INDEX", "GENERIC_RETRIEVAL")
            assert single["embeddingDimension"] == DIMENSION
            assert single["text"]["truncationMode"] == "END" and single["text"]["value"].strip()
        except (AssertionError, KeyError, ValueError) as exc:
            calls.bad_requests.append(repr(exc))  # the app may swallow the failure: assert later
            raise
        calls.embeddings.append(single)
        payload = json.dumps(
            {"embeddings": [{"embeddingType": "TEXT", "embedding": bag_of_words_vector(single["text"]["value"], DIMENSION)}]}
        ).encode()
        http = type("Http", (), {"status_code": 200, "headers": {}})()
        parsed = {
            "body": StreamingBody(io.BytesIO(payload), len(payload)),
            "contentType": "application/json",
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return http, parsed

    session.events.register("provide-client-params.sts.AssumeRole", on_assume_role)
    session.events.register("after-call.sts.AssumeRole", on_credentials)
    session.events.register("before-call.bedrock-runtime.InvokeModel", on_invoke_model)
    monkeypatch.setattr(memory.aws, "_default_session", session)

    if jwks_endpoint is not None:
        real_fetch = PyJWKClient.fetch_data

        def fetch_via_moto(self: PyJWKClient) -> Any:
            calls.jwks_urls.append(self.uri)
            real_uri = self.uri
            assert real_uri.startswith(COGNITO_HOST + "/")
            self.uri = jwks_endpoint + real_uri[len(COGNITO_HOST) :]  # the moto server plays the host
            try:
                return real_fetch(self)
            finally:
                self.uri = real_uri

        monkeypatch.setattr(PyJWKClient, "fetch_data", fetch_via_moto)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _cognito_users(tenants: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """A pool with custom:tenantId, an app client, and each user's IdToken."""
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool_id = idp.create_user_pool(
        PoolName="memory-users",
        Schema=[{"Name": "tenantId", "AttributeDataType": "String", "Mutable": False}],
    )["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="agent", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    tokens = {}
    for user, tenant in tenants.items():
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=user,
            UserAttributes=[{"Name": "custom:tenantId", "Value": tenant}],
            MessageAction="SUPPRESS",
        )
        idp.admin_set_user_password(UserPoolId=pool_id, Username=user, Password=PASSWORD, Permanent=True)
        tokens[user] = idp.admin_initiate_auth(
            UserPoolId=pool_id,
            ClientId=client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]["IdToken"]
    return pool_id, client_id, tokens


def _onboard(tenants: list[str], dimension: int = DIMENSION) -> Report:
    """The operator's setup: the vector bucket and one index per tenant (the CLI's functions)."""
    s3v = aws_client("s3vectors", REGION)
    report = Report("setup")
    ensure_bucket(s3v, report, BUCKET)
    ensure_outbox_bucket(aws_client("s3", REGION), report, OUTBOX, REGION)
    for tenant in tenants:
        onboard(s3v, report, BUCKET, tenant, dimension)
    return report


def _tvm_role() -> str:
    arn = ensure_role(
        aws_client("iam", REGION),
        Report("tvm-role"),
        role_name="agent-memory-tvm",
        trust=trust_policy([f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"], account=ACCOUNT),
        permissions=permission_policy(REGION, ACCOUNT, BUCKET, outbox_bucket=OUTBOX),
    )
    assert arn is not None
    return arn


def _multi_tenant_settings(tmp_path: Path, pool_id: str, client_id: str, **overrides: Any) -> Settings:
    """Cognito + multi-tenant S3 Vectors with TVM and Nova embeddings (inside ``mock_aws``)."""
    return Settings(
        auth_mode="cognito",
        cognito_user_pool_id=pool_id,
        cognito_client_ids=(client_id,),
        tenant_mode="multi",
        backend="s3vectors",
        vector_bucket=BUCKET,
        outbox_bucket=OUTBOX,
        tvm_role_arn=_tvm_role(),
        embedder="bedrock",
        region=REGION,
        model_provider=ECHO_MODEL,
        state_dir=tmp_path,
        **overrides,
    )


def _vectors(tenant: str) -> list[dict[str, Any]]:
    """What an operator sees in the tenant's index."""
    s3v = boto3.client("s3vectors", region_name=REGION)
    return s3v.list_vectors(
        vectorBucketName=BUCKET, indexName=index_name_for(tenant), returnMetadata=True
    )["vectors"]


def _summaries(tenant: str) -> list[dict[str, Any]]:
    """The tenant's summary vectors (one per stored conversation; its other units carry the same
    conversation id)."""
    return [v for v in _vectors(tenant) if v["metadata"]["type"] == "summary"]


def _app(settings: Settings) -> tuple[Any, dict[str, Services]]:
    holder: dict[str, Services] = {}

    def real_services(settings: Settings, **hooks: Any) -> Services:
        holder["services"] = build_services(settings, **hooks)
        return holder["services"]

    return create_app(settings, services_factory=real_services), holder


def _invoke(client: TestClient, token: str, session_id: str, **payload: Any) -> dict[str, Any]:
    response = client.post(
        "/invocations", json=payload, headers={"Authorization": f"Bearer {token}", SESSION: session_id}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _sid(n: int) -> str:
    return f"session-{n:032x}"


def test_multi_tenant_aws_configuration_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> None:
    """Cognito + S3 Vectors + Bedrock embeddings + TVM: store, recall, isolation."""
    install_s3vectors_double(monkeypatch)
    calls = AwsCalls()
    with mock_aws():
        _install_recorders(monkeypatch, calls, jwks_endpoint=moto_server)
        pool_id, client_id, tokens = _cognito_users({"alice": "tenant-a", "bob": "tenant-b"})
        _onboard(["tenant-a", "tenant-b"])
        settings = _multi_tenant_settings(tmp_path, pool_id, client_id)
        app, holder = _app(settings)
        with TestClient(app) as client:
            stored = _invoke(
                client, tokens["alice"], _sid(1), prompt="My favourite colour is teal.", end_session=True
            )
            assert stored["session_ended"] is True and stored["memories_used"] == []
            assert holder["services"].pipeline.wait(timeout=30)

            a_vectors, b_vectors = _vectors("tenant-a"), _vectors("tenant-b")
            assert sorted(v["metadata"]["type"] for v in a_vectors) == ["excerpt", "summary"]  # statement == summary
            assert b_vectors == []
            assert all("teal" in v["metadata"]["content"] for v in a_vectors)
            assert {v["metadata"]["conversation_id"] for v in a_vectors} == {_sid(1)}

            recalled = _invoke(client, tokens["alice"], _sid(2), prompt="What is my favourite colour?")
            assert "teal" in recalled["answer"].split("| MEMORY:")[1]
            assert len(recalled["memories_used"]) == 1

            other = _invoke(client, tokens["bob"], _sid(3), prompt="What is my favourite colour?")
            assert other["answer"].endswith("| MEMORY: none") and other["memories_used"] == []
            assert [e["embeddingPurpose"] for e in calls.embeddings].count("GENERIC_INDEX") == len(a_vectors)
        # Shutdown ended the two open conversations: each summary went to its own tenant's index.
        assert sorted(v["metadata"]["conversation_id"] for v in _summaries("tenant-a")) == [_sid(1), _sid(2)]
        assert [v["metadata"]["conversation_id"] for v in _summaries("tenant-b")] == [_sid(3)]

    assert calls.bad_requests == []
    # Identity came from Cognito's tokens, checked against the pool's JWKS URL (fetched once).
    assert calls.jwks_urls == [f"{COGNITO_HOST}/{pool_id}/.well-known/jwks.json"]
    # One AssumeRole per tenant, tagged with that tenant, for the configured role.
    assert [c["Tags"] for c in calls.assume_role] == [
        [{"Key": "TenantID", "Value": "tenant-a"}],
        [{"Key": "TenantID", "Value": "tenant-b"}],
    ]
    assert all(c["RoleArn"] == settings.tvm_role_arn for c in calls.assume_role)
    assert all(c["TransitiveTagKeys"] == ["TenantID"] for c in calls.assume_role)
    # Every stored unit's distinct text was embedded for indexing (summary and excerpt of each of the
    # three one-turn conversations; the one statement equals the summary), the three prompts for retrieval.
    purposes = [e["embeddingPurpose"] for e in calls.embeddings]
    assert purposes.count("GENERIC_INDEX") == 6 and purposes.count("GENERIC_RETRIEVAL") == 3


def _single_tenant_settings(tmp_path: Path) -> Settings:
    return Settings(
        auth_mode="dev",
        tenant_mode="single",
        single_tenant_id="tenant-a",
        backend="s3vectors",
        vector_bucket=BUCKET,
        outbox_bucket=OUTBOX,
        embedder="bedrock",
        region=REGION,
        model_provider=ECHO_MODEL,
        state_dir=tmp_path,
    )


def test_single_tenant_aws_configuration_uses_the_onboarded_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Execution-role mode (dev tokens): the onboarded index is used, never created or assumed into."""
    install_s3vectors_double(monkeypatch)
    calls = AwsCalls()
    with mock_aws():
        _install_recorders(monkeypatch, calls, jwks_endpoint=None)
        _onboard(["tenant-a"])
        created: list[str] = []
        session = memory.aws._default_session
        session.events.register("before-call.s3vectors.CreateIndex", lambda **_: created.append("x"))
        settings = _single_tenant_settings(tmp_path)
        token = DevIssuer(settings.resolved_dev_issuer_dir).mint("tenant-a", "alice")
        app, holder = _app(settings)
        with TestClient(app) as client:
            _invoke(client, token, _sid(1), prompt="My favourite colour is teal.", end_session=True)
            assert holder["services"].pipeline.wait(timeout=30)
            assert [v["metadata"]["conversation_id"] for v in _summaries("tenant-a")] == [_sid(1)]
            recalled = _invoke(client, token, _sid(2), prompt="What is my favourite colour?")
    assert "teal" in recalled["answer"].split("| MEMORY:")[1]
    assert created == [] and calls.assume_role == [] and calls.bad_requests == []


def test_single_tenant_without_an_onboarded_index_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard([])  # the bucket only
        app, _ = _app(_single_tenant_settings(tmp_path))
        with pytest.raises(NotFound, match="onboard the tenant first"):
            with TestClient(app):
                pass
        s3v = boto3.client("s3vectors", region_name=REGION)
        assert s3v.list_indexes(vectorBucketName=BUCKET)["indexes"] == []  # nothing was created


def test_single_tenant_index_of_another_dimension_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard([])
        s3v = boto3.client("s3vectors", region_name=REGION)
        s3v.create_index(**create_index_params(BUCKET, index_name_for("tenant-a"), 256))  # WordLlama's
        app, _ = _app(_single_tenant_settings(tmp_path))
        with pytest.raises(ConfigurationError, match=r"bedrock produces 1024-d.*dimension 256"):
            with TestClient(app):
                pass


def test_single_tenant_start_survives_a_transient_fault_and_verifies_at_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_s3vectors_double(monkeypatch)
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard(["tenant-a"])
        real_ensure = S3VectorsIndex.ensure
        faults = iter([BackendUnavailable("s3vectors get_index: throttled")])

        def flaky_ensure(index: S3VectorsIndex) -> None:
            fault = next(faults, None)
            if fault is not None:
                raise fault
            real_ensure(index)

        monkeypatch.setattr(S3VectorsIndex, "ensure", flaky_ensure)
        settings = _single_tenant_settings(tmp_path)
        token = DevIssuer(settings.resolved_dev_issuer_dir).mint("tenant-a", "alice")
        app, holder = _app(settings)
        with TestClient(app) as client:  # starts despite the fault at start-up
            _invoke(client, token, _sid(1), prompt="My favourite colour is teal.", end_session=True)
            assert holder["services"].pipeline.wait(timeout=30)
        assert [v["metadata"]["conversation_id"] for v in _summaries("tenant-a")] == [_sid(1)]


def test_multi_tenant_index_is_checked_at_first_use_and_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant that was not onboarded is answered without memory; its summary is dead-lettered
    in the S3 outbox at once (NotFound cannot heal by retrying; /ping returns to Healthy, no index
    is created with tenant credentials) and stored once the operator onboards the tenant and
    runs `outbox retry` (the next start replays it)."""
    install_s3vectors_double(monkeypatch)
    calls = AwsCalls()
    with mock_aws():
        _install_recorders(monkeypatch, calls, jwks_endpoint=None)
        _onboard(["tenant-a"])
        settings = Settings(
            auth_mode="dev", tenant_mode="multi", backend="s3vectors", vector_bucket=BUCKET,
            outbox_bucket=OUTBOX, tvm_role_arn=_tvm_role(), embedder="bedrock", region=REGION,
            model_provider=ECHO_MODEL, state_dir=tmp_path, shutdown_grace_seconds=5,
        )
        token = DevIssuer(settings.resolved_dev_issuer_dir).mint("tenant-c", "carol")
        app, holder = _app(settings)
        with TestClient(app) as client:
            pipeline = holder["services"].pipeline
            answer = _invoke(client, token, _sid(1), prompt="My favourite colour is teal.", end_session=True)
            assert answer["answer"].endswith("| MEMORY: none") and answer["memories_used"] == []
            assert pipeline.wait(timeout=30) and pipeline.waiting == 0
            assert client.get("/ping").json()["status"] == "Healthy"
            (letter,) = pipeline.outbox.dead_letters("tenant-c")
            assert letter.reason == "NotFound" and letter.entry.conversation_id == _sid(1)
            s3v = boto3.client("s3vectors", region_name=REGION)
            assert [i["indexName"] for i in s3v.list_indexes(vectorBucketName=BUCKET)["indexes"]] == [
                "memory-tenant-a"
            ]
            _onboard(["tenant-c"])  # the operator onboards the tenant and retries the dead letter
            result = main(["outbox", "retry", "--region", REGION, "--outbox-bucket", OUTBOX, "--tenant", "tenant-c"])
            assert result == 0 and pipeline.outbox.dead_letters("tenant-c") == []
            assert pipeline.replay_pending() == 1 and pipeline.wait(timeout=30)
            assert [v["metadata"]["conversation_id"] for v in _summaries("tenant-c")] == [_sid(1)]
    assert [c["Tags"] for c in calls.assume_role] == [[{"Key": "TenantID", "Value": "tenant-c"}]]
    assert calls.bad_requests == []


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo ``configure_logging`` (root handlers and the levels it sets) after the test."""
    root = logging.getLogger()
    names = (*OWN_PACKAGES, SDK_LOGGER)
    handlers, level, levels = list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names}
    propagate = logging.getLogger("bedrock_agentcore").propagate
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
    logging.getLogger("bedrock_agentcore").propagate = propagate


@pytest.mark.parametrize("unsafe", [False, True], ids=["default", "unsafe-third-party"])
def test_debug_logs_never_carry_credentials_tokens_or_memory_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str, restore_logging: None, unsafe: bool
) -> None:
    """AGENT_LOG_LEVEL=DEBUG through a TVM call (AssumeRole), a store (PutVectors) and a summary."""
    fact = "locker code is 7391-quokka"
    stream = io.StringIO()
    install_s3vectors_double(monkeypatch)
    calls = AwsCalls()
    with mock_aws():
        _install_recorders(monkeypatch, calls, jwks_endpoint=moto_server)
        pool_id, client_id, tokens = _cognito_users({"alice": "tenant-a"})
        _onboard(["tenant-a"])
        settings = _multi_tenant_settings(
            tmp_path, pool_id, client_id, log_level="DEBUG", unsafe_log_third_party=unsafe
        )
        app, holder = _app(settings)
        configure_logging(settings.log_level, unsafe_third_party=settings.unsafe_log_third_party, stream=stream)
        with TestClient(app) as client:
            _invoke(client, tokens["alice"], _sid(1), prompt=f"My {fact}.", end_session=True)
            assert holder["services"].pipeline.wait(timeout=30)
        assert fact in _vectors("tenant-a")[0]["metadata"]["content"]  # summary stored with TVM credentials

    log = stream.getvalue()
    (credentials,) = calls.credentials
    token = tokens["alice"]
    for secret in (credentials["SecretAccessKey"], credentials["SessionToken"], credentials["AccessKeyId"]):
        assert secret not in log
    assert token not in log and token.split(".")[2] not in log
    assert " DEBUG memory." in log and " INFO agent.app invocation " in log  # our own lines are there
    if unsafe:
        # Why the setting is called unsafe: botocore's bodies carry memory text. Credentials
        # are still caught by the formatter.
        assert " DEBUG botocore." in log and "<redacted-credential>" in log
        assert fact in log
    else:
        assert re.search(r" (DEBUG|INFO) (botocore|boto3|urllib3|s3transfer|strands)\b", log) is None
        assert fact not in log


def test_a_single_tenant_apps_retention_sweep_purges_its_dead_letters_in_a_shared_outbox_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single-tenant deployment's role may touch only its tenant's outbox objects
    (``<prefix>/<tenant>/``, `agentcore --tenant-mode single`), so one outbox bucket can serve
    several deployments. Its retention sweep must purge its own expired dead letters (whole
    transcripts) there: reading every tenant's letters, it was refused on the other tenant's and
    purged none of its own, every sweep."""
    import dataclasses
    from datetime import datetime, timedelta, timezone

    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    install_s3vectors_double(monkeypatch)
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard(["tenant-a"])
        operator = S3Outbox(lambda _tenant: boto3.client("s3", region_name=REGION), OUTBOX)
        old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
        for tenant in ("tenant-a", "tenant-b"):  # tenant-b: another deployment sharing the bucket
            letter = dataclasses.replace(OutboxEntry(
                tenant_id=tenant, user_id="ann", agent_name="orchestrator", conversation_id=f"c-{tenant}",
                transcript=[{"role": "user", "text": "My PIN is 4321."}], opened="2026-01-01T00:00:00.000+00:00~00000000",
            ), created_at=old)
            operator.put(letter)
            operator.dead_letter(letter, "AccessDenied")

        def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["key"] = params.get("Key", "")

        def own_prefix_only(context: dict[str, Any], **_: Any) -> Any:  # the execution role's object grant
            if context.get("key") and not context["key"].startswith("outbox/tenant-a/"):
                return type("Refused", (), {"status_code": 403})(), {
                    "Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            return None

        session = memory.aws._default_session
        for operation in ("GetObject", "PutObject", "DeleteObject"):
            session.events.register(f"before-parameter-build.s3.{operation}", remember)
            session.events.register(f"before-call.s3.{operation}", own_prefix_only)
        services = build_services(_single_tenant_settings(tmp_path).model_copy(update={"memory_ttl_days": 1.0}))
        try:
            services.sweep_retention()
        finally:
            services.close()
        assert [d.entry.tenant_id for d in operator.dead_letters()] == ["tenant-b"]


def test_a_single_tenant_apps_replay_never_touches_another_deployments_prefix_in_a_shared_outbox_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up replay of a single-tenant deployment reads only its own tenant's entries.

    Listing every tenant of a shared outbox bucket, it listed another deployment's entries (its
    role may list the bucket) and read them: refused, with a warning, at every process start (one
    per AgentCore session); with a role that could read them, it would have dead-lettered their
    conversations, which its store (pinned to its tenant) refuses."""
    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    install_s3vectors_double(monkeypatch)
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard(["tenant-a"])
        operator = S3Outbox(lambda _tenant: boto3.client("s3", region_name=REGION), OUTBOX)
        for tenant in ("tenant-a", "tenant-b"):  # tenant-b: another deployment sharing the bucket
            operator.put(OutboxEntry(
                tenant_id=tenant, user_id="ann", agent_name="orchestrator", conversation_id=f"c-{tenant}",
                transcript=[{"role": "user", "text": "My PIN is 4321."}], opened="2026-01-01T00:00:00.000+00:00~00000000",
            ))
        touched: list[str] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            touched.append(params.get("Key") or params.get("Prefix") or "")

        memory.aws._default_session.events.register("provide-client-params.s3.*", record)
        services = build_services(_single_tenant_settings(tmp_path))
        try:
            assert services.pipeline is not None
            assert services.pipeline.replay_pending() == 1
            assert services.pipeline.wait(timeout=30)
        finally:
            services.close()
        assert [t for t in touched if t.startswith("outbox/tenant-b/")] == []
        assert [e.tenant_id for e in operator.pending()] == ["tenant-b"]  # its own deployment's to store


def test_an_end_session_the_outbox_refuses_is_answered_as_a_refusal_not_retry_shortly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox bucket refusing the app's write (S3 403 ``AccessDenied``, e.g. a KMS key policy
    without ``kms:GenerateDataKey`` for the role) fails every retry alike: ``end_session`` answers
    the memory service's refusal (403, as a refused memory call elsewhere), not 503 "retry
    end_session shortly" (on main), and the session stays open for when the operator fixed it."""
    install_s3vectors_double(monkeypatch)
    with mock_aws():
        _install_recorders(monkeypatch, AwsCalls(), jwks_endpoint=None)
        _onboard(["tenant-a"])
        refusing = {"on": False}

        def kms_denied(**_: Any) -> Any:
            if not refusing["on"]:
                return None
            message = ("User: arn:aws:sts::123456789012:assumed-role/runtime/app is not authorized to perform: "
                       "kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:123456789012:key/k because no "
                       "resource-based policy allows the kms:GenerateDataKey action")
            return type("Refused", (), {"status_code": 403})(), {
                "Error": {"Code": "AccessDenied", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}}

        memory.aws._default_session.events.register("before-call.s3.PutObject", kms_denied)
        settings = _single_tenant_settings(tmp_path)
        token = DevIssuer(settings.resolved_dev_issuer_dir).mint("tenant-a", "alice")
        app, holder = _app(settings)
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {token}", SESSION: _sid(1)}
            assert client.post("/invocations", json={"prompt": "My favourite colour is teal."},
                               headers=headers).status_code == 200
            refusing["on"] = True
            refused = client.post("/invocations", json={"end_session": True}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"] == "AccessDenied" and "retry" not in refused.json()["message"]
            assert "kms" not in refused.text and "arn:" not in refused.text  # AWS's text stays in the logs
            refusing["on"] = False  # the operator fixed the key policy: the same session ends
            assert _invoke(client, token, _sid(1), end_session=True)["session_ended"] is True
            assert holder["services"].pipeline.wait(timeout=30)
            assert [v["metadata"]["conversation_id"] for v in _summaries("tenant-a")] == [_sid(1)]
