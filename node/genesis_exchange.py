"""Joining a space by its id: fetching its signed genesis record from a peer that holds it.

A user who was told only a space id (and a peer or two) asks those peers, over a short stream
of its own (``/distspace/genesis/1``): the space id goes out, the genesis record (or nothing,
if the peer does not hold the space) comes back. The record is checked — its signature, and
that it is the genesis of the space asked for — before it is stored; storing it is what makes
the network serve the space (``store.repo.SpaceStored``). For an open space the id is the
capability: anyone who has it may learn the space's name and creator. A private space's
genesis goes only to a peer its capability log admits (the stream's libp2p peer id is the key
the transport authenticated); anyone else gets the same empty answer as for a space we do not
hold. A newcomer to a private space joins by a ticket, which carries the genesis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import trio

from node.discovery import Backoff
from node.errors import DialError, NodeError
from node.framing import FrameStream
from node.host import Host
from node.keepers import Peer
from node.logs import event
from node.sync_driver import peer_key_of
from protocol.errors import BadSignature, WireError
from protocol.space import SPACE_ID_BYTES, Genesis
from store.repo import Repo, wall_clock_ms

logger = logging.getLogger(__name__)

__all__ = ["GENESIS_PROTOCOL", "MAX_GENESIS_BYTES", "fetch_genesis", "fetch_space", "serve_genesis"]

GENESIS_PROTOCOL: Final = "/distspace/genesis/1"
# A genesis record is a key, a name of at most 200 characters, a nonce, a time and a signature.
MAX_GENESIS_BYTES: Final = 1024
GENESIS_TIMEOUT_S: Final = 10.0


async def serve_genesis(repo: Repo, frames: FrameStream) -> None:
    """Answer one request: a space id in, its genesis record out (empty if not held, or
    private and the asking peer is not admitted)."""
    with trio.move_on_after(GENESIS_TIMEOUT_S):
        space = await frames.receive_frame()
        held = {g.space_id: g for g in repo.spaces()}
        genesis = held.get(space) if len(space) == SPACE_ID_BYTES else None
        if genesis is not None and genesis.private and not _admits(repo, frames.peer_id, space):
            genesis = None
        await frames.send_frame(genesis.encode() if genesis else b"")


def _admits(repo: Repo, peer_id: str, space: bytes) -> bool:
    """Whether the space's capability log admits the peer now."""
    try:
        key = peer_key_of(peer_id)
    except NodeError:
        return False  # not an Ed25519 peer id: no key any log could admit
    return repo.capability_log(space).admits(key, wall_clock_ms())


async def fetch_genesis(host: Host, peer_id: str, space: bytes) -> Genesis | None:
    """The space's genesis from a connected peer, checked; None if it does not hold it.

    Raises:
        DialError: the peer could not be asked, or answered with a record that does not
            verify or is of another space.
    """
    try:
        with trio.fail_after(GENESIS_TIMEOUT_S):
            async with await host.open_stream(peer_id, GENESIS_PROTOCOL, max_frame_bytes=MAX_GENESIS_BYTES) as frames:
                await frames.send_frame(space)
                encoded = await frames.receive_frame()
    except trio.TooSlowError as error:
        raise DialError("genesis request timed out", peer_id=peer_id) from error
    if not encoded:
        return None
    try:
        genesis = Genesis.decode(encoded)
    except (WireError, BadSignature) as error:
        raise DialError(f"sent an invalid genesis record: {error}", peer_id=peer_id) from error
    if genesis.space_id != space:
        raise DialError("sent the genesis of another space", peer_id=peer_id)
    return genesis


async def fetch_space(host: Host, repo: Repo, space: bytes, peers: Sequence[Peer], backoff: Backoff) -> None:
    """Ask each peer in turn, as it connects, until one sends the genesis; then store it.

    Returns once the repo holds the space (stored by us or by anyone else meanwhile).
    """
    while space not in {g.space_id for g in repo.spaces()}:
        for peer in peers:
            if not peer.is_up:
                continue
            try:
                genesis = await fetch_genesis(host, peer.peer_id, space)
            except NodeError as error:
                event(logger, "network.join_ask_failed", peer_id=peer.peer_id, space=space.hex()[:12], error=error)
                continue
            if genesis is not None:
                repo.add_space(genesis)
                event(logger, "network.joined", space=space.hex(), space_name=genesis.name, peer_id=peer.peer_id)
                return
        with trio.move_on_after(backoff.next()):
            # Wake early when one that is down (re)connects.
            async with trio.open_nursery() as waiters:
                for peer in peers:
                    if not peer.is_up:
                        waiters.start_soon(_wait_then_cancel, peer.up, waiters.cancel_scope)
                await trio.sleep_forever()


async def _wait_then_cancel(happened: trio.Event, scope: trio.CancelScope) -> None:
    await happened.wait()
    scope.cancel()
