"""Builds the app's long-lived parts from Settings: verifier, model, store, pipeline, sessions.

Nothing here runs at import time; ``build_services`` is called from the app's lifespan, so no
boto3 client or model is created before the server starts.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from auth import TokenVerifier
from agent.orchestrator import Conversation, PluginFactory, build_conversation
from agent.sessions import EndRetry, Owner, SessionRegistry
from agent.settings import Settings, SettingsError
from agent.shutdown import RELEASE_SHARE, STORE_SHARE, ShutdownDeadline

if TYPE_CHECKING:
    from memory.factory import Store
    from memory.pipeline.background import SummaryPipeline
    from memory.stores.tvm import TokenVendingMachine

logger = logging.getLogger(__name__)

#: Optional packages behind a setting's value: (setting, value) -> (module, what to do instead).
OPTIONAL_PACKAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("AGENT_EMBEDDER", "local"): (
        "wordllama",
        "install the 'local' extra, or set AGENT_EMBEDDER=bedrock (what the runtime image ships)",
    ),
    ("AGENT_MODEL_PROVIDER", "local"): (
        "llama_cpp",
        "install the 'local' extra (make reinstall-local), or choose another AGENT_MODEL_PROVIDER",
    ),
    ("AGENT_MODEL_PROVIDER", "openai"): (
        "openai",
        "install the 'openai' extra, or choose another AGENT_MODEL_PROVIDER",
    ),
}

TaskStart = Callable[[str], Any]
TaskEnd = Callable[[Any], None]


@dataclass
class Services:
    """Everything a request needs, plus the background reaper; ``close`` ends it all cleanly."""

    settings: Settings
    verifier: TokenVerifier
    registry: SessionRegistry[Conversation]
    pipeline: "SummaryPipeline | None" = None  # set when memory is enabled
    _stop: threading.Event = field(default_factory=threading.Event)
    _reaper: threading.Thread | None = None
    _retention: threading.Thread | None = None
    deadline: ShutdownDeadline = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = ShutdownDeadline(self.settings.shutdown_grace_seconds)

    def start(self) -> None:
        """Replay summaries a previous process left in the outbox, start the pipeline's sweeper
        (re-tries summaries whose attempts were exhausted) and the idle reaper.

        The replay runs in the background (``/ping`` is HealthyBusy meanwhile, for at most
        ``AGENT_SUMMARY_MAX_BUSY_SECONDS``) and is best effort: an outbox that cannot be listed
        (an outage) is logged, the entries stay pending for the next start (on AgentCore every
        session starts a process)."""
        if self.pipeline is not None:
            self.pipeline.start_replay()
            self.pipeline.start_sweeper()
        self._reaper = threading.Thread(target=self._reap_forever, name="session-reaper", daemon=True)
        self._reaper.start()
        if self.pipeline is not None and self.settings.memory_ttl_days is not None:
            self._retention = threading.Thread(target=self._sweep_forever, name="memory-retention", daemon=True)
            self._retention.start()

    def begin_close(self) -> None:
        """Start the shutdown (``agent.shutdown``): its deadline, and ending every open conversation
        (refusing new requests) while the requests in flight finish, or are cancelled by uvicorn
        at its turn share and release their session before the release share. Returns at once."""
        self.deadline.start()
        self._stop.set()
        self.registry.begin_close(turn_timeout=self.deadline.remaining(RELEASE_SHARE))

    def close(self) -> None:
        """End every open conversation and wait for their summaries, all within the shutdown's
        one deadline (``shutdown_grace_seconds``, see ``agent.shutdown`` for its shares).

        First the ends (closed transcripts to the outbox), then queued checkpoints (those of the
        sessions abandoned because their turn outlived its share of the budget: named in the log),
        then the summaries in flight. What is cut is in the outbox and replayed by the next start.
        Stops the pipeline's sweeper.
        """
        self.begin_close()
        self.registry.close(timeout=self.deadline.remaining(STORE_SHARE))
        if self.pipeline is not None:
            if not self.pipeline.flush(timeout=self.deadline.remaining(STORE_SHARE)):
                logger.warning("shutdown deadline: queued checkpoints not written (earlier ones are in the outbox)")
            if not self.pipeline.wait(timeout=self.deadline.remaining(STORE_SHARE)):
                logger.warning(
                    "shutdown deadline: %d summary task(s) abandoned%s; their entries stay in the outbox for the next start",
                    self.pipeline.in_flight,
                    " and the start-up replay still listing the outbox" if self.pipeline.replaying else "",
                    extra={"operation": "shutdown"},
                )
            self.pipeline.shutdown(wait=False, timeout=self.deadline.remaining(STORE_SHARE))

    def sweep_retention(self) -> int:
        """Delete the expired memories (``AGENT_MEMORY_TTL_DAYS``) of the tenants this process
        serves (multi-tenant: those whose store is cached; single tenant: its own), and their dead letters of
        conversations as old (transcripts); returns how many memories. A tenant whose sweep
        fails is logged and skipped (the next sweep retries it)."""
        if self.pipeline is None or self.settings.memory_ttl_days is None:
            return 0
        from memory.errors import error_reason
        from memory.pipeline.outbox import expired_dead_letters
        from memory.stores.multi_tenant import MultiTenantStore

        store, outbox = self.pipeline.store, self.pipeline.outbox
        # a single tenant's role may not read other deployments' prefixes of a shared outbox bucket
        tenants: list[str | None] = (
            list(store.cached_tenants()) if isinstance(store, MultiTenantStore) else [store.tenant_id]
        )
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.settings.memory_ttl_days)
        deleted = 0
        for tenant in tenants:
            try:
                deleted += store.sweep_expired(tenant)
                letters = expired_dead_letters(outbox, tenant, cutoff)
                for letter in letters:
                    outbox.purge(letter.entry.entry_id, letter.entry.tenant_id)
                if letters:
                    logger.info("retention: purged %d dead letters of expired conversations", len(letters))
            except Exception as exc:  # noqa: BLE001 - one tenant's fault must not stop the others
                logger.warning("retention sweep failed for a tenant (%s)", error_reason(exc))
        return deleted

    def _sweep_forever(self) -> None:
        while not self._stop.wait(self.settings.retention_sweep_seconds):
            deleted = self.sweep_retention()
            if deleted:
                logger.info("retention: deleted %d expired memories", deleted)

    def _reap_forever(self) -> None:
        while not self._stop.wait(self.settings.reap_interval_seconds):
            try:
                ended = self.registry.reap()
                if ended:
                    logger.info("ended %d idle sessions", ended)
            except Exception:
                logger.exception("session reaper failed")


def check_dependencies(settings: Settings) -> None:
    """Refuse to start when a chosen embedder or model needs a package that is not installed.

    ``requirements.txt`` (what the runtime image installs) carries only the AWS backends: a
    missing package would otherwise surface at the first summary, degrade retrieval to "no
    memory" and keep ``/ping`` HealthyBusy while summaries are retried.

    Raises:
        SettingsError: naming the setting, the missing package and the fix.
    """
    chosen = [("AGENT_MODEL_PROVIDER", settings.model_provider.strip().lower())]
    if settings.memory_enabled:
        chosen.append(("AGENT_EMBEDDER", settings.embedder))
    for choice in chosen:
        if choice not in OPTIONAL_PACKAGES:
            continue
        module, fix = OPTIONAL_PACKAGES[choice]
        if importlib.util.find_spec(module) is None:
            raise SettingsError(f"{choice[0]}={choice[1]} needs the {module!r} package, not installed here: {fix}")


def check_state_dir(settings: Settings) -> None:
    """Refuse to start when ``AGENT_STATE_DIR`` cannot be created or written.

    Raises:
        SettingsError: naming the setting and the path (instead of a traceback at start-up).
    """
    import tempfile

    from memory.private_files import private_dir

    try:
        with tempfile.TemporaryFile(dir=private_dir(settings.state_dir)):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"AGENT_STATE_DIR={settings.state_dir} is not a writable directory ({reason}): "
            "point AGENT_STATE_DIR at one this user can create or write"
        ) from None


def build_services(
    settings: Settings, *, on_task_start: TaskStart | None = None, on_task_end: TaskEnd | None = None
) -> Services:
    """Wire the configured verifier, model, memory store and summary pipeline.

    First makes the state directory private (0700, everything under it 0700/0600): it holds
    memory text, transcripts and key material.
    """
    from agent.chat_models import build_model
    from memory.private_files import secure_tree

    secure_tree(settings.state_dir)
    verifier = build_verifier(settings)
    model = build_model(
        settings.model_provider,
        model_id=settings.model_id,
        region=settings.region,
        base_url=settings.model_base_url,
        api_key=settings.model_api_key.get_secret_value() if settings.model_api_key else None,
        max_tokens=settings.model_max_tokens,
        temperature=settings.model_temperature,
        local_model_path=str(settings.local_model_path) if settings.local_model_path else None,
    )
    pipeline = None
    plugin_factory: PluginFactory | None = None
    if settings.memory_enabled:
        pipeline, plugin_factory = _build_memory(settings, model, on_task_start, on_task_end)

    def factory(conversation_id: str, owner: Owner) -> Conversation:
        return build_conversation(model, plugin_factory)

    registry: SessionRegistry[Conversation] = SessionRegistry(
        factory,
        max_sessions=settings.max_sessions,
        idle_timeout_seconds=settings.idle_timeout_seconds,
        end_retry=EndRetry(busy_seconds=settings.resolved_summary_max_busy_seconds),
        on_task_start=on_task_start,
        on_task_end=on_task_end,
    )
    return Services(settings, verifier, registry, pipeline)


def build_verifier(settings: Settings) -> TokenVerifier:
    """The token verifier for Cognito or the local dev issuer."""
    options: dict[str, Any] = {
        "token_uses": settings.token_uses,
        "tenant_claims": settings.tenant_claims,
        "user_claim": settings.user_claim,
        "max_lifetime_seconds": settings.max_token_lifetime_seconds,
    }
    if settings.auth_mode == "cognito":
        assert settings.cognito_user_pool_id is not None
        return TokenVerifier.for_cognito(
            settings.resolved_cognito_region,
            settings.cognito_user_pool_id,
            settings.cognito_client_ids,
            **options,
        )
    from auth.dev_issuer import DEV_CLIENT_ID, DevIssuer

    issuer = DevIssuer(settings.resolved_dev_issuer_dir)
    return issuer.verifier(client_ids=settings.cognito_client_ids or (DEV_CLIENT_ID,), **options)


def _build_memory(
    settings: Settings, model: Any, on_task_start: TaskStart | None, on_task_end: TaskEnd | None
) -> "tuple[SummaryPipeline, PluginFactory]":
    from agent.chat_models import is_small_local
    from memory.errors import BackendUnavailable, ConfigurationError
    from memory.pipeline.background import RetryPolicy, SummaryPipeline
    from memory.pipeline.summarizer import Summarizer
    from memory.plugin.plugin import MemoryPlugin
    from memory.stores.single_tenant import SingleTenantStore

    tvm = _build_tvm(settings)
    store = build_store(settings, tvm=tvm)
    check_summaries_can_succeed(settings, store.embedder)
    if isinstance(store, SingleTenantStore):
        # Fail at start-up, with a clear error, when the one index is missing or was created for
        # another embedder dimension. Multi-tenant indexes are verified at each tenant's first use.
        # A transient fault (throttling, 5xx after retries) does not stop the app: the index is
        # then verified at first use, like a tenant's.
        try:
            store.ensure()
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"AGENT_EMBEDDER={settings.embedder} produces {store.embedder.dimension}-d vectors "
                f"and cannot use this index: {exc}"
            ) from exc
        except BackendUnavailable as exc:
            logger.warning(
                "memory index not verified at start-up (%s); verified at first use", type(exc).__name__
            )
    summarizer = Summarizer(
        model,
        mode=settings.summary_mode,
        small_local_model=is_small_local(settings.model_provider),
        max_facts=settings.summary_max_facts,
    )
    pipeline = SummaryPipeline(
        store,
        build_outbox(settings, tvm=tvm),
        summarizer,
        max_workers=settings.summary_workers,
        retry=RetryPolicy(max_rounds=settings.summary_max_rounds, max_busy_seconds=settings.resolved_summary_max_busy_seconds),
        on_task_start=on_task_start,
        on_task_end=on_task_end,
        orphan_after_seconds=settings.resolved_orphan_after_seconds,
        checkpoint_interval=settings.checkpoint_interval_seconds,
    )

    options: dict[str, Any] = {"top_k": settings.top_k, "retrieval_timeout": settings.retrieval_timeout_seconds}
    if settings.min_score is not None:  # unset: the plugin's default threshold
        options["min_score"] = settings.min_score

    def plugin_factory(agent_name: str, *, summarize: bool, read_agent_name: str | None = None) -> MemoryPlugin:
        return MemoryPlugin(store, pipeline=pipeline, summarize=summarize, read_agent_name=read_agent_name, **options)

    return pipeline, plugin_factory


def check_summaries_can_succeed(settings: Settings, embedder: Any) -> None:
    """Refuse to start when every summary would fail (and be dead-lettered): an embedder that
    cannot load, no AWS credentials for Bedrock, or an S3 outbox bucket that does not exist."""
    from memory.errors import BackendUnavailable, ConfigurationError, NotFound

    if settings.embedder == "local":
        embedder.embed(["start-up check"], "index")  # loads the weights; ConfigurationError if absent
    needs_aws = settings.embedder == "bedrock" or settings.model_provider.strip().lower() == "bedrock"
    if needs_aws and _aws_credentials() is None:
        raise ConfigurationError("Bedrock (embedder or summary model) needs AWS credentials; none were found")
    if settings.resolved_outbox_backend == "s3":
        from memory.aws import make_client, translate_error

        try:
            make_client("s3", region=settings.region).head_bucket(Bucket=settings.outbox_bucket)
        except Exception as exc:  # noqa: BLE001 - classified below
            error = translate_error(exc, f"outbox bucket {settings.outbox_bucket}")
            if isinstance(error, NotFound):
                raise ConfigurationError(
                    f"outbox bucket {settings.outbox_bucket!r} does not exist; create it with "
                    "`python -m scripts vector-bucket --outbox-bucket ...`"
                ) from exc
            if not isinstance(error, BackendUnavailable):
                raise error from exc
            logger.warning("outbox bucket not verified at start-up (%s)", type(error).__name__)


def _aws_credentials() -> Any:
    import boto3

    return boto3.Session().get_credentials()


def _build_tvm(settings: Settings) -> "TokenVendingMachine | None":
    if settings.backend != "s3vectors" or settings.tenant_mode != "multi":
        return None
    from memory.stores.tvm import TokenVendingMachine

    assert settings.tvm_role_arn is not None
    return TokenVendingMachine(settings.tvm_role_arn, region_name=settings.region)


def build_outbox(settings: Settings, *, tvm: Any = None) -> Any:
    """The configured outbox: a local directory, or S3 written with each tenant's TVM credentials."""
    if settings.resolved_outbox_backend == "local":
        from memory.pipeline.outbox_local import LocalOutbox

        return LocalOutbox(settings.state_dir / "outbox")
    from memory.aws import make_client
    from memory.pipeline.outbox_s3 import S3Outbox

    own = make_client("s3", region=settings.region)
    assert settings.outbox_bucket is not None

    def client_for(tenant_id: str | None) -> Any:
        return own if tvm is None or tenant_id is None else tvm.client_for(tenant_id, "s3")

    return S3Outbox(
        client_for,
        settings.outbox_bucket,
        prefix=settings.outbox_prefix,
        lister=own,
        kms_key_id=settings.outbox_kms_key_id,
    )


def build_store(settings: Settings, *, tvm: "TokenVendingMachine | None" = None) -> "Store":
    """The configured memory store (single or multi-tenant, local or S3 Vectors)."""
    from memory.factory import create_embedder, create_store

    # The execution role may only use the onboarded index (GetIndex + vector actions), never
    # create one: a single-tenant store only verifies it ("onboard the tenant first").
    return create_store(
        backend=settings.backend,
        tenancy=settings.tenant_mode,
        embedder=create_embedder(settings.embedder, region=settings.region),
        local_dir=settings.state_dir / "vectors",
        bucket=settings.vector_bucket,
        region=settings.region,
        tenant_id=settings.single_tenant_id if settings.tenant_mode == "single" else None,
        tvm_role_arn=settings.tvm_role_arn,
        tvm=tvm,
        ttl_seconds=None if settings.memory_ttl_days is None else settings.memory_ttl_days * 86400.0,
    )
