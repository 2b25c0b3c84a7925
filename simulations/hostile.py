"""What a misbehaving peer sends: frames crafted to get forged or garbage changes applied.

A hostile peer runs an ordinary Replicator, so it gets past Hello and relays honest work like
anyone; the simulator slips these frames into its connections between the Replicator's own.
Every one carries a brand-new change, so a receiver cannot wave it off as already stored:

- ``forged-tip``: a change by the hostile peer under a signature that is not one;
- ``impersonation``: a change claiming an honest writer as author, signed with the hostile key;
- ``garbage``: a frame of random bytes;
- ``unauthorised-write`` (private spaces): a well-formed change of its own, signed and handed
  to its Replicator (``planted_edit``), as a patched client that ignores its missing write
  would: only the capability log can refuse it.
"""

from __future__ import annotations

import random

import native
from protocol.batch import pack_changes
from protocol.identity import SIGNATURE_BYTES, Identity
from protocol.memory import Edit
from protocol.tips import SignedTip, TipSignature
from protocol.wire import Changes, encode_frame, varint

GARBAGE_BYTES_MAX = 256


def attack_frame(
    kind: str, rng: random.Random, space: bytes, doc: bytes, attacker: Identity, victim_author: bytes, now_ms: int
) -> bytes:
    if kind == "garbage":
        payload = rng.randbytes(rng.randrange(1, GARBAGE_BYTES_MAX))
        return varint(len(payload)) + payload
    actor = attacker.public_key if kind == "forged-tip" else victim_author
    document = native.Document(actor)
    document.put(native.ROOT, "planted", rng.getrandbits(62))
    change_hash = document.commit(time=now_ms // 1000)
    assert change_hash is not None
    raw = document.get_change_by_hash(change_hash)
    assert raw is not None
    if kind == "forged-tip":
        signature = rng.randbytes(SIGNATURE_BYTES)
    else:
        signature = SignedTip.sign(attacker, space, doc, change_hash).signature
    batch = Changes(doc, *pack_changes([raw]), (), (TipSignature(0, signature),), push=True)
    return encode_frame(batch)


def planted_edit(rng: random.Random) -> Edit:
    """An edit that makes an operation in any doc (a fresh value every time)."""
    value = rng.getrandbits(62)

    def edit(document: native.Document) -> None:
        document.put(native.ROOT, "planted", value)

    return edit
