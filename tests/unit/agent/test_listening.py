"""AGENT_PORT=0: the socket the app binds, and the line its starter reads back."""

from __future__ import annotations

import socket

from agent.listening import bind_free_port, listening_url


def test_a_free_port_is_bound_with_nodelay_that_accepted_connections_inherit() -> None:
    with bind_free_port("127.0.0.1") as (listener, url):
        host, port = listener.getsockname()
        assert url == f"http://127.0.0.1:{port}" and port > 0 and host == "127.0.0.1"
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            with accepted:  # what uvicorn's connections get (asyncio does not set it on an AF_UNIX-wrapped fd)
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_the_printed_line_is_read_back_and_nothing_else_is() -> None:
    log = "INFO starting\nagent: listening on http://127.0.0.1:41891\nINFO ready\n"
    assert listening_url(log) == "http://127.0.0.1:41891"
    assert listening_url("agent: listening on nothing\n") is None
    assert listening_url("INFO starting\n") is None
