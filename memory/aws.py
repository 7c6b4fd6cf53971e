"""boto3 client factory (explicit region, adaptive retries and timeouts, optional credentials), and
the offline checks of AWS names it is given (regions, S3 bucket names)."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.loaders import create_loader

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from memory.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    MemoryLibraryError,
    NotFound,
    ValidationError,
)

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0

# boto3 sessions are not thread-safe; creating clients from one is serialised.
_SESSION_LOCK = threading.Lock()
_default_session: boto3.Session | None = None


@dataclass(frozen=True)
class StaticCredentials:
    """Temporary credentials (e.g. from STS) for one client."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def client_config(
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> Config:
    """The botocore Config every client of this project uses."""
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def resolve_region(region_name: str | None) -> str:
    """``region_name``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``.

    Raises:
        ConfigurationError: None of them is set (a region is never guessed).
    """
    region = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigurationError("an AWS region is required: pass region_name or set AWS_REGION")
    return region


@lru_cache(maxsize=1)
def _region_patterns() -> tuple[re.Pattern[str], ...]:
    """Each AWS partition's region pattern (``^(us|eu|ap|...)-\\w+-\\d+$``), from botocore's data."""
    return tuple(re.compile(p["regionRegex"]) for p in create_loader().load_data("partitions")["partitions"])


def is_region(name: str) -> bool:
    """Whether ``name`` is of an AWS region's shape: matched by the region pattern of one of
    botocore's partitions (offline; a region opened after this botocore was released still
    passes, a made-up ``xx-fake-9`` does not). Its endpoint lists cannot say: new services
    such as S3 Vectors list no region there."""
    return any(pattern.fullmatch(name) for pattern in _region_patterns())


#: S3's general purpose bucket names: 3-63 of ``a-z 0-9 . -``, a letter or digit at both ends.
_S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: Reserved by S3 (its bucket naming rules, 2026): prefixes, then suffixes.
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def s3_bucket_name_problem(name: str) -> str | None:
    """What S3's naming rules for a general purpose bucket refuse in ``name``, or None (offline:
    such a name would otherwise reach AWS, or be taken for a missing bucket). The answer never
    quotes ``name``."""
    if not _S3_BUCKET_NAME.fullmatch(name):
        return "not 3-63 lower-case letters, digits, dots or hyphens with a letter or digit at both ends"
    if ".." in name:
        return "two adjacent dots"
    if _IP_ADDRESS.fullmatch(name):
        return "formatted as an IP address"
    if name.startswith(_S3_RESERVED_PREFIXES):
        return f"a prefix S3 reserves ({', '.join(_S3_RESERVED_PREFIXES)})"
    if name.endswith(_S3_RESERVED_SUFFIXES):
        return f"a suffix S3 reserves ({', '.join(_S3_RESERVED_SUFFIXES)})"
    return None


def make_client(
    service: str,
    *,
    region: str,
    credentials: StaticCredentials | None = None,
    session: boto3.Session | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    endpoint_url: str | None = None,
) -> Any:
    """A boto3 client for ``service`` in ``region`` (required) with the project's Config."""
    if not region:
        raise ConfigurationError(f"an AWS region is required to create a {service} client")
    kwargs: dict[str, Any] = {
        "region_name": region,
        "config": client_config(
            max_attempts=max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout
        ),
    }
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if credentials is not None:
        kwargs.update(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )
    global _default_session
    with _SESSION_LOCK:
        if session is None:
            if _default_session is None:
                _default_session = boto3.Session()
            session = _default_session
        return session.client(service, **kwargs)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ClientError (0 if unknown)."""
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"}
_NOT_FOUND = {"NotFoundException", "ResourceNotFoundException", "NoSuchEntity", "404"}
_INVALID = {"ValidationException", "ValidationError", "InvalidParameterValue"}
#: A KMS key the service cannot use on our behalf, answered 400 but not the caller's invalid
#: input: S3 Vectors' modelled ``Kms*Exception`` (botocore ``s3vectors/2025-07-15``, all 400) and
#: the ``KMS.<KMS error>`` codes S3 (SSE-KMS) and SQS answer. A denial (the key policy or the
#: role's ``kms:`` actions) is :class:`AccessDenied`; a disabled, pending-deletion, missing or
#: wrong-usage key is a :class:`ConfigurationError` (the operator fixes the key, then
#: ``outbox retry``).
_KMS_DENIED = {"KMS.AccessDeniedException"}
_KMS_UNUSABLE = {
    "KmsDisabledException",
    "KmsInvalidStateException",
    "KmsNotFoundException",
    "KmsInvalidKeyUsageException",
    "KMS.DisabledException",
    "KMS.KMSInvalidStateException",
    "KMS.NotFoundException",
}
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalServerException",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",  # S3 Vectors, HTTP 408: "The request timed out. Retry your request."
    "ModelStreamErrorException",  # Bedrock runtime, HTTP 424: "Retry your request."
}
#: Bedrock runtime's quota refusal, HTTP 400: "You can resubmit your request later" (botocore
#: ``bedrock-runtime``); S3 Vectors' code of the same name (402, e.g. an index at its vector quota)
#: is not transient: the operator raises the quota or makes room (a ``ConfigurationError``).
_RESUBMIT_LATER = {("ServiceQuotaExceededException", 400)}
_QUOTA_REACHED = {("ServiceQuotaExceededException", 402)}
#: Error codes of credentials that expired (S3: ``ExpiredToken`` 400; STS and JSON services:
#: ``ExpiredTokenException`` 400 or 403): refreshed meanwhile (botocore's provider; the TVM
#: drops a tenant's cached credentials on them), so transient, never the caller's invalid input
#: nor an IAM denial.
EXPIRED_CREDENTIALS = frozenset({"ExpiredToken", "ExpiredTokenException"})


#: What botocore's validation report names, without the values it quotes (they may be memory
#: text): a parameter with a wrong value, a missing or unknown one, or S3's ``Bucket`` (its
#: client's own name check says "Invalid bucket name").
_REFUSED_PARAMETER = re.compile(
    r'for (?:document )?parameter ([\w.\[\]]+)|parameter in [\w.\[\]]+: "([^"]+)"|Invalid bucket (name)'
)


def refused_parameters(exc: ParamValidationError) -> str:
    """The parameters a ParamValidationError's report names, comma-separated (never their values)."""
    report = str(exc.kwargs.get("report", ""))
    found = dict.fromkeys(named or missing or "Bucket" for named, missing, _ in _REFUSED_PARAMETER.findall(report))
    return ", ".join(found) or "a parameter"


def translate_error(exc: BaseException, what: str) -> MemoryLibraryError:
    """Map a botocore error (after botocore's own retries) onto ``memory.errors``.

    ``what`` names the operation and resource for the message; AWS messages are kept
    (they never contain credentials). moto reports access denials as code ``403``.
    """
    if isinstance(exc, MemoryLibraryError):
        return exc
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        detail = f"{what}: {code or status} {message}".strip()
        if code in EXPIRED_CREDENTIALS:
            return BackendUnavailable(detail)
        if code in _KMS_UNUSABLE:
            return ConfigurationError(f"{detail} (check the KMS key exists, is enabled and is the one configured)")
        if (code, status) in _QUOTA_REACHED:
            return ConfigurationError(f"{detail} (raise the service quota or make room)")
        if code in _ACCESS_DENIED or code in _KMS_DENIED or status == 403:
            return AccessDenied(detail)
        if code in _NOT_FOUND or status == 404:
            return NotFound(detail)
        if code in _TRANSIENT or (code, status) in _RESUBMIT_LATER or status in (408, 429) or status >= 500:
            return BackendUnavailable(detail)
        if code in _INVALID or status == 400:
            return ValidationError(detail)
        return MemoryLibraryError(detail)
    if isinstance(exc, ParamValidationError):  # botocore refused to send it: no retry can help
        return ValidationError(f"{what}: {type(exc).__name__} ({refused_parameters(exc)} refused by the service model)")
    if isinstance(exc, BotoCoreError):
        return BackendUnavailable(f"{what}: {type(exc).__name__}")
    return MemoryLibraryError(f"{what}: {type(exc).__name__}")
