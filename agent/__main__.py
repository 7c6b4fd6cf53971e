"""``python -m agent``: start the AgentCore app server."""

from agent.app import run

run()
