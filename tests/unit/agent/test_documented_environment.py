"""Every environment variable the app's code reads by name is documented (README or .env.example):
a setting the app honours but nobody can find is a surprise in production."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("agent", "auth", "memory", "telemetry", "tenant_ids")
READ = re.compile(r"(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*\"([A-Z][A-Z0-9_]+)\"")
#: A read through a module constant (``os.environ.get(STATE_DIR_ENV)``), resolved in the same file.
READ_CONSTANT = re.compile(r"(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*([A-Z][A-Z0-9_]+)\b")


def _names_read(text: str) -> set[str]:
    names = set(READ.findall(text))
    for constant in READ_CONSTANT.findall(text):
        assigned = re.search(rf"^{constant}\s*(?::[^=\n]+)?=\s*\"([A-Z][A-Z0-9_]+)\"", text, flags=re.M)
        if assigned:
            names.add(assigned.group(1))
    return names


def variables_read() -> set[str]:
    return {name for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            for name in _names_read(path.read_text())}


def test_every_variable_the_code_reads_is_documented() -> None:
    names = variables_read()
    assert {"XDG_STATE_HOME", "DOCKER_CONTAINER", "AGENT_SETTINGS_FILE"} <= names  # the scan finds reads
    documented = (ROOT / "README.md").read_text() + (ROOT / ".env.example").read_text()
    assert {name for name in names if not re.search(rf"\b{name}\b", documented)} == set()


#: "`AGENT_X` (300 s)", "`AGENT_X` (default 1 h)": a default stated after a setting's name.
STATED_NUMBER = re.compile(r"`(AGENT_[A-Z0-9_]+)` \((?:default )?(\d+(?:\.\d+)?) ?(s|h)?\)")
#: "by default (`AGENT_X=v`)", "its defaults ... (`AGENT_X=v`, `AGENT_Y=w`)": defaults as assignments.
STATED_ASSIGNMENTS = re.compile(r"\bdefaults?\b[^.`]{0,60}\(((?:`AGENT_[A-Z0-9_]+=[^`]+`(?:, )?)+)\)")


def _default_as_written(env_name: str) -> str:
    from pydantic import AliasChoices

    from agent.settings import Settings

    for name, info in Settings.model_fields.items():
        aliases = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
        if env_name in (f"AGENT_{name.upper()}", *aliases):
            value = info.get_default(call_default_factory=True)
            return ",".join(value) if isinstance(value, tuple) else str(value)
    raise AssertionError(f"{env_name} is not a setting")


def test_defaults_stated_in_the_docs_are_the_codes() -> None:
    stated: list[tuple[str, str, str]] = []
    for doc in ("README.md", "docs/operations.md"):
        text = re.sub(r"\s+", " ", (ROOT / doc).read_text())
        for name, number, unit in STATED_NUMBER.findall(text):
            seconds = float(number) * (3600 if unit == "h" else 1)
            stated.append((doc, name, f"{seconds:g}"))
        for group in STATED_ASSIGNMENTS.findall(text):
            stated.extend((doc, name, value) for name, value in re.findall(r"`(AGENT_[A-Z0-9_]+)=([^`]+)`", group))
    assert len(stated) >= 5  # the patterns find what the docs state
    wrong = []
    for doc, name, value in stated:
        code = _default_as_written(name)
        same = f"{float(code):g}" == value if value.replace(".", "").isdigit() else code == value
        if not same:
            wrong.append(f"{doc}: {name}={value}, the code's default is {code}")
    assert wrong == []


def readme_settings_table() -> dict[str, str]:
    """The README's Configuration table: ``AGENT_*`` name -> its default column, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(AGENT_[A-Z0-9_]+)` \| ([^|]*) \|", section, flags=re.M)
    return {name: default.strip() for name, default in rows}


def test_the_readme_settings_table_lists_every_setting_with_its_default() -> None:
    """One row per setting (none for a setting that is gone), each with the code's default."""
    from agent.settings import Settings

    table = readme_settings_table()
    assert set(table) == {f"AGENT_{name.upper()}" for name in Settings.model_fields}
    wrong = []
    for name, info in Settings.model_fields.items():
        written = table[f"AGENT_{name.upper()}"]
        if info.default_factory is not None or info.default in (None, ()):  # computed or unset
            expected = "(unset)"
        elif isinstance(info.default, bool):
            expected = f"`{str(info.default).lower()}`"
        elif isinstance(info.default, tuple):
            expected = f"`{','.join(info.default)}`"
        else:
            expected = f"`{info.default}`"
        if written != expected:
            wrong.append(f"AGENT_{name.upper()}: README {written}, code {expected}")
    assert wrong == []


def test_the_secrets_the_settings_file_refuses_are_the_ones_the_readme_names() -> None:
    """The README says which settings may not be in ``agentcore.env``: every ``SecretStr`` one."""
    from pydantic import SecretStr

    from agent.settings import Settings

    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    named = re.search(r"it may not contain secrets \(([^)]*)\)", readme)
    assert named, "the README no longer says which secrets the settings file refuses"
    secrets = {f"AGENT_{name.upper()}" for name, info in Settings.model_fields.items()
               if info.annotation == SecretStr | None}
    assert set(re.findall(r"`(AGENT_[A-Z_]+)`", named.group(1))) == secrets


def test_the_shutdown_shares_the_readme_states_are_the_codes() -> None:
    """The README's AGENT_SHUTDOWN_GRACE_SECONDS row states each step's share of the budget and the
    margin the default leaves under AgentCore's 15 s (``agent.shutdown``, ``agent.settings``)."""
    from agent.settings import SHUTDOWN_BUDGET_SECONDS
    from agent.shutdown import RELEASE_SHARE, STORE_SHARE, TURN_SHARE

    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `AGENT_SHUTDOWN_GRACE_SECONDS`"))
    assert ("may use half of it" in row) == (TURN_SHARE == 0.5)  # a new share needs new words here
    assert f"released by {RELEASE_SHARE * 100:g} % is ended" in row
    assert f"up to {STORE_SHARE * 100:g} %" in row
    assert f"the default leaves {15 - SHUTDOWN_BUDGET_SECONDS:g} s" in row
