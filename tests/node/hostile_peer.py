"""Mallory: a raw libp2p client (no Network, no Replicator) and the attacks she sends.

Shared by the in-process tests (test_sync_hostile.py) and the daemon tests (test_e2e_daemons.py).
Each attack is the exact bytes Mallory writes on a sync stream, in one write (a flood is fast).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import native
import trio

from node.errors import NodeError
from node.framing import FrameStream, encode_header
from node.host import SYNC_PROTOCOL, open_host
from protocol.batch import pack_changes
from protocol.identity import Identity
from protocol.limits import SUPPORTED_VERSIONS
from protocol.reconcile import space_summary
from protocol.space import DOC_ID_BYTES
from protocol.tips import TipSignature
from protocol.wire import Changes, Hello, Ping, Status, encode_frame

STEP_TIMEOUT_S = 20
TCP_ONLY = ("/ip4/127.0.0.1/tcp/0",)
NOW_MS = 1_700_000_000_000


def mallory(attack: str) -> Identity:
    """A key of her own per attack: the first attack gets its key banned."""
    return Identity(hashlib.sha256(b"mallory " + attack.encode()).digest())


@asynccontextmanager
async def mallory_stream(attack: str, target_addr: str) -> AsyncIterator[FrameStream]:
    """Mallory's libp2p host, connected to the target, with one sync stream open to it."""
    async with open_host(mallory(attack), TCP_ONLY) as host:
        peer_id = await host.connect(target_addr)
        yield await host.open_stream(peer_id, SYNC_PROTOCOL)


async def closed_by_peer(frames: FrameStream) -> None:
    """Read (and discard) until the peer closes or resets the stream."""
    with trio.fail_after(STEP_TIMEOUT_S):
        try:
            while await frames.receive_bytes():
                pass
        except NodeError:
            pass


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
