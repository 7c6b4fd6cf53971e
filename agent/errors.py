"""The app's exception hierarchy; each error carries the HTTP status and a public, generic message."""

from __future__ import annotations


class AppError(Exception):
    """Base class of errors the entrypoint turns into a JSON error response."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.public_message = message
        self.field = field

    def body(self) -> dict[str, str]:
        """The JSON body sent to the caller (never contains secrets or memory text)."""
        body = {"error": self.code, "message": self.public_message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(AppError):
    """The payload breaks the schema; ``field`` names the offending field."""

    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    """No bearer token, or one that failed verification."""

    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    """The token is valid but the request claims another identity or session."""

    status_code = 403
    code = "forbidden"


class MethodNotAllowed(AppError):
    """The path exists but not for this HTTP method (the response carries ``Allow``)."""

    status_code = 405
    code = "method_not_allowed"


class SessionBusy(AppError):
    """Another request of the same session is still running."""

    status_code = 409
    code = "session_busy"


class PayloadTooLarge(AppError):
    """The request body exceeds the configured limit."""

    status_code = 413
    code = "payload_too_large"


class Unavailable(AppError):
    """The app is shutting down or a backend is unavailable."""

    status_code = 503
    code = "unavailable"
