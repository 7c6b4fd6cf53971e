"""Exception hierarchy of the memory library, mapped to HTTP-style status codes at the app edge."""

from __future__ import annotations


class MemoryLibraryError(Exception):
    """Base class of every error raised by the memory library."""

    status_code: int = 500


class ConfigurationError(MemoryLibraryError):
    """The library was wired inconsistently (e.g. embedder and index dimensions differ)."""


def error_reason(exc: BaseException) -> str:
    """What logs and dead letters say about ``exc``: its type, plus its message for a
    :class:`ConfigurationError` (ours name only indexes, dimensions, metrics and settings, or
    quote AWS's answer about a KMS key or an STS request; other errors' texts may quote request
    data, so only their type is told).

    Args:
        exc: The error to describe.

    Returns:
        ``"ConfigurationError: <message>"`` (one line, at most 300 characters) or the type name.
    """
    if not isinstance(exc, ConfigurationError):
        return type(exc).__name__
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class ValidationError(MemoryLibraryError):
    """A caller-supplied value (tenant id, key, metadata, top_k, ...) breaks a documented rule."""

    status_code = 400


class IdentityTooLong(ValidationError, ValueError):
    """A user id or agent name too long for the filterable metadata every stored memory carries
    (``memory.stores.scoping.check_storable_identity``); raised before anything is accepted."""


class InvalidTenantId(ValidationError):
    """A tenant id that cannot safely become an index name or an STS session tag."""


class AccessDenied(MemoryLibraryError):
    """The backend refused the credentials used (IAM denial)."""

    status_code = 403


class NotFound(MemoryLibraryError):
    """The index or bucket does not exist."""

    status_code = 404


class BackendUnavailable(MemoryLibraryError):
    """A transient backend fault that survived the retries (throttling, 5xx, timeouts, expired
    credentials, STS failure)."""

    status_code = 503


class IsolationError(MemoryLibraryError):
    """Tenant-scoped credentials could not be vended (no tenant, invalid tenant, STS refused or
    failed). Never followed by a fallback to ambient credentials. Carries the status code of
    its cause (400, 403 or 503)."""

    def __init__(self, message: str, *, status_code: int = 503) -> None:
        """Create the error.

        Args:
            message: What failed (never contains credentials).
            status_code: HTTP-style status of the cause.
        """
        super().__init__(message)
        self.status_code = status_code
