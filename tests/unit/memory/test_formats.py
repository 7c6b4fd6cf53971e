"""Golden values of every persisted format: summary keys, the outbox entry file, vector metadata.

These are literals on purpose. Summary keys name vectors already stored and outbox files
already written; if one of these tests fails, the format changed: ship a migration (or keep
reading the old format) and only then update the literal. Replay must use the key filed with an
entry, never a recomputed one, and an entry that cannot be matched is reported and kept.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from memory.embedders.local import LocalEmbedder
from memory.keys import summary_key
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.stores.single_tenant import SingleTenantStore
from memory.types import Scope

OPENED = "2025-01-02T03:04:05.678+00:00~0a1b2c3d"
KEY_4 = "sum-e4f9815c9e690d0b6bcea3b57d0a80c2276ab2942043714d2e74b9fa79c829e2"
KEY_5 = "sum-cdd196d8025dc5ccdaed295aefde09d7f4529de0461c36774d569f1ed64ea87d"


def test_summary_key_golden_values() -> None:
    assert summary_key("acme", "alice", "orchestrator", "conv-1") == KEY_4
    assert summary_key("acme", "alice", "orchestrator", "conv-1", OPENED) == KEY_5
    assert summary_key(None, "alice", None, "conv-1") == (
        "sum-2f708e704c6af3913ab423eedd5bab4c914222db5e157c0f1c47caa3c649bd08"
    )
    assert summary_key("acme", "alice", "", "conv-1", "") == (
        "sum-f14904b2e77338d08cb9946f2864bfffb5a208361609603beb0a3d73f67a46a8"
    )


GOLDEN_ENTRY = {
    "tenant_id": "acme",
    "user_id": "alice",
    "agent_name": "orchestrator",
    "conversation_id": "conv-1",
    "transcript": [{"role": "user", "text": "My budget is 2M."}, {"role": "assistant", "text": "Noted."}],
    "created_at": "2025-01-02T03:04:06.000000+00:00",
    "attempts": 0,
    "opened": OPENED,
    "open": False,
    "key": KEY_5,
}


def test_outbox_entry_file_golden_layout(outbox_dir: Path) -> None:
    entry = OutboxEntry(
        tenant_id="acme",
        user_id="alice",
        agent_name="orchestrator",
        conversation_id="conv-1",
        transcript=[{"role": "user", "text": "My budget is 2M."}, {"role": "assistant", "text": "Noted."}],
        created_at="2025-01-02T03:04:06.000000+00:00",
        opened=OPENED,
    )
    assert LocalOutbox(outbox_dir).put(entry) == KEY_5
    assert sorted(p.name for p in outbox_dir.iterdir()) == sorted([f"{KEY_5}.json", "claims", "dead", "erasures"])
    assert json.loads((outbox_dir / f"{KEY_5}.json").read_text(encoding="utf-8")) == GOLDEN_ENTRY


def test_stored_vector_metadata_golden_layout(tmp_path: Path) -> None:
    store = SingleTenantStore.for_local(root_dir=tmp_path, index_name="memory-acme", embedder=LocalEmbedder(), tenant_id="acme")
    before = int(time.time())
    store.store(Scope("alice", "acme", "orchestrator"), "My budget is 2M.", conversation_id="conv-1", key=KEY_5)
    (record,) = store.index.get([KEY_5])
    metadata = dict(record.metadata)
    assert before <= metadata.pop("stored_at_epoch") <= int(time.time())
    assert metadata == {
        "user_id": "alice",
        "agent_name": "orchestrator",
        "type": "summary",
        "content": "My budget is 2M.",
        "conversation_id": "conv-1",
    }


# -- replay of files written by earlier versions ----------------------------------------------


def _write(outbox_dir: Path, name: str, data: dict[str, Any]) -> None:
    outbox_dir.mkdir(parents=True, exist_ok=True)
    (outbox_dir / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def _replay(make_pipeline: Any, store: Any) -> int:
    pipeline = make_pipeline(store)
    replayed = pipeline.replay_pending()
    assert pipeline.wait(30)
    return replayed


def test_a_golden_entry_file_is_replayed_under_its_key(outbox_dir: Path, fake_store: Any, make_pipeline: Any) -> None:
    _write(outbox_dir, KEY_5, GOLDEN_ENTRY)
    assert _replay(make_pipeline, fake_store) == 1
    assert [(c["key"], c["content"], c["conversation_id"]) for c in fake_store.store_calls] == [
        (KEY_5, "My budget is 2M.", "conv-1")
    ]
    assert list(outbox_dir.glob("*.json")) == []


def test_an_entry_from_before_keys_markers_and_checkpoints_is_replayed(
    outbox_dir: Path, fake_store: Any, make_pipeline: Any
) -> None:
    legacy = {k: v for k, v in GOLDEN_ENTRY.items() if k not in ("key", "opened", "open")}
    _write(outbox_dir, KEY_4, legacy)
    assert _replay(make_pipeline, fake_store) == 1
    assert [c["key"] for c in fake_store.store_calls] == [KEY_4]
    assert list(outbox_dir.glob("*.json")) == []


@pytest.mark.parametrize("with_key_field", [True, False])
def test_replay_uses_the_key_filed_with_the_entry_not_a_recomputed_one(
    outbox_dir: Path, fake_store: Any, make_pipeline: Any, with_key_field: bool
) -> None:
    """An entry filed under a key of some other (older or newer) format is still stored under
    that key and removed: a key-format change cannot leave it pending forever."""
    other = "sum-" + "ab" * 32
    data = {**GOLDEN_ENTRY, "key": other} if with_key_field else {k: v for k, v in GOLDEN_ENTRY.items() if k != "key"}
    _write(outbox_dir, other, data)
    assert _replay(make_pipeline, fake_store) == 1
    assert [c["key"] for c in fake_store.store_calls] == [other]
    assert list(outbox_dir.glob("*.json")) == []


def test_an_entry_whose_key_disagrees_with_its_name_is_reported_and_kept(
    outbox_dir: Path, fake_store: Any, make_pipeline: Any, caplog: pytest.LogCaptureFixture
) -> None:
    name = "sum-" + "cd" * 32
    _write(outbox_dir, name, GOLDEN_ENTRY)  # names KEY_5 inside
    with caplog.at_level(logging.ERROR, logger="memory.pipeline.outbox"):
        assert _replay(make_pipeline, fake_store) == 0
    assert fake_store.store_calls == []
    assert [p.name for p in outbox_dir.glob("*.json")] == [f"{name}.json"]
    assert any(name in r.getMessage() for r in caplog.records)
