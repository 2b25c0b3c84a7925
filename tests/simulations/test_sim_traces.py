"""Editing traces replayed by per-author editors: each change depends on exactly the version
its author saw, and the replay ends as the trace says.
"""

from __future__ import annotations

import hashlib

import native
from simulations.traces import GENESIS, Editor, load_trace, reference_text, text_of
from trace_data import needs_traces

pytestmark = needs_traces

alice, bob = (hashlib.sha256(name).digest() for name in (b"alice", b"bob"))


def test_a_sequential_trace_split_into_turns_replays_to_its_text():
    trace = load_trace("sequential/automerge-paper", 300, agents=2, edits_per_turn=40)
    assert {txn.agent for txn in trace.txns} == {0, 1}
    assert trace.txns[40].agent == 1 and trace.txns[40].parents == (39,)
    assert trace.expected is not None and len(trace.expected) > 100
    assert reference_text(trace, [alice, bob]) == trace.expected


def test_a_concurrent_change_depends_on_exactly_its_recorded_parents():
    trace = load_trace("concurrent/friendsforever", 60, agents=2, edits_per_turn=1)
    merge = next(i for i, txn in enumerate(trace.txns) if len(txn.parents) == 2)
    genesis = native.Document(alice)
    genesis.put_object(native.ROOT, "text", "text")
    genesis.commit(time=0)
    changes = {GENESIS: genesis.get_changes()[0]}
    editors = [Editor(trace, alice), Editor(trace, bob)]
    for index in range(merge + 1):
        changes[index] = editors[trace.txns[index].agent].type(index, changes.__getitem__, 0)
    deps = native.decode_change(changes[merge]).deps
    assert sorted(deps) == sorted(native.decode_change(changes[p]).hash for p in trace.txns[merge].parents)
    assert text_of(editors[trace.txns[merge].agent].document)
