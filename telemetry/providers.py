"""The tracer and meter instruments of the current global OpenTelemetry providers.

``opentelemetry-instrument`` (or a test) may install the global providers after our modules are
imported, and tests replace them: so nothing is bound at import time, and what is cached is
rebuilt when the global provider changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from opentelemetry import metrics, trace

try:  # the API's "none set yet" provider: private, so an API without it counts every provider as set
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _UNSET_PROVIDER
except ImportError:  # pragma: no cover - depends on the installed opentelemetry-api
    _UNSET_PROVIDER = ()

#: Instrumentation scope of every span and metric of this project.
SCOPE = "agent_memory"

T = TypeVar("T")


class _Tracer:
    """The tracer of the global provider, None while none is set (the API's proxy)."""

    def __init__(self) -> None:
        self._key: object = None
        self._tracer: trace.Tracer | None = None

    def __call__(self) -> trace.Tracer | None:
        provider = trace.get_tracer_provider()
        if provider is not self._key:
            # Never a proxy tracer: it would stay bound to whichever provider is set first.
            unset = isinstance(provider, trace.ProxyTracerProvider)
            self._tracer = None if unset else provider.get_tracer(SCOPE)
            self._key = provider
        return self._tracer


#: ``tracer()``: the tracer of the global provider, None while none is set (nothing records).
tracer = _Tracer()


class Instruments(Generic[T]):
    """A package's metric instruments, made by ``create`` from the global meter provider's meter.

    Example::

        _failures = Instruments(lambda meter: meter.create_counter("auth.token.failures"))
        _failures.get().add(1, {"auth.failure.reason": reason})

    Args:
        create: Builds the instruments (any value: one instrument, a dataclass of several).
    """

    def __init__(self, create: Callable[[metrics.Meter], T]) -> None:
        self._create = create
        self._built: tuple[object, T] | None = None  # (the provider, its instruments)
        self._lock = threading.Lock()

    def get(self) -> T:
        """The instruments of the current global meter provider (made again when it changed).

        While none is set, no-op instruments: never the API's proxies, which register themselves
        (observable callbacks included) in the first provider set, beside the ones made for it.
        Made once per provider: the SDK ignores the callbacks of an observable instrument made
        again under a registered name, so what was counted into a second build went unobserved.
        """
        provider = metrics.get_meter_provider()
        built = self._built
        if built is None or built[0] is not provider:
            with self._lock:
                built = self._built
                if built is None or built[0] is not provider:
                    unset = isinstance(provider, _UNSET_PROVIDER)
                    meter = (metrics.NoOpMeterProvider() if unset else provider).get_meter(SCOPE)
                    built = self._built = (provider, self._create(meter))
        return built[1]
