"""A server-side model for the kill test: the echo model whose summaries take a long time."""

from __future__ import annotations

import os
import time

from strands.models import Model

from tests.support.scripted_model import EchoModel, ModelCall


class SlowSummaryEchoModel(EchoModel):
    """Echoes like ``EchoModel``; each summary first sleeps ``HARDENING_SUMMARY_DELAY`` seconds."""

    def _summary(self, call: ModelCall) -> str:
        time.sleep(float(os.environ.get("HARDENING_SUMMARY_DELAY", "60")))
        return super()._summary(call)


def build_slow_summary_model() -> Model:
    """Factory for ``import:tests.hardening.slow_model:build_slow_summary_model``."""
    return SlowSummaryEchoModel()
