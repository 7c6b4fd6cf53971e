"""S3 requests per conversation made by the S3 outbox (moto in-process), by checkpoint interval.

Each conversation is ``--turns`` turns through a real ``MemoryPlugin`` (scripted model, local
index), the last one with ``end_session``, a user answering every ``--pace`` seconds; the
pipeline summarizes and stores it. Every S3 request the outbox sends (checkpoints, the closed
entry, claim create/release, erasure-marker LIST, entry GET/DELETE) is counted at the botocore
layer. The baseline row is a checkpoint written after every turn (interval 0), measured in the
same run; ``ratio`` = writes per conversation / the baseline's. moto answers in microseconds:
this counts requests (what S3 bills and what bounds the loss window), not S3 latency.

A second table counts the requests of one conversation in a *fresh* process (every AgentCore
session is a new microVM, so its outbox has read no erasure marker yet), with ``--erased``
other users of the tenant already erased (first row: none, the baseline): the erasure checks
read only the markers that can cover the conversation's user and list the erasure folders only
until the per-user ones begin, so the count must not grow, even past the 1,000 folders that
one LIST page holds (2,500 erased users are three pages).

    python -m bench.bench_outbox [--conversations 20] [--turns 6] [--pace 0.1] [--erased 0,100,2500] [--json]
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from moto import mock_aws
from strands import Agent

from bench._common import emit, parser
from memory.aws import make_client
from memory.embedders.local import LocalEmbedder
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.outbox import ErasureMarker
from memory.pipeline.outbox_s3 import S3Outbox
from memory.pipeline.summarizer import Summarizer
from memory.plugin.plugin import MemoryPlugin
from memory.stores.multi_tenant import MultiTenantStore
from tests.support.scripted_model import ScriptedModel

BUCKET = "bench-outbox"
WRITES = ("PutObject", "DeleteObject")


def _counted_client() -> tuple[Any, Counter[str]]:
    """An S3 client (moto) and a count of the requests it sends, by operation."""
    client = make_client("s3", region="us-east-1")
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
    return client, calls


def _converse(store: MultiTenantStore, pipeline: SummaryPipeline, user_id: str, conversation_id: str,
              turns: int, pace: float, name: str) -> None:
    """One conversation of ``turns`` turns with a fresh agent and plugin, the last one ending it."""
    agent = Agent(model=ScriptedModel(default_reply="Noted."), name="orchestrator",
                  plugins=[MemoryPlugin(store, pipeline=pipeline)], callback_handler=None)
    for turn in range(turns):
        state = {"tenant_context": "acme", "user_id": user_id, "conversation_id": conversation_id,
                 "end_session": turn == turns - 1}
        agent(f"Fact {turn}: my project number {turn} is called {name}.", invocation_state=state)
        time.sleep(pace)


def _run(root: Path, interval: float, conversations: int, turns: int, pace: float) -> dict[str, Any]:
    client, calls = _counted_client()
    store = MultiTenantStore.for_local(root_dir=root / f"vectors-{interval}", embedder=LocalEmbedder())
    pipeline = SummaryPipeline(
        store, S3Outbox(lambda _t: client, BUCKET, lister=client), Summarizer(), checkpoint_interval=interval
    )
    try:
        for n in range(conversations):
            _converse(store, pipeline, f"user-{n}", f"c-{interval}-{n}", turns, pace, f"Falcon-{n}")
        pipeline.wait()
    finally:
        pipeline.shutdown()
    per = {name: count / conversations for name, count in calls.items()}
    return {
        "checkpoint_interval_s": interval,
        "writes_per_conv": sum(per.get(w, 0.0) for w in WRITES),
        "put_per_conv": per.get("PutObject", 0.0),
        "delete_per_conv": per.get("DeleteObject", 0.0),
        "get_per_conv": per.get("GetObject", 0.0),
        "list_per_conv": per.get("ListObjectsV2", 0.0),
        "requests_per_conv": sum(per.values()),
    }


def _fresh_process(root: Path, erased: int, turns: int) -> dict[str, Any]:
    """Requests of one conversation through a new outbox and pipeline, after ``erased`` other
    users' erasure markers were written (by another process)."""
    client, calls = _counted_client()
    prefix = f"fresh-{erased}"
    writer = S3Outbox(lambda _t: client, BUCKET, prefix=prefix, lister=client)
    for n in range(erased):
        writer.add_erasure(ErasureMarker(tenant_id="acme", user_id=f"erased-{n}"))
    calls.clear()  # only the fresh process's requests from here
    store = MultiTenantStore.for_local(root_dir=root / prefix, embedder=LocalEmbedder())
    outbox = S3Outbox(lambda _t: client, BUCKET, prefix=prefix, lister=client)
    pipeline = SummaryPipeline(store, outbox, Summarizer(), checkpoint_interval=1.0)
    try:
        _converse(store, pipeline, "alice", prefix, turns, 0.0, "Falcon")
        pipeline.wait()
    finally:
        pipeline.shutdown()
    return {"erased_users": erased, "get": calls["GetObject"], "list": calls["ListObjectsV2"],
            "put": calls["PutObject"], "delete": calls["DeleteObject"], "requests": sum(calls.values())}


def main() -> None:
    p = parser("bench.bench_outbox", __doc__.splitlines()[0])
    p.add_argument("--conversations", type=int, default=20)
    p.add_argument("--turns", type=int, default=6)
    p.add_argument("--pace", type=float, default=0.1, help="seconds between a user's turns")
    p.add_argument("--intervals", default="0,0.25,1", help="checkpoint intervals to compare (first: baseline)")
    p.add_argument("--erased", default="0,100,2500", help="other users already erased, fresh-process table (first: baseline)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    rows = []
    with mock_aws(), tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        make_client("s3", region="us-east-1").create_bucket(Bucket=BUCKET)
        for interval in (float(v) for v in args.intervals.split(",")):
            rows.append(_run(Path(tmp), interval, args.conversations, args.turns, args.pace))
        fresh = [_fresh_process(Path(tmp), int(v), args.turns) for v in args.erased.split(",")]
    baseline = rows[0]["writes_per_conv"]
    for row in rows:
        row["ratio"] = row["writes_per_conv"] / baseline
    emit(f"bench_outbox: S3 outbox requests per conversation ({args.turns} turns, a turn every {args.pace:g} s, "
         f"{args.conversations} conversations; first row = checkpoint after every turn)", rows, args.json)
    for row in fresh:
        row["ratio"] = row["requests"] / fresh[0]["requests"]
    emit("bench_outbox: requests of one conversation in a fresh process, other users of the tenant already "
         "erased (first row: none)", fresh, args.json)


if __name__ == "__main__":
    main()
