"""Amazon S3 conditional writes are atomic; moto's are a check followed by a write.

S3 evaluates ``If-None-Match: *`` and ``If-Match`` atomically with the write or delete it
guards: of two racing ``PutObject`` calls with ``If-None-Match: *``, exactly one succeeds (the
outbox's claims rely on it). moto 5.2 reads the key, then writes it, in two steps, so two
threads racing through an in-process moto (``mock_aws`` or ``ThreadedMotoServer``) can both
"win" when the interpreter switches between them: a double the product cannot pass under load,
for a reason the real service does not have. ``install`` serialises moto's object writes and
deletes with one lock, which gives them S3's atomicity and changes nothing else. Under
``mock_aws`` it also serialises the in-process dispatch (``BotocoreStubber.process_request``),
whose lazy route loading (``reload`` of ``moto.s3.urls``) fails when threads race through it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

from moto.core.botocore_stubber import BotocoreStubber
from moto.s3.responses import S3Response

_LOCK = threading.RLock()
_GUARDED = ("put_object", "delete_object")


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(self, *args, **kwargs)

    guarded.__atomic__ = True  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Make moto's conditional object writes atomic for this process (idempotent)."""
    for owner, name in [*((S3Response, name) for name in _GUARDED), (BotocoreStubber, "process_request")]:
        method = getattr(owner, name)
        if not getattr(method, "__atomic__", False):
            setattr(owner, name, _atomic(method))
