"""The client side of the editor protocol (``node/editor.py``), without I/O: one open document
that follows the CLIENT RULE. Standard library only.

A program that edits a file while others do (an agent, a test, a benchmark) keeps an
``EditorDocument`` per open file and moves messages between it and any connection::

    document = EditorDocument(api.call("doc.open", path="notes.md", encoding="utf-8"))
    document.type(document.position_of(5), 0, ", world")   # a keystroke, in the buffer at once
    if (params := document.take_edit()) is not None:        # nothing in flight: send it
        document.confirm(api.call("doc.edit", **params))
    document.receive(notification["params"])                # each doc.changed; False if dropped

The buffer holds the text encoded in the document's encoding, so positions are its units
(UTF-16 code units, UTF-8 bytes, or code points as 4-byte UTF-32 units) and an edit is a slice
of bytes, as in the editors that speak those units. Keystrokes typed while an edit is in flight
are kept as a piece table over the buffer as it was sent, and go as one ``doc.edit`` of
non-overlapping edits relative to that text (the text at the heads the reply returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

# Each encoding as a Python codec and the bytes of one of its units (node/editor.py's CODECS).
CODECS: dict[str, tuple[str, int]] = {"utf-16": ("utf-16-le", 2), "utf-8": ("utf-8", 1), "codepoint": ("utf-32-le", 4)}


@dataclass(frozen=True, slots=True)
class _Kept:
    """Units [start, end) of the text as it was sent."""

    start: int
    end: int


class EditorDocument:
    """One document as an editor holds it: the buffer, the confirmed heads, what is in flight."""

    def __init__(self, opened: Json) -> None:
        """From a ``doc.open`` result."""
        self.space: str = opened["space"]
        self.path: str = opened["path"]
        self.encoding: str = opened["encoding"]
        self._codec, self._width = CODECS[self.encoding]
        self._buffer = bytearray(opened["text"].encode(self._codec))
        self.confirmed: list[str] = list(opened["heads"])
        self.in_flight = False
        self.dropped = 0  # doc.changed dropped by rule 3 (their changes come again)
        self._sent_units = self.length  # of the buffer when the last edit was sent, which kept edits refer to
        self._pieces: list[_Kept | bytes] = self._fresh()

    @property
    def text(self) -> str:
        return self._buffer.decode(self._codec)

    @property
    def length(self) -> int:
        """The buffer's length in units."""
        return len(self._buffer) // self._width

    @property
    def kept(self) -> bool:
        """Whether keystrokes wait to be sent."""
        return bool(self._edits())

    def position_of(self, index: int) -> int:
        """The units before code point ``index`` of the buffer."""
        return len(self.text[:index].encode(self._codec)) // self._width

    def type(self, position: int, delete: int, insert: str) -> None:
        """A keystroke (or paste, or cut): into the buffer now, sent by a later ``take_edit``."""
        if not 0 <= position <= position + delete <= self.length:
            raise ValueError(f"cannot delete {delete} at {position} of {self.length} units")
        data = insert.encode(self._codec)
        self._splice(position, delete, data)
        before, rest = _split(self._pieces, position, self._width)
        _, after = _split(rest, delete, self._width)
        self._pieces = [*before, *([data] if data else []), *after]

    def take_edit(self) -> Json | None:
        """The params of the ``doc.edit`` to send now, or None: one is in flight, or nothing is
        kept. The edit is then in flight until ``confirm``."""
        edits = self._edits()
        if self.in_flight or not edits:
            return None
        self.in_flight = True
        self._sent_units, self._pieces = self.length, self._fresh()
        return {"space": self.space, "path": self.path, "base": self.confirmed, "edits": edits}

    def confirm(self, result: Json) -> None:
        """The ``doc.edit`` reply: its heads are the text sent, the base of the next edit."""
        self.confirmed = list(result["heads"])
        self.in_flight = False

    def receive(self, params: Json) -> bool:
        """A ``doc.changed``: applied if nothing is in flight or kept and it starts from the
        confirmed heads; else dropped (False), since the next one repeats its changes."""
        if params["path"] != self.path or params["space"] != self.space:
            raise ValueError(f"a doc.changed of {params['path']!r}, not of {self.path!r}")
        if self.in_flight or self.kept or params["from_heads"] != self.confirmed:
            self.dropped += 1
            return False
        for patch in params["patches"]:
            self._splice(patch["position"], patch["delete"], patch["insert"].encode(self._codec))
        self.confirmed = list(params["to_heads"])
        self._sent_units, self._pieces = self.length, self._fresh()
        return True

    def _fresh(self) -> list[_Kept | bytes]:
        """The pieces of an unedited buffer."""
        return [_Kept(0, self.length)] if self.length else []

    def _edits(self) -> list[Json]:
        """The kept keystrokes as edits of the text sent: sorted, apart, each a deleted gap
        between kept pieces with what was inserted there."""
        edits, at, inserted = [], 0, bytearray()
        for piece in [*self._pieces, _Kept(self._sent_units, self._sent_units)]:
            if isinstance(piece, bytes):
                inserted += piece
                continue
            if piece.start > at or inserted:
                edits.append({"position": at, "delete": piece.start - at, "insert": inserted.decode(self._codec)})
            at, inserted = piece.end, bytearray()
        return edits

    def _splice(self, position: int, delete: int, data: bytes) -> None:
        start = position * self._width
        self._buffer[start : start + delete * self._width] = data


def _split(pieces: list[_Kept | bytes], units: int, width: int) -> tuple[list[_Kept | bytes], list[_Kept | bytes]]:
    """The pieces before and after ``units`` units into them."""
    for number, piece in enumerate(pieces):
        if units == 0:
            return pieces[:number], pieces[number:]
        size = len(piece) // width if isinstance(piece, bytes) else piece.end - piece.start
        if units < size:
            if isinstance(piece, bytes):
                head, tail = piece[: units * width], piece[units * width :]
                return [*pieces[:number], head], [tail, *pieces[number + 1 :]]
            middle = piece.start + units
            return [*pieces[:number], _Kept(piece.start, middle)], [_Kept(middle, piece.end), *pieces[number + 1 :]]
        units -= size
    return list(pieces), []
