"""Every complete ``python -m scripts ...`` command in the README and docs/operations.md parses
with the real CLI parser (required options present, values of the right type), so a user who
copies one does not get a usage error."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from scripts.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCS = ("README.md", "docs/operations.md")
#: What a placeholder stands for: shell variables, and the upper-case letters the prose uses.
PLACEHOLDERS = {"N": "30", "T": "acme", "T2": "globex"}
#: Spans that name a command or one of its flags in prose, not a command to run.
REFERENCES = {
    "python -m scripts agentcore",
    "python -m scripts agentcore --idle-timeout",
    "python -m scripts retention sweep",
}


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for name in DOCS:
        text = re.sub(r"\\\n\s*", " ", (ROOT / name).read_text())  # join continued lines
        spans = re.findall(r"`(python -m scripts [^`]+)`", text)
        lines = re.findall(r"^(python -m scripts [^\n#]+)", text, flags=re.M)
        for command in (c.strip() for c in spans + lines):
            if command in REFERENCES or re.search(r"\.\.\.|<|\||\[", command):
                continue  # a reference, or a synopsis with alternatives and elisions
            found.append((name, command))
    return found


def _argv(command: str) -> list[str]:
    def fill(match: re.Match[str]) -> str:
        return "arn:aws:iam::123456789012:role/r" if "ARN" in match.group(1) else "value"

    words = shlex.split(re.sub(r"\$\{?([A-Z_]+)\}?", fill, command))[3:]
    return [PLACEHOLDERS.get(word, word) for word in words]


def test_the_docs_show_the_setup_and_retention_commands() -> None:
    commands = [command for _, command in documented_commands()]
    assert any(c.startswith("python -m scripts agentcore --pool-id") for c in commands)
    assert any(c.startswith("python -m scripts retention sweep --") for c in commands)


@pytest.mark.parametrize(("doc", "command"), documented_commands())
def test_a_documented_command_parses(doc: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        build_parser().parse_args(_argv(command))
    except SystemExit:
        pytest.fail(f"{doc}: `{command}` is refused by the CLI: {capsys.readouterr().err.strip()}")


def test_a_documented_deleting_command_passes_yes() -> None:
    """A command the docs say deletes must carry --yes: without it these commands only count."""
    text = (ROOT / "README.md").read_text()
    for command in re.findall(r"`(python -m scripts [^`]+)`\s+deletes", text):
        if command not in REFERENCES:
            assert "--yes" in command.split(), command


def _leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command (``tenant onboard``, ``doctor``...) and its parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(words)] = parser
        for name, sub in (subs[0].choices.items() if subs else ()):
            walk(sub, (*words, name))

    walk(build_parser(), ())
    return found


def _leaf_commands() -> dict[str, set[str]]:
    """Every runnable command and its option strings."""
    return {name: {o for a in parser._actions for o in a.option_strings} for name, parser in _leaf_parsers().items()}


def _listed_after(text: str, lead: str) -> set[str]:
    match = re.search(re.escape(lead) + r"[^(]*\(([^)]*)\)", text)
    assert match, f"docs/operations.md no longer says which commands: {lead}"
    return set(re.findall(r"`([a-z -]+)`", match.group(1)))


def test_the_dry_run_and_yes_lists_of_the_operations_guide_are_the_clis() -> None:
    """docs/operations.md says which commands take ``--dry-run`` and which delete only with ``--yes``."""
    text = re.sub(r"\s+", " ", (ROOT / "docs/operations.md").read_text())
    commands = _leaf_commands()
    assert _listed_after(text, "has `--dry-run` when") == {c for c, flags in commands.items() if "--dry-run" in flags}
    assert _listed_after(text, "never deletes data unless you pass `--yes`") == {
        c for c, flags in commands.items() if "--yes" in flags
    }


def test_the_deploy_steps_say_which_python_runs_them() -> None:
    """The steps run a bare ``python -m scripts``, which only the project's venv can run (``make
    install`` puts nothing on PATH: outside it, ``python`` lacks the dependencies or does not
    exist): the section must say to activate the venv the Makefile creates."""
    makefile = (ROOT / "Makefile").read_text()
    venv = re.search(r"^VENV \?= (\S+)$", makefile, flags=re.M)
    assert venv and "install:" in makefile
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Deploy on AWS\n", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^\d+\. `python -m scripts ", section, flags=re.M)  # bare python in the steps
    assert f"{venv.group(1)}/bin/activate" in section.split("\n1. ", 1)[0]  # said before step 1


def _operations_sections() -> list[tuple[set[str], str]]:
    """docs/operations.md's command sections: the commands a heading names and its text."""
    text = (ROOT / "docs/operations.md").read_text()
    sections = []
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        heading = re.match(r"`([a-z |-]+)`", section)
        if heading:
            first, *others = (name.strip() for name in heading.group(1).split("|"))
            group = first.rsplit(" ", 1)[0] if " " in first else ""
            sections.append(({first, *(f"{group} {name}".strip() for name in others)}, section))
    return sections


def _as_written(default: object) -> str:
    """A default as the guide writes it: ``—`` for none, ``off``/``on`` for a switch, ``7`` for 7.0."""
    if default is None:
        return "—"
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_the_defaults_the_operations_guide_states_are_the_clis() -> None:
    """An option table's default (``| `--pool-name` | `agent-memory-users` |``) and a synopsis's
    ``[--flag value]`` are the parser's defaults (a synopsis may name what a None default resolves to)."""
    defaults = {name: {o: a.default for a in parser._actions for o in a.option_strings}
                for name, parser in _leaf_parsers().items()}
    stated, wrong = 0, []
    for commands, text in _operations_sections():
        options = {flag: value for command in commands for flag, value in defaults[command].items()}
        for flag, value in re.findall(r"^\| `(--[a-z-]+)` \| ([^|]+) \|", text, flags=re.M):
            stated += 1
            if value.strip().strip("`") != _as_written(options[flag]):
                wrong.append(f"{sorted(commands)} {flag}: docs {value.strip()}, CLI {options[flag]!r}")
        for flag, value in re.findall(r"\[(--[a-z-]+) ([a-z0-9][a-z0-9.-]*)\]", text):
            stated += 1
            if options[flag] is not None and value != _as_written(options[flag]):
                wrong.append(f"{sorted(commands)} {flag}: docs {value}, CLI {options[flag]!r}")
    assert stated >= 10  # the patterns find the stated defaults
    assert wrong == []


def test_every_option_of_a_command_is_in_its_operations_section() -> None:
    """An operator reads a command's section in docs/operations.md for its flags: each one the
    parser has is named there (sections whose commands take "the same backend arguments as
    `forget`" name them through forget's section)."""
    sections = _operations_sections()
    by_command = {command: text for commands, text in sections for command in commands}
    unnamed = []
    for command, parser in _leaf_parsers().items():
        text = by_command[command]
        if "backend arguments as `forget`" in text:
            text += by_command["forget"]
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text)) | {"--help", "--region", "--dry-run"}
        unnamed += [f"{command} {o}" for a in parser._actions for o in a.option_strings
                    if o.startswith("--") and o not in named]
    assert unnamed == []


def test_a_synopsis_shows_a_value_for_each_option_that_takes_one() -> None:
    """``[--pool-name]`` reads as a switch: an option that takes a value is shown with one
    (``[--pool-name NAME]``), or the parser refuses the command as copied."""
    bare = []
    for commands, text in _operations_sections():
        for command in commands:
            for action in _leaf_parsers()[command]._actions:
                bare += [f"{command} {o}" for o in action.option_strings
                         if action.nargs != 0 and f"[{o}]" in text]
    assert bare == []



def test_every_command_s_help_says_what_it_does() -> None:
    """``retention sweep --help`` and ``outbox list|retry|purge --help`` (and the subcommands of
    ``cognito`` and ``tenant``) showed usage and options only: every runnable command's help
    now opens with what it does, the line its parent's command list shows (a new command
    without one fails here)."""
    without = []
    for name, parser in _leaf_parsers().items():
        first = (parser.description or "").strip().splitlines()[:1]
        if not first or " ".join(first[0].split()) not in " ".join(parser.format_help().split()):  # as reflowed
            without.append(name)
    assert without == []
