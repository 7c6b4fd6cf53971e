"""Token vending machine: per-tenant STS credentials (session tag ``TenantID``) and clients.

Credentials are cached per tenant (bounded LRU) and refreshed ``refresh_margin_seconds``
before they expire (by STS's ``Expiration`` or the requested duration counted on the host's
clock from before the call, whichever is earlier: host clocks may lag AWS's); concurrent
callers for one tenant share a single STS call and its outcome (single flight: one future per
tenant with a call in flight, so a caller waits for at most one STS call, its own tenant's,
never another tenant's hanging one), and likewise one boto3 client per tenant and service
(a lock stripe: building a client makes no request). While one caller refreshes a tenant's
credentials, the others keep using the cached ones as long as they have more than
``MANDATORY_REFRESH_SECONDS`` left (botocore's advisory refresh does the same), instead of
waiting for STS (a minute of retries when it hangs); closer to their end they wait. Failures
are not cached: the next call tries STS again (botocore retries throttling and 5xx with
adaptive backoff inside each attempt). STS refusing a request as invalid (``ValidationError``,
e.g. a duration above the role's maximum) is a ``ConfigurationError``, which no retry fixes; so is
STS not activated in the region (``RegionDisabledException``, a 403 no IAM policy fixes).
A vended client answered ``ExpiredToken``/``ExpiredTokenException`` (credentials that expired
before their refresh, e.g. on a host clock ahead of AWS's) drops its tenant's cached credentials
and clients, if they are still the ones it was built with, so the next call (the pipeline's
retry) assumes the role again; other tenants' stay cached.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from cachetools import LRUCache

from memory import telemetry
from memory.aws import EXPIRED_CREDENTIALS, StaticCredentials, error_code, make_client, resolve_region, translate_error
from memory.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    IsolationError,
    MemoryLibraryError,
    ValidationError,
)
from memory.tenants import tenant_id_from_context, validate_tenant_id

logger = logging.getLogger(__name__)

#: STS's limit on ``RoleSessionName``.
MAX_ROLE_SESSION_NAME = 64

#: STS codes for a request that no retry fixes (a duration above the role's maximum, session tags
#: or policies too large or malformed). Other 400s, such as expired credentials of the app's own
#: role, are retried: its credentials are refreshed meanwhile.
_STS_INVALID_REQUEST = frozenset({"ValidationError", "MalformedPolicyDocument", "PackedPolicyTooLarge"})

TENANT_TAG_KEY = "TenantID"
_STRIPES = 64
#: Credentials with less validity left than this are not used while their refresh is under way
#: (the caller waits for it): a call they sign, retries included, could outlive them.
MANDATORY_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class TenantCredentials:
    """Temporary credentials of one tenant and when they expire (epoch seconds)."""

    tenant_id: str
    credentials: StaticCredentials
    expires_at: float


def role_session_name(prefix: str, tenant_id: str) -> str:
    """``<prefix>-<tenant>``, STS's 64-character limit kept by ending a longer name with a digest
    of the tenant id, so that two tenants never share a session name in CloudTrail."""
    name = f"{prefix}-{tenant_id}"
    if len(name) <= MAX_ROLE_SESSION_NAME:
        return name
    digest = hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:16]
    return f"{name[: MAX_ROLE_SESSION_NAME - len(digest) - 1]}-{digest}"


class TokenVendingMachine:
    """Vends tenant-scoped AWS credentials and boto3 clients built from them.

    Also the drop-in for ``strands_s3_vectors_memory.TokenVendingMachine``:
    ``TokenVendingMachine(role_arn, region_name).get_client(service, tenant_context)`` and
    ``.get_session(tenant_context)``.
    """

    def __init__(
        self,
        role_arn: str,
        region_name: str | None = None,
        *,
        session_name_prefix: str = "agent-memory",
        duration_seconds: int = 900,
        refresh_margin_seconds: int = 120,
        max_tenants: int = 1024,
        sts_client_factory: Callable[[], Any] | None = None,
        client_factory: Callable[[str, StaticCredentials], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a token vending machine.

        Args:
            role_arn: The role assumed for every tenant (its policies use the ``TenantID`` tag).
            region_name: AWS region of STS and of the clients (default: ``AWS_REGION`` or
                ``AWS_DEFAULT_REGION``).
            session_name_prefix: Prefix of the STS role session names.
            duration_seconds: Lifetime of vended credentials (900-43200).
            refresh_margin_seconds: Refresh credentials this long before they expire.
            max_tenants: How many tenants' credentials and clients are cached.
            sts_client_factory: Creates the STS client (no arguments); default: the project's.
            client_factory: Creates a client from ``(service, credentials)``; default: the project's.
            clock: Epoch seconds, injectable for tests.

        Raises:
            ConfigurationError: No role ARN, no region, or inconsistent durations.
        """
        if not role_arn:
            raise ConfigurationError("the token vending machine needs a role ARN to assume")
        region = resolve_region(region_name)
        if not 900 <= duration_seconds <= 43200:
            raise ConfigurationError("duration_seconds must be 900-43200")
        if not 0 <= refresh_margin_seconds < duration_seconds:
            raise ConfigurationError("refresh_margin_seconds must be shorter than the duration")
        self.role_arn = role_arn
        self.region_name = region
        self.session_name_prefix = session_name_prefix
        self.duration_seconds = duration_seconds
        self.refresh_margin_seconds = refresh_margin_seconds
        self._sts_factory = sts_client_factory or (lambda: make_client("sts", region=region))
        self._client_factory = client_factory or (
            lambda service, creds: make_client(service, region=region, credentials=creds)
        )
        self._clock = clock
        self._sts: Any = None
        self._lock = threading.Lock()  # guards the caches, the calls in flight and the STS client
        self._flights: dict[str, Future[TenantCredentials]] = {}  # tenant -> its STS call under way
        self._client_stripes = [threading.Lock() for _ in range(_STRIPES)]  # clients: never behind STS
        self._credentials: LRUCache[str, TenantCredentials] = LRUCache(maxsize=max_tenants)
        self._clients: LRUCache[tuple[str, str], tuple[Any, str]] = LRUCache(
            maxsize=max_tenants * 2
        )

    def _client_stripe(self, tenant_id: str) -> threading.Lock:
        digest = hashlib.blake2b(tenant_id.encode(), digest_size=2).digest()
        return self._client_stripes[int.from_bytes(digest, "big") % _STRIPES]

    def _fresh(self, tenant_id: str, margin: float | None = None) -> TenantCredentials | None:
        """The cached credentials if they have more than ``margin`` seconds left (default: the
        refresh margin)."""
        with self._lock:
            cached = self._credentials.get(tenant_id)
        margin = self.refresh_margin_seconds if margin is None else margin
        if cached and cached.expires_at - margin > self._clock():
            return cached
        return None

    @telemetry.traced("memory.tvm.credentials")
    def credentials_for(self, tenant_id: str) -> TenantCredentials:
        """Valid credentials for the tenant, from cache or one STS AssumeRole call."""
        tenant_id = validate_tenant_id(tenant_id)
        cached = self._fresh(tenant_id)
        if cached:
            telemetry.tvm_credentials("cache", tenant_id)
            return cached
        with self._lock:  # single flight per tenant
            flight = self._flights.get(tenant_id)
            leads = flight is None
            if flight is None:
                flight = self._flights[tenant_id] = Future()
        if not leads:  # this tenant's refresh is under way
            usable = self._fresh(tenant_id, min(MANDATORY_REFRESH_SECONDS, self.refresh_margin_seconds))
            vended = usable or flight.result()  # its outcome: credentials, or its error raised here
            telemetry.tvm_credentials("cache", tenant_id)
            return vended
        try:
            vended = self._vend(tenant_id)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._flights.pop(tenant_id, None)
        flight.set_result(vended)
        return vended

    def _vend(self, tenant_id: str) -> TenantCredentials:
        """Cached credentials if a call that just ended cached them, else one STS call's (cached)."""
        cached = self._fresh(tenant_id)
        if cached:
            telemetry.tvm_credentials("cache", tenant_id)
            return cached
        vended = self._assume_role(tenant_id)
        telemetry.tvm_credentials("sts", tenant_id)
        with self._lock:
            self._credentials[tenant_id] = vended
        return vended

    def client_for(self, tenant_id: str, service: str) -> Any:
        """A boto3 client for ``service`` with the tenant's credentials, reused until they rotate."""
        vended = self.credentials_for(tenant_id)
        key = (vended.tenant_id, service)
        access_key = vended.credentials.access_key_id
        cached = self._cached_client(key, access_key)
        if cached is not None:
            return cached
        # single flight: one client per tenant and service
        with self._client_stripe(vended.tenant_id):
            cached = self._cached_client(key, access_key)
            if cached is not None:
                return cached
            client = self._client_factory(service, vended.credentials)
            self._drop_when_expired(client, vended)
            with self._lock:
                self._clients[key] = (client, access_key)
            return client

    def get_client(self, service_name: str, tenant_context: object) -> Any:
        """A client for ``service_name`` with the tenant's credentials (the seed package's API).

        Args:
            service_name: The boto3 service, e.g. ``"s3vectors"``.
            tenant_context: ``{"tenantId": ...}`` or a tenant id string.

        Returns:
            The tenant's (cached) boto3 client.

        Raises:
            IsolationError: The tenant is missing or invalid, or STS refused or failed; there is
                no fallback to ambient credentials.
        """
        try:
            return self.client_for(tenant_id_from_context(tenant_context), service_name)
        except MemoryLibraryError as exc:
            raise _isolation_error(exc) from exc

    def get_session(self, tenant_context: object) -> Any:
        """A ``boto3.Session`` with the tenant's credentials (the seed package's API).

        The session keeps the credentials it was made with (they expire after
        ``duration_seconds``): call again for fresh ones, or use ``get_client``, whose clients
        are replaced when the credentials are refreshed.

        Args:
            tenant_context: ``{"tenantId": ...}`` or a tenant id string.

        Returns:
            A ``boto3.Session`` in ``region_name``.

        Raises:
            IsolationError: The tenant is missing or invalid, or STS refused or failed; there is
                no fallback to ambient credentials.
        """
        import boto3

        try:
            vended = self.credentials_for(tenant_id_from_context(tenant_context)).credentials
        except MemoryLibraryError as exc:
            raise _isolation_error(exc) from exc
        return boto3.Session(
            aws_access_key_id=vended.access_key_id,
            aws_secret_access_key=vended.secret_access_key,
            aws_session_token=vended.session_token,
            region_name=self.region_name,
        )

    def _cached_client(self, key: tuple[str, str], access_key: str) -> Any:
        with self._lock:
            entry = self._clients.get(key)
        return entry[0] if entry and entry[1] == access_key else None

    def forget(self, tenant_id: str) -> None:
        """Drop the tenant's cached credentials and clients."""
        with self._lock:
            self._forget_locked(tenant_id)

    def _forget_locked(self, tenant_id: str) -> None:
        self._credentials.pop(tenant_id, None)
        for key in [k for k in self._clients if k[0] == tenant_id]:
            self._clients.pop(key, None)

    def _drop_when_expired(self, client: Any, vended: TenantCredentials) -> None:
        """Make an expired-credentials answer to ``client`` (botocore's ``after-call`` event, every
        operation) drop ``vended`` from the cache, with the tenant's clients."""
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is None:
            return  # not a botocore client

        def on_answer(parsed: dict[str, Any], **_: Any) -> None:
            if parsed.get("Error", {}).get("Code") not in EXPIRED_CREDENTIALS:
                return
            with self._lock:
                cached = self._credentials.get(vended.tenant_id)
                if cached is None or cached.credentials.access_key_id != vended.credentials.access_key_id:
                    return  # already replaced
                self._forget_locked(vended.tenant_id)
            logger.warning("credentials of tenant %s expired before their refresh; assuming the role again", vended.tenant_id)

        events.register("after-call", on_answer)

    def _sts_client(self) -> Any:
        with self._lock:
            if self._sts is None:
                self._sts = self._sts_factory()
            return self._sts

    @telemetry.traced("memory.tvm.assume_role", lambda self, tenant_id: {
        "rpc.system": "aws-api", "rpc.service": "STS", "rpc.method": "AssumeRole",
        "cloud.region": self.region_name, telemetry.TENANT: tenant_id})
    def _assume_role(self, tenant_id: str) -> TenantCredentials:
        session_name = role_session_name(self.session_name_prefix, tenant_id)
        requested_at = self._clock()
        started = time.perf_counter()
        try:
            response = self._sts_client().assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=session_name,
                DurationSeconds=self.duration_seconds,
                Tags=[{"Key": TENANT_TAG_KEY, "Value": tenant_id}],
                TransitiveTagKeys=[TENANT_TAG_KEY],
            )
        except (ClientError, BotoCoreError) as exc:
            error = translate_error(exc, f"sts assume_role for tenant {tenant_id}")
            if error_code(exc) == "RegionDisabledException":  # a 403 no IAM policy fixes
                error = ConfigurationError(f"{error} (activate STS for {self.region_name} in the account's IAM settings)")
            logger.warning("assume_role failed for tenant %s: %s", tenant_id, type(error).__name__)
            if isinstance(error, (AccessDenied, ConfigurationError)):
                raise error from exc
            if isinstance(error, ValidationError) and error_code(exc) in _STS_INVALID_REQUEST:
                raise ConfigurationError(str(error)) from exc  # STS refused the request itself
            raise BackendUnavailable(str(error)) from exc
        raw = response["Credentials"]
        expiration = raw["Expiration"]
        # Expiration is on AWS's clock, the refresh check on ours: the requested lifetime counted
        # from before the call bounds it, so a host clock behind AWS's never keeps them too long.
        expires_at = requested_at + self.duration_seconds
        if isinstance(expiration, datetime):
            expires_at = min(expires_at, expiration.timestamp())
        logger.info(
            "vended credentials for tenant %s in %.0f ms",
            tenant_id,
            (time.perf_counter() - started) * 1e3,
        )
        return TenantCredentials(
            tenant_id,
            StaticCredentials(raw["AccessKeyId"], raw["SecretAccessKey"], raw.get("SessionToken")),
            expires_at,
        )


def _isolation_error(exc: MemoryLibraryError) -> IsolationError:
    """The seed's error for a tenant that gets no scoped credentials (``exc``'s status kept)."""
    return IsolationError(f"no tenant-scoped credentials: {exc}", status_code=exc.status_code)
