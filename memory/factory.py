"""Selection of a memory store: backend x tenancy x embedder, checked in one place.

The app (``agent.services``), the forget CLI, the demo and the seed-compatible adapters
(``memory.compat``) all build their stores here, so a new backend touches only ``memory/``.

* ``backend="local"``: LocalIndex files (SQLite + NumPy) under ``local_dir``; no AWS.
* ``backend="s3vectors"``: Amazon S3 Vectors in ``bucket``. Single tenant: one index with the
  caller's credentials. Multi-tenant: index ``memory-<tenantId>`` per tenant, every call with
  that tenant's TVM credentials (``tvm_role_arn`` required: no ambient-credential path).
* ``tenancy="single"``: one index (``index_name``, default ``memory-<tenant_id>``), a
  :class:`~memory.stores.single_tenant.SingleTenantStore`; ``"multi"``: a
  :class:`~memory.stores.multi_tenant.MultiTenantStore` (``Scope.tenant_id`` picks the index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union, overload

from memory.embedders.protocol import Embedder
from memory.errors import ConfigurationError, ValidationError
from memory.index.limits import validate_min_score
from memory.stores.multi_tenant import MultiTenantStore
from memory.stores.single_tenant import SingleTenantStore
from memory.stores.tvm import TokenVendingMachine
from memory.tenants import index_name_for

BackendName = Literal["local", "s3vectors"]
Tenancy = Literal["single", "multi"]
EmbedderName = Literal["local", "bedrock"]
#: What :func:`create_store` returns; both satisfy ``memory.stores.protocol.MemoryBackend``.
Store = Union[SingleTenantStore, MultiTenantStore]


def create_embedder(kind: EmbedderName, *, region: str | None = None, model_id: str | None = None) -> Embedder:
    """The embedder named ``kind``.

    Args:
        kind: ``"local"`` (WordLlama 256-d, offline, weights in the wheel) or ``"bedrock"``
            (Amazon Nova 2 multimodal embeddings, 1024-d).
        region: AWS region of the Bedrock runtime (required for ``"bedrock"``).
        model_id: Bedrock model id (default: Nova 2 multimodal embeddings).

    Returns:
        The embedder; the local model is loaded on first use, not here.

    Raises:
        ConfigurationError: Unknown ``kind``, or ``"bedrock"`` without a region.
    """
    if kind == "local":
        from memory.embedders.local import LocalEmbedder

        return LocalEmbedder()
    if kind == "bedrock":
        from memory.embedders.bedrock import NOVA_MODEL_ID, BedrockEmbedder

        return BedrockEmbedder(region=region, model_id=model_id or NOVA_MODEL_ID)
    raise ConfigurationError(f"unknown embedder {kind!r}; expected 'local' or 'bedrock'")


@overload
def create_store(
    *, backend: BackendName, tenancy: Literal["single"], embedder: Embedder, **options: Any
) -> SingleTenantStore: ...
@overload
def create_store(
    *, backend: BackendName, tenancy: Literal["multi"], embedder: Embedder, **options: Any
) -> MultiTenantStore: ...
@overload
def create_store(*, backend: BackendName, tenancy: Tenancy, embedder: Embedder, **options: Any) -> Store: ...


def create_store(
    *,
    backend: BackendName,
    tenancy: Tenancy,
    embedder: Embedder,
    local_dir: str | Path | None = None,
    bucket: str | None = None,
    region: str | None = None,
    tenant_id: str | None = None,
    index_name: str | None = None,
    tvm_role_arn: str | None = None,
    tvm: TokenVendingMachine | None = None,
    s3vectors_client: Any = None,
    create_index: bool = False,
    default_min_score: float | None = None,
    ttl_seconds: float | None = None,
) -> Store:
    """A memory store for one backend, tenancy and embedder.

    Args:
        backend: ``"local"`` or ``"s3vectors"``.
        tenancy: ``"single"`` (one index) or ``"multi"`` (one index per tenant).
        embedder: Produces the vectors; its dimension must match existing indexes.
        local_dir: Directory of the LocalIndex files (``backend="local"``).
        bucket: The S3 vector bucket (``backend="s3vectors"``).
        region: AWS region (``backend="s3vectors"``).
        tenant_id: The one tenant a single-tenant store serves (None: no tenant check).
        index_name: Single tenancy: the index (default ``memory-<tenant_id>``).
        tvm_role_arn: Multi-tenant S3 Vectors: the role the token vending machine assumes.
        tvm: Multi-tenant S3 Vectors: a ready token vending machine (instead of the role ARN).
        s3vectors_client: Single-tenant S3 Vectors: the client to use (default: a new one in
            ``region`` with the ambient credentials).
        create_index: Single-tenant S3 Vectors: create the index when it is missing (tenant
            indexes are never created here: onboarding is an operator action).
        default_min_score: Cosine-similarity floor when ``retrieve`` is given none (None: the
            embedder's calibrated ``min_score``).
        ttl_seconds: Retention: memories stored longer ago are never retrieved and
            ``sweep_expired`` deletes them (None: kept forever).

    Returns:
        A SingleTenantStore or a MultiTenantStore.

    Raises:
        ConfigurationError: A setting the combination needs is missing or unknown, or
            ``default_min_score`` is outside -1..1.
    """
    if tenancy not in ("single", "multi"):
        raise ConfigurationError(f"unknown tenancy {tenancy!r}; expected 'single' or 'multi'")
    try:
        validate_min_score(default_min_score, "default_min_score")
    except ValidationError as exc:
        raise ConfigurationError(str(exc)) from exc
    if backend == "local":
        if local_dir is None:
            raise ConfigurationError("the local backend needs local_dir")
        if tenancy == "multi":
            return MultiTenantStore.for_local(
                root_dir=local_dir,
                embedder=embedder,
                default_min_score=default_min_score,
                ttl_seconds=ttl_seconds,
            )
        return SingleTenantStore.for_local(
            root_dir=local_dir,
            embedder=embedder,
            index_name=_single_index_name(index_name, tenant_id),
            tenant_id=tenant_id,
            default_min_score=default_min_score, ttl_seconds=ttl_seconds,
        )
    if backend != "s3vectors":
        raise ConfigurationError(f"unknown backend {backend!r}; expected 'local' or 's3vectors'")
    if not bucket:
        raise ConfigurationError("the s3vectors backend needs a vector bucket")
    if not region and not (tenancy == "single" and s3vectors_client is not None):
        raise ConfigurationError("the s3vectors backend needs an AWS region")
    if tenancy == "multi":
        if not tvm_role_arn and tvm is None:
            raise ConfigurationError(
                "the s3vectors backend with tenancy='multi' needs tvm_role_arn (or tvm): every call "
                "for a tenant uses that tenant's TVM credentials, never the ambient ones"
            )
        return MultiTenantStore.for_s3vectors(
            bucket=bucket,
            role_arn=tvm.role_arn if tvm is not None else tvm_role_arn,
            region=region or "",
            embedder=embedder,
            tvm=tvm,
            default_min_score=default_min_score, ttl_seconds=ttl_seconds,
        )
    from memory.aws import make_client
    from memory.index.s3vectors import S3VectorsIndex

    index = S3VectorsIndex(
        s3vectors_client if s3vectors_client is not None else make_client("s3vectors", region=region or ""),
        bucket,
        _single_index_name(index_name, tenant_id),
        embedder.dimension,
        create_if_missing=create_index,
    )
    return SingleTenantStore(
        index, embedder, tenant_id=tenant_id, default_min_score=default_min_score, ttl_seconds=ttl_seconds
    )


def _single_index_name(index_name: str | None, tenant_id: str | None) -> str:
    if index_name:
        return index_name
    if tenant_id is None:
        raise ConfigurationError("a single-tenant store needs index_name or tenant_id")
    return index_name_for(tenant_id)
