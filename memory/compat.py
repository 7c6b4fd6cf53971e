"""The documented API of ``strands-s3-vectors-memory`` 0.2.0 as thin adapters over this library.

A user of that package changes only the import line::

    from memory import MultiTenantS3VectorMemory, S3VectorMemoryPlugin  # was: strands_s3_vectors_memory

Names, signatures and return shapes follow its source (``S3VectorMemory``,
``MultiTenantS3VectorMemory``, ``S3VectorMemoryPlugin``, ``TokenVendingMachine``, which is
:class:`memory.stores.tvm.TokenVendingMachine` itself, and ``IsolationError``). Underneath, the
stores are :func:`memory.factory.create_store` stores and the plugin is one
:class:`~memory.plugin.plugin.MemoryPlugin` per agent, so the behaviour is this library's:

* memories are read with the agent rule of ``memory.stores.scoping`` (an agent sees its own
  memories and the user's agent-less ones; ``agent_name=None`` reads every agent's);
* ``similarity`` keeps the seed's scale, ``(1 + cosine) / 2`` rounded to 3 places, and
  ``stored_at`` its ``YYYYMMDD_HHMMSS`` (UTC) format (``""`` for the seed's undated summaries, as
  the seed returns them; ``memory.stores.scoping`` says how those count under a TTL);
* ``tenant_context`` may be the documented dict (``{"tenantId": ...}``) or a plain tenant id,
  validated before it becomes an index name; a dict without a valid ``tenantId`` is an error
  (``ValueError`` from the stores, ``InvalidInvocationState`` from the plugin), never a silent
  memory-off;
* the plugin writes ended conversations to a durable outbox first (``outbox_dir``; a fresh
  temporary directory by default, as the seed keeps them only in memory) and summarizes them in
  the background; ``wait()`` waits for those summaries;
* the region defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (never guessed), the bucket
  to ``S3_VECTOR_BUCKET_NAME`` and the embedding model to ``EMBEDDING_MODEL`` (else Nova 2), as
  in the seed's environment variables (read when a store is built, not at import).

``embedding_model`` is a Bedrock model id (the seed's) or any :class:`~memory.embedders.protocol.Embedder`
(e.g. ``LocalEmbedder()``); the index dimension must match it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strands import ToolContext
from strands.plugins import Plugin

from memory import telemetry
from memory.aws import resolve_region
from memory.embedders.bedrock import NOVA_MODEL_ID
from memory.embedders.protocol import Embedder
from memory.errors import ConfigurationError, InvalidTenantId, IsolationError
from memory.index.limits import validate_min_score, validate_top_k
from memory.factory import create_embedder, create_store
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.summarizer import Summarizer
from memory.plugin.context_block import PLACEHOLDER
from memory.plugin.invocation import Invocation, read_invocation
from memory.plugin.plugin import MemoryPlugin, check_agent_name, check_serial_turns
from memory.plugin.recall_tool import RecallTool, build_recall_tool
from memory.stores.protocol import MemoryBackend
from memory.stores.scoping import SEED_STORED_AT_FORMAT
from memory.stores.single_tenant import SingleTenantStore
from memory.stores.tvm import TokenVendingMachine
from memory.tenants import index_name_for, tenant_id_from_context
from memory.types import Memory, Scope

if TYPE_CHECKING:
    from strands import Agent
    from strands.models import Model

logger = logging.getLogger(__name__)

__all__ = [
    "IsolationError",
    "MultiTenantS3VectorMemory",
    "S3VectorMemory",
    "S3VectorMemoryPlugin",
    "TokenVendingMachine",
]

#: The one index of the seed's single-tenant store.
SEED_INDEX_NAME = "memory"
#: The seed's environment variable naming the vector bucket.
BUCKET_ENV = "S3_VECTOR_BUCKET_NAME"
#: The seed's environment variable naming the Bedrock embedding model.
EMBEDDING_MODEL_ENV = "EMBEDDING_MODEL"
#: The memory type of memories written with ``store_memory``.
NOTE_TYPE = "note"
#: The name of the seed's mid-turn recall tool.
SEED_TOOL_NAME = "retrieve_memory"


class S3VectorMemory:
    """Single-tenant S3 Vectors memory (index ``memory``, ambient credentials).

    Attributes:
        bucket_name: The vector bucket.
        region_name: Its AWS region.
        backend: The :class:`~memory.stores.protocol.MemoryBackend` doing the work.
    """

    def __init__(
        self,
        bucket_name: str | None = None,
        region_name: str | None = None,
        embedding_model: str | Embedder | None = None,
        *,
        s3vectors_client: Any = None,
    ) -> None:
        """Create the store (no AWS call until it is used).

        Args:
            bucket_name: The vector bucket (default: ``S3_VECTOR_BUCKET_NAME``).
            region_name: AWS region (default: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``).
            embedding_model: A Bedrock embedding model id, or an Embedder instance (default:
                ``EMBEDDING_MODEL``, else Nova 2 multimodal embeddings).
            s3vectors_client: The S3 Vectors client to use (default: a new one, ambient credentials).

        Raises:
            ConfigurationError: No bucket or no region.
        """
        self.bucket_name = _bucket(bucket_name)
        self.region_name = resolve_region(region_name)
        self.embedder = _embedder(embedding_model, self.region_name)
        self.backend: MemoryBackend = create_store(
            backend="s3vectors",
            tenancy="single",
            embedder=self.embedder,
            bucket=self.bucket_name,
            region=self.region_name,
            index_name=SEED_INDEX_NAME,
            s3vectors_client=s3vectors_client,
            create_index=True,
        )

    def store_memory(
        self,
        user_id: str,
        content: str,
        tenant_context: dict[str, Any] | str | None = None,
        agent_name: str | None = None,
    ) -> dict[str, str]:
        """Embed and store one memory.

        Args:
            user_id: Whose memory it is.
            content: The text to remember.
            tenant_context: The tenant (multi-tenant store only).
            agent_name: The agent it belongs to; None stores a memory every agent of the user sees.

        Returns:
            ``{"status": "success", "index_name": ..., "key": ...}``.

        Raises:
            ValueError: A missing or invalid tenant (multi-tenant store).
            ValidationError: Empty content or user id.
        """
        tenant_id = self._tenant_id(tenant_context)
        memory = self.backend.store(
            Scope(user_id=user_id, tenant_id=tenant_id, agent_name=agent_name), content, memory_type=NOTE_TYPE
        )
        return {"status": "success", "index_name": self._index_name(tenant_id), "key": memory.id}

    def retrieve_memories(
        self,
        user_id: str,
        query: str,
        top_k: int = 5,
        tenant_context: dict[str, Any] | str | None = None,
        agent_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``top_k`` memories most similar to ``query``.

        Args:
            user_id: Whose memories.
            query: What to look for; an empty query returns ``[]``.
            top_k: How many at most.
            tenant_context: The tenant (multi-tenant store only).
            agent_name: One agent's view (its own and shared memories); None reads every agent's.

        Returns:
            ``[{"key", "content", "similarity", "stored_at"}]``, most similar first.

        Raises:
            ValueError: A missing or invalid tenant (multi-tenant store).
        """
        if not isinstance(query, str) or not query.strip():
            return []
        scope = Scope(user_id=user_id, tenant_id=self._tenant_id(tenant_context), agent_name=agent_name)
        memories = self.backend.retrieve(scope, query, top_k=top_k, min_score=-1.0)
        results = [_as_seed_result(m) for m in memories]
        return sorted(results, key=lambda r: r["similarity"], reverse=True)

    def _tenant_id(self, tenant_context: object) -> str | None:
        """Single tenant: the context is checked if given, but there is one index."""
        if tenant_context is not None:
            _tenant_id_or_value_error(tenant_context)
        return None

    def _index_name(self, tenant_id: str | None) -> str:
        return SEED_INDEX_NAME


class MultiTenantS3VectorMemory(S3VectorMemory):
    """One index per tenant (``memory-{tenantId}``), every call with that tenant's TVM credentials.

    Attributes:
        tvm: The token vending machine that scopes each tenant's credentials.
    """

    def __init__(
        self,
        bucket_name: str | None = None,
        region_name: str | None = None,
        embedding_model: str | Embedder | None = None,
        tvm_role_arn: str | None = None,
        *,
        tvm: TokenVendingMachine | None = None,
    ) -> None:
        """Create the store (no AWS call until it is used).

        Args:
            bucket_name: The vector bucket (default: ``S3_VECTOR_BUCKET_NAME``).
            region_name: AWS region (default: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``).
            embedding_model: A Bedrock embedding model id, or an Embedder instance (default:
                ``EMBEDDING_MODEL``, else Nova 2 multimodal embeddings).
            tvm_role_arn: The role assumed per tenant (required: no ambient-credential path).
            tvm: A ready token vending machine (instead of ``tvm_role_arn``).

        Raises:
            ValueError: No ``tvm_role_arn`` (tenant isolation cannot be bypassed silently).
            ConfigurationError: No bucket or no region.
        """
        if not tvm_role_arn and tvm is None:
            raise ValueError(
                "MultiTenantS3VectorMemory requires a TVM role (tvm_role_arn) to enforce tenant "
                "isolation; ambient credentials are never used for tenant data"
            )
        self.bucket_name = _bucket(bucket_name)
        self.region_name = resolve_region(region_name)
        self.embedder = _embedder(embedding_model, self.region_name)
        self.tvm = tvm or TokenVendingMachine(str(tvm_role_arn), self.region_name)
        self.backend = create_store(
            backend="s3vectors",
            tenancy="multi",
            embedder=self.embedder,
            bucket=self.bucket_name,
            region=self.region_name,
            tvm=self.tvm,
        )

    def _tenant_id(self, tenant_context: object) -> str:
        if tenant_context is None:
            raise ValueError("tenant_context with a valid 'tenantId' is required.")
        return _tenant_id_or_value_error(tenant_context)

    def _index_name(self, tenant_id: str | None) -> str:
        return index_name_for(str(tenant_id))


class S3VectorMemoryPlugin(Plugin):
    """The seed's plugin: memories injected into ``{memory_context}``, summaries at session end.

    One instance may serve several agents (each needs a stable unique ``name``); each agent name
    gets its own :class:`~memory.plugin.plugin.MemoryPlugin`, reused when a new ``Agent`` with
    that name is built (e.g. one per request). Identity comes from ``invocation_state``
    (``user_id``, ``conversation_id``, ``end_session``, ``tenant_context``).

    Unlike the seed, an agent name follows one conversation at a time: a turn of another
    conversation ends the previous one (it is summarized, as after ``end_session``), so serve
    concurrent users with one plugin per session, as this project's app does: agents of one
    name overlapping in time keep one turn (the one that opened last) and run the others
    without memory, unrecorded (a warning), never mixing users. Within a
    conversation, history (``agent.messages``) is left to the agent or a Strands session
    manager; a turn of another conversation on an agent whose last turn was of a different one
    clears it first, whichever agent served what in between (see ``MemoryPlugin``).
    """

    name = "s3-vector-memory"

    def __init__(
        self,
        store: S3VectorMemory | MemoryBackend,
        base_prompt: str,
        *,
        outbox_dir: str | Path | None = None,
        summary_model: "Model | None" = None,
        top_k: int = 5,
        min_score: float | None = None,
    ) -> None:
        """Create the plugin.

        Args:
            store: An ``S3VectorMemory`` / ``MultiTenantS3VectorMemory``, or any MemoryBackend
                (e.g. a local store from :func:`memory.factory.create_store`).
            base_prompt: The system prompt with a ``{memory_context}`` placeholder; it becomes
                the system prompt of every agent the plugin is attached to. Without the
                placeholder the memories are appended at its end (the seed injected none).
            outbox_dir: Where ended conversations wait durably for their summary (default: a
                new temporary directory); entries a previous process left there are replayed.
            summary_model: Model that writes summaries (default: the first agent's model).
            top_k: How many memories are injected on a conversation's first turn.
            min_score: Cosine-similarity floor of injected and recalled memories (None: the
                store's, i.e. the embedder's calibrated floor).

        Raises:
            ValidationError: ``top_k`` outside 1-100 or ``min_score`` outside -1..1.
        """
        super().__init__()
        self.store = store
        self.backend: MemoryBackend = store.backend if isinstance(store, S3VectorMemory) else store
        self.base_prompt = base_prompt
        if PLACEHOLDER not in base_prompt:
            logger.warning("base_prompt has no %s placeholder; memories are appended at its end", PLACEHOLDER)
        self.top_k = validate_top_k(top_k)
        self.min_score = validate_min_score(min_score)
        self._outbox_dir = Path(outbox_dir) if outbox_dir is not None else None
        self._summary_model = summary_model
        self._pipeline: SummaryPipeline | None = None
        self._plugins: dict[str, MemoryPlugin] = {}
        self._lock = threading.Lock()
        # over one index (the seed's S3VectorMemory, a single-tenant store) the tenant is dropped
        self._tenanted = not isinstance(self.backend, SingleTenantStore) or self.backend.tenant_id is not None
        self._tool = build_recall_tool(
            self.backend,
            functools.partial(_tool_scope, tenanted=self._tenanted),
            default_top_k=3,
            max_top_k=10,
            min_score=min_score,
            name=SEED_TOOL_NAME,
        )

    @property
    def memory_tool(self) -> RecallTool:
        """The ``retrieve_memory(query, top_k=3)`` tool for ``Agent(tools=[...])``: mid-turn recall
        of the calling agent's memories, identity from ``invocation_state`` (never the model)."""
        return self._tool

    @property
    def agents(self) -> dict[str, MemoryPlugin]:
        """The per-agent plugins, by agent name (a copy)."""
        with self._lock:
            return dict(self._plugins)

    def init_agent(self, agent: "Agent") -> None:
        """Attach the MemoryPlugin of ``agent.name`` through the agent's public hook API.

        Raises:
            ValueError: The agent has no explicit name (memories are stored per agent name), or
                its turns may overlap (``concurrent_invocation_mode`` other than ``"throw"``).
        """
        name = check_agent_name(agent.name)
        check_serial_turns(agent)
        agent.system_prompt = self.base_prompt
        with self._lock:
            inner = self._plugins.get(name)
            if inner is None:
                inner = _SeedMemoryPlugin(
                    self.backend,
                    tenanted=self._tenanted,
                    pipeline=self._pipeline_for(agent),
                    top_k=self.top_k,
                    min_score=self.min_score,
                    recall_tool=False,
                )
                inner.init_agent(agent)
                self._plugins[name] = inner
        for callback in inner.hooks:
            agent.add_hook(callback)  # event type from the callback's annotation

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every ended conversation is summarized and stored; False on timeout."""
        pipeline = self._pipeline
        return True if pipeline is None else pipeline.wait(timeout)

    def _pipeline_for(self, agent: "Agent") -> SummaryPipeline:
        if self._pipeline is None:
            directory = self._outbox_dir or Path(tempfile.mkdtemp(prefix="memory-outbox-"))
            summarizer = Summarizer(self._summary_model or agent.model)
            self._pipeline = SummaryPipeline(self.backend, LocalOutbox(directory), summarizer)
            # not part of the request whose agent happens to come first (nor is the sweeper thread,
            # which the threading instrumentation would run in that request's context)
            with telemetry.within(telemetry.NO_CAUSE):
                if self._outbox_dir is not None and self._pipeline.replay_pending():
                    logger.info("replaying conversations a previous process left in %s", directory)
                self._pipeline.start_sweeper()
        return self._pipeline


def _seed_invocation(state: Any, tenanted: bool) -> Invocation | None:
    """The identity in the seed's ``invocation_state``; over one index (``tenanted`` False) its
    ``tenant_context`` is checked, then dropped, as the seed's ``S3VectorMemory`` does."""
    invocation = read_invocation(state)
    return invocation if invocation is None or tenanted else dataclasses.replace(invocation, tenant_id=None)


class _SeedMemoryPlugin(MemoryPlugin):
    """A MemoryPlugin reading the seed's identity (``_seed_invocation``)."""

    def __init__(self, backend: MemoryBackend, *, tenanted: bool, **kwargs: Any) -> None:
        super().__init__(backend, **kwargs)
        self._tenanted = tenanted

    def _read_invocation(self, state: Any) -> Invocation | None:
        return _seed_invocation(state, self._tenanted)


def _tool_scope(tool_context: ToolContext, tenanted: bool) -> Scope | None:
    """The calling agent's view of the invoking user's memories (None without identity)."""
    invocation = _seed_invocation(tool_context.invocation_state, tenanted)
    if invocation is None:
        return None
    return Scope(user_id=invocation.user_id, tenant_id=invocation.tenant_id, agent_name=tool_context.agent.name)


def _as_seed_result(memory: Memory) -> dict[str, Any]:
    cosine = memory.score if memory.score is not None else 0.0
    return {
        "key": memory.id,
        "content": memory.content,
        "similarity": round((1.0 + cosine) / 2.0, 3),
        "stored_at": "" if memory.stored_at is None else memory.stored_at.strftime(SEED_STORED_AT_FORMAT),
    }


def _tenant_id_or_value_error(tenant_context: object) -> str:
    try:
        return tenant_id_from_context(tenant_context)
    except InvalidTenantId as exc:
        raise ValueError(f"tenant_context with a valid 'tenantId' is required: {exc}") from exc


def _bucket(bucket_name: str | None) -> str:
    bucket = bucket_name or os.environ.get(BUCKET_ENV)
    if not bucket:
        raise ConfigurationError(f"a vector bucket is required: pass bucket_name or set {BUCKET_ENV}")
    return bucket


def _embedder(embedding_model: str | Embedder | None, region: str) -> Embedder:
    if embedding_model is None:
        embedding_model = os.environ.get(EMBEDDING_MODEL_ENV) or NOVA_MODEL_ID
    if isinstance(embedding_model, str):
        return create_embedder("bedrock", region=region, model_id=embedding_model)
    return embedding_model
