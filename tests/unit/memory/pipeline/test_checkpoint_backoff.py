"""A checkpoint the outbox refuses backs off (per conversation), under moto S3 and STS.

The refusals are answered by botocore ``before-call`` hooks (a short-circuited call is not
retried by botocore: one hook call is one request), on the tenant's S3 client (PutObject) or
on the STS client (AssumeRole, which the TVM never caches when it fails).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest
from moto import mock_aws

from memory.aws import StaticCredentials, make_client
from memory.errors import MemoryLibraryError
from memory.pipeline import background
from memory.pipeline.background import RetryPolicy, SummaryPipeline
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_s3 import S3Outbox
from memory.pipeline.summarizer import Summarizer
from memory.stores.tvm import TokenVendingMachine
from tests.support.busy import wait_until

ROLE = "arn:aws:iam::123456789012:role/memory-tenant"
BUCKET = "outbox-bucket"
BASE = 0.05  # _CHECKPOINT_RETRY_SECONDS in these tests
CAP = 0.4  # RetryPolicy.sweep_max_delay in these tests
#: (refused operation, error code, HTTP status): an IAM denial, a KMS key policy, a missing bucket
REFUSALS = [
    ("PutObject", "AccessDenied", 403),
    ("PutObject", "KMS.AccessDeniedException", 400),
    ("PutObject", "NoSuchBucket", 404),
    ("AssumeRole", "AccessDenied", 403),
]


def entry(text: str, **kwargs: Any) -> OutboxEntry:
    return OutboxEntry(tenant_id="acme", user_id="alice", agent_name="orchestrator", conversation_id="conv-1",
                       transcript=[{"role": "user", "text": text}, {"role": "assistant", "text": "Noted."}], **kwargs)


class Refusing:
    """Counts S3/STS calls per operation; refuses ``operation`` while ``on`` is set."""

    def __init__(self, operation: str, code: str, status: int) -> None:
        self.operation, self.code, self.status = operation, code, status
        self.on = threading.Event()
        self.on.set()
        self.calls: Counter[str] = Counter()
        self.refused_at: list[float] = []  # monotonic time of each refused request

    def __call__(self, model: Any, **_: Any) -> Any:
        self.calls[model.name] += 1
        if model.name != self.operation or not self.on.is_set():
            return None
        self.refused_at.append(time.monotonic())
        error = {"Error": {"Code": self.code, "Message": "refused"}, "ResponseMetadata": {"HTTPStatusCode": self.status}}
        return type("Refused", (), {"status_code": self.status})(), error


@pytest.fixture(params=REFUSALS, ids=lambda r: f"{r[0]}-{r[1]}")
def refusing(request: pytest.FixtureRequest) -> Refusing:
    return Refusing(*request.param)


@pytest.fixture
def pipeline(refusing: Refusing, fake_store: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SummaryPipeline]:
    """A pipeline over an S3 outbox written with the tenant's TVM credentials (moto)."""
    monkeypatch.setattr(background, "_CHECKPOINT_RETRY_SECONDS", BASE)
    with mock_aws():
        admin = make_client("s3", region="us-east-1")
        admin.create_bucket(Bucket=BUCKET)
        sts = make_client("sts", region="us-east-1")
        sts.meta.events.register("before-call.sts.*", refusing)

        def tenant_client(service: str, credentials: StaticCredentials) -> Any:
            client = make_client(service, region="us-east-1", credentials=credentials)
            client.meta.events.register("before-call.s3.*", refusing)
            return client

        tvm = TokenVendingMachine(ROLE, "us-east-1", sts_client_factory=lambda: sts, client_factory=tenant_client)
        outbox = S3Outbox(lambda t: admin if t is None else tvm.client_for(t, "s3"), BUCKET, lister=admin)
        made = SummaryPipeline(fake_store, outbox, Summarizer(), retry=RetryPolicy(
            max_attempts=2, base_delay=0.001, max_delay=0.005, sweep_max_delay=CAP))
        yield made
        refusing.on.clear()
        made.shutdown(wait=True, timeout=10)


def test_a_refused_checkpoint_backs_off_then_the_newest_transcript_is_written(
    pipeline: SummaryPipeline, refusing: Refusing
) -> None:
    """Refused writes come after pauses doubling from a second (here BASE) up to the cap, each
    one request (and one AssumeRole when STS is what refuses; the tenant's credentials are
    cached otherwise); a newer turn queued meanwhile is what is written once allowed."""
    pipeline.checkpoint(entry("turn 1", open=True))
    assert wait_until(lambda: len(refusing.refused_at) >= 2)
    pipeline.checkpoint(entry("turn 2", open=True))  # replaces the queued transcript, waits its turn
    assert wait_until(lambda: len(refusing.refused_at) >= 6)
    at = refusing.refused_at[:6]
    schedule = [min(CAP, BASE * 2**n) for n in range(5)]  # 0.05 0.1 0.2 0.4 0.4
    assert [round(b - a, 3) >= pause for a, b, pause in zip(at, at[1:], schedule)] == [True] * 5
    assert refusing.calls[refusing.operation] == len(refusing.refused_at)  # one request per write
    if refusing.operation == "PutObject":
        assert refusing.calls["AssumeRole"] == 1
    # counted once the refusal is back from botocore (and the TVM): after the hook saw the request
    assert wait_until(lambda: pipeline.metrics["checkpoint_failures"] == len(refusing.refused_at))

    refusing.on.clear()  # the refusal is lifted: written at the next due write, no flush needed
    assert wait_until(lambda: pipeline.metrics["checkpoints"] == 1, timeout=10)
    (written,) = pipeline.outbox.pending()
    assert written.open and written.transcript[0]["text"] == "turn 2"


def test_the_closed_entry_is_written_at_once_during_a_checkpoint_back_off(
    pipeline: SummaryPipeline, refusing: Refusing, fake_store: Any
) -> None:
    """The end of a conversation is its own synchronous write: refused, the caller gets the error
    (nothing is claimed accepted); allowed, it is written at once however long the queued
    checkpoint still has to wait, supersedes it, and is summarized."""
    pipeline.checkpoint(entry("turn 1", open=True))
    assert wait_until(lambda: len(refusing.refused_at) >= 4)
    with pytest.raises(MemoryLibraryError):  # AccessDenied, NotFound
        pipeline.end_conversation(entry("turn 2"))
    refusing.on.clear()
    assert pipeline.end_conversation(entry("turn 2")) is not None
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()
    assert "turn 2" in memory.content and pipeline.metrics["checkpoints"] == 0
    assert pipeline.outbox.pending() == []
