"""The S3 the tests run against keeps S3's promise the outbox claims rely on: of racing
``PutObject`` calls with ``If-None-Match: *`` on one key, exactly one succeeds
(``tests/support/moto_s3_atomic.py`` makes moto's check-then-write atomic)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from memory.aws import make_client

RACERS = 8
KEYS = 40


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so a check-then-write race shows."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_one_of_many_racing_conditional_puts_wins_each_key(frequent_switches: None) -> None:
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket="claims")
        client.put_object(Bucket="claims", Key="warm-up", Body=b"")  # moto loads its routes lazily, racily
        wins: list[str] = []
        refused: list[str] = []
        unexpected: list[BaseException] = []
        barrier = threading.Barrier(RACERS)

        def race(racer: int) -> None:
            barrier.wait()
            for n in range(KEYS):
                try:
                    client.put_object(Bucket="claims", Key=f"claim-{n}", Body=str(racer).encode(), IfNoneMatch="*")
                    wins.append(f"claim-{n}")
                except ClientError as exc:
                    if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                        unexpected.append(exc)
                    refused.append(f"claim-{n}")
                except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
                    unexpected.append(exc)

        threads = [threading.Thread(target=race, args=(r,)) for r in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert unexpected == []
        assert sorted(wins) == sorted(f"claim-{n}" for n in range(KEYS))  # each key won exactly once
        assert len(refused) == KEYS * (RACERS - 1)
