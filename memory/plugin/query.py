"""The first turn's retrieval query: the user's words of the invocation, not a framework's frame.

An agent called directly gets the user's input: the query is all of its user text (a client may
send earlier context along), bounded to ``MAX_QUERY_CHARS`` of the latest text. A node of a
Strands multi-agent pattern gets an input the framework wrote around the user's request, and
that frame (the other agents' names and descriptions, shared context, coordination
instructions) outweighs the request in an embedding: with WordLlama, "I moved to Lisbon last
month." scores 0.45 against "Where did I move to last month?" and 0.07 against a three-node
Swarm's whole input holding that request (under the calibrated floor: nothing injected). For
those inputs the query is the request (none when it has no text, e.g. images only: no
retrieval, as for an agent called directly with images only, never the frame instead):

* ``Swarm`` (``strands.multiagent.swarm.Swarm._build_node_input``): one text block
  ``Context:\\n`` ... ``User Request: <task>\\n\\n`` followed by the frame's sections; a task
  given as content blocks reads ``User Request: Multi-modal task`` and its blocks follow the
  context block.
* ``Graph`` (``strands.multiagent.graph.Graph._build_node_input``): a node with dependencies
  gets a block ``Original Task: <task>`` (or ``Original Task:`` and the task's blocks), then
  ``\\nInputs from previous nodes:`` and the other nodes' outputs. An entry node gets the task
  itself, as an agent called directly.

A user writing such a frame himself only chooses his own query: the scope (whose memories are
searched) comes from the verified identity, never from the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from memory.pipeline.summarizer import transcript_from_messages
from memory.plugin.recall_tool import MAX_QUERY_CHARS

__all__ = ["retrieval_query"]

_SWARM_SECTIONS = (
    "Previous agents who worked on this: ",
    "Shared knowledge from previous agents:",
    "Other agents available for collaboration:",
    "You have access to swarm coordination tools",
)
_SWARM_REQUEST = re.compile(
    r"\AContext:\n(?:Handoff Message: .*?\n\n)?User Request: (?P<task>.*?)\n\n(?=" + "|".join(map(re.escape, _SWARM_SECTIONS)) + r")",
    re.DOTALL,
)
_SWARM_MULTI_MODAL = "Multi-modal task"
_GRAPH_TASK = "Original Task:"
_GRAPH_INPUTS = "\nInputs from previous nodes:"


def retrieval_query(messages: Sequence[Any] | None) -> str:
    """The query of a conversation's first turn: its user text, or the request a multi-agent
    framework framed (see the module docstring), bounded to ``MAX_QUERY_CHARS`` of the latest text."""
    blocks = _user_text_blocks(messages)
    request = _framed_request(blocks)
    if request is not None:
        return request[-MAX_QUERY_CHARS:]
    turns = transcript_from_messages(list(messages or []))
    return " ".join(t["text"] for t in turns if t["role"] == "user")[-MAX_QUERY_CHARS:]


def _user_text_blocks(messages: Sequence[Any] | None) -> list[str]:
    """The text blocks of the user messages, in order (a framework's frame is plain text)."""
    texts: list[str] = []
    for message in messages or ():
        if isinstance(message, dict) and message.get("role") == "user":
            for block in message.get("content") or ():
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
    return texts


def _framed_request(blocks: list[str]) -> str | None:
    """The user's request inside a Swarm or Graph node input ("" when the task has no text, e.g.
    images only: nothing to search by, never the frame instead), or None for any other input."""
    if not blocks:
        return None
    swarm = _SWARM_REQUEST.match(blocks[0])
    if swarm is not None:
        task = swarm.group("task").strip()
        return " ".join(blocks[1:]).strip() if task == _SWARM_MULTI_MODAL else task
    if blocks[0].startswith(_GRAPH_TASK) and _GRAPH_INPUTS in blocks[1:]:
        end = blocks.index(_GRAPH_INPUTS)
        return " ".join([blocks[0][len(_GRAPH_TASK):], *blocks[1:end]]).strip()
    return None
