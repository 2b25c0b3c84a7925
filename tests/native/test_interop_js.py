"""Interop with the reference implementation, `@automerge/automerge` (JS, pinned in js/package.json).

Our binding and the JS library must read each other's saved documents and changes and agree
on heads, and the two must converge over the sync protocol. The node scripts in js/ exchange
documents through temp files and sync messages as hex lines on stdin/stdout.
JS counts text positions in UTF-16 units and we count code points, so the texts here are ASCII.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

import native
from native import ROOT, Document, SyncState

JS_DIR = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
NODE_TIMEOUT_S = 60
MAX_SYNC_ROUNDS = 20

pytestmark = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "@automerge" / "automerge").is_dir(),
    reason="needs node and the JS reference Automerge: run npm ci in tests/native/js",
)


def run_node(script: str, *args: str | Path) -> dict[str, Any]:
    """Run a js/ script to completion and return the JSON it prints."""
    done = subprocess.run(
        [NODE, script, *map(str, args)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
    )
    if done.returncode != 0:
        pytest.fail(f"node {script} exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout)


def hex_heads(doc: Document) -> list[str]:
    return sorted(h.hex() for h in doc.heads())


def test_js_reads_a_document_saved_by_the_binding(tmp_path: Path) -> None:
    doc = Document(actor=bytes.fromhex("01" * 16))
    text = doc.put_object(ROOT, "text", "text")
    doc.splice_text(text, 0, 0, "Hello world")
    meta = doc.put_object(ROOT, "meta", "map")
    for key, value in {"count": 42, "ratio": 1.5, "done": False, "none": None, "title": "draft"}.items():
        doc.put(meta, key, value)
    doc.commit("first")
    doc.splice_text(text, 6, 5, "Python")
    doc.put(meta, "blob", b"\x00\xff")
    doc.commit("second")
    saved = tmp_path / "py.automerge"
    saved.write_bytes(doc.save())

    seen = run_node("read_doc.mjs", saved)

    assert sorted(seen["heads"]) == hex_heads(doc)
    assert seen["doc"]["text"] == doc.text(text) == "Hello Python"
    assert seen["doc"]["meta"] == {
        "count": 42, "ratio": 1.5, "done": False, "none": None, "title": "draft", "blob": {"bytes": "00ff"},
    }


@pytest.fixture(scope="module")
def js_made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A document two JS actors edited concurrently: its folder and what JS says about it."""
    out = tmp_path_factory.mktemp("js_made")
    return out, run_node("make_doc.mjs", out)


def assert_same_as_js(doc: Document, js: dict[str, Any]) -> None:
    text = doc.get(ROOT, "text")
    meta = doc.get(ROOT, "meta")
    assert isinstance(text, native.ObjectRef) and isinstance(meta, native.ObjectRef)
    assert hex_heads(doc) == sorted(js["heads"])
    assert doc.text(text.id) == js["doc"]["text"]
    assert doc.hydrate() == js["doc"]
    # Both actors set meta.title concurrently: the same winner, and both values kept.
    assert doc.get(meta.id, "title") == js["doc"]["meta"]["title"]
    assert sorted(doc.get_all(meta.id, "title")) == js["conflict_values"]


def test_js_scenario_is_a_real_concurrent_merge(js_made: tuple[Path, dict[str, Any]]) -> None:
    _, js = js_made
    assert js["doc"]["text"] == "Howdy world, from Bob!"
    assert len(js["heads"]) == 2
    assert len(js["conflict_values"]) == 2


def test_binding_loads_a_document_saved_by_js(js_made: tuple[Path, dict[str, Any]]) -> None:
    out, js = js_made
    assert_same_as_js(Document.load((out / "doc.automerge").read_bytes()), js)


def test_binding_applies_changes_made_by_js(js_made: tuple[Path, dict[str, Any]]) -> None:
    out, js = js_made
    changes = [bytes.fromhex(c) for c in json.loads((out / "changes.json").read_text())]
    assert {native.decode_change(c).actor.hex() for c in changes} == {"aa" * 16, "bb" * 16}
    doc = Document()
    doc.apply_changes(changes[::-1])  # out of order on purpose: Automerge queues until deps arrive
    assert doc.get_missing_deps() == []
    assert_same_as_js(doc, js)


class JsSyncPeer:
    """A node process speaking the sync protocol, one hex message per line each way.

    A watchdog kills it after NODE_TIMEOUT_S, so a hung peer fails the test instead of blocking it.
    """

    def __init__(self, doc_file: Path, actor: bytes, text_key: str, insert: str) -> None:
        self.process = subprocess.Popen(
            [NODE, "sync_peer.mjs", str(doc_file), actor.hex(), text_key, insert],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.watchdog = threading.Timer(NODE_TIMEOUT_S, self.process.kill)
        self.watchdog.start()

    def __enter__(self) -> JsSyncPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def exchange(self, message: bytes | None) -> dict[str, Any]:
        """Hand the peer our message (or none); return its reply and current state."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((message.hex() if message is not None else "-") + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            pytest.fail(f"the JS sync peer died or hung:\n{self.close()}")
        return json.loads(line)

    def close(self) -> str:
        """End the peer (closing its stdin ends its loop); return what it wrote to stderr."""
        self.watchdog.cancel()
        if self.process.returncode is not None:
            return ""
        try:
            _, stderr = self.process.communicate(timeout=NODE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


def test_sync_protocol_with_js_converges(tmp_path: Path) -> None:
    base = Document(actor=bytes.fromhex("01" * 16))
    text = base.put_object(ROOT, "text", "text")
    base.splice_text(text, 0, 0, "shared base.")
    base.commit()
    base_file = tmp_path / "base.automerge"
    base_file.write_bytes(base.save())

    ours = base.fork(actor=bytes.fromhex("02" * 16))
    ours.splice_text(text, 0, 0, "PY ")
    ours.commit()
    for i in range(3):  # several changes, so the peers have a real gap to negotiate
        ours.splice_text(text, ours.length(text), 0, f" py{i}")
        ours.commit()

    state = SyncState()
    changes_from_js = 0
    with JsSyncPeer(base_file, bytes.fromhex("03" * 16), "text", " from JS") as peer:
        for _ in range(MAX_SYNC_ROUNDS):
            message = ours.generate_sync_message(state)
            reply = peer.exchange(message)
            if reply["message"] is not None:
                received = bytes.fromhex(reply["message"])
                changes_from_js += len(native.decode_sync_message(received).changes)
                ours.receive_sync_message(state, received)
            if message is None and reply["message"] is None:
                break
        else:
            pytest.fail(f"no convergence after {MAX_SYNC_ROUNDS} sync rounds")

    assert changes_from_js == 1  # the JS peer's one change, sent once
    assert hex_heads(ours) == sorted(reply["heads"])
    assert ours.text(text) == reply["doc"]["text"]
    assert sorted(ours.text(text).split()) == sorted("PY shared base. py0 py1 py2 from JS".split())
    assert len(ours.heads()) == 2  # one head per side: the merge really was concurrent
