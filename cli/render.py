"""How commands print: JSON for programs, tables and sentences for people.

stdout carries the result and nothing else; errors, hints and spinners go to stderr. A listing is
a rich table on a terminal and tab-separated columns in a pipe, so ``distspace ls | cut -f1``
works and nothing is cut to a terminal width that is not there. rich is imported only when a
terminal is there to show it (it costs ~50 ms).

Much of what is printed was written by other peers: commit messages, names, paths, file lines.
It is shown as plain text — never read as rich markup (``[link=...]``, ``[blink]``) — with every
control character (ESC, C0, DEL, C1, Unicode line separators) replaced by a visible ``\\xNN``-style
escape, so a peer cannot colour, move, retitle or clear the terminal, or forge a line of output.
``say``, ``hint``, ``table`` and ``diff_text`` do this for every text they are given; ``write_bytes`` (``distspace cat``)
does not: it is the file's bytes, as ``cat`` gives them.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from node import rpc

# Ed25519 peer ids all begin "12D3KooW"; their last characters tell peers apart, as a hash prefix does.
PEER_SHORT_CHARS = 8
HASH_SHORT_CHARS = 10
# What a terminal acts on rather than shows: C0 (but tab and line feed), DEL, C1, and Unicode's
# line and paragraph separators and bidirectional overrides (which reorder what follows).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# In one cell of a table, a tab or line break would also split the row.
_CELL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str, *, cell: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), never acted on."""
    return (_CELL_CONTROLS if cell else _CONTROLS).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def emit_json(result: Any) -> None:
    print(rpc.encode(result))


def show(as_json: bool, result: Any, human: Callable[[Any], None]) -> int:
    """``--json``: the result as the API gave it; otherwise ``human`` prints it for people."""
    if as_json:
        emit_json(result)
    else:
        human(result)
    return 0


def say(text: str) -> None:
    print(plain(text))


def hint(text: str) -> None:
    print(plain(text), file=sys.stderr)


def write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [["" if cell is None else plain(str(cell), cell=True) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        for row in cells:
            print("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(*headers, box=None, header_style="bold", pad_edge=False)
    for row in cells:
        grid.add_row(*(Text(cell) for cell in row))  # Text, not str: rich would read markup in it
    Console().print(grid)


@contextmanager
def busy(message: str) -> Iterator[None]:
    """A spinner on stderr while a long call runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def diff_text(unified: str) -> str:
    """Unified diff text, its lines plain (a file's own escapes are shown), coloured on a terminal."""
    # Split at line feeds only: splitlines() would also break at a \r, \x1c or \u2028 inside a line.
    lines = [plain(line) for line in unified.removesuffix("\n").split("\n")] if unified else []
    if sys.stdout.isatty():
        colours = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
        for index, line in enumerate(lines):
            colour = None if line.startswith(("+++", "---")) else colours.get(line[:1])
            lines[index] = f"{colour}{line}\x1b[0m" if colour else line
    return "".join(f"{line}\n" for line in lines)


def short_peer(peer_id: str) -> str:
    return peer_id[-PEER_SHORT_CHARS:]


def author(entry: dict[str, Any]) -> str:
    """A log entry's or blame line's author: its short peer id, then the name and kind its own
    peer record gives (``a1b2c3d4 bob [agent]``), the id alone until that record reaches us.
    The id comes first because the name is only what the author calls itself."""
    short = short_peer(entry["author"])
    if entry.get("author_kind") is None:
        return short
    return f"{short} {entry['author_name']} [{entry['author_kind']}]"


def short_hash(hex_hash: str) -> str:
    return hex_hash[:HASH_SHORT_CHARS]


def when(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(time_ms / 1000))
