"""Chat model selection: one function turns plain settings into a Strands ``Model``.

Providers:

- ``bedrock``: Strands ``BedrockModel`` (the default on AWS), explicit region, adaptive retries.
- ``openai``: Strands ``OpenAIModel`` against any OpenAI-compatible endpoint (``base_url``);
  needs the ``openai`` extra.
- ``local``: SmolLM2-135M-Instruct run in-process by llama-cpp-python
  (:class:`agent.local_llm.LocalLlamaModel`); needs the ``local`` extra.
- ``import:<module>:<factory>``: a zero-argument factory returning a ``Model`` (tests load a
  scripted model in a server subprocess this way).

Optional packages are imported only when their provider is chosen.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from strands.models import Model
from strands.types.exceptions import ModelThrottledException

from memory.aws import client_config, translate_error
from memory.errors import BackendUnavailable

logger = logging.getLogger(__name__)

PROVIDERS = ("bedrock", "openai", "local", "import:<module>:<factory>")

#: botocore settings of the Bedrock runtime client (long reads: streamed generations).
BEDROCK_CONNECT_TIMEOUT_S = 5
BEDROCK_READ_TIMEOUT_S = 120
BEDROCK_MAX_ATTEMPTS = 6
#: HTTP settings of the OpenAI-compatible client.
OPENAI_TIMEOUT_S = 120.0
OPENAI_MAX_RETRIES = 3


class MissingDependencyError(ImportError):
    """An optional package needed by the chosen provider is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the {package!r} package is required for this model provider; "
            f"install it with: pip install -e '.[{extra}]' (for 'local', `make reinstall-local` installs it without compiling)"
        )
        self.package = package
        self.extra = extra


def is_small_local(provider: str) -> bool:
    """True when ``provider`` is the small in-process model (its summaries should be extractive)."""
    return provider.strip().lower() == "local"


def build_model(
    provider: str,
    *,
    model_id: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    local_model_path: str | None = None,
) -> Model:
    """Build the chat model named by ``provider`` (see the module docstring).

    Raises:
        ValueError: unknown provider or a missing required parameter.
        MissingDependencyError: the provider's optional package is not installed.
    """
    name = provider.strip()
    kind = name.lower()
    logger.debug("provider=<%s>, model_id=<%s> | building chat model", name, model_id)
    if kind == "bedrock":
        return _bedrock(model_id, region, max_tokens, temperature)
    if kind == "openai":
        return _openai(model_id, base_url, api_key, max_tokens, temperature)
    if kind == "local":
        return _local(local_model_path, max_tokens, temperature)
    if kind.startswith("import:"):
        return _imported(name[len("import:") :])
    raise ValueError(f"unknown model provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


def model_unavailable(exc: BaseException) -> bool:
    """Whether the chat model failed transiently after its client's retries, for a 503.

    Strands raises ``ModelThrottledException`` for throttling; Bedrock's other failures arrive
    as the botocore error itself (5xx, timeouts); an OpenAI-compatible endpoint's as the
    ``openai`` package's ``APIStatusError`` (5xx, 408) or ``APIConnectionError`` (also
    ``APITimeoutError``), which Strands re-raises unchanged.
    """
    if isinstance(exc, ModelThrottledException):
        return True
    if isinstance(exc, (ClientError, BotoCoreError)):
        return isinstance(translate_error(exc, "model"), BackendUnavailable)
    openai = sys.modules.get("openai")  # imported by the provider that can raise its errors
    if openai is not None and isinstance(exc, openai.APIConnectionError):
        return True
    return openai is not None and isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code == 408)


def _sampling(max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
    return {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}


def _bedrock(
    model_id: str | None, region: str | None, max_tokens: int | None, temperature: float | None
) -> Model:
    from strands.models.bedrock import BedrockModel

    resolved = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not resolved:
        raise ValueError("the bedrock model provider needs a region (setting or AWS_REGION)")
    boto_config = client_config(
        max_attempts=BEDROCK_MAX_ATTEMPTS,
        connect_timeout=BEDROCK_CONNECT_TIMEOUT_S,
        read_timeout=BEDROCK_READ_TIMEOUT_S,
    )
    config: dict[str, Any] = _sampling(max_tokens, temperature)
    if model_id:
        config["model_id"] = model_id
    return BedrockModel(region_name=resolved, boto_client_config=boto_config, **config)


def _openai(
    model_id: str | None,
    base_url: str | None,
    api_key: str | None,
    max_tokens: int | None,
    temperature: float | None,
) -> Model:
    if not model_id:
        raise ValueError("the openai model provider needs a model id")
    try:
        from strands.models.openai import OpenAIModel
    except ImportError as exc:
        raise MissingDependencyError("openai", "openai") from exc

    client_args: dict[str, Any] = {
        # Local OpenAI-compatible servers accept any key; the client insists on one.
        "api_key": api_key or os.environ.get("OPENAI_API_KEY") or "unused",
        "timeout": OPENAI_TIMEOUT_S,
        "max_retries": OPENAI_MAX_RETRIES,
    }
    if base_url:
        client_args["base_url"] = base_url
    params = _sampling(max_tokens, temperature)
    return OpenAIModel(client_args=client_args, model_id=model_id, **({"params": params} if params else {}))


def _local(local_model_path: str | None, max_tokens: int | None, temperature: float | None) -> Model:
    from agent.local_llm import LocalLlamaModel, find_smollm2_gguf, require_llama_cpp

    require_llama_cpp()
    path = Path(local_model_path) if local_model_path else find_smollm2_gguf()
    if not path.is_file():
        raise ValueError(f"local model file not found: {path}")
    return LocalLlamaModel(model_path=str(path), **_sampling(max_tokens, temperature))


def _imported(spec: str) -> Model:
    module_name, sep, attr = spec.partition(":")
    if not (module_name and sep and attr):
        raise ValueError(f"import provider must look like import:<module>:<factory>, got import:{spec!r}")
    factory: Callable[[], Any] = getattr(importlib.import_module(module_name), attr)
    model = factory()
    if not isinstance(model, Model):
        raise ValueError(f"import:{spec} returned {type(model).__name__}, not a strands Model")
    return model
