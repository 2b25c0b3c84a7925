"""The folder mirror's first scan of a large folder: batches bounded by paths and by bytes,
progress logged while it runs, and a daemon that answers its other clients meanwhile, with the
scan's progress in mirror.status (node/mirror.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import create_space, daemon
from mirror_helpers import connect_api
from node import mirror as mirror_module
from node.api_schema import schema
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


# Enough files that a first scan runs for a second or more here (~0.5 ms a file), far longer
# than the few milliseconds an API call takes: the test needs calls answered mid-scan.
COOPERATIVE_FILES = 3_000


def test_a_first_scan_lets_the_daemon_answer_other_calls_and_shows_its_progress(tmp_path: Path) -> None:
    home, folder = tmp_path / "home", tmp_path / "folder"
    create_space(home)
    for i in range(COOPERATIVE_FILES):
        path = folder / f"d{i % 30}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" * 20)
    with daemon(home) as running, connect_api(running) as api:
        api.call("mirror.start", folder=str(folder))
        seen: list[tuple[str, dict[str, Any]]] = []  # in the order the answers came
        while not seen or seen[-1][1]["state"] == "starting":
            seen.append(("node.status", api.call("node.status")))
            status = api.call("mirror.status")
            schema().check_result("mirror.status", status)
            seen.append(("mirror.status", status["mirrors"][0]))
        assert seen[-1][1]["state"] == "running", seen[-1]
        assert seen[-1][1]["files"] == COOPERATIVE_FILES and seen[-1][1]["scan"] is None
        def syncing(shown: dict[str, Any]) -> bool:
            return shown["state"] == "starting" and shown["scan"] is not None and shown["scan"]["phase"] == "sync"

        scans = [shown["scan"] for method, shown in seen if method == "mirror.status" and syncing(shown)]
        assert any(0 < scan["done"] < scan["total"] for scan in scans), f"no status showed the scan midway: {scans[-8:]}"
        assert any(method == "node.status" and syncing(seen[i - 1][1]) and syncing(seen[i + 1][1]) for i, (method, _) in enumerate(seen[:-1]) if i > 0), (
            "node.status was answered between two answers that show the scan's sync running"
        )
        assert {scan["total"] for scan in scans} == {COOPERATIVE_FILES + 30}, "one plan: every file and directory to create"
        assert [scan["done"] for scan in scans] == sorted(scan["done"] for scan in scans), "progress only goes forward"
