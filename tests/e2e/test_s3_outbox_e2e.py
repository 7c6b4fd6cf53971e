"""Real server processes on AWS-shaped storage (moto server: S3 Vectors, S3, STS, IAM).

Each ``python -m agent`` process runs with its own state directory, the S3 Vectors backend (TVM
credentials per tenant) and the S3 outbox chosen automatically, every AWS call going to one
moto server in this test process (``AWS_ENDPOINT_URL``). A process killed on AgentCore loses
its disk: these tests delete it, and a *new* process on an empty disk must finish the job.
PutVectors requests are counted at the moto server, so "stored once" means one store request,
not one surviving key.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import boto3
import httpx
import pytest
from moto.s3vectors.responses import S3VectorsResponse
from moto.server import ThreadedMotoServer

import memory.aws
from auth.dev_issuer import DevIssuer
from scripts.__main__ import main as scripts_main
from tests.e2e.server import AgentServer
from tests.support.busy import wait_until
from tests.support.s3vectors_double import install_s3vectors_double

REGION = "us-east-1"
VECTORS = "e2e-vectors"
OUTBOX = "e2e-outbox"
ROLE_ARN = "arn:aws:iam::123456789012:role/agent-memory-tvm"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto server with a vector bucket and an outbox bucket; summary vectors put, per user
    (a conversation is stored as one summary plus excerpt units carrying its conversation id)."""
    patch = pytest.MonkeyPatch()
    install_s3vectors_double(patch)
    puts: Counter[str] = Counter()
    real_put = S3VectorsResponse.put_vectors

    def counting_put(self: S3VectorsResponse) -> Any:
        for vector in self._get_param("vectors") or []:
            metadata = vector.get("metadata") or {}
            if metadata.get("type") == "summary":
                puts[str(metadata.get("user_id"))] += 1
        return real_put(self)

    patch.setattr(S3VectorsResponse, "put_vectors", counting_put)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3v = boto3.client("s3vectors", region_name=REGION, endpoint_url=url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    s3v.create_vector_bucket(vectorBucketName=VECTORS)
    boto3.client("s3", region_name=REGION, endpoint_url=url, aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=OUTBOX)
    try:
        yield {"url": url, "puts": puts, "s3v": s3v, "issuer_dir": tmp_path_factory.mktemp("issuer")}
    finally:
        server.stop()
        patch.undo()


@pytest.fixture
def cli_env(moto: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process CLI runs (forget, outbox) talk to the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto["url"])
    monkeypatch.setattr(memory.aws, "_default_session", None)


def onboard(moto: dict[str, Any], tenant: str) -> None:
    moto["s3v"].create_index(
        vectorBucketName=VECTORS, indexName=f"memory-{tenant}", dataType="float32", dimension=256,
        distanceMetric="cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": ["content", "conversation_id"]},
    )


def vectors_of(moto: dict[str, Any], tenant: str, user: str) -> list[dict[str, Any]]:
    """The metadata of every vector of the user (summaries and excerpt units)."""
    vectors = moto["s3v"].list_vectors(vectorBucketName=VECTORS, indexName=f"memory-{tenant}", returnMetadata=True)
    return [v["metadata"] for v in vectors["vectors"] if v["metadata"]["user_id"] == user]


def memories(moto: dict[str, Any], tenant: str, user: str) -> list[dict[str, Any]]:
    """The user's stored conversations: their summary vectors' metadata."""
    return [m for m in vectors_of(moto, tenant, user) if m["type"] == "summary"]


def outbox_keys(moto: dict[str, Any], tenant: str, kind: str = "pending") -> list[str]:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto["url"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = s3.list_objects_v2(Bucket=OUTBOX, Prefix=f"outbox/{tenant}/{kind}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def pending_text(moto: dict[str, Any], tenant: str) -> str:
    """The bodies of a tenant's pending outbox entries, concatenated (empty while there are none)."""
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto["url"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bodies = (s3.get_object(Bucket=OUTBOX, Key=key)["Body"].read() for key in outbox_keys(moto, tenant))
    return "".join(body.decode("utf-8", errors="replace") for body in bodies)


def start(moto: dict[str, Any], state_dir: Path, **env: str) -> AgentServer:
    """A server process; open entries are adopted at once unless AGENT_ORPHAN_AFTER_SECONDS says."""
    settings = {
        "AWS_ENDPOINT_URL": moto["url"],
        "AGENT_BACKEND": "s3vectors",
        "AGENT_VECTOR_BUCKET": VECTORS,
        "AGENT_OUTBOX_BUCKET": OUTBOX,
        "AGENT_TVM_ROLE_ARN": ROLE_ARN,
        "AGENT_DEV_ISSUER_DIR": str(moto["issuer_dir"]),
        "AGENT_CHECKPOINT_INTERVAL_SECONDS": "0",
        "AGENT_ORPHAN_AFTER_SECONDS": "0",
    }
    return AgentServer(state_dir, **{**settings, **env}).start(timeout=60)


def token(moto: dict[str, Any], tenant: str, user: str) -> str:
    return DevIssuer(moto["issuer_dir"]).mint(tenant, user)


def kill_and_wipe(server: AgentServer) -> None:
    """SIGKILL, then lose the disk, as when AgentCore discards a microVM."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait(timeout=10)
    shutil.rmtree(server.state_dir)


def forget(moto: dict[str, Any], tenant: str, user: str) -> str:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = scripts_main(["forget", "--region", REGION, "--bucket", VECTORS, "--outbox-bucket", OUTBOX,
                             "--tenant", tenant, "--user", user, "--yes", "--settle-seconds", "0"])
    assert code == 0, out.getvalue()
    return out.getvalue()


def answer_then_die(moto: dict[str, Any], state_dir: Path, tenant: str, user: str, sid: str, *prompts: str) -> None:
    """A process answers ``prompts`` in session ``sid``, its checkpoint of the last one is written
    (in the background: waited for by its last word), then it is killed and its disk lost."""
    onboard(moto, tenant)
    a = start(moto, state_dir)
    try:
        auth = token(moto, tenant, user)
        for prompt in prompts:
            assert a.invoke(auth, {"prompt": prompt}, sid).status_code == 200
        last_word = prompts[-1].rstrip(".").split()[-1]
        assert wait_until(lambda: last_word in pending_text(moto, tenant), timeout=20, interval=0.05)
        kill_and_wipe(a)
    finally:
        a.stop()


def test_a_new_process_on_an_empty_disk_stores_a_killed_processs_conversation_once(moto, tmp_path: Path) -> None:
    tenant, sid = "tenant-crash", f"crash-{uuid.uuid4()}"
    answer_then_die(moto, tmp_path / "a", tenant, "pia", sid, "My boat is called Wave.", "My kite is called Zephyr.")
    assert memories(moto, tenant, "pia") == [] and moto["puts"]["pia"] == 0

    for name in ("b", "c"):  # b replays it; c, another fresh process, finds nothing left
        fresh = start(moto, tmp_path / name)
        try:
            fresh.wait_idle(timeout=30)
            assert wait_until(lambda: outbox_keys(moto, tenant) == [], timeout=20, interval=0.05)
        finally:
            fresh.stop()
        (stored,) = memories(moto, tenant, "pia")
        assert stored["conversation_id"] == sid and "Wave" in stored["content"] and "Zephyr" in stored["content"]
        assert moto["puts"]["pia"] == 1


def test_the_next_process_started_at_once_stores_a_killed_processs_conversation_once_it_is_an_orphan(
    moto, tmp_path: Path
) -> None:
    """On AgentCore the user's next session starts a process right after the kill, while the
    dead process's checkpoint is still too young to tell from a live one's: that process
    stores it once it is old enough (no later process start needed)."""
    tenant, sid = "tenant-young", f"young-{uuid.uuid4()}"
    answer_then_die(moto, tmp_path / "a", tenant, "quinn", sid, "My canoe is called Ripple.")
    b = start(moto, tmp_path / "b", AGENT_ORPHAN_AFTER_SECONDS="15")  # its replay finds it too young
    try:
        assert wait_until(lambda: outbox_keys(moto, tenant) == [], timeout=60, interval=0.1), b.log()[-2000:]
        (stored,) = memories(moto, tenant, "quinn")
        assert stored["conversation_id"] == sid and "Ripple" in stored["content"]
        assert moto["puts"]["quinn"] == 1
    finally:
        b.stop()


def test_no_resurrection_path_brings_an_erased_user_back(moto, cli_env, tmp_path: Path) -> None:
    """Live session ended after forget, SIGTERM after forget, replay after forget by another
    process: nothing of alice is stored; bob, same tenant, keeps every conversation, once each."""
    tenant = "tenant-erase"
    onboard(moto, tenant)
    alice, bob = token(moto, tenant, "alice"), token(moto, tenant, "bob")
    live = start(moto, tmp_path / "live", AGENT_SHUTDOWN_GRACE_SECONDS="30")
    crashed = start(moto, tmp_path / "crashed")
    sids = {name: f"{name}-{uuid.uuid4()}" for name in ("ended", "sigterm", "replayed", "bob1", "bob2", "bob3")}
    try:
        # alice: one open conversation per path; bob talks on both processes too
        assert live.invoke(alice, {"prompt": "My PIN is 4321."}, sids["ended"]).status_code == 200
        assert live.invoke(alice, {"prompt": "My vault code is 8642."}, sids["sigterm"]).status_code == 200
        assert crashed.invoke(alice, {"prompt": "My password is hunter2."}, sids["replayed"]).status_code == 200
        assert live.invoke(bob, {"prompt": "My PIN is 9999."}, sids["bob1"]).status_code == 200
        assert crashed.invoke(bob, {"prompt": "My car is blue."}, sids["bob2"]).status_code == 200
        assert wait_until(lambda: len(outbox_keys(moto, tenant)) == 5, timeout=20, interval=0.05)
        kill_and_wipe(crashed)  # its open conversations stay in the S3 outbox

        report = forget(moto, tenant, "alice")
        assert "erasure marker" in report and "3 outbox entries of user alice" in report

        # a further turn of a live conversation after the forget: its checkpoint is dropped
        assert live.invoke(alice, {"prompt": "Also my PUK is 1111."}, sids["ended"]).status_code == 200
        # live session ended after forget
        ended = live.invoke(alice, {"end_session": True}, sids["ended"])
        assert ended.status_code == 200 and ended.json()["session_ended"] is True
        assert live.invoke(bob, {"prompt": "My dog is Rex.", "end_session": True}, sids["bob3"]).status_code == 200
        # SIGTERM after forget: shutdown ends alice's "sigterm" and bob's "bob1"
        assert live.terminate() in (0, -15), live.log()
    finally:
        live.stop()
        crashed.stop()
    # replay after forget, by another process on an empty disk: alice's "replayed" conversation
    # (left by the killed process) is dropped, bob's is stored; a last process finds nothing
    for name in ("replayer", "last"):
        fresh = start(moto, tmp_path / name)
        try:
            fresh.wait_idle(timeout=30)
        finally:
            fresh.stop()

    assert vectors_of(moto, tenant, "alice") == [] and moto["puts"]["alice"] == 0
    assert sorted(m["conversation_id"] for m in memories(moto, tenant, "bob")) == sorted(
        [sids["bob1"], sids["bob2"], sids["bob3"]]
    )
    assert moto["puts"]["bob"] == 3  # once each
    assert outbox_keys(moto, tenant) == [] and outbox_keys(moto, tenant, "dead") == []


def test_a_summary_that_cannot_succeed_is_dead_lettered_and_ping_is_healthy(moto, cli_env, tmp_path: Path) -> None:
    tenant, sid = "tenant-absent", f"dead-{uuid.uuid4()}"  # never onboarded
    server = start(moto, tmp_path / "srv")
    try:
        auth = token(moto, tenant, "quinn")
        assert server.invoke(auth, {"prompt": "My fern is green.", "end_session": True}, sid).status_code == 200
        server.wait_idle(timeout=30)
        assert httpx.get(f"{server.url}/ping", timeout=5).json()["status"] == "Healthy"
        assert len(outbox_keys(moto, tenant, "dead")) == 1 and outbox_keys(moto, tenant) == []
        assert "dead-lettered" in server.log() and "NotFound" in server.log()
    finally:
        server.stop()
    onboard(moto, tenant)
    assert scripts_main(["outbox", "retry", "--region", REGION, "--outbox-bucket", OUTBOX, "--tenant", tenant]) == 0
    again = start(moto, tmp_path / "again")
    try:
        again.wait_idle(timeout=30)
    finally:
        again.stop()
    assert [m["conversation_id"] for m in memories(moto, tenant, "quinn")] == [sid]
