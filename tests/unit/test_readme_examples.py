"""The README's "Use the memory in your own Strands agent" examples run as written (local
backend, no AWS), in order and in one namespace, with a scripted model standing in for ``model``."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_model import ModelCall, ScriptedModel

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Use the memory in your own Strands agent"


class ReadmeModel(ScriptedModel):
    """Answers "OK"; a ModelExtractor request gets the user's statements as facts."""

    def _reply(self, call: ModelCall) -> Any:
        if "extract durable facts" in (call.system_prompt or ""):
            lines = [line.split(":", 1)[1].strip() for line in call.last_user_text.splitlines()
                     if line.startswith("user:")]
            return json.dumps([{"content": line} for line in lines])
        return "OK"


def readme_examples() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_section_has_the_four_examples() -> None:
    blocks = readme_examples()
    assert len(blocks) == 4
    assert ["create_store" in blocks[0], "MemoryPlugin" in blocks[1], "S3VectorMemoryPlugin" in blocks[2],
            "StrandsMemoryStore" in blocks[3]] == [True] * 4


def test_the_examples_run_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' temporary directories
    namespace: dict[str, Any] = {"model": ReadmeModel(), "__name__": "readme"}
    outputs = []
    for block in readme_examples():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
        outputs.append(out.getvalue())
    stored, plugin, seed, strands_store = outputs
    assert re.search(r"^\d\.\d\d The project codename is Bluebird", stored, flags=re.M)
    assert "injected: ['sum-" in plugin  # the Lisbon summary came back in the next conversation
    assert "Q4 budget is 2M dollars" in seed
    assert "I prefer window seats on long flights." in strands_store
