"""The editor protocol: an editor's buffer of a text file, kept in step with the space, no echo.

LSP-shaped, over any local API connection (``node/api.py``: the Unix socket or the WebSocket)::

    doc.open  {space?, path, encoding?}           -> {space, path, file_id, text, heads, encoding}
    doc.edit  {space?, path, base, edits, message?} -> {heads}
    doc.undo  {space?, path}                       -> {undone, change}
    doc.redo  {space?, path}                       -> {undone, change}
    doc.close {space?, path}                       -> {closed}
    doc.changed (notification)  {space, path, from_heads, to_heads, patches}

Edits and patches are ``{position, delete, insert}``: delete ``delete`` units at ``position``, then
insert ``insert`` there. Units are the encoding the client chose at ``doc.open`` for that path:
``"utf-16"`` code units (LSP's and VS Code's default, and ours), ``"utf-8"`` bytes (Neovim's
``on_bytes``), or ``"codepoint"``. They are converted here, at the edge; the store counts code
points. Heads are hex change hashes, always sent sorted, so a client compares them as lists.

How it works. For each (connection, open path) the server keeps H, the heads of what the client's
buffer holds, and that text. ``doc.open`` sets H to the heads it returns. ``doc.edit`` commits its
edits as ONE change C made at ``base`` (``Workspace.edit``: Automerge isolate), so the client's
buffer after its edit is exactly the doc at ``[C]``, a real version: the reply is ``heads: [C]``
and H becomes ``[C]``. The edits of one ``doc.edit`` all refer to the text at ``base`` (LSP's
``TextEdit[]`` rule): none may overlap; inserts at one point land in the order given. Whenever the
doc's heads are not H — another connection wrote, a peer's change arrived, or C merged with
changes concurrent to it — the server sends ``doc.changed``: the patches of Automerge's diff from
H to now, in the client's encoding, to apply in order to the text at ``from_heads`` (= H); then
H = ``to_heads``. A client's own edit is never sent back to it: its H is ``[C]`` already.

CLIENT RULE (the Neovim plugin, the TypeScript client and ``node/editor_client.py`` implement it):

1. Keep ``confirmed``: the heads of ``doc.open``, then of each ``doc.edit`` reply and of each
   ``doc.changed`` applied.
2. At most ONE ``doc.edit`` in flight. Keystrokes typed meanwhile go into the buffer at once and
   are kept; when the reply comes they are sent as one ``doc.edit`` with ``base`` = the heads that
   reply returned, as edits relative to the buffer as it was when the previous edit was sent
   (which is the text at those heads).
3. Apply a ``doc.changed`` only when no edit is in flight or kept AND its ``from_heads`` ==
   ``confirmed``; then ``confirmed`` = ``to_heads``. Otherwise DROP it: the edit moved the
   server's H to ``[C]``, so the next ``doc.changed`` (from ``[C]``) carries the same remote
   changes again, on top of the client's own.

This never loses or duplicates a character and needs no operational transformation: the merge is
Automerge's, and each side only ever applies a diff to the exact version it was computed from.

Per-author undo. ``doc.undo`` reverts this connection's last ``doc.edit`` change C that it has
not undone — never another author's: the inverse of C (delete what it inserted, put back what it
deleted, by the identity of each character) made as an edit AT ``[C]`` (``Workspace.edit``) and
merged, so everything written since, by anyone, stays where it is. ``doc.redo`` reverts the last
undo the same way; a new ``doc.edit`` forgets what could be redone. The reply names the change
undone and the change that undid it (nulls: nothing to undo, or the file's text was replaced
since). The client's buffer does not change with the reply and H does not move: the undo reaches
the buffer like any other change, as the ``doc.changed`` from H that follows the reply, so the
CLIENT RULE is unchanged (an undo is not an edit in flight). A client that wants its keystrokes
undone sends them first (the TypeScript client waits until they are confirmed).

Bad input is refused with -32602 (invalid params) naming the param, and nothing is applied: a
base this node does not hold, or from before the file's text existed (``data.error``
``UnknownBase``: open the file again); a position past the text at base, or one that splits a
character (inside a surrogate pair, inside a UTF-8 sequence); edits that overlap; an unknown
encoding; a path not open on this connection (``NotOpen``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import native
from node.logs import event
from node.rpc import INVALID_PARAMS, RpcError, invalid_params
from node.subscriptions import splices_of, text_splices
from store.paths import check_path
from store.tree import DIR, TEXT, text_object
from store.workspace import Edit, Workspace, rebase_splice, text_edits
from store.workspace_errors import IsADirectory, NotFound, NotText

if TYPE_CHECKING:
    from node.subscriptions import Sink, Subscriptions

Json = dict[str, Any]

log = logging.getLogger("distspace.api")

DEFAULT_ENCODING = "utf-16"
# Each encoding as a Python codec and the bytes of one of its units: code points are the 4-byte
# units of UTF-32, so one slicing rule serves all three.
CODECS: dict[str, tuple[str, int]] = {"utf-16": ("utf-16-le", 2), "utf-8": ("utf-8", 1), "codepoint": ("utf-32-le", 4)}
UNIT_NAMES = {"utf-16": "UTF-16 code units", "utf-8": "UTF-8 bytes", "codepoint": "code points"}
ENCODINGS = tuple(CODECS)
# Texts a session keeps by heads besides H's: an edit's base is the previous reply's heads even
# after a doc.changed moved H on (CLIENT RULE 3), and reading a text at old heads costs Automerge
# a scan (3.5 ms at 20k characters); a handful covers every base a rule-following client sends.
TEXTS_KEPT = 4
# Converting patches outside ASCII costs a pass over the text each; past this many characters
# times patches (a big merge into a big file) one patch replacing the whole text is cheaper.
MAX_CONVERSION_CHARS = 64 * 1024 * 1024
# The doc.edit changes per open document that doc.undo can revert, newest last (and as many undos
# that doc.redo can revert): enough for an editing session, bounded for a connection that lives long.
UNDO_DEPTH = 100


class PositionError(ValueError):
    """A position past the end of a text in its encoding, or inside one of its characters."""


class EncodedText:
    """A text as a client in one encoding sees it: its length, and positions to and from code
    points. ASCII text and code points need no conversion; the others encode the text once."""

    __slots__ = ("_codec", "_data", "_plain", "_width", "encoding", "length", "text")

    def __init__(self, text: str, encoding: str) -> None:
        self.text = text
        self.encoding = encoding
        self._codec, self._width = CODECS[encoding]
        self._plain = self._width == 4 or text.isascii()
        self._data = b"" if self._plain else text.encode(self._codec)
        self.length = len(text) if self._plain else len(self._data) // self._width

    def index(self, position: int) -> int:
        """The code point index ``position`` units into the text.

        Raises:
            PositionError: past the end, or inside a character.
        """
        if not 0 <= position <= self.length:
            raise PositionError(f"{position} is past the end of the text ({self.length} {UNIT_NAMES[self.encoding]})")
        if self._plain:
            return position
        try:
            return len(self._data[: position * self._width].decode(self._codec))
        except UnicodeDecodeError:
            raise PositionError(f"{position} ({UNIT_NAMES[self.encoding]}) splits a character") from None

    def position(self, index: int) -> int:
        """The units before code point ``index``."""
        return index if self._plain else len(self.text[:index].encode(self._codec)) // self._width


def edits_at_base(text: str, edits: Sequence[Json], encoding: str) -> list[Edit]:
    """A client's edits, in its encoding and relative to ``text``, as the store's code-point
    edits, sorted by position (inserts at one point keep their order).

    Raises:
        RpcError: invalid params naming the edit: outside the text, splitting a character, or
            overlapping another.
    """
    encoded = EncodedText(text, encoding)
    spans: list[tuple[int, int, int, str]] = []  # code points [start, end), the edit's index, its insert
    for number, edit in enumerate(edits):
        position, delete = edit["position"], edit["delete"]
        try:
            start = encoded.index(position)
        except PositionError as error:
            raise invalid_params(f"doc.edit: params.edits[{number}].position: {error} at base") from None
        try:
            end = encoded.index(position + delete)
        except PositionError as error:
            raise invalid_params(f"doc.edit: params.edits[{number}].delete: its range ends at {error} at base") from None
        spans.append((start, end, number, edit["insert"]))
    spans.sort(key=lambda span: (span[0], span[1]))
    for before, after in itertools.pairwise(spans):
        if after[0] < before[1]:
            raise invalid_params(
                f"doc.edit: params.edits[{after[2]}] overlaps params.edits[{before[2]}]: the edits of one call all refer to the text at base"
            )
    return [Edit(start, end - start, insert) for start, end, _, insert in spans]


def applied(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with edits applied that all refer to it, sorted and apart (``edits_at_base``'s)."""
    pieces, at = [], 0
    for edit in edits:
        pieces += [text[at : edit.position], edit.insert]
        at = edit.position + edit.delete
    pieces.append(text[at:])
    return "".join(pieces)


def patches_in(text: str, splices: Sequence[Json], encoding: str) -> list[Json]:
    """Code-point splices ``{index, delete, insert}`` that apply in order to ``text``, as
    ``{position, delete, insert}`` patches in ``encoding``."""
    codec, width = CODECS[encoding]
    if width == 4 or (text.isascii() and all(splice["insert"].isascii() for splice in splices)):
        return [{"position": s["index"], "delete": s["delete"], "insert": s["insert"]} for s in splices]
    patches = []
    for splice in splices:
        index, delete, insert = splice["index"], splice["delete"], splice["insert"]
        position = len(text[:index].encode(codec)) // width
        patches.append({"position": position, "delete": len(text[index : index + delete].encode(codec)) // width, "insert": insert})
        text = text[:index] + insert + text[index + delete :]
    return patches


@dataclass(slots=True)
class _Copy:
    """What a client holds: its text, the doc's version ``heads`` it stands for, and the text
    patches (Automerge's format, in order) from the client's text to the doc's at ``heads`` —
    none, but after an edit this node could not make at its base (``DocSession``)."""

    text: str
    heads: list[bytes]
    patches: list[Json] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Made:
    """A change this connection made (an edit, an undo, a redo), and its deps."""

    change: bytes
    made_at: tuple[bytes, ...]


@dataclass(slots=True)
class DocSession:
    """One path a connection has open: the heads H the client's buffer is at, and its copy
    there. A follower of ``Subscriptions``, which calls ``catch_up`` after writes to its space.

    The buffer is usually the doc at H exactly. Not always: a node's changes form one chain, so
    an edit at a base that lacks this node's newest change (another local client wrote since)
    is made at the base plus that change (``EditResult.made_at``), and the doc at [C] then holds
    the other client's text too. The reply then names the client's buffer by heads of its own, a
    hash of C and that text (the doc has no such version; only this session knows it), whose
    copy keeps the patches from the client's text to the doc's at [C]: they lead the next
    ``doc.changed``, and an edit at those heads is carried through them to [C].
    """

    space: bytes
    path: str  # as the client opened it: the key of its calls and of the notifications
    file_id: str  # followed across renames
    doc_id: bytes
    encoding: str
    heads: list[bytes]  # H as the client names it, sorted
    copy: _Copy  # the client's at H
    _bases: OrderedDict[tuple[bytes, ...], _Copy] = field(default_factory=OrderedDict)  # recent H's
    _replied: tuple[tuple[bytes, ...], _Copy] | None = None  # the last doc.edit's: its base until the next
    undoable: deque[_Made] = field(default_factory=lambda: deque(maxlen=UNDO_DEPTH))  # doc.edit's and doc.redo's changes
    redoable: deque[_Made] = field(default_factory=lambda: deque(maxlen=UNDO_DEPTH))  # doc.undo's, until the next doc.edit

    def advance(self, heads: list[bytes], copy: _Copy, *, replied: bool = False) -> None:
        """The client's buffer is ``copy``, named ``heads``, now (the reply to its edit if ``replied``)."""
        self.heads, self.copy = sorted(heads), copy
        key = tuple(self.heads)
        if replied:
            self._replied = key, copy
        self._bases[key] = copy
        self._bases.move_to_end(key)
        while len(self._bases) > TEXTS_KEPT:
            self._bases.popitem(last=False)

    def copy_at(self, ws: Workspace, base: list[bytes]) -> _Copy:
        """What the client holds at heads ``base`` (sorted): a copy it was sent, else the doc's.

        Raises:
            RpcError: invalid params (``UnknownBase``): heads this node does not hold, or at which
                the file had not its text of now (before it was created, or replaced).
        """
        key = tuple(base)
        if self._replied is not None and self._replied[0] == key:
            return self._replied[1]
        if key in self._bases:
            self._bases.move_to_end(key)
            return self._bases[key]
        document = ws.document(self.doc_id)
        try:
            text_id = text_object(document, base)
        except native.InvalidHash as error:
            raise _unknown_base(self.path, base, f"this node holds no such version ({error})") from error
        if text_id is None or text_id != text_object(document):
            raise _unknown_base(self.path, base, "the file's text did not exist there (a base from before it was created or replaced)")
        return _Copy(document.text(text_id, base), base)

    def catch_up(self, ws: Workspace) -> tuple[str, Json] | None:
        """The ``doc.changed`` that takes the client from H to the doc now (and H to now), or
        None when it has the doc as it is."""
        document = ws.document(self.doc_id)
        heads = sorted(document.heads())
        text_id = text_object(document)
        if (heads == self.copy.heads and not self.copy.patches) or text_id is None:
            return None
        since = text_splices(document, text_id, self.copy.heads, heads)
        text = document.text(text_id)
        splices = None if since is None else splices_of(self.copy.patches) + since
        if splices is None or len(splices) * len(self.copy.text) > MAX_CONVERSION_CHARS:
            patches = [{"position": 0, "delete": EncodedText(self.copy.text, self.encoding).length, "insert": text}]
        else:
            patches = patches_in(self.copy.text, splices, self.encoding)
        params = {"space": self.space.hex(), "path": self.path, "from_heads": _hexes(self.heads), "to_heads": _hexes(heads), "patches": patches}
        self.advance(heads, _Copy(text, heads))
        return "doc.changed", params


def carried(patches: Sequence[Json], edits: Sequence[Edit]) -> list[Edit]:
    """Sorted edits of a text, as edits of the text ``patches`` lead to (``rebase_splice``: a
    deletion spares what the patches inserted, an insert follows the character after it)."""
    return [edit for edit, _ in _carried(patches, edits)]


def _carried(patches: Sequence[Json], edits: Sequence[Edit]) -> list[tuple[Edit, int]]:
    """``carried``, each edit with the number of the one it comes from."""
    moved = []
    for number, edit in enumerate(edits):
        at, spans = rebase_splice(list(patches), edit.position, edit.delete)
        moved += [(Edit(at, 0, edit.insert), number)] if edit.insert else []
        moved += [(Edit(start, end - start, ""), number) for start, end in spans]
    return moved


def text_patches(old: str, new: str) -> list[Json]:
    """Automerge-style text patches, in order, that turn ``old`` into ``new`` (by a diff)."""
    patches: list[Json] = []
    shift = 0
    for edit in text_edits(old, new):
        index = edit.position + shift
        if edit.delete:
            patches.append({"action": "del_seq", "index": index, "length": edit.delete})
        if edit.insert:
            patches.append({"action": "splice_text", "index": index, "value": edit.insert})
        shift += len(edit.insert) - edit.delete
    return patches


Tagged = list[tuple[str, object]]  # characters, each with what it is: a character of the start, of a patch, of an edit


def buffer_patches(start: str, before: Sequence[Json], since: Sequence[Json], edits: Sequence[Edit], stored: str) -> list[Json] | None:
    """The text patches from the client's buffer to ``stored``, the doc's text at [C], by the
    identity of each character, so they are exact (a diff of the two texts is not: it may pair
    one client's characters with another's).

    The client's buffer is ``start`` with ``edits`` applied. The store made C by splicing the
    same edits, carried through ``before`` (patches from ``start`` to the text at the base the
    store was given) and then through ``since`` (from that base to the heads C was made at,
    ``EditResult.made_at``), the way ``Workspace.edit`` does; replaying that on characters tagged
    by origin gives the doc's text with each character's origin. None if the replay does not
    give ``stored`` (then the store did something else, and the caller falls back to a diff).
    """
    doc: Tagged = [(char, ("start", i)) for i, char in enumerate(start)]
    for number, patch in enumerate([*before, *since]):
        _patch(doc, patch, number)
    given = _carried(before, edits) if before else list(zip(edits, range(len(edits)), strict=True))
    ordered = sorted(given, key=lambda pair: (pair[0].position, pair[0].delete > 0))  # Workspace.edit's order
    for edit, number in reversed(ordered):  # spliced as Workspace.edit does: from the last to the first
        at, spans = rebase_splice(list(since), edit.position, edit.delete)
        for first, end in reversed(spans):
            del doc[first:end]
        doc[at:at] = [(char, ("edit", number, j)) for j, char in enumerate(edit.insert)]
    if "".join(char for char, _ in doc) != stored:
        return None
    mine: Tagged = [(char, ("start", i)) for i, char in enumerate(start)]
    for number, edit in reversed(list(enumerate(edits))):
        mine[edit.position : edit.position + edit.delete] = [(char, ("edit", number, j)) for j, char in enumerate(edit.insert)]
    return _patches_between(mine, doc)


def _patch(doc: Tagged, patch: Json, number: int) -> None:
    if patch["action"] == "splice_text":
        doc[patch["index"] : patch["index"]] = [(char, ("patch", number, j)) for j, char in enumerate(patch["value"])]
    else:
        del doc[patch["index"] : patch["index"] + patch["length"]]


def _patches_between(old: Tagged, new: Tagged) -> list[Json]:
    """Patches from ``old`` to ``new``, whose common characters (by tag) are in the same order."""
    kept = {tag for _, tag in new} & {tag for _, tag in old}
    patches: list[Json] = []
    at, j = 0, 0
    for char, tag in new:
        while j < len(old) and old[j][1] not in kept:
            _append(patches, {"action": "del_seq", "index": at, "length": 1})
            j += 1
        if tag in kept:
            j += 1
        else:
            _append(patches, {"action": "splice_text", "index": at, "value": char})
        at += 1
    if j < len(old):
        patches.append({"action": "del_seq", "index": at, "length": len(old) - j})
    return patches


def _append(patches: list[Json], patch: Json) -> None:
    """Add a one-character patch, merged into the one before when it continues it."""
    last = patches[-1] if patches else None
    if last is not None and last["action"] == patch["action"] == "del_seq" and last["index"] == patch["index"]:
        last["length"] += 1
    elif last is not None and last["action"] == patch["action"] == "splice_text" and last["index"] + len(last["value"]) == patch["index"]:
        last["value"] += patch["value"]
    else:
        patches.append(patch)


def open_doc(subscriptions: Subscriptions, sink: Sink, ws: Workspace, path: str, encoding: str) -> Json:
    """``doc.open``: the text and heads now; the connection's H for that path is these heads."""
    node = ws.node(path)
    if node.kind == DIR:
        raise IsADirectory(f"{path!r} is a directory; doc.open opens text files")
    if node.encoding != TEXT:
        raise NotText(f"{path!r} is a binary file; doc.open opens text files")
    text, heads = ws.read_with_heads(node.path)
    assert isinstance(text, str)  # a text node's content
    session = DocSession(ws.space, node.path, node.file_id, node.doc_id, encoding, sorted(heads), _Copy(text, sorted(heads)))
    subscriptions.follow(sink, ws.space, node.path, session)
    return {"space": ws.space.hex(), "path": node.path, "file_id": node.file_id, "text": text, "heads": _hexes(session.heads), "encoding": encoding}


def edit_doc(
    subscriptions: Subscriptions, sink: Sink, ws: Workspace, path: str, base_hex: Sequence[str], edits: Sequence[Json], *, now_ms: int, message: str | None
) -> Json:
    """``doc.edit``: the edits as one change C at ``base``; returns ``[C]``, the client's H now
    (or heads naming the client's buffer, when C had to be made after another local client's)."""
    session = _session(subscriptions, sink, ws, path, "doc.edit")
    base = sorted(bytes.fromhex(head) for head in base_hex)  # hex: the schema checked
    copy = session.copy_at(ws, base)
    converted = edits_at_base(copy.text, edits, session.encoding)
    path_now = ws.tree().path_of(session.file_id)
    if path_now is None:
        raise NotFound(f"{session.path!r} was removed; nothing was applied")
    stored = carried(copy.patches, converted) if copy.patches else converted
    result = ws.edit(path_now, stored, base=copy.heads, now_ms=now_ms, message=message or f"edit {path_now}")
    if result.change is None:
        session.advance(base, copy, replied=True)
    else:
        session.undoable.append(_Made(result.change, result.made_at))
        session.redoable.clear()
        mine = _Copy(applied(copy.text, converted), [result.change])
        name = mine.heads
        if copy.patches or list(result.made_at) != copy.heads:  # [C] holds more than the client's edit
            document = ws.document(session.doc_id)
            text_id = text_object(document)
            assert text_id is not None  # the edit was just made to it
            at = None if sorted(document.heads()) == mine.heads else mine.heads  # now: no scan of the history
            stored_text = document.text(text_id, at)
            since = [] if list(result.made_at) == copy.heads else [p for p in document.diff(copy.heads, list(result.made_at)) if p["obj"] == text_id]
            exact = buffer_patches(copy.text, copy.patches, since, converted, stored_text)
            if exact is None:  # not how Workspace.edit splices: a diff is exact in content, if not in intent
                event(log, "editor.buffer_patches_by_diff", logging.WARNING, path=path_now)
            mine.patches = exact if exact is not None else text_patches(mine.text, stored_text)
            name = [hashlib.sha256(b"distspace editor buffer\0" + result.change + mine.text.encode()).digest()] if mine.patches else name
        session.advance(name, mine, replied=True)
    subscriptions.touch(ws.space)  # the doc may differ from [C] (a concurrent change) with nothing else to flush it
    return {"heads": _hexes(session.heads)}


def undo_doc(subscriptions: Subscriptions, sink: Sink, ws: Workspace, path: str, *, now_ms: int, redo: bool = False) -> Json:
    """``doc.undo`` (``doc.redo`` if ``redo``): the inverse of this connection's last edit not
    undone (of its last undo), made at that change's heads and merged; H stays, so the client
    gets the undo as the next ``doc.changed``."""
    session = _session(subscriptions, sink, ws, path, "doc.redo" if redo else "doc.undo")
    stack, then = (session.redoable, session.undoable) if redo else (session.undoable, session.redoable)
    if not stack:
        return {"undone": None, "change": None}
    made = stack.pop()
    document = ws.document(session.doc_id)
    text_id = text_object(document)
    if text_id is None or text_object(document, [made.change]) != text_id:  # the file's text was replaced: nothing of it to revert
        session.undoable.clear()
        session.redoable.clear()
        return {"undone": None, "change": None}
    path_now = ws.tree().path_of(session.file_id)
    if path_now is None:
        raise NotFound(f"{session.path!r} was removed; nothing was undone")
    made_at = list(made.made_at)
    patches = [p for p in document.diff(made_at, [made.change]) if p["obj"] == text_id]
    inverse = inverse_edits(document.text(text_id, made_at), patches)
    verb = "redo" if redo else "undo"
    result = ws.edit(path_now, inverse, base=[made.change], now_ms=now_ms, message=f"{verb} an edit of {path_now}")
    if result.change is not None:
        then.append(_Made(result.change, result.made_at))
    subscriptions.touch(ws.space)
    return {"undone": made.change.hex(), "change": None if result.change is None else result.change.hex()}


def inverse_edits(before: str, patches: Sequence[Json]) -> list[Edit]:
    """Edits of the text ``patches`` (Automerge's, in order) make of ``before`` that take it back:
    each run of characters the patches inserted deleted, each run of ``before`` they deleted put
    back where it was, by character identity (a diff could pair an inserted "a" with an old one)."""
    doc: Tagged = [(char, ("start", i)) for i, char in enumerate(before)]
    for number, patch in enumerate(patches):
        _patch(doc, patch, number)
    edits: list[Edit] = []
    deleted, restored = 0, 0  # characters inserted since the last one of before; the next of before
    for at, (_, tag) in enumerate([*doc, ("", ("start", len(before)))]):
        if not isinstance(tag, tuple) or tag[0] != "start":
            deleted += 1
            continue
        if deleted or tag[1] > restored:
            edits.append(Edit(at - deleted, deleted, before[restored : tag[1]]))
        deleted, restored = 0, tag[1] + 1
    return edits


def close_doc(subscriptions: Subscriptions, sink: Sink, space: bytes, path: str) -> Json:
    """``doc.close``: no more ``doc.changed`` for that path on this connection."""
    return {"closed": subscriptions.unfollow(sink, space, check_path(path))}


def _session(subscriptions: Subscriptions, sink: Sink, ws: Workspace, path: str, method: str) -> DocSession:
    session = subscriptions.follower(sink, ws.space, check_path(path))
    if not isinstance(session, DocSession):
        raise RpcError(INVALID_PARAMS, f"{method}: params.path: {path!r} is not open on this connection; doc.open it first", "NotOpen")
    return session


def _unknown_base(path: str, base: list[bytes], why: str) -> RpcError:
    heads = ", ".join(head.hex()[:12] for head in base) or "none"
    return RpcError(INVALID_PARAMS, f"doc.edit: params.base: {path!r} at heads {heads}: {why}; nothing was applied, doc.open it again", "UnknownBase")


def _hexes(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]
