"""The README's main job: two replicas edit one file concurrently, sync, converge.

Alice and Bob each hold a replica of one document with a text file in it. They edit it at the
same time without talking, then run Automerge's sync protocol over an in-memory link until
neither has anything to say. Both end with the same heads, the same text, and a history that
names who wrote what.
"""

from __future__ import annotations

import hashlib
from typing import Any

import native

INITIAL_TEXT = "def greet(name):\n    return 'hello ' + name\n"


def _actor(name: str) -> bytes:
    """A stable 32-byte actor id per name (real peers use their Ed25519 public key)."""
    return hashlib.sha256(name.encode()).digest()


def _sync(left: native.Document, right: native.Document) -> int:
    """Run the sync protocol between two replicas until quiescent; return the message count."""
    left_state, right_state = native.SyncState(), native.SyncState()
    messages = 0
    while True:
        to_right = left.generate_sync_message(left_state)
        if to_right is not None:
            right.receive_sync_message(right_state, to_right)
        to_left = right.generate_sync_message(right_state)
        if to_left is not None:
            left.receive_sync_message(left_state, to_left)
        if to_right is None and to_left is None:
            return messages
        messages += (to_right is not None) + (to_left is not None)


def run() -> dict[str, Any]:
    authors = {_actor(name): name for name in ("alice", "bob")}
    alice = native.Document(_actor("alice"))
    text = alice.put_object(native.ROOT, "greet.py", "text")
    alice.splice_text(text, 0, 0, INITIAL_TEXT)
    alice.commit("alice: create greet.py", time=1_700_000_000)

    bob = alice.fork(_actor("bob"))
    alice.splice_text(text, len("def greet(name"), 0, ", punctuation='!'")
    alice.commit("alice: add punctuation parameter", time=1_700_000_060)
    bob_text = bob.text(text)
    bob.splice_text(text, bob_text.index("'hello '"), len("'hello '"), "'hi '")
    bob.commit("bob: friendlier greeting", time=1_700_000_075)

    messages = _sync(alice, bob)
    assert alice.heads() == bob.heads() and alice.text(text) == bob.text(text)
    history = [native.decode_change(raw) for raw in alice.get_changes()]
    return {
        "text": alice.text(text),
        "heads": [h.hex() for h in alice.heads()],
        "sync_messages": messages,
        "history": [
            {
                "hash": change.hash.hex(),
                "author": authors.get(change.actor, change.actor.hex()),
                "time": change.time,
                "message": change.message,
                "ops": change.op_count,
            }
            for change in history
        ],
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"converged after {result['sync_messages']} sync messages; merged greet.py:", ""]
    lines += ["    " + line for line in result["text"].splitlines()]
    lines += ["", "history:"]
    lines += [
        f"  {c['hash'][:12]}  {c['author']:<6} t={c['time']}  {c['message']}  ({c['ops']} ops)"
        for c in result["history"]
    ]
    return "\n".join(lines)
