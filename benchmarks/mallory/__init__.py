"""Mallory: a raw libp2p client (no Network, no Replicator) and the attacks she sends.

Shared by the in-process tests (tests/node: test_sync_hostile.py, test_attacks_well_formed.py,
test_hostile_slots.py), the daemon tests (test_e2e_daemons.py) and the hostile and soak
benchmarks, so each measures exactly the attack the tests run. Each attack is the exact bytes Mallory
writes on a sync stream. The garbage attacks are bytes no decoder takes; the well-formed ones
(built below with the project's own encoders) are valid CBOR, valid signatures and valid
Automerge, and break only a rule only a careful receiver checks.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

import native
from node.errors import NodeError
from node.framing import FrameStream, encode_header
from node.host import SYNC_PROTOCOL, open_host
from protocol.batch import pack_changes
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.limits import SUPPORTED_VERSIONS
from protocol.reconcile import space_summary
from protocol.space import DOC_ID_BYTES
from protocol.tips import SignedTip, TipSignature
from protocol.wire import Changes, DocHeads, Encoding, Heads, Hello, Ping, Status, encode_frame

STEP_TIMEOUT_S = 20
TCP_ONLY = ("/ip4/127.0.0.1/tcp/0",)


def mallory(attack: str) -> Identity:
    """A key of her own per attack: the first attack gets its key banned."""
    return Identity(hashlib.sha256(b"mallory " + attack.encode()).digest())


@asynccontextmanager
async def mallory_stream(attack: str, target_addr: str) -> AsyncIterator[FrameStream]:
    """Mallory's libp2p host, connected to the target, with one sync stream open to it."""
    async with open_host(mallory(attack), TCP_ONLY) as host:
        peer_id = await host.connect(target_addr)
        yield await host.open_stream(peer_id, SYNC_PROTOCOL)


async def closed_by_peer(frames: FrameStream) -> int:
    """Read (and discard) until the peer closes or resets the stream.

    Returns:
        How many frames the peer sent before it closed.
    """
    received = 0
    with trio.fail_after(STEP_TIMEOUT_S):
        try:
            while await frames.receive_bytes():
                received += 1
        except NodeError:
            pass
    return received


def hello(attack: str, space: bytes) -> bytes:
    """A well-formed Hello: Mallory claims an empty copy of the space."""
    status = Status(space_summary({}), (), False)
    return encode_frame(Hello(SUPPORTED_VERSIONS, space, mallory(attack).public_key, status))


def forged_batch(attack: str) -> bytes:
    """A real change by Mallory under a tip whose signature is garbage."""
    document = native.Document(actor=mallory(attack).public_key)
    text = document.put_object(native.ROOT, "text", "text")
    document.splice_text(text, 0, 0, "mallory was here")
    document.commit(None, time=NOW_MS // 1000)
    encoding, data = pack_changes(document.get_changes([]))
    doc = random.Random(5).randbytes(DOC_ID_BYTES)
    return encode_frame(Changes(doc, encoding, data, (), (TipSignature(0, bytes(64)),), push=True))


ATTACKS: dict[str, Callable[[str, bytes], bytes]] = {
    "garbage": lambda attack, space: encode_header(300) + random.Random(1).randbytes(300),
    "forged-tip": lambda attack, space: hello(attack, space) + forged_batch(attack),
    "flood": lambda attack, space: hello(attack, space) + encode_frame(Ping()) * 6000,
}
# What the victim's Replicator must call each attack.
OFFENSES = {"garbage": "malformed", "forged-tip": "forgery", "flood": "flood"}


async def attack(name: str, space: bytes, target_addr: str) -> None:
    """Send one attack and wait until the target cuts Mallory off."""
    async with mallory_stream(name, target_addr) as frames:
        try:
            await frames.send_bytes(ATTACKS[name](name, space))
        except NodeError:
            pass  # cut off mid-flood
        await closed_by_peer(frames)


# ----- well-formed attacks -----


def signed_batch(identity: Identity, space: bytes, doc: bytes, raws: list[bytes], *, push: bool = True) -> bytes:
    """A batch of ``identity``'s changes under its genuine tip over the last: what an honest
    author pushes (or, with ``push=False``, replies)."""
    last = native.decode_change(raws[-1])
    tip = SignedTip.sign(identity, space, doc, last.hash)
    encoding, data = pack_changes(raws)
    return encode_frame(Changes(doc, encoding, data, (), (TipSignature(len(raws) - 1, tip.signature),), push=push))


def forked_pair(identity: Identity, document: native.Document) -> tuple[bytes, bytes]:
    """Two changes by ``identity`` on top of ``document``'s heads that take the same seq — a
    forked author chain. Each is a valid Automerge change; a document holding both does not load."""
    base = document.heads()
    pair = []
    for value in ("left", "right"):
        fork = document.fork(identity.public_key)
        fork.put(native.ROOT, "mallory", value)
        fork.commit(None, time=NOW_MS // 1000)
        [raw] = fork.get_changes(base)
        pair.append(raw)
    return pair[0], pair[1]


def splice_bomb(identity: Identity, chars: int) -> tuple[bytes, bytes]:
    """(saved document, its one raw change): ``chars`` characters typed in one change. The saved
    document is ~1 byte per 1,000 characters; loading it costs ~90 B and ~0.4 us per character
    (measured: 4M characters, 4 KB saved, 1.6 s and 369 MB to load)."""
    document = native.Document(actor=identity.public_key)
    text = document.put_object(native.ROOT, "text", "text")
    document.splice_text(text, 0, 0, "x" * chars)
    document.commit(None, time=NOW_MS // 1000)
    return document.save(), document.get_changes([])[0]


def document_reply(identity: Identity, space: bytes, doc: bytes, saved: bytes) -> bytes:
    """A saved document as a reply batch, with its author's genuine tip naming its newest change."""
    loaded = native.Document.load(saved)
    [head] = loaded.heads()
    tip = SignedTip.sign(identity, space, doc, head)
    return encode_frame(Changes(doc, Encoding.DOCUMENT, saved, (), (TipSignature(head, tip.signature),), push=False))


def want(doc: bytes) -> bytes:
    """23 bytes of CBOR asking for every change of ``doc`` (Mallory claims she holds none)."""
    return encode_frame(Heads(doc, (), want=True))


def junk_status(count: int, seed: int = 7, page_docs: int = 5_000) -> bytes:
    """A paged status naming ``count`` random doc ids, each with a random head: nothing we hold."""
    rng = random.Random(seed)
    entries = [DocHeads(rng.randbytes(DOC_ID_BYTES), (rng.randbytes(32),)) for _ in range(count)]
    entries.sort(key=lambda entry: entry.doc)
    pages = [entries[i : i + page_docs] for i in range(0, len(entries), page_docs)] or [[]]
    summary = space_summary({entry.doc: entry.heads for entry in entries})
    return b"".join(
        encode_frame(Status(summary, tuple(page), False, more=i < len(pages) - 1)) for i, page in enumerate(pages)
    )


def unsigned_reply(identity: Identity, doc: bytes, count: int) -> bytes:
    """``count`` of ``identity``'s changes on a fresh doc, as a reply without any tip: they wait
    for a tip that never comes."""
    document = native.Document(actor=identity.public_key)
    for i in range(count):
        document.put(native.ROOT, "k", i)
        document.commit(None, time=NOW_MS // 1000)
    encoding, data = pack_changes(document.get_changes([]))
    return encode_frame(Changes(doc, encoding, data, (), (), push=False))
