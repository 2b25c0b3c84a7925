"""How node values look in the API's JSON: the one place bytes become hex or base64 on the way out.

The local API's methods (node/api_methods.py) and its notifications (node/subscriptions.py) both
answer with these shapes, which node/api_schema.json describes.
"""

from __future__ import annotations

import base64
from typing import Any

from node.events import PeerInfo, Presence
from store.workspace import Content, Stat

__all__ = ["content_json", "peer_json", "presence_json", "stat_json"]

Json = dict[str, Any]


def content_json(content: Content) -> Json:
    """Text as a string, bytes as base64: the two content forms of the API."""
    if isinstance(content, str):
        return {"encoding": "text", "text": content}
    return {"encoding": "binary", "base64": base64.b64encode(content).decode("ascii")}


def peer_json(peer: PeerInfo) -> Json:
    return {
        "peer_id": peer.peer_id,
        "addrs": list(peer.addrs),
        "spaces": [space.hex() for space in peer.spaces],
        "connected_ms": peer.connected_ms,
    }


def presence_json(presence: Presence, cursor: int | None, selection: list[int] | None, buffer: Json | None) -> Json:
    """A presence entry with its positions as shown to one client (node/presence_anchors.py
    resolves the entry's Automerge cursors into them)."""
    return {
        "peer_id": presence.peer_id,
        "client": presence.client,
        "name": presence.name,
        "path": presence.path,
        "cursor": cursor,
        "selection": selection,
        "buffer": buffer,
        "updated_ms": presence.updated_ms,
    }


def stat_json(stat: Stat) -> Json:
    return {
        "path": stat.path,
        "kind": stat.kind,
        "file_id": stat.file_id,
        "encoding": stat.encoding,
        "executable": stat.executable,
        "size": stat.size,
        "heads": [h.hex() for h in stat.heads],
        "claimed_name": stat.claimed_name,
    }
