"""Hardening fixtures: a real server per test module (echo model, local backend, dev tokens).

Reuses the end-to-end harness (``tests.e2e.server.AgentServer``); each module gets its own
state directory, so counts read from the local index are exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from auth.dev_issuer import DevIssuer
from memory.embedders.local import LocalEmbedder
from memory.types import Memory, Scope
from memory.stores.multi_tenant import MultiTenantStore
from tests.e2e.server import AgentServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    srv = AgentServer(tmp_path_factory.mktemp("hardening-state"), AGENT_LOG_LEVEL="WARNING").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def issuer(server: AgentServer) -> DevIssuer:
    return DevIssuer(server.state_dir / "dev-issuer")


def read_store(state_dir: Path) -> MultiTenantStore:
    """A reader over the server's local index files."""
    return MultiTenantStore.for_local(root_dir=state_dir / "vectors", embedder=LocalEmbedder())


def memories_of(store: MultiTenantStore, tenant: str, user: str) -> list[Memory]:
    """The summary of each stored conversation of the user (its other units share its conversation id)."""
    return [m for m in store.list(Scope(user_id=user, tenant_id=tenant)) if m.memory_type == "summary"]
