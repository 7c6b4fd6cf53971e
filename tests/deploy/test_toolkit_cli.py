"""The pinned starter toolkit is what the docs say, accepts the commands we print, and its
successor (the AgentCore CLI) has a documented path."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the dev extra installs tomli there)
    import tomli as tomllib

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def test_the_pinned_toolkit_is_the_documented_one() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert "bedrock-agentcore-starter-toolkit==0.3.14" in dev
    assert version("bedrock-agentcore-starter-toolkit") == "0.3.14"
    assert "'bedrock-agentcore-starter-toolkit==0.3.14'" in (REPO / "README.md").read_text()


def test_launch_is_a_hidden_alias_of_deploy_and_the_deprecation_note_can_be_silenced(monkeypatch) -> None:
    from bedrock_agentcore_starter_toolkit.cli.cli import app
    from bedrock_agentcore_starter_toolkit.cli.recommendation import is_recommendation_suppressed

    runner = CliRunner()
    launch = runner.invoke(app, ["launch", "--help"])
    assert launch.exit_code == 0 and "--env" in launch.output  # the command we print still parses
    assert " launch " not in runner.invoke(app, ["--help"]).output  # hidden: deploy is the new name
    monkeypatch.setenv("AGENTCORE_SUPPRESS_RECOMMENDATION", "1")
    assert is_recommendation_suppressed()


def test_the_agentcore_cli_path_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("#### The AgentCore CLI (`@aws/agentcore`)", 1)[1].split("\n## ", 1)[0]
    for needle in ("npm install -g @aws/agentcore", "agentcore.json", '"build": "Container"', "agentcore dev",
                   "agentcore deploy", "agentcore invoke", "AGENTCORE_SUPPRESS_RECOMMENDATION=1"):
        assert needle in section, needle
    assert "does not install" in section  # what could not be exercised is said plainly
