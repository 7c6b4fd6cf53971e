"""``MemoryPlugin``: a Strands plugin giving one named agent long-term, per-user memory.

Wiring (one plugin instance per agent; the agent needs a stable unique ``name``)::

    plugin = MemoryPlugin(store, pipeline=pipeline)
    agent = Agent(name="orchestrator", system_prompt="... {memory_context} ...", plugins=[plugin])
    agent(prompt, invocation_state=Invocation(user_id, session_id, tenant_id).to_state())

* Identity comes only from ``invocation_state`` (filled by the app from a verified token),
  parsed by ``memory.plugin.invocation`` (keys, the seed's ``tenant_context`` dict). A turn
  without ``user_id`` or ``conversation_id`` runs without memory, with a warning; there is no
  default user. Malformed identity (e.g. a tenant dict without a valid ``tenantId``, no tenant
  for a ``MultiTenantStore``, another tenant than a tenant-pinned ``SingleTenantStore``'s) fails
  the turn with ``InvalidInvocationState`` before the model runs: never a silent memory-off. A
  user id too long to be stored under this agent's name (``scoping.check_storable_identity``:
  S3 Vectors' 2 KB of filterable metadata) fails it the same way, with ``IdentityTooLong``.
* The first turn of a conversation retrieves the top-k memories (this user, this agent; one per
  past conversation, hybrid-ranked by the store; ``min_score`` None uses the embedder's
  calibrated floor) and fills ``{memory_context}`` in the agent's base system prompt with a
  fenced block (``memory.plugin.context_block``), each memory with its conversation's date.
  The query is all user text of that first invocation, not only its last message (a client
  may send earlier context along), bounded to ``MAX_QUERY_CHARS`` of the latest text; in a
  Swarm or Graph node, the user's request inside the framework's frame
  (``memory.plugin.query``). The
  block is re-applied on every turn of that conversation. Without the placeholder the block
  is appended as a text block of its own (warning once); without memories the placeholder is
  removed, and a text block left empty with it (Bedrock refuses one). The base prompt is
  the agent's system prompt when the plugin binds to it, or the one the caller sets between
  turns (a conversation's block in either, e.g. an edit of the prompt read back or an agent
  built with another's prompt, counts as the placeholder, so it appears once and is not carried
  into the next conversation). It is kept
  as Strands content blocks: only the text block holding the placeholder is filled, so a
  ``cachePoint`` and the blocks other plugins add (``AgentSkills``) stay apart.
* Retrieval failures degrade to no memory: a warning and ``metrics["retrieval_failures"]``; so
  does a retrieval still running after ``retrieval_timeout`` (``memory.plugin.deadline``).
* The recall tool (``memory.plugin.recall_tool.RECALL_TOOL_NAME``) is registered with the agent
  through the public ``Plugin.tools`` property (``recall_tool=False`` leaves it out).
* The plugin keeps the full text transcript (every message added, whatever the conversation
  manager later trims, as it reads at the end of the turn: a user message the model's
  guardrail redacted is recorded redacted), except user-role text Strands adds once the model
  has been called in the turn (its structured-output prompt, steering guidance, also on an
  answer a steering handler discarded, the input of a
  pass a hook resumes the call with, e.g. GoalLoop's feedback): the user's words are the
  turn's input (all of it, e.g. a message list that carries earlier context with an
  assistant message).
  ``end_session: True`` in ``invocation_state`` or ``end_conversation()`` (idle timer,
  shutdown) hands it to the ``SummaryPipeline`` in the background (the outbox write runs off
  the event loop). Each conversation gets a unique start marker when its first
  turn is seen; it is part of the summary key, so a conversation id reused later (a session id
  after a restart) stores a second memory instead of overwriting the first.
* One agent may serve many users, one turn at a time (an agent Strands lets run turns at
  once, ``concurrent_invocation_mode="unsafe_reentrant"``, is refused): a turn of another
  conversation (another identity or conversation id, or none: a turn without identity) ends
  the current one, and an agent whose
  last turn was of another conversation (agents sharing one plugin: whichever conversation
  that was) has its ``agent.messages`` cleared before the model runs, so no turn sees another
  conversation's history (it comes back only as memories); with ``keep_initial_messages`` they
  are reset to the messages it had when the plugin first saw it instead (few-shot
  ``Agent(messages=[...])`` examples: every conversation starts from them; they are no one's
  words, never in a transcript or summary). An agent built with a conversation's history keeps
  it for that conversation. ``agent.structured_output()`` (deprecated in Strands) is no turn: it reads
  the conversation as it is. Agents sharing one plugin (``S3VectorMemoryPlugin``) whose turns
  overlap in time: only the turn of the conversation opened last is recorded; the others are
  not (a warning, a metric).
* After every turn that does not end the conversation (and added to the transcript), the
  plugin queues a checkpoint: the same outbox entry, marked open, handed to
  ``SummaryPipeline.checkpoint``, which writes it in the background, coalesced per
  conversation (latest transcript wins). The turn does not wait for it: a process killed
  before the write loses the turns answered since the last written checkpoint (the loss
  window). ``end_session`` waits until the closed entry is durable.
* Erasure: when the pipeline finds the conversation covered by an erasure marker
  (``memory.pipeline.erasure``), the plugin drops its transcript and its injected memories
  (the next turns' prompt has none) and records nothing more of that conversation
  (``metrics["erased"]``), at its next turn (its first, for a marker read while that turn's
  memories were read) however many other conversations were erased or users' markers read
  meanwhile (``SummaryPipeline.watch_erasure``). A read-only plugin drops
  its injected memories likewise once the pipeline has read a marker covering its
  conversation (the orchestrator's checkpoints read them).
* ``summarize=False`` makes a read-only plugin (injection and recall, no transcript, no
  summary): for specialists called as tools, whose "user" is the orchestrator's model. Such a
  specialist stores nothing under its own name, so give it ``read_agent_name`` (the agent
  whose conversation it serves) to read that agent's memories.
* ``used_memory_ids`` lists the ids of memories injected and recalled in the current
  conversation (injected first); ``injected_memory_ids`` / ``recalled_memory_ids`` separately.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from strands import ToolContext
from strands.hooks import AfterInvocationEvent, BeforeInvocationEvent, BeforeModelCallEvent, MessageAddedEvent
from strands.plugins import Plugin, hook
from strands.tools.decorator import DecoratedFunctionTool
from strands.types.agent import ConcurrentInvocationMode

from memory import telemetry
from memory.pipeline.background import ErasureWatch, SummaryPipeline
from memory.plugin.deadline import DEFAULT_RETRIEVAL_TIMEOUT_SECONDS, check_timeout, within
from memory.plugin.context_block import PLACEHOLDER, fill_blocks, render_block, restore_placeholder
from memory.index.limits import validate_min_score, validate_top_k
from memory.keys import new_conversation_marker, summary_key
from memory.errors import error_reason
from memory.types import Memory, Scope
from memory.pipeline.outbox import OutboxEntry
from memory.stores.multi_tenant import MultiTenantStore
from memory.stores.protocol import MemoryBackend
from memory.stores.scoping import check_storable_identity
from memory.stores.single_tenant import SingleTenantStore
from memory.plugin.invocation import TENANT_CONTEXT, USER_ID, InvalidInvocationState, Invocation, read_invocation
from memory.plugin.query import retrieval_query
from memory.plugin.recall_tool import build_recall_tool
from memory.pipeline.summarizer import Turn, transcript_from_messages

if TYPE_CHECKING:
    from strands import Agent

logger = logging.getLogger(__name__)
_NEVER_SERVED = object()  # an agent this plugin has not served a turn of: its own history is kept

#: The name Strands gives an agent created without one; not unique, so refused. The SDK keeps it
#: in a private constant (``strands.agent.agent._DEFAULT_AGENT_NAME``), so it is repeated here;
#: tests/unit/memory/plugin/test_sdk_contract.py fails loudly if the SDK changes it.
SDK_DEFAULT_AGENT_NAME = "Strands Agents"


def check_agent_name(name: str | None) -> str:
    """An agent name memories can be stored under.

    Args:
        name: The agent's ``name``.

    Returns:
        ``name`` unchanged.

    Raises:
        ValueError: No name, a blank one, or the SDK's default (shared by every unnamed agent);
            ``IdentityTooLong`` (a ValueError) for a name too long to store memories under.
    """
    if not name or not name.strip() or name == SDK_DEFAULT_AGENT_NAME:
        raise ValueError(
            "MemoryPlugin needs an agent with an explicit, stable and unique name "
            f"(got {name!r}); memories are stored per agent name"
        )
    check_storable_identity("", name, agent_arg="agent name")
    return name


def _check_read_agent_name(name: str) -> str:
    """``name`` if memories can be stored under it (it names another agent, not this one)."""
    try:
        return check_agent_name(name)
    except ValueError as exc:
        raise ValueError(f"read_agent_name must name the agent whose memories are read: {exc}") from exc


def check_serial_turns(agent: "Agent") -> None:
    """Refuse an agent whose invocations Strands lets overlap.

    Args:
        agent: The agent the plugin is attached to.

    Raises:
        ValueError: ``concurrent_invocation_mode`` is not ``"throw"`` (e.g. ``"unsafe_reentrant"``):
            overlapping turns share ``agent.messages``, so one conversation's messages would be
            recorded in another's (and stored in another user's, or tenant's, memory).
    """
    if agent.concurrent_invocation_mode != ConcurrentInvocationMode.THROW:
        raise ValueError(
            f"MemoryPlugin needs agent {agent.name!r} with concurrent_invocation_mode='throw' (the default): "
            "overlapping turns share agent.messages, so one conversation would be recorded in another's memory"
        )


@dataclass
class _Conversation:
    invocation: Invocation
    opened: str = field(default_factory=new_conversation_marker)
    block: str = ""
    injected: list[str] = field(default_factory=list)
    recalled: list[str] = field(default_factory=list)
    transcript: list[Turn] = field(default_factory=list)
    ended_at_turns: int = -1  # transcript length when last handed to the pipeline
    written_at_turns: int = -1  # transcript length when last written (checkpoint or end)
    erased: bool = False  # covered by an erasure marker: nothing more is recorded
    ending: bool = False  # its end's outbox write is under way: checkpoints wait for it (``_end``)
    key: str = ""  # its summary key (= outbox entry id), computed once when it opens
    prompt: list[dict[str, Any]] | None = None  # the system prompt blocks with its block, from its first turn
    watch: ErasureWatch | None = None  # set once the pipeline reads a marker covering it


class MemoryPlugin(Plugin):
    """Injects relevant memories, offers the recall tool and summarizes finished conversations."""

    name = "memory"

    def __init__(
        self,
        store: MemoryBackend,
        *,
        pipeline: SummaryPipeline | None,
        summarize: bool = True,
        top_k: int = 5,
        min_score: float | None = None,
        recall_top_k_max: int = 10,
        recall_tool: bool = True,
        read_agent_name: str | None = None,
        keep_initial_messages: bool = False,
        retrieval_timeout: float | None = DEFAULT_RETRIEVAL_TIMEOUT_SECONDS,
    ) -> None:
        """Create the plugin of one agent.

        Args:
            store: Where memories are read (and, through ``pipeline``, written).
            pipeline: Summarizes ended conversations into ``store``; None stores nothing.
            summarize: False makes a read-only plugin (no transcript, no summary).
            top_k: How many memories are injected on a conversation's first turn.
            min_score: Cosine-similarity floor of injected and recalled memories (None: the
                store's, i.e. the embedder's calibrated floor).
            recall_top_k_max: Upper bound of the recall tool's ``top_k``.
            recall_tool: Whether the ``memory_tool`` recall tool is registered with the agent.
            read_agent_name: Whose memories are injected and recalled: the agent name they are
                stored under (default: this agent's own name). A read-only specialist serving
                another agent's conversation reads that agent's memories.
            keep_initial_messages: True: the messages an agent has when the plugin first sees it
                (few-shot ``Agent(messages=[...])`` examples) start every later conversation of
                that agent instead of being cleared with the rest of its history; never for an
                agent built with a user's history (a session manager's, a stored conversation's),
                which the next user would then see.
            retrieval_timeout: Seconds a first turn's retrieval or a recall may take before the
                turn goes on without memory (``memory.plugin.deadline``; None: no deadline, the
                clients' retries decide: about a minute when a backend hangs).

        Raises:
            ValidationError: ``top_k`` or ``recall_top_k_max`` outside 1-100 (no store accepts it),
                or ``min_score`` outside -1..1 (no memory would ever pass it).
            ValueError: ``read_agent_name`` is blank or the SDK's default agent name, or
                ``retrieval_timeout`` is 0 or less.
        """
        validate_top_k(recall_top_k_max, "recall_top_k_max")
        self.store = store
        self.pipeline = pipeline
        self.summarize = summarize
        self.top_k = validate_top_k(top_k)
        self.min_score = validate_min_score(min_score)
        self.retrieval_timeout = check_timeout(retrieval_timeout, "retrieval_timeout")
        self.metrics: Counter[str] = Counter()
        self._base: list[dict[str, Any]] = [{"text": ""}]  # the caller's system prompt blocks
        self.agent_name: str | None = None
        self.read_agent_name = None if read_agent_name is None else _check_read_agent_name(read_agent_name)
        self._lock = threading.RLock()  # the hooks take it on the event loop: never held for I/O
        self._end_lock = threading.Lock()  # one end at a time; its outbox write runs under it only
        self._conversation: _Conversation | None = None
        self._turn_active = False
        self._turn_agent: Any = None  # the agent of the active turn (agents may share the plugin)
        self._turn_call: Any = None  # its Strands call (one per agent call, shared by resumed passes)
        # the conversation each agent last served a turn of (its ``messages`` hold that one's history)
        self._served: weakref.WeakKeyDictionary[Any, Invocation | None] = weakref.WeakKeyDictionary()
        self._turn_ends = False  # the active turn carries ``end_session``
        self._answered = False  # the model was called in the active turn: later user text is Strands'
        self._turn_inputs: tuple[Any, ...] = ()  # the active turn's input messages (the caller's)
        self._turn_recorded: list[tuple[int, Any]] = []  # (transcript index, message) of the active turn
        self._placeholder_warned = False
        self._written: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # agent -> prompt set
        # agent -> the blocks that prompt was set from (a conversation's, kept for its every turn)
        self._written_from: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
        self._checked_identity: tuple[str | None, str] | None = None  # (tenant, user) that passed the checks
        self.keep_initial_messages = keep_initial_messages
        # agent -> the messages it had when first seen (few-shot examples): every conversation's start
        self._examples: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
        super().__init__()  # discovers @hook methods; needs the attributes above
        self._recall_tools: list[DecoratedFunctionTool] = []
        if recall_tool:
            self._recall_tools.append(
                build_recall_tool(
                    store,
                    self._recall_scope,
                    default_top_k=min(top_k, recall_top_k_max),
                    max_top_k=recall_top_k_max,
                    min_score=min_score,
                    on_recalled=self._on_recalled,
                    timeout=retrieval_timeout,
                )
            )

    @property
    def tools(self) -> list[DecoratedFunctionTool]:
        """The tools registered with the agent: the recall tool (unless ``recall_tool=False``)."""
        return list(self._recall_tools)

    # -- public accessors -------------------------------------------------------------------

    @property
    def base_prompt(self) -> str:
        """The text of the caller's system prompt, ``{memory_context}`` where the memories go."""
        with self._lock:
            return "\n".join(b["text"] for b in self._base if isinstance(b.get("text"), str))

    @property
    def injected_memory_ids(self) -> list[str]:
        """Ids of the memories injected into the current conversation's system prompt."""
        with self._lock:
            return list(self._conversation.injected) if self._conversation else []

    @property
    def recalled_memory_ids(self) -> list[str]:
        """Ids of the memories the recall tool returned in the current conversation."""
        with self._lock:
            return list(self._conversation.recalled) if self._conversation else []

    @property
    def used_memory_ids(self) -> list[str]:
        """Injected then recalled memory ids of the current conversation, without repeats."""
        return list(dict.fromkeys(self.injected_memory_ids + self.recalled_memory_ids))

    @property
    def opened(self) -> str | None:
        """The current conversation's start marker (part of its summary key), None before one."""
        with self._lock:
            return self._conversation.opened if self._conversation else None

    @property
    def transcript(self) -> list[Turn]:
        """The full text transcript of the current conversation (a copy)."""
        with self._lock:
            return list(self._conversation.transcript) if self._conversation else []

    # -- Strands plugin API -----------------------------------------------------------------

    def init_agent(self, agent: "Agent") -> None:
        """Bind to ``agent``; refuse agents without a stable unique name, or whose turns may overlap."""
        check_agent_name(agent.name)
        check_serial_turns(agent)
        if self.agent_name is not None:
            raise ValueError("a MemoryPlugin instance serves exactly one agent; create one per agent")
        self.agent_name = agent.name
        # a prompt read back from another agent holds its conversation's block: the placeholder
        self._base = restore_placeholder(copy.deepcopy(agent.system_prompt_content) or [{"text": ""}])

    @hook
    async def _before_invocation(self, event: BeforeInvocationEvent) -> None:
        if event.messages is None:
            # ``agent.structured_output()`` (no invocation_state, no input): it reads the
            # conversation so far and adds nothing to it; not a turn of another conversation
            return
        self._adopt_callers_prompt(event.agent)
        with self._lock:
            if self.keep_initial_messages and event.agent not in self._examples:  # first seen
                self._examples[event.agent] = copy.deepcopy(list(event.agent.messages))
        try:
            invocation = self._read_invocation(event.invocation_state)
            if invocation is not None:
                self._check_identity(invocation)
        except Exception:
            with self._lock:
                self.metrics["identity_invalid"] += 1
                if self._turn_agent is event.agent:
                    self._turn_active = False
            raise  # a malformed identity fails the turn, never a silent memory-off
        if invocation is None:
            with self._lock:
                self.metrics["identity_missing"] += 1
                served = self._turn_agent is event.agent
                if served:
                    self._turn_active = False
                left = self._conversation if served else None
                foreign = self._served.get(event.agent) is not None  # it served a conversation
                self._served[event.agent] = None  # its history is now an anonymous one
            logger.warning("agent=%s turn without a verified identity: running without memory", self.agent_name)
            self._set_prompt(event.agent, fill_blocks(self._base, "")[0])
            if foreign:  # another (anonymous) conversation: the history is not its own
                self._reset_history(event.agent)
            if left is not None:
                await asyncio.to_thread(self._leave, left)
            return
        with self._lock:
            current = self._conversation
            continuing = current is not None and current.invocation.same_conversation(invocation)
            # the agent's history is that of the conversation it last served (agents sharing this
            # plugin: not necessarily the current one; None: a turn without identity)
            served = self._served.get(event.agent, _NEVER_SERVED)
            self._served[event.agent] = invocation
        if served is not _NEVER_SERVED and (served is None or not served.same_conversation(invocation)):
            # reset before the await: if this turn is cancelled while the thread below opens the
            # new conversation, the retried turn continues that one and must not see the old history
            self._reset_history(event.agent)
        if not continuing:
            # retrieval (embedding, network) and ending a previous conversation (outbox fsync)
            # run off the event loop
            await asyncio.to_thread(self._open, invocation, retrieval_query(event.messages))
        with self._lock:
            conversation = self._conversation
            overlapping = conversation is None or not conversation.invocation.same_conversation(invocation)
            if overlapping:  # another agent sharing this plugin opened its conversation meanwhile
                self.metrics["overlapping_turns"] += 1
                if self._turn_agent is event.agent:
                    self._turn_active = False
            else:
                assert conversation is not None
                # a hook resuming the agent (``AfterInvocationEvent.resume``, e.g. GoalLoop's
                # feedback) runs another pass of the same call: its input is not the user's
                call = event.agent.event_loop_metrics.latest_agent_invocation
                resumed = continuing and event.agent is self._turn_agent and call is self._turn_call
                self._turn_active, self._turn_ends = True, invocation.end_session
                self._turn_agent, self._turn_call = event.agent, call
                self._answered = resumed
                self._turn_inputs = () if resumed else tuple(event.messages or ())
                self._turn_recorded = []
                # by the checkpoint writer meanwhile, or while a new one's memories were read
                if self._found_erased(conversation):
                    self._drop_erased(conversation)
                if conversation.prompt is None:  # the block is kept for the whole conversation
                    conversation.prompt = self._render_prompt(conversation.block)
                prompt = conversation.prompt
        if overlapping:
            logger.warning("agent=%s turn overlapping another conversation's: running without memory", self.agent_name)
            prompt = fill_blocks(self._base, "")[0]
        self._set_prompt(event.agent, prompt)

    @hook
    def _message_added(self, event: MessageAddedEvent) -> None:
        if not self.summarize:
            return
        with self._lock:
            if event.agent is not self._turn_agent:  # another agent's turn overlapping the active one
                if self._turn_active:
                    self.metrics["overlapping_messages_dropped"] += 1
                    logger.warning("agent=%s message of an overlapping turn not recorded", self.agent_name)
                return
            role = event.message.get("role")
            if not any(event.message is m for m in self._turn_inputs):  # an input's roles are the caller's
                if self._answered and role == "user":
                    return  # added by Strands mid-turn (structured-output prompt, steering guidance)
            if self._turn_active and self._conversation is not None and not self._conversation.erased:
                turns = transcript_from_messages([event.message])  # one turn at most
                if turns:
                    self._turn_recorded.append((len(self._conversation.transcript), event.message))
                    self._conversation.transcript.extend(turns)

    @hook
    def _before_model_call(self, event: BeforeModelCallEvent) -> None:
        # the turn's input is all in before the first model call; user text added after it is
        # Strands', also when a hook discards the answer (steering's Guide retries the call)
        if self.summarize:
            with self._lock:
                if event.agent is self._turn_agent:
                    self._answered = True

    @hook
    async def _after_invocation(self, event: AfterInvocationEvent) -> None:
        with self._lock:
            if event.agent is not self._turn_agent:
                return  # a turn another conversation took over (agents sharing this plugin)
            active, self._turn_active = self._turn_active, False
            conversation = self._conversation
            if active and conversation is not None:
                self._reread_turn_locked(conversation)
        if not active or conversation is None:
            return  # no verified identity: the turn ran without memory
        if self._turn_ends:  # parsed before the turn
            await asyncio.to_thread(self._end_quietly, conversation)  # the outbox write is durable I/O
        else:
            self._checkpoint_quietly(conversation)  # only queued: written in the background

    def end_conversation(self) -> str | None:
        """Hand the current conversation to the summary pipeline; returns the outbox entry id.

        Uses the identity and start marker bound on the conversation's first turn. Returns None
        when there is nothing (new) to summarize, no pipeline or ``summarize=False``; calling it
        again after the conversation went on re-submits the whole, longer transcript under the
        same key. Never blocks on the summary itself; raises if the outbox cannot be written.
        """
        with self._lock:
            conversation = self._conversation
        return None if conversation is None else self._end(conversation)

    # -- internals --------------------------------------------------------------------------

    def _open(self, invocation: Invocation, prompt: str) -> None:
        """Start a conversation (ending the previous one): called from a worker thread."""
        # Started before its memories are read: an erasure whose second marker (``erase``) is
        # later covers it, whatever it was given; one whose second marker is earlier had
        # already deleted what it erased.
        opened = new_conversation_marker()
        assert self.agent_name is not None
        watch = None  # watched from its start: a marker read while its memories are read counts too
        if self.pipeline is not None:
            watch = self.pipeline.watch_erasure(OutboxEntry(
                tenant_id=invocation.tenant_id, user_id=invocation.user_id, agent_name=self.agent_name,
                conversation_id=invocation.conversation_id, transcript=[], opened=opened, open=True,
            ))  # fmt: skip
        memories = self._retrieve(self._scope(invocation), prompt) if prompt else []
        conversation = _Conversation(
            invocation, opened=opened, block=render_block(memories), injected=[m.id for m in memories], watch=watch
        )
        conversation.key = summary_key(
            invocation.tenant_id, invocation.user_id, self.agent_name, invocation.conversation_id, conversation.opened
        )
        with self._lock:
            previous, self._conversation = self._conversation, conversation
            self.metrics["conversations"] += 1
            self.metrics["injected"] += len(memories)
        if previous is not None:
            self._end_quietly(previous)
        logger.debug("agent=%s conversation started with %d memories", self.agent_name, len(memories))

    def _adopt_callers_prompt(self, agent: Any) -> None:
        """A system prompt the caller set since the plugin last set one becomes the base prompt; a
        memory block in it (an edit of a prompt as the plugin left it, maybe in an earlier
        conversation) turns back into the placeholder, so the conversation's own block appears
        once and no block outlives its conversation."""
        current = agent.system_prompt_content or [{"text": ""}]
        with self._lock:
            if current == self._written.get(agent, self._base):
                return
            self._base = restore_placeholder(current)
            if self._conversation is not None:
                self._conversation.prompt = None  # rendered again from the new base
        logger.debug("agent=%s system prompt changed by the caller: new base prompt", self.agent_name)

    def _reset_history(self, agent: Any) -> None:
        """Give ``agent`` the history it was built with (e.g. few-shot examples) and nothing of the
        conversation it served before."""
        with self._lock:
            agent.messages[:] = copy.deepcopy(self._examples.get(agent, []))

    def _set_prompt(self, agent: Any, prompt: list[dict[str, Any]]) -> None:
        with self._lock:
            if self._written_from.get(agent) is prompt and self._holds_written(agent):
                return  # set from these blocks and unchanged since: a later turn of the conversation
            agent.system_prompt = [dict(b) for b in prompt] or None  # no blocks: no system prompt, as Strands sends
            # blocks may be edited in place; read back as ``_adopt_callers_prompt`` reads them
            self._written[agent] = copy.deepcopy(agent.system_prompt_content or [{"text": ""}])
            self._written_from[agent] = prompt

    def _holds_written(self, agent: Any) -> bool:
        """Whether ``agent``'s system prompt is still the one the plugin last set (``_written``)."""
        return (agent.system_prompt_content or [{"text": ""}]) == self._written.get(agent)

    def _leave(self, conversation: _Conversation) -> None:
        """End ``conversation`` and leave none current (a turn without identity took the agent
        over): called from a worker thread."""
        with self._lock:
            if self._conversation is conversation:
                self._conversation = None
        self._end_quietly(conversation)

    def _read_invocation(self, state: Any) -> Invocation | None:
        """The verified identity of a turn or tool call (``read_invocation``)."""
        return read_invocation(state)

    def _check_identity(self, invocation: Invocation) -> None:
        """``_check_tenant`` and ``_check_user``, except for the identity that passed them last:
        they depend on nothing else (the store and agent name are fixed), and every turn of a
        conversation names the same one."""
        identity = (invocation.tenant_id, invocation.user_id)
        if identity == self._checked_identity:
            return
        self._check_tenant(invocation.tenant_id)
        self._check_user(invocation.user_id)
        self._checked_identity = identity

    def _check_tenant(self, tenant_id: str | None) -> None:
        """InvalidInvocationState when the store cannot serve ``tenant_id`` (before the model runs):
        a single-tenant store refuses every scope naming another tenant than its own, including
        any tenant when it serves none, which would otherwise fail every retrieval and summary."""
        if tenant_id is None and isinstance(self.store, MultiTenantStore):
            raise InvalidInvocationState(f"invocation_state[{TENANT_CONTEXT!r}] is required: one index per tenant")
        if isinstance(self.store, SingleTenantStore) and tenant_id not in (None, self.store.tenant_id):
            served = "serves no tenant" if self.store.tenant_id is None else "serves another tenant"
            raise InvalidInvocationState(f"invocation_state[{TENANT_CONTEXT!r}] names a tenant; the store {served}")

    def _check_user(self, user_id: str) -> None:
        """IdentityTooLong when no memory of ``user_id`` could be stored (before the model runs:
        the conversation is never accepted, then dead-lettered)."""
        agent_name = self.agent_name if self.summarize else self._scope_agent_name()
        check_storable_identity(user_id, agent_name, user_arg=f"invocation_state[{USER_ID!r}]")

    def _retrieve(self, scope: Scope, prompt: str) -> list[Memory]:
        def read() -> list[Memory]:
            return list(self.store.retrieve(scope, prompt, top_k=self.top_k, min_score=self.min_score))

        try:
            with telemetry.retrieval("inject", scope, **{"memory.top_k": self.top_k}) as found:
                return found(within(self.retrieval_timeout, read))
        except Exception as exc:
            with self._lock:
                self.metrics["retrieval_failures"] += 1
            logger.warning(
                "agent=%s memory retrieval failed (%s); answering without memory",
                self.agent_name,
                error_reason(exc),
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            return []

    def _render_prompt(self, block: str) -> list[dict[str, Any]]:
        prompt, had_placeholder = fill_blocks(self._base, block)
        if block and not had_placeholder and not self._placeholder_warned:
            self._placeholder_warned = True
            logger.warning(
                "agent=%s system prompt has no %s placeholder; memories appended at the end",
                self.agent_name,
                PLACEHOLDER,
            )
        return prompt

    def _reread_turn_locked(self, conversation: _Conversation) -> None:
        """Re-read the turn's recorded messages: Strands rewrites one after it was added when the
        model's guardrail redacts the user's input (``redactContent``), and only the redacted
        text may be stored."""
        recorded, self._turn_recorded = self._turn_recorded, []
        if conversation.erased:
            return
        for index, message in reversed(recorded):
            if index < len(conversation.transcript):
                conversation.transcript[index : index + 1] = transcript_from_messages([message])

    def _end_quietly(self, conversation: _Conversation) -> None:
        """End from a hook: an outbox failure is logged and counted, the user's turn goes on."""
        try:
            self._end(conversation)
        except Exception as exc:
            with self._lock:
                self.metrics["end_failures"] += 1
            logger.error("agent=%s could not record the finished conversation: %s", self.agent_name, error_reason(exc))

    def _checkpoint_quietly(self, conversation: _Conversation) -> None:
        """Queue a checkpoint from a hook (no I/O): the turn never waits for it."""
        with self._lock:
            turns = len(conversation.transcript)
            if not self.summarize or self.pipeline is None or turns == conversation.written_at_turns:
                return  # nothing new since the last write
            if conversation.ending:
                return  # queued by the end once its closed entry is written, never before it
            if not any(t["role"] == "user" for t in conversation.transcript):
                return
            entry = self._entry(conversation, open=True)
            # named only for a span that records: a user's pseudonym is an HMAC, on every turn
            attributes = self._attributes(conversation) if telemetry.recording() else None
            try:
                with telemetry.span("memory.checkpoint", attributes):
                    queued = self.pipeline.checkpoint(entry) is not None
                    # None: erased, or the pipeline shut down (the closed entry still gets written)
                    erased = not queued and self.pipeline.is_erased(entry.tenant_id, entry.entry_id)
            except Exception as exc:
                self.metrics["checkpoint_failures"] += 1
                logger.error("agent=%s could not checkpoint the conversation: %s", self.agent_name, error_reason(exc))
                return
            if erased:
                self._drop_erased(conversation)
            if not queued:
                return
            conversation.written_at_turns = turns
            self.metrics["checkpoints"] += 1

    def _found_erased(self, conversation: _Conversation) -> bool:
        """Whether the pipeline has read a marker covering this live conversation (no I/O; for a
        read-only plugin too, whose conversation has no checkpoints: its user's other ones, e.g.
        the orchestrator's in the same session, read the markers)."""
        return not conversation.erased and conversation.watch is not None and conversation.watch.found

    def _drop_erased(self, conversation: _Conversation) -> None:
        conversation.transcript.clear()
        conversation.erased = True
        conversation.ended_at_turns = conversation.written_at_turns = 0
        # what was injected may be what was erased: the next turns go without it
        conversation.block, conversation.prompt = "", None
        conversation.injected.clear()
        conversation.recalled.clear()
        self.metrics["erased"] += 1
        logger.info("agent=%s conversation erased: its transcript is dropped", self.agent_name)

    def _end(self, conversation: _Conversation) -> str | None:
        """Hand ``conversation`` to the pipeline if it has anything new; raises what the outbox write
        raised. The write (durable I/O) runs under ``_end_lock`` only, never the lock the turns'
        hooks take on the event loop; the conversation's next end hands over a turn answered
        meanwhile.

        That turn's checkpoint is queued only once the closed entry is written (or failed): the
        closed entry holds the transcript as it was before the write, under the same outbox key.
        Queued at once, the checkpoint writer could write it first and the shorter closed entry
        would then replace it: a turn the outbox held would be in no entry until the next
        checkpoint or end (a crash then loses it). Deferred, the outbox never goes from holding a
        turn to not holding it; the turn waits one outbox write longer for its checkpoint, within
        the loss window every turn has until the writer writes its checkpoint.
        """
        with self._end_lock:
            with self._lock:
                if not self.summarize or len(conversation.transcript) == conversation.ended_at_turns:
                    return None  # already handed over, nothing new since
                if not any(t["role"] == "user" for t in conversation.transcript):
                    return None
                if self.pipeline is None:
                    logger.warning("agent=%s has no summary pipeline; conversation not summarized", self.agent_name)
                    return None
                pipeline, entry, attributes = self.pipeline, self._entry(conversation), self._attributes(conversation)
                conversation.ending = True
            try:
                return self._hand_over(conversation, pipeline, entry, attributes)
            finally:
                with self._lock:
                    conversation.ending = False
                    went_on = len(conversation.transcript) > len(entry.transcript)
                if went_on:
                    self._checkpoint_quietly(conversation)

    def _hand_over(
        self, conversation: _Conversation, pipeline: SummaryPipeline, entry: OutboxEntry, attributes: dict[str, Any]
    ) -> str | None:
        """``_end``'s outbox write of ``entry`` (the closed entry) and its bookkeeping."""
        with telemetry.span("memory.conversation.end", attributes):
            entry_id = pipeline.end_conversation(entry)
        with self._lock:
            if entry_id is None:  # covered by an erasure marker
                self._drop_erased(conversation)
                return None
            if not conversation.erased:
                turns = len(entry.transcript)
                conversation.ended_at_turns = turns
                conversation.written_at_turns = max(conversation.written_at_turns, turns)
            self.metrics["conversations_ended"] += 1
        return entry_id

    def _entry(self, conversation: _Conversation, *, open: bool = False) -> OutboxEntry:
        """The conversation's outbox entry with its transcript so far (closed unless ``open``)."""
        inv = conversation.invocation
        assert self.agent_name is not None
        return OutboxEntry(
            tenant_id=inv.tenant_id,
            user_id=inv.user_id,
            agent_name=self.agent_name,
            conversation_id=inv.conversation_id,
            transcript=list(conversation.transcript),
            opened=conversation.opened,
            open=open,
            stored_key=conversation.key,
        )

    def _attributes(self, conversation: _Conversation) -> dict[str, Any]:
        inv = conversation.invocation
        return {
            **telemetry.identity_attributes(inv.tenant_id, inv.user_id, self.agent_name, inv.conversation_id),
            "memory.transcript.turns": len(conversation.transcript),
        }

    def _scope_agent_name(self) -> str | None:
        return self.read_agent_name or self.agent_name

    def _scope(self, invocation: Invocation) -> Scope:
        return Scope(user_id=invocation.user_id, tenant_id=invocation.tenant_id, agent_name=self._scope_agent_name())

    def _recall_scope(self, tool_context: ToolContext) -> Scope | None:
        invocation = self._read_invocation(tool_context.invocation_state)
        return None if invocation is None else self._scope(invocation)

    def _on_recalled(self, memories: Sequence[Memory]) -> None:
        with self._lock:
            self.metrics["recalled"] += len(memories)
            if self._conversation is not None and self._turn_active:
                self._conversation.recalled.extend(m.id for m in memories)
