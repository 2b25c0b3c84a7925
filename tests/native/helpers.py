"""Shared scenario helpers for the native binding tests: actors, snapshots, exchange, corruption."""

from __future__ import annotations

import random
from collections.abc import Container, Iterable, Sequence
from typing import Any

from hypothesis import strategies as st

from native import ROOT, Document, SyncState, decode_change

ALICE, BOB, CAROL, DAVE, ERIN = b"alice", b"bob", b"carol", b"dave", b"erin"
ACTORS = (ALICE, BOB, CAROL, DAVE, ERIN)
MAX_SYNC_ROUNDS = 50


def shared_doc(actor: bytes = ALICE, text: str = "hello world") -> tuple[Document, str]:
    """A committed document with a root "text" object, so forks of it edit the same text."""
    doc = Document(actor)
    obj = doc.put_object(ROOT, "text", "text")
    doc.splice_text(obj, 0, 0, text)
    doc.commit("create text")
    return doc, obj


def snapshot(doc: Document) -> tuple[list[bytes], Any, bytes]:
    """Everything observable about a (committed) document, to assert a failed call changed nothing."""
    return doc.heads(), doc.hydrate(), doc.save()


def change_hashes(doc: Document) -> set[bytes]:
    """The hashes of every change the document holds."""
    return {decode_change(raw).hash for raw in doc.get_changes()}


def deliver_shuffled(doc: Document, changes: Sequence[bytes], rng: random.Random) -> None:
    """Apply `changes` in random order, in random batches, with some sent twice, as a gossiping network would."""
    parcel = list(changes)
    parcel += [rng.choice(parcel) for _ in range(len(parcel) // 2)]
    rng.shuffle(parcel)
    while parcel:
        cut = rng.randint(1, len(parcel))
        doc.apply_changes(parcel[:cut])
        del parcel[:cut]


def sync_pair(
    a: Document,
    b: Document,
    sa: SyncState | None = None,
    sb: SyncState | None = None,
    drop: Container[int] = (),
) -> list[bytes]:
    """Run the sync protocol between `a` and `b` until neither has anything to say.

    `drop` holds the send-order indexes of messages the network loses. Returns the messages sent.
    """
    sa, sb = sa or SyncState(), sb or SyncState()
    sent: list[bytes] = []
    for _ in range(MAX_SYNC_ROUNDS):
        quiet = True
        for sender, receiver, out_state, in_state in ((a, b, sa, sb), (b, a, sb, sa)):
            message = sender.generate_sync_message(out_state)
            if message is not None:
                if len(sent) not in drop:
                    receiver.receive_sync_message(in_state, message)
                sent.append(message)
                quiet = False
        if quiet:
            return sent
    raise AssertionError(f"sync did not quiesce within {MAX_SYNC_ROUNDS} rounds")


def apply_text_patches(text: str, patches: Iterable[dict[str, Any]], obj: str) -> str:
    """What an editor does with `diff` output: replay splice_text/del_seq patches of `obj` onto its buffer."""
    for patch in patches:
        if patch["obj"] != obj:
            continue
        index = patch["index"]
        if patch["action"] == "splice_text":
            text = text[:index] + patch["value"] + text[index:]
        elif patch["action"] == "del_seq":
            text = text[:index] + text[index + patch["length"] :]
        else:
            raise AssertionError(f"unexpected patch for a text object: {patch}")
    return text


@st.composite
def corrupted(draw: st.DrawFn, samples: Sequence[bytes]) -> bytes:
    """A valid sample damaged as a network or disk would: one byte flipped, or cut short."""
    data = draw(st.sampled_from([s for s in samples if s]))
    if draw(st.booleans()):
        index = draw(st.integers(0, len(data) - 1))
        flip = draw(st.integers(1, 255))
        return data[:index] + bytes([data[index] ^ flip]) + data[index + 1 :]
    return data[: draw(st.integers(0, len(data) - 1))]


def garbage(samples: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a corrupted valid sample: the inputs a decoder must reject without crashing."""
    return st.one_of(st.binary(max_size=200), corrupted(samples))
