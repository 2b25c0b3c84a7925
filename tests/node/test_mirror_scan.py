"""The folder mirror's first scan of a large folder: batches bounded by paths and by bytes, and
progress logged while it runs (node/mirror.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from node import mirror as mirror_module
from node.mirror import Mirror
from node.mirror_plan import Create, Ingest, Remove
from test_mirror_local import Node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path)
    yield node
    node.close()


def test_batches_are_cut_by_paths_and_by_the_bytes_they_create(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_module, "MIRROR_BATCH_PATHS", 3)
    monkeypatch.setattr(mirror_module, "MIRROR_BATCH_BYTES", 100)
    actions = [Create("a", "file"), Create("b", "file"), Remove("c", "file"), Ingest("d", ()), Create("e", "file"), Create("f", "file")]
    sizes = {"a": 60, "b": 60, "c": 10_000, "d": 10, "e": 0, "f": 500}
    batches = [list(batch) for batch in mirror_module._batches(actions, sizes)]
    assert batches == [actions[0:2], actions[2:5], actions[5:6]], "a+b reach 100 bytes; a removal holds none; then 3 paths"
    assert [list(batch) for batch in mirror_module._batches([], sizes)] == []


def test_a_long_first_scan_logs_its_progress_and_its_end(node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(mirror_module, "MIRROR_BATCH_PATHS", 7)
    monkeypatch.setattr(mirror_module, "MIRROR_PROGRESS_LOG_S", 0.0)  # every batch is "long"
    for i in range(30):
        path = node.folder / f"d{i % 3}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" * (i + 1))
    mirror = Mirror(node.services, node.space, node.folder)
    try:
        with caplog.at_level(logging.INFO, logger="node.mirror"):
            counts = mirror.scan(clean=True)
    finally:
        mirror.close()
    assert counts["Create"] == 33
    assert {path: node.ws.read(path) for path in (f"d{i % 3}/f{i}.txt" for i in range(30))} == {f"d{i % 3}/f{i}.txt": f"file {i}\n" * (i + 1) for i in range(30)}
    events = [(record.msg, getattr(record, "fields", {})) for record in caplog.records]
    progress = [fields["done"] for name, fields in events if name == "mirror.scan_progress"]
    assert progress == sorted(progress) and progress[-1] == 33 and len(progress) == 5, "one line per batch of 7 here"
    done = [fields for name, fields in events if name == "mirror.scan_done"]
    assert len(done) == 1 and done[0]["actions"] == 33 and done[0]["folder"] == node.folder
