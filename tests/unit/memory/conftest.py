"""Fixtures of the memory tests: moto S3 Vectors behind the documentation-based double, index
factories for the conformance suite (both backends), an in-memory ``MemoryBackend`` fake and
summary pipelines for the plugin and pipeline tests."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from memory.types import Memory, Scope
from tests.support.s3vectors_double import MISSING_POLICIES, S3VectorsDouble, install_s3vectors_double


@pytest.fixture(params=MISSING_POLICIES, ids=lambda p: f"ne-missing-{p}")
def s3vectors_double(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3VectorsDouble:
    """The S3 Vectors double for one test, once per undocumented ``$ne``/``$nin`` behaviour."""
    return install_s3vectors_double(monkeypatch, missing=request.param)


BUCKET = "memory-test-bucket"
DIMENSION = 4


def _client_in_mock() -> Iterator[Any]:
    from moto import mock_aws

    from memory.aws import make_client

    with mock_aws():
        client = make_client("s3vectors", region="us-east-1")
        client.create_vector_bucket(vectorBucketName=BUCKET)
        yield client


@pytest.fixture
def s3vectors_client(s3vectors_double: S3VectorsDouble) -> Iterator[Any]:
    """A boto3 s3vectors client inside mock_aws (behind the double), with a vector bucket."""
    yield from _client_in_mock()


@pytest.fixture(params=["local", *(f"s3vectors-ne-missing-{p}" for p in MISSING_POLICIES)])
def index_factory(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Builds indexes (name, dimension) on either backend; the conformance suite runs on both
    (S3 Vectors once per undocumented ``$ne``/``$nin`` behaviour of the double)."""
    from memory.index.local import LocalIndex
    from memory.index.s3vectors import S3VectorsIndex

    if request.param == "local":
        yield lambda name, dimension=DIMENSION: LocalIndex(tmp_path / "indexes", name, dimension)
        return
    install_s3vectors_double(monkeypatch, missing=request.param.rsplit("-", 1)[1])  # type: ignore[arg-type]
    for client in _client_in_mock():
        yield lambda name, dimension=DIMENSION: S3VectorsIndex(client, BUCKET, name, dimension)


@pytest.fixture
def ne_missing(request: pytest.FixtureRequest, index_factory: Any) -> str:
    """How the backend under test answers ``$ne``/``$nin`` on a missing key: "included" for
    LocalIndex (its documented rule), the double's policy for S3 Vectors."""
    backend = request.node.callspec.params["index_factory"]
    return "included" if backend == "local" else backend.rsplit("-", 1)[1]


@pytest.fixture
def index(index_factory: Any) -> Any:
    """An ensured, empty 4-d index on each backend."""
    idx = index_factory("memory-conformance")
    idx.ensure()
    return idx


_WORDS = re.compile(r"[a-z0-9$]+")


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower()))


class FakeStore:
    """A ``MemoryBackend`` fake: word-overlap (Jaccard) similarity, same scoping rules.

    ``min_score`` None uses the fake's own floor, ``DEFAULT_FLOOR`` (like a store's calibrated
    one). ``fail_retrieve`` / ``fail_store`` make the next calls raise; ``retrieve_calls`` and
    ``store_calls`` record the scopes used. ``store_units`` records one call per conversation
    (its summary unit's fields plus every unit) and keeps summary units in ``memories``, other
    units in ``excerpts``, so pipeline tests count conversations by their summaries (the real
    stores' unit handling is tested in tests/unit/memory/stores and pipeline/test_units.py).
    """

    DEFAULT_FLOOR = 0.2

    def __init__(self) -> None:
        self.memories: dict[str, Memory] = {}
        self.excerpts: dict[str, Memory] = {}
        self.retrieve_calls: list[tuple[Scope, str, int]] = []
        self.store_calls: list[dict[str, Any]] = []
        self.fail_retrieve: Exception | None = None
        self.fail_store: Exception | None = None
        self._lock = threading.Lock()

    def add(self, scope: Scope, content: str, *, stored_at: datetime | None = None, key: str | None = None) -> Memory:
        """Seed a memory directly."""
        memory = Memory(
            id=key or uuid.uuid4().hex,
            content=content,
            user_id=scope.user_id,
            stored_at=stored_at or datetime.now(timezone.utc),
            agent_name=scope.agent_name,
            tenant_id=scope.tenant_id,
        )
        self.memories[memory.id] = memory
        return memory

    def store(self, scope: Scope, content: str, *, conversation_id: str | None = None,
              memory_type: str = "summary", key: str | None = None) -> Memory:
        with self._lock:
            self.store_calls.append(
                {"scope": scope, "content": content, "conversation_id": conversation_id,
                 "memory_type": memory_type, "key": key}
            )
            if self.fail_store is not None:
                raise self.fail_store
            memory = Memory(
                id=key or uuid.uuid4().hex, content=content, user_id=scope.user_id,
                stored_at=datetime.now(timezone.utc), memory_type=memory_type,
                agent_name=scope.agent_name, conversation_id=conversation_id, tenant_id=scope.tenant_id,
            )
            self.memories[memory.id] = memory
            return memory

    def store_units(self, scope: Scope, units: Any, *, conversation_id: str, opened: str | None = None,
                    replaces: Any = (), happened_at: datetime | None = None) -> list[Memory]:
        summaries = [u for u in units if u.memory_type == "summary"]
        first = summaries[0] if summaries else units[0] if units else None
        with self._lock:
            if first is not None:  # no units: only the replaced keys are deleted (an undo)
                self.store_calls.append(
                    {"scope": scope, "content": first.content, "conversation_id": conversation_id,
                     "memory_type": first.memory_type, "key": first.key, "opened": opened, "units": list(units)}
                )
            if self.fail_store is not None:
                raise self.fail_store
            for key in replaces:
                self.memories.pop(key, None)
                self.excerpts.pop(key, None)
            stored = []
            for unit in units:
                memory = Memory(
                    id=unit.key, content=unit.content, user_id=scope.user_id,
                    stored_at=datetime.now(timezone.utc), memory_type=unit.memory_type,
                    agent_name=scope.agent_name, conversation_id=conversation_id, tenant_id=scope.tenant_id,
                    opened=opened,
                )
                (self.memories if unit.memory_type == "summary" else self.excerpts)[unit.key] = memory
                stored.append(memory)
            return stored

    def _visible(self, scope: Scope, memory: Memory) -> bool:
        return (
            memory.user_id == scope.user_id
            and memory.tenant_id == scope.tenant_id
            and (scope.agent_name is None or memory.agent_name in (None, scope.agent_name))
        )

    def retrieve(self, scope: Scope, query: str, *, top_k: int = 5, min_score: float | None = None) -> list[Memory]:
        self.retrieve_calls.append((scope, query, top_k))
        if self.fail_retrieve is not None:
            raise self.fail_retrieve
        q = _words(query)
        floor = self.DEFAULT_FLOOR if min_score is None else min_score
        scored = []
        for memory in self.memories.values():
            if not self._visible(scope, memory):
                continue
            words = _words(memory.content)
            score = len(q & words) / max(1, len(q | words))
            if score >= floor:
                scored.append(Memory(**{**memory.__dict__, "score": score}))
        scored.sort(key=lambda m: -(m.score or 0))
        return scored[:top_k]

    def list(self, scope: Scope) -> list[Memory]:
        return [m for m in self.memories.values() if self._visible(scope, m)]

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        doomed = [k for k, m in self.memories.items() if self._visible(scope, m)
                  and (conversation_id is None or m.conversation_id == conversation_id)]
        for k in doomed:
            del self.memories[k]
        return len(doomed)

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        doomed = [k for k, m in self.memories.items() if m.tenant_id == tenant_id]
        for k in doomed:
            del self.memories[k]
        return len(doomed)


@pytest.fixture
def fake_store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def make_pipeline(outbox_dir: Path) -> Iterator[Callable[..., Any]]:
    """Factory of SummaryPipelines over ``outbox_dir`` with fast retries; all shut down after."""
    from memory.pipeline.background import RetryPolicy, SummaryPipeline
    from memory.pipeline.outbox_local import LocalOutbox
    from memory.pipeline.summarizer import Summarizer

    made: list[SummaryPipeline] = []

    def make(store: Any, summarizer: Summarizer | None = None, **kwargs: Any) -> SummaryPipeline:
        kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.005))
        pipeline = SummaryPipeline(store, LocalOutbox(outbox_dir), summarizer or Summarizer(), **kwargs)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.shutdown(wait=True)
