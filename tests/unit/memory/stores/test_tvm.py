"""Token vending machine: tags, single flight, refresh, no failure caching, bounded caches."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from memory.aws import make_client
from memory.errors import AccessDenied, BackendUnavailable, ConfigurationError, InvalidTenantId, IsolationError
from memory.stores.tvm import TokenVendingMachine, role_session_name
from tests.support.busy import wait_until

ROLE = "arn:aws:iam::123456789012:role/memory-tenant"


class CountingSts:
    """Wraps a real (moto) STS client, counting AssumeRole calls and slowing them down."""

    def __init__(self, client, delay=0.0):
        self._client, self._delay = client, delay
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def assume_role(self, **kwargs):
        with self._lock:
            self.calls.append(kwargs)
        time.sleep(self._delay)
        return self._client.assume_role(**kwargs)


@pytest.fixture
def moto_sts():
    with mock_aws():
        yield CountingSts(make_client("sts", region="us-east-1"), delay=0.05)


def _tvm(sts, **kwargs):
    return TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=lambda: sts, **kwargs)


def test_assume_role_request_carries_the_tenant_tag():
    client = make_client("sts", region="us-east-1", max_attempts=1)
    expires = datetime.now(timezone.utc) + timedelta(minutes=15)
    with Stubber(client) as stubber:
        stubber.add_response(
            "assume_role",
            {"Credentials": {"AccessKeyId": "ASIAEXAMPLE12345", "SecretAccessKey": "s" * 40,
                             "SessionToken": "token", "Expiration": expires}},
            {
                "RoleArn": ROLE,
                "RoleSessionName": "agent-memory-acme",
                "DurationSeconds": 900,
                "Tags": [{"Key": "TenantID", "Value": "acme"}],
                "TransitiveTagKeys": ["TenantID"],
            },
        )
        vended = _tvm(client).credentials_for("acme")
        stubber.assert_no_pending_responses()
    assert vended.credentials.access_key_id == "ASIAEXAMPLE12345"
    assert vended.expires_at == pytest.approx(expires.timestamp())


def test_fifty_threads_one_tenant_one_sts_call(moto_sts):
    tvm = _tvm(moto_sts)
    barrier = threading.Barrier(50)
    seen = []

    def worker():
        barrier.wait()
        seen.append(tvm.credentials_for("acme").credentials.access_key_id)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(moto_sts.calls) == 1
    assert len(seen) == 50 and len(set(seen)) == 1


def test_fifty_threads_one_tenant_one_client(moto_sts):
    built = []

    def slow_client_factory(service, credentials):
        built.append(service)
        time.sleep(0.05)  # client construction is slow enough for callers to pile up
        return object()

    tvm = _tvm(moto_sts, client_factory=slow_client_factory)
    barrier = threading.Barrier(50)
    clients = []

    def worker():
        barrier.wait()
        clients.append(tvm.client_for("acme", "s3vectors"))

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == ["s3vectors"]  # single flight for the client too, not one per waiting caller
    assert len(clients) == 50 and len({id(c) for c in clients}) == 1


def test_one_call_per_tenant_and_clients_reused(moto_sts):
    tvm = _tvm(moto_sts)
    for _ in range(3):
        for tenant in ("acme", "globex"):
            tvm.credentials_for(tenant)
    assert sorted(c["Tags"][0]["Value"] for c in moto_sts.calls) == ["acme", "globex"]
    client = tvm.client_for("acme", "s3vectors")
    assert tvm.client_for("acme", "s3vectors") is client
    assert tvm.client_for("globex", "s3vectors") is not client
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.retries["mode"] == "adaptive"


def test_refreshes_before_expiry_and_rebuilds_clients(moto_sts):
    now = [time.time()]
    tvm = _tvm(moto_sts, refresh_margin_seconds=120, clock=lambda: now[0])
    first = tvm.credentials_for("acme")
    client = tvm.client_for("acme", "s3vectors")
    now[0] = first.expires_at - 121
    assert tvm.credentials_for("acme") is first and len(moto_sts.calls) == 1
    now[0] = first.expires_at - 119  # inside the refresh margin
    second = tvm.credentials_for("acme")
    assert len(moto_sts.calls) == 2 and second is not first
    assert tvm.client_for("acme", "s3vectors") is not client


def test_a_host_clock_behind_aws_never_serves_expired_credentials():
    """STS's ``Expiration`` is on AWS's clock, the refresh check on the host's. With the host 5
    minutes behind (a microVM resumed before its clock is synchronised), credentials dated by
    ``Expiration`` alone stay cached until 3 minutes past their end (the skew less the refresh
    margin): every S3 Vectors call then fails with ExpiredToken, a 4xx the pipeline dead-letters
    at once."""
    host = [1_800_000_000.0]
    skew = 300.0  # AWS is ahead of the host
    client = make_client("sts", region="us-east-1", max_attempts=1)
    tvm = _tvm(client, refresh_margin_seconds=120, clock=lambda: host[0])

    def vended(key: str) -> dict:
        expires = datetime.fromtimestamp(host[0] + skew + 900, tz=timezone.utc)  # AWS now + 900 s
        return {"Credentials": {"AccessKeyId": key, "SecretAccessKey": "s" * 40, "SessionToken": "t",
                                "Expiration": expires}}

    with Stubber(client) as stubber:
        stubber.add_response("assume_role", vended("ASIAFIRST0000000"))
        assert tvm.credentials_for("acme").credentials.access_key_id == "ASIAFIRST0000000"
        host[0] += 900 - 119  # 119 s before they expire on AWS's clock (host + skew)
        stubber.add_response("assume_role", vended("ASIASECOND000000"))
        assert tvm.credentials_for("acme").credentials.access_key_id == "ASIASECOND000000"
        stubber.assert_no_pending_responses()


def test_failures_are_not_cached():
    client = make_client("sts", region="us-east-1", max_attempts=1)
    tvm = _tvm(client)
    expires = datetime.now(timezone.utc) + timedelta(minutes=15)
    creds = {"Credentials": {"AccessKeyId": "ASIAEXAMPLE12345", "SecretAccessKey": "s" * 40,
                             "SessionToken": "t", "Expiration": expires}}
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", "Throttling", http_status_code=400)
        stubber.add_client_error("assume_role", "InternalFailure", http_status_code=500)
        stubber.add_client_error("assume_role", "AccessDenied", http_status_code=403)
        stubber.add_response("assume_role", creds)
        with pytest.raises(BackendUnavailable):
            tvm.credentials_for("acme")
        with pytest.raises(BackendUnavailable):
            tvm.credentials_for("acme")
        with pytest.raises(AccessDenied):
            tvm.credentials_for("acme")
        assert tvm.credentials_for("acme").credentials.access_key_id == "ASIAEXAMPLE12345"
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("tenant", ["Acme", "a--b", "-a", "a b", "../x", "", "x" * 57, 7])
def test_invalid_tenant_ids_never_reach_sts(moto_sts, tenant):
    with pytest.raises(InvalidTenantId):
        _tvm(moto_sts).credentials_for(tenant)
    assert moto_sts.calls == []


def test_cache_is_bounded(moto_sts):
    tvm = _tvm(moto_sts, max_tenants=2)
    for tenant in ("t1", "t2", "t3", "t1"):
        tvm.credentials_for(tenant)
    assert [c["Tags"][0]["Value"] for c in moto_sts.calls] == ["t1", "t2", "t3", "t1"]


def test_configuration_errors(monkeypatch):
    with pytest.raises(ConfigurationError):
        TokenVendingMachine("", region_name="us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigurationError, match="region"):
        TokenVendingMachine(ROLE, region_name="")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert TokenVendingMachine(ROLE).region_name == "eu-west-1"  # the seed's default
    with pytest.raises(ConfigurationError):
        TokenVendingMachine(ROLE, region_name="us-east-1", duration_seconds=60)


def test_get_client_takes_the_seed_tenant_context(moto_sts):
    tvm = _tvm(moto_sts)
    client = tvm.get_client("s3vectors", {"tenantId": "tenant-001", "tenantName": "Acme Corp"})
    assert client is tvm.get_client("s3vectors", "tenant-001")  # same tenant, same cached client
    assert [c["Tags"] for c in moto_sts.calls] == [[{"Key": "TenantID", "Value": "tenant-001"}]]


@pytest.mark.parametrize("context", [{}, {"tenantName": "Acme"}, {"tenantId": ""}, None, "Not Valid"])
def test_get_client_without_a_valid_tenant_is_an_isolation_error(moto_sts, context):
    with pytest.raises(IsolationError) as caught:
        _tvm(moto_sts).get_client("s3vectors", context)
    assert caught.value.status_code == 400 and moto_sts.calls == []


def test_get_client_sts_denial_is_an_isolation_error_never_ambient_credentials():
    sts = make_client("sts", region="us-east-1", max_attempts=1)
    made: list[str] = []
    tvm = TokenVendingMachine(ROLE, "us-east-1", sts_client_factory=lambda: sts,
                              client_factory=lambda service, creds: made.append(service))
    with Stubber(sts) as stubber:
        stubber.add_client_error("assume_role", "AccessDenied", "not authorized", 403)
        with pytest.raises(IsolationError) as caught:
            tvm.get_client("s3vectors", {"tenantId": "tenant-001"})
    assert caught.value.status_code == 403 and made == []


def test_sts_refusing_the_request_as_invalid_is_a_configuration_error_not_an_outage():
    """STS answers ``ValidationError`` (400) to a request no retry can fix, e.g. a duration above the
    role's MaxSessionDuration (the TVM role allows 3600 s): the summary pipeline must dead-letter
    at once (README, "Bounded busy time"), not retry it as BackendUnavailable for 300 s."""
    client = make_client("sts", region="us-east-1", max_attempts=1)
    tvm = TokenVendingMachine(ROLE, region_name="us-east-1", duration_seconds=7200, sts_client_factory=lambda: client)
    message = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", "ValidationError", message, http_status_code=400)
        with pytest.raises(ConfigurationError) as info:
            tvm.credentials_for("acme")
        stubber.assert_no_pending_responses()
    assert not isinstance(info.value, BackendUnavailable) and "MaxSessionDuration" in str(info.value)


def test_sts_not_activated_in_the_region_is_a_configuration_error_that_names_it():
    """``RegionDisabledException`` is a 403 (botocore's STS model) that no IAM policy fixes: the
    administrator activates STS in the region. As an ``AccessDenied`` (on main) the dead letter
    and the logs said only "AccessDenied", sending the operator to the role's policies; a
    ``ConfigurationError`` keeps STS's answer in the reason (``error_reason``)."""
    from memory.errors import error_reason

    client = make_client("sts", region="us-east-1", max_attempts=1)
    tvm = TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=lambda: client)
    message = ("STS is not activated in this region for account:123456789012. Your account administrator "
               "can activate STS in this region using the IAM Console.")
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", "RegionDisabledException", message, http_status_code=403)
        with pytest.raises(ConfigurationError) as info:
            tvm.credentials_for("acme")
    reason = error_reason(info.value)
    assert not isinstance(info.value, AccessDenied)
    assert "RegionDisabledException" in reason and "us-east-1" in reason


def test_sts_refusing_expired_credentials_of_the_apps_own_role_is_retried_later():
    """``ExpiredTokenException`` is also a 400, but the app's own credentials are refreshed
    meanwhile: it stays an outage (retried with backoff), never a dead letter at once."""
    client = make_client("sts", region="us-east-1", max_attempts=1)
    tvm = TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=lambda: client)
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", "ExpiredTokenException", "The security token included in the "
                                 "request is expired", http_status_code=400)
        with pytest.raises(BackendUnavailable):
            tvm.credentials_for("acme")


def test_long_tenant_ids_get_distinct_session_names_within_the_sts_limit():
    """``agent-memory-<tenant>`` cut at STS's 64 characters gave two 56-character tenant ids that
    share their first 51 characters one session name: CloudTrail could not tell them apart."""
    first, second = "t" * 51 + "-aaaa", "t" * 51 + "-bbbb"
    names = [role_session_name("agent-memory", tenant) for tenant in (first, second)]
    assert names[0] != names[1] and all(len(name) == 64 for name in names)
    assert role_session_name("agent-memory", "acme") == "agent-memory-acme"  # short names unchanged
    client = make_client("sts", region="us-east-1", max_attempts=1)
    expires = datetime.now(timezone.utc) + timedelta(minutes=15)
    with Stubber(client) as stubber:  # the request is checked against STS's model (length <= 64)
        stubber.add_response(
            "assume_role",
            {"Credentials": {"AccessKeyId": "ASIAEXAMPLE12345", "SecretAccessKey": "s" * 40,
                             "SessionToken": "token", "Expiration": expires}},
            {"RoleArn": ROLE, "RoleSessionName": names[1], "DurationSeconds": 900,
             "Tags": [{"Key": "TenantID", "Value": second}], "TransitiveTagKeys": ["TenantID"]},
        )
        _tvm(client).credentials_for(second)
        stubber.assert_no_pending_responses()


# What S3 and S3 Vectors send for expired credentials, parsed by botocore's own parsers: S3's
# XML error document (400), and the REST-JSON error of S3 Vectors (``x-amzn-ErrorType``, 403).
EXPIRED_ANSWERS = {
    "s3": (400, {"Content-Type": "application/xml"},
           b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ExpiredToken</Code><Message>The provided '
           b'token has expired.</Message><Token-0>FwoGZXIvYXdzEBYaDExample</Token-0><RequestId>4442587FB7D0A2F9'
           b'</RequestId><HostId>vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo=</HostId></Error>'),
    "s3vectors": (403, {"Content-Type": "application/json", "x-amzn-ErrorType": "ExpiredTokenException"},
                  b'{"message":"The security token included in the request is expired"}'),
}


def answer_expired_once(client, service: str) -> list:
    """The client's next request gets the service's expired-credentials answer off the wire."""
    import io

    from botocore.awsrequest import AWSResponse
    from urllib3 import HTTPResponse

    status, headers, body = EXPIRED_ANSWERS[service]
    sent: list = []

    def answer(request, **_):
        if sent:
            return None
        sent.append(request.url)
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False)
        return AWSResponse(request.url, status, headers, raw)

    client.meta.events.register_first("before-send", answer)
    return sent


@pytest.mark.parametrize("service", ["s3", "s3vectors"])
def test_an_expired_token_answer_drops_that_tenants_credentials_and_the_retry_assumes_the_role_again(
    moto_sts, service, monkeypatch
):
    """Credentials that expired before their refresh (a host clock ahead of AWS's) answer
    ``ExpiredToken``: the next call, through the outbox or the index as the app makes it, gets
    new credentials from STS; the other tenant's cached session stays."""
    from memory.index.s3vectors import S3VectorsIndex, create_index_params
    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    tvm = _tvm(moto_sts)
    if service == "s3":
        make_client("s3", region="us-east-1").create_bucket(Bucket="outbox")
        outbox = S3Outbox(lambda tenant: tvm.client_for(tenant, "s3"), "outbox")
        alice = OutboxEntry("acme", "alice", "orchestrator", "c1", [{"role": "user", "text": "hi"}])
        call = lambda: outbox.put(alice)  # noqa: E731
    else:
        from tests.support.s3vectors_double import install_s3vectors_double

        install_s3vectors_double(monkeypatch)  # GetIndex reports the index's metadata configuration
        operator = make_client("s3vectors", region="us-east-1")
        operator.create_vector_bucket(vectorBucketName="vectors")
        operator.create_index(**create_index_params("vectors", "memory-acme", 4))
        index = S3VectorsIndex(lambda: tvm.client_for("acme", "s3vectors"), "vectors", "memory-acme", 4,
                               create_if_missing=False)
        call = index.ensure
    expired, other = tvm.client_for("acme", service), tvm.client_for("globex", service)
    sent = answer_expired_once(expired, service)
    with pytest.raises(BackendUnavailable, match="Expired"):
        call()
    assert sent and [c["Tags"][0]["Value"] for c in moto_sts.calls] == ["acme", "globex"]
    call()  # the retry
    assert [c["Tags"][0]["Value"] for c in moto_sts.calls] == ["acme", "globex", "acme"]
    renewed = tvm.client_for("acme", service)
    assert renewed is not expired and tvm.client_for("globex", service) is other
    answer_expired_once(expired, service)  # a late answer to the old client drops nothing newer
    with pytest.raises(ClientError):
        getattr(expired, "list_objects_v2" if service == "s3" else "list_indexes")(
            **({"Bucket": "outbox"} if service == "s3" else {"vectorBucketName": "vectors"}))
    assert tvm.client_for("acme", service) is renewed and len(moto_sts.calls) == 3


class GatedSts:
    """An STS double whose AssumeRole calls after the first wait for ``release`` (a refresh that
    hangs: STS slow or unreachable, botocore retrying for about a minute)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.calls = 0
        self.in_call = threading.Event()
        self.release = threading.Event()

    def assume_role(self, **kwargs):
        self.calls += 1
        if self.calls > 1:
            self.in_call.set()
            assert self.release.wait(30)
        expires = datetime.fromtimestamp(self.clock() + 900, tz=timezone.utc)
        key = f"ASIACALL{self.calls:08d}"
        return {"Credentials": {"AccessKeyId": key, "SecretAccessKey": "s" * 40, "SessionToken": "t",
                                "Expiration": expires}}


def test_callers_keep_using_valid_credentials_while_another_thread_refreshes_them():
    """Inside the refresh margin one caller assumes the role again; the others, whose cached
    credentials are still valid for minutes, went on waiting for that STS call (a minute of
    botocore retries when STS hangs: every first-turn retrieval of the tenant past its deadline,
    answered without memories). They use the cached credentials meanwhile (botocore's own
    advisory refresh does the same), and the client built from them."""
    now = [1_800_000_000.0]
    sts = GatedSts(lambda: now[0])
    tvm = _tvm(sts, refresh_margin_seconds=120, clock=lambda: now[0], client_factory=lambda s, c: (s, c))
    first = tvm.credentials_for("acme")
    client = tvm.client_for("acme", "s3vectors")
    now[0] = first.expires_at - 100  # inside the margin, 100 s of validity left
    refresher = threading.Thread(target=tvm.credentials_for, args=("acme",))
    refresher.start()
    try:
        assert sts.in_call.wait(30)
        served: list = []
        reader = threading.Thread(
            target=lambda: served.append((tvm.credentials_for("acme"), tvm.client_for("acme", "s3vectors")))
        )
        reader.start()
        reader.join(5)
        assert served == [(first, client)]  # at once, while the refresh is still in STS
    finally:
        sts.release.set()
        refresher.join(30)
    assert tvm.credentials_for("acme") is not first and sts.calls == 2


def test_credentials_about_to_expire_wait_for_the_refresh():
    """Past the advisory part of the margin the credentials may expire during the call they would
    sign: a caller waits for the refresh under way instead."""
    now = [1_800_000_000.0]
    sts = GatedSts(lambda: now[0])
    tvm = _tvm(sts, refresh_margin_seconds=120, clock=lambda: now[0])
    first = tvm.credentials_for("acme")
    now[0] = first.expires_at - 10
    refresher = threading.Thread(target=tvm.credentials_for, args=("acme",))
    refresher.start()
    assert sts.in_call.wait(30)
    served: list = []
    reader = threading.Thread(target=lambda: served.append(tvm.credentials_for("acme")))
    reader.start()
    reader.join(1)
    waited = reader.is_alive()
    sts.release.set()
    refresher.join(30)
    reader.join(30)
    assert waited and served and served[0] is not first and sts.calls == 2


class OneTenantHangs:
    """An STS double whose AssumeRole for ``hanging`` waits for ``release`` (STS slow for that
    call: botocore retrying for about a minute), then answers it or fails with ``error``."""

    def __init__(self, hanging: str, error: Exception | None = None) -> None:
        self.hanging, self.error = hanging, error
        self.calls: list[str] = []
        self.in_call = threading.Event()
        self.release = threading.Event()

    def assume_role(self, **kwargs):
        tenant = kwargs["Tags"][0]["Value"]
        self.calls.append(tenant)
        if tenant == self.hanging:
            self.in_call.set()
            assert self.release.wait(30)
            if self.error is not None:
                raise self.error
        expires = datetime.now(timezone.utc) + timedelta(minutes=15)
        return {"Credentials": {"AccessKeyId": f"ASIA{tenant.upper()}", "SecretAccessKey": "s" * 40,
                                "SessionToken": "t", "Expiration": expires}}


def test_a_tenant_never_waits_for_another_tenants_hanging_sts_call():
    """Single flight is per tenant: with a lock stripe per hash of the tenant id (64 of them), a
    tenant without cached credentials whose stripe was that of a tenant whose AssumeRole hung
    waited for that call (here several of the 300 other tenants shared acme's stripe)."""
    sts = OneTenantHangs("acme")
    tvm = _tvm(sts)
    hung = threading.Thread(target=tvm.credentials_for, args=("acme",))
    hung.start()
    try:
        assert sts.in_call.wait(30)
        served: list[str] = []
        others = threading.Thread(
            target=lambda: served.extend(tvm.credentials_for(f"tenant-{n}").tenant_id for n in range(300))
        )
        others.start()
        others.join(5)
        assert len(served) == 300  # at once, while acme's call still hangs
    finally:
        sts.release.set()
        hung.join(30)


def test_callers_waiting_for_their_tenants_failing_sts_call_share_its_outcome():
    """Callers of one tenant wait for its call under way and get its failure: one STS call, not
    one more per waiter, each as long (the failure is not cached: the next call tries again)."""
    sts = OneTenantHangs("acme", error=BackendUnavailable("sts unreachable"))
    tvm = _tvm(sts)
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(tvm.credentials_for("acme"))
        except BackendUnavailable as exc:
            outcomes.append(exc)

    checked: list[float] = []  # the waiters' last look at the cache before they wait
    fresh = tvm._fresh

    def counted(tenant_id: str, margin: float | None = None) -> object:
        if margin is not None:
            checked.append(margin)
        return fresh(tenant_id, margin)

    tvm._fresh = counted
    leader = threading.Thread(target=call)
    leader.start()
    assert sts.in_call.wait(30)
    waiters = [threading.Thread(target=call) for _ in range(5)]
    for thread in waiters:
        thread.start()
    assert wait_until(lambda: len(checked) == 5)  # each found the call under way
    sts.release.set()
    for thread in (leader, *waiters):
        thread.join(30)
    assert len(outcomes) == 6 and all(isinstance(o, BackendUnavailable) for o in outcomes)
    assert sts.calls == ["acme"]
    sts.error = None
    assert tvm.credentials_for("acme").tenant_id == "acme" and sts.calls == ["acme", "acme"]
