"""Presence positions as Automerge cursors: made where a client sets them, resolved where shown.

``presence.set`` takes a cursor and a selection as positions in the text the client holds: for a
path it has open by ``doc.open``, in that connection's encoding and relative to ``base`` (the
heads of its buffer: a ``doc.open``/``doc.edit`` reply or a ``doc.changed``'s ``to_heads``;
default: the heads the server last sent it); otherwise in code points, relative to ``base``
(heads ``fs.read`` gave) or to the text now. Each becomes an Automerge cursor of the file's text
(``node.events.Anchor``), which is what the store of presence holds and peers exchange. A path
that is not a text file here keeps the counts as given.

Wherever presence is shown (the ``presence.set`` reply, ``presence.list``, ``presence.changed``)
each cursor is resolved against this node's copy of the doc, now: ``cursor`` and ``selection``
count code points of the text now. To a connection that has the path open, ``buffer`` adds the
same positions in its encoding, in the text its buffer holds — at ``buffer.heads``, the heads the
server last sent it — so an editor whose ``confirmed`` heads equal them places them as they are
(and moves them with the ``doc.changed`` that follow, as Neovim's extmarks do). A cursor naming a
character this node does not hold yet (the peer's change is still on its way) resolves to null.
Positions are resolved when sent, not re-sent as the text changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import native
from node.api_json import presence_json
from node.editor import DocSession, EncodedText, PositionError
from node.events import Anchor
from node.rpc import INVALID_PARAMS, RpcError, invalid_params
from store.errors import StoreError
from store.tree import DIR, TEXT, text_object
from store.workspace import Workspace, rebase_splice

if TYPE_CHECKING:
    from node.events import Presence
    from node.services import NodeServices
    from node.subscriptions import Sink, Subscriptions

Json = dict[str, Any]

__all__ = ["anchors", "presence_view"]


@dataclass(frozen=True, slots=True)
class _Text:
    """A text file's path (as the tree has it), doc and text object here."""

    path: str
    document: native.Document
    text_id: str


def anchors(
    subscriptions: Subscriptions,
    sink: Sink,
    ws: Workspace,
    path: str | None,
    cursor: int | None,
    selection: Sequence[int] | None,
    base: Sequence[str] | None,
) -> tuple[Anchor | None, tuple[Anchor, Anchor] | None]:
    """``presence.set``'s cursor and selection as Automerge cursors of ``path``'s text (see the
    module docstring); counts as given when ``path`` is not a text file here.

    Raises:
        RpcError: invalid params naming the param: a position outside the text or splitting a
            character, base heads this node does not hold for the file (``UnknownBase``), a base
            for a path that is not a text file.
    """
    positions = [p for p in (cursor, *(selection or ())) if p is not None]
    found = _text(ws, path) if path is not None and positions else None
    if found is None:
        if base is not None and positions:
            raise invalid_params(f"presence.set: params.base: {path!r} is not a text file here, so positions cannot be relative to its heads")
        return cursor, (selection[0], selection[1]) if selection is not None else None
    heads, text, encoding, patches = _held(ws, found, _session(subscriptions, sink, ws.space, found), base)
    encoded = EncodedText(text, encoding)

    def anchor(position: int, param: str) -> Anchor:
        try:
            index = encoded.index(position)
        except PositionError as error:
            raise invalid_params(f"presence.set: {param}: {error}") from None
        if patches:  # the buffer is the doc at heads but for these: carry the index there
            index = rebase_splice(patches, index, 0)[0]
        return found.document.get_cursor(found.text_id, index, heads)

    at_cursor = anchor(cursor, "params.cursor") if cursor is not None else None
    if selection is None:
        return at_cursor, None
    return at_cursor, (anchor(selection[0], "params.selection[0]"), anchor(selection[1], "params.selection[1]"))


def presence_view(services: NodeServices, subscriptions: Subscriptions, sink: Sink | None, presence: Presence) -> Json:
    """``presence``'s JSON for ``sink``: its cursors resolved now, and in ``sink``'s buffer if it
    has the path open."""
    found = _text(services.workspace(presence.space), presence.path) if presence.path is not None else None
    cursor = _resolved(found, presence.cursor)
    selection = _pair(found, presence.selection)
    session = _session(subscriptions, sink, presence.space, found) if sink is not None and found is not None else None
    buffer = _buffer(found, session, presence) if found is not None and session is not None else None
    return presence_json(presence, cursor, selection, buffer)


def _session(subscriptions: Subscriptions, sink: Sink, space: bytes, found: _Text) -> DocSession | None:
    follower = subscriptions.follower(sink, space, found.path)
    return follower if isinstance(follower, DocSession) else None


def _buffer(found: _Text, session: DocSession, presence: Presence) -> Json | None:
    """The positions in the session's buffer, at the heads the server last sent it; None when
    those heads are the session's own name of a buffer (``DocSession``), not a version."""
    if session.copy.patches:
        return None
    heads = None if sorted(found.document.heads()) == session.copy.heads else session.copy.heads  # now: no scan of the history
    encoded = EncodedText(session.copy.text, session.encoding)

    def position(anchor: Anchor | None) -> int | None:
        index = _resolved(found, anchor, heads)
        return encoded.position(index) if index is not None else None

    selection = None
    if presence.selection is not None:
        anchor, head = (position(p) for p in presence.selection)
        selection = [anchor, head] if anchor is not None and head is not None else None
    return {"encoding": session.encoding, "heads": [h.hex() for h in session.heads], "cursor": position(presence.cursor), "selection": selection}


def _pair(found: _Text | None, selection: tuple[Anchor, Anchor] | None) -> list[int] | None:
    if selection is None:
        return None
    anchor, head = (_resolved(found, p) for p in selection)
    return [anchor, head] if anchor is not None and head is not None else None


def _resolved(found: _Text | None, anchor: Anchor | None, heads: list[bytes] | None = None) -> int | None:
    """Code points before ``anchor`` in the text (now, or at ``heads``); None when it names a
    character this node does not hold (there)."""
    if anchor is None or isinstance(anchor, int):
        return anchor
    if found is None:
        return None
    try:
        return found.document.get_cursor_position(found.text_id, anchor, heads)
    except native.AutomergeError:
        return None


def _text(ws: Workspace, path: str) -> _Text | None:
    """``path``'s doc and text object, or None: no such text file here (yet)."""
    try:
        node = ws.node(path)
        if node.kind == DIR or node.encoding != TEXT:
            return None
        document = ws.document(node.doc_id)
    except StoreError:
        return None
    text_id = text_object(document)
    return None if text_id is None else _Text(node.path, document, text_id)


def _held(ws: Workspace, found: _Text, session: DocSession | None, base: Sequence[str] | None) -> tuple[list[bytes] | None, str, str, list[Json]]:
    """The heads, text, encoding and patches (to the doc at those heads) of what the client
    holds: its buffer if it has the path open, else the text at ``base`` or now.

    Raises:
        RpcError: ``UnknownBase``: heads this node does not hold, or from before the text.
    """
    heads = sorted(bytes.fromhex(head) for head in base) if base is not None else None  # hex: the schema checked
    if session is not None:
        try:
            copy = session.copy_at(ws, heads) if heads is not None else session.copy
        except RpcError as error:
            raise RpcError(error.code, error.message.replace("doc.edit:", "presence.set:", 1), error.name) from None
        return copy.heads, copy.text, session.encoding, copy.patches
    if heads is None:
        return None, found.document.text(found.text_id), "codepoint", []
    try:
        same_text = text_object(found.document, heads) == found.text_id
    except native.InvalidHash as error:
        raise _unknown_base(f"this node holds no such version ({error})") from None
    if not same_text:
        raise _unknown_base("the file's text did not exist there (a base from before it was created or replaced)")
    return heads, found.document.text(found.text_id, heads), "codepoint", []


def _unknown_base(why: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"presence.set: params.base: {why}", "UnknownBase")
