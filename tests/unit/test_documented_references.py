"""What the docs and docstrings cite exists: the tests they name as evidence (a renamed test
leaves a dangling citation), the files they point to, and the dotted names of our code they
put in backticks (a renamed or removed function, class or module leaves a stale reference),
and the ``make`` targets they tell users to run."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / ".env.example")
PACKAGES = ("agent", "auth", "memory", "scripts", "telemetry", "tenant_ids")
SOURCES = tuple(path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")))
#: ``test_x`` as a word: a test function or a test module (``test_durability.py``).
CITED_TEST = re.compile(r"\b(test_[a-z0-9_]+)\b")
CITED_PATH = re.compile(
    r"`((?:tests|bench|docs|scripts|memory|agent)/[A-Za-z0-9_./-]+?\.(?:py|json|mjs|md))(?:::([A-Za-z0-9_]+))?`"
)
#: Files of a toolkit's source that docs/service-facts.md cites (strands-agents' ``agent/``).
FOREIGN_PATHS = {"agent/agent.py", "agent/_agent_as_tool.py"}
#: ``memory.pipeline.erasure.covering``, `scripts.vectors.bucket_region`, ``agent.shutdown``...
DOTTED = re.compile(rf"`{{1,2}}((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`{{1,2}}")
#: Names that are not our code: a Strands ``Agent``'s attributes (``agent.messages``), and span
#: names built from a variable (the literal span and metric names are matched in the source).
NOT_CODE = re.compile(r"^agent\.(?:messages|name|as_tool|structured_output|system_prompt\w*|tool\.\w+)$")
BUILT_SPAN_NAMES = {"memory.inject", "memory.recall"}


def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.add(path.stem)
        names.update(re.findall(r"^\s*(?:async )?def (test_[a-z0-9_]+)", path.read_text(), flags=re.M))
    return names


def test_every_test_the_docs_and_docstrings_cite_exists() -> None:
    texts = {path: path.read_text() for path in (*DOCS, *SOURCES)}
    cited = {(path.relative_to(ROOT).as_posix(), name) for path, text in texts.items()
             for name in CITED_TEST.findall(text)}
    assert len({name for _, name in cited}) >= 50  # the docs do cite tests by name
    tests = _test_names()
    assert sorted((where, name) for where, name in cited if name not in tests) == []


def test_every_cited_file_of_ours_exists() -> None:
    missing = []
    for doc in (*DOCS, *SOURCES):
        for path, name in CITED_PATH.findall(doc.read_text()):
            target = ROOT / path
            if path in FOREIGN_PATHS:
                continue
            if not target.is_file():
                missing.append(f"{doc.name}: {path}")
            elif name and not re.search(rf"^\s*(?:async )?(?:def|class) {name}\b", target.read_text(), flags=re.M):
                missing.append(f"{doc.name}: {path}::{name}")
    assert missing == []


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not dotted.startswith(exc.name):
                raise  # a dependency of ours is missing: not a stale name
            continue
        for attr in parts[cut:]:
            fields = {*getattr(target, "model_fields", {}), *getattr(target, "__dataclass_fields__", {}),
                      *getattr(target, "__annotations__", {})}
            if attr in fields:
                return True  # an instance attribute declared on the class
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_every_dotted_name_in_backticks_is_real() -> None:
    source = "\n".join(path.read_text() for path in SOURCES)
    cited: dict[str, set[str]] = {}
    for path in (*DOCS, *SOURCES):
        for name in DOTTED.findall(path.read_text()):
            cited.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    assert {"memory.pipeline.erasure", "agent.shutdown"} <= set(cited)  # the scan finds references
    stale = {
        name: sorted(where) for name, where in cited.items()
        if not NOT_CODE.match(name) and name not in BUILT_SPAN_NAMES
        and f'"{name}"' not in source  # a span, metric or attribute name
        and not _resolves(name)
    }
    assert stale == {}


def test_every_make_target_the_docs_and_messages_name_exists() -> None:
    """``make <target>`` in the docs, docstrings and the app's messages is a target of the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = {(path.relative_to(ROOT).as_posix(), target) for path in (*DOCS, *SOURCES)
             for target in re.findall(r"[`'\"(]make ([a-z][a-z-]*)", path.read_text())}
    assert {"demo", "test", "reinstall-local"} <= {target for _, target in named}  # the scan finds them
    assert sorted((where, target) for where, target in named if target not in targets) == []
