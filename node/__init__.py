"""The only package with network I/O: a trio node on py-libp2p.

``open_host`` starts a libp2p host keyed by the peer's ``Identity``; ``FrameStream`` carries
length-prefixed frames on its streams; ``node.relay`` lets peers reach each other through a
circuit relay. Every failure is a ``node.errors.NodeError``.
"""

from node.errors import NodeError
from node.framing import MAX_FRAME_BYTES, FrameStream
from node.host import LOOPBACK_LISTEN_ADDRS, SYNC_PROTOCOL, Host, open_host
from node.relay import hold_reservation

__all__ = [
    "LOOPBACK_LISTEN_ADDRS",
    "MAX_FRAME_BYTES",
    "SYNC_PROTOCOL",
    "FrameStream",
    "Host",
    "NodeError",
    "hold_reservation",
    "open_host",
]
