"""A loopback stand-in for Bedrock Runtime: Nova text embeddings and a ConverseStream echo model.

For a server process that cannot be patched (the deploy rehearsal runs the app as another
user): point botocore at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``; requests are signed and
serialised by the real botocore client, and answered in the service's own wire formats
(JSON for ``InvokeModel``, ``application/vnd.amazon.eventstream`` for ``ConverseStream``).

- ``POST /model/<id>/invoke``: a Nova ``SINGLE_EMBEDDING`` request (checked) gets a
  deterministic bag-of-words vector of the requested dimension (shared words, similar vectors).
- ``POST /model/<id>/converse-stream``: a summarization request (system prompt carrying
  ``memory.summarizer.SUMMARY_MARKER``) waits until ``release_summaries`` is set, then answers
  the transcript's ``USER:`` lines; any other request answers ``ECHO: <last user text>``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from memory.pipeline.summarizer import SUMMARY_MARKER, USER_PREFIX


def bag_of_words_vector(text: str, dimension: int) -> list[float]:
    """A deterministic embedding: one bucket per word, so shared words make texts similar."""
    vector = np.zeros(dimension)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % dimension] += 1
    return vector.tolist()


def event_message(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (prelude, string headers, JSON payload, CRCs)."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")):
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def _text_stream(text: str) -> bytes:
    return b"".join(
        [
            event_message("messageStart", {"role": "assistant"}),
            event_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}),
            event_message("contentBlockStop", {"contentBlockIndex": 0}),
            event_message("messageStop", {"stopReason": "end_turn"}),
            event_message(
                "metadata",
                {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}},
            ),
        ]
    )


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        texts = [block["text"] for block in message.get("content", []) if "text" in block]
        if message.get("role") == "user" and texts:
            return " ".join(texts)
    return ""


class BedrockStandIn(ThreadingHTTPServer):
    """The stand-in on 127.0.0.1 (free port); records the requests it answered."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release_summaries = threading.Event()
        self.summaries_waiting = threading.Event()
        self.embedded: list[str] = []
        self.chats: list[str] = []
        self.errors: list[str] = []

    @property
    def url(self) -> str:
        """The value for ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> BedrockStandIn:
        threading.Thread(target=self.serve_forever, name="bedrock-standin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release_summaries.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: BedrockStandIn

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        try:
            if self.path.endswith("/invoke"):
                self._send(200, "application/json", json.dumps(self._embed(body)).encode())
            elif self.path.endswith("/converse-stream"):
                self._send(200, "application/vnd.amazon.eventstream", _text_stream(self._converse(body)))
            else:
                raise ValueError(f"unexpected path {self.path}")
        except (KeyError, ValueError, AssertionError) as exc:
            self.server.errors.append(f"{self.path}: {exc!r}")
            self._send(400, "application/json", json.dumps({"message": "bad request"}).encode(), "ValidationException")

    def _embed(self, body: dict[str, Any]) -> dict[str, Any]:
        assert body["schemaVersion"] == "nova-multimodal-embed-v1" and body["taskType"] == "SINGLE_EMBEDDING"
        single = body["singleEmbeddingParams"]
        text = single["text"]["value"]
        self.server.embedded.append(text)
        vector = bag_of_words_vector(text, int(single["embeddingDimension"]))
        return {"embeddings": [{"embeddingType": "TEXT", "embedding": vector}]}

    def _converse(self, body: dict[str, Any]) -> str:
        system = " ".join(block.get("text", "") for block in body.get("system", []))
        last = _last_user_text(body["messages"])
        if SUMMARY_MARKER in system:
            self.server.summaries_waiting.set()
            self.server.release_summaries.wait(timeout=60)
            lines = [line[len(USER_PREFIX) :].strip() for line in last.splitlines() if line.startswith(USER_PREFIX)]
            return " ".join(lines)
        self.server.chats.append(last)
        return f"ECHO: {last}"

    def _send(self, status: int, content_type: str, data: bytes, error: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass
