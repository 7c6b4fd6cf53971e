"""A session-scoped real server for the end-to-end tests, and helpers to read its store."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from auth.dev_issuer import DevIssuer
from memory.types import Memory, Scope
from tests.e2e.server import AgentServer


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    srv = AgentServer(tmp_path_factory.mktemp("agent-state")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def issuer(server: AgentServer) -> DevIssuer:
    return DevIssuer(server.state_dir / "dev-issuer")


def new_session() -> str:
    return f"e2e-{uuid.uuid4()}"


@pytest.fixture
def ids() -> Callable[[str], str]:
    """Fresh tenant and user ids for one test on the shared server: ``ids("alice")`` is the same
    unique id throughout the test and differs in every other test (and every rerun), so no test
    sees another's memories whatever the order."""
    suffix = uuid.uuid4().hex[:10]
    return lambda name: f"{name}-{suffix}"


def stored(state_dir: Path, tenant: str, user: str) -> list[Memory]:
    """The summary of every conversation of ``user`` in ``tenant`` stored in the server's local index
    (a conversation's other units carry the same conversation id under keys derived from it)."""
    from memory.embedders.local import LocalEmbedder
    from memory.stores.multi_tenant import MultiTenantStore

    store = MultiTenantStore.for_local(root_dir=state_dir / "vectors", embedder=LocalEmbedder())
    return [m for m in store.list(Scope(user_id=user, tenant_id=tenant)) if m.memory_type == "summary"]
