"""Isolation under concurrency, through the real server: 50 tenants x 3 users, 16 at a time.

Every identity stores a distinctive secret (one conversation, ended), then asks for it in a
new conversation, first through injection and then through the recall tool. Every memory id
the server reports as used, and every secret visible in the echoed memory block, must be the
caller's own. The user ids repeat across tenants, so tenant isolation is tested on its own,
not only through distinct user ids.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from auth.dev_issuer import DevIssuer
from memory.pipeline.units import summary_key_of
from tests.e2e.server import SESSION_HEADER, AgentServer
from tests.hardening.conftest import memories_of, read_store

TENANTS = [f"tenant-stress-{n:02d}" for n in range(50)]
USERS = ["u0", "u1", "u2"]
WORKERS = 16
SECRET = re.compile(r"zq[0-9a-f]{16}")


def test_no_memory_leaks_across_tenants_or_users(server: AgentServer, issuer: DevIssuer) -> None:
    identities = [(tenant, user) for tenant in TENANTS for user in USERS]
    secrets = {identity: f"zq{uuid.uuid4().hex[:16]}" for identity in identities}
    owner_of_secret = {secret: identity for identity, secret in secrets.items()}
    tokens = {identity: issuer.mint(*identity) for identity in identities}

    with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=WORKERS)) as http:

        def call(identity: tuple[str, str], session: str, payload: dict) -> dict:
            headers = {"Authorization": f"Bearer {tokens[identity]}", SESSION_HEADER: session}
            response = http.post("/invocations", json=payload, headers=headers)
            assert response.status_code == 200, (identity, response.text)
            return response.json()

        def remember(identity: tuple[str, str]) -> None:
            session = f"stress-{uuid.uuid4()}"
            call(identity, session, {"prompt": f"My secret code is {secrets[identity]}."})
            assert call(identity, session, {"end_session": True})["session_ended"] is True

        def ask(identity: tuple[str, str]) -> tuple[list[str], list[str]]:
            session = f"stress-{uuid.uuid4()}"
            injected = call(identity, session, {"prompt": "What is my secret code?"})
            recalled = call(identity, session, {"prompt": "recall: my secret code"})
            texts = injected["answer"] + "\n" + recalled["answer"]
            return recalled["memories_used"], SECRET.findall(texts)

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(remember, identities))
        server.wait_idle(timeout=60)

        store = read_store(server.state_dir)
        own_ids = {}
        for identity in identities:
            memories = memories_of(store, *identity)
            assert len(memories) == 1 and secrets[identity] in memories[0].content, (identity, memories)
            own_ids[identity] = memories[0].id
        owner_of_id = {memory_id: identity for identity, memory_id in own_ids.items()}

        with ThreadPoolExecutor(WORKERS) as pool:
            results = dict(zip(identities, pool.map(ask, identities)))

    leaks = []
    for identity, (used_ids, seen_secrets) in results.items():
        conversations = [summary_key_of(i) for i in used_ids]  # a unit's key derives from its summary's
        leaks += [(identity, owner_of_id.get(c, c)) for c in conversations if c != own_ids[identity]]
        leaks += [(identity, owner_of_secret.get(s, s)) for s in seen_secrets if s != secrets[identity]]
    assert leaks == [], f"{len(leaks)} leaks, e.g. {leaks[:5]}"
    # The test would pass vacuously if nothing were retrieved: every identity must find its own.
    missing = [identity for identity, (used_ids, seen) in results.items()
               if {summary_key_of(i) for i in used_ids} != {own_ids[identity]} or secrets[identity] not in seen]
    assert missing == [], f"{len(missing)} identities did not get their own memory, e.g. {missing[:5]}"
    assert "Traceback" not in server.log()
