"""How commands print: JSON for programs, tables and sentences for people.

stdout carries the result and nothing else; errors, hints and spinners go to stderr. A listing is
a rich table on a terminal and tab-separated columns in a pipe, so ``distspace ls | cut -f1``
works and nothing is cut to a terminal width that is not there. rich is imported only when a
terminal is there to show it (it costs ~50 ms).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from node import rpc

# Ed25519 peer ids all begin "12D3KooW"; their last characters tell peers apart, as a hash prefix does.
PEER_SHORT_CHARS = 8
HASH_SHORT_CHARS = 10


def emit_json(result: Any) -> None:
    print(rpc.encode(result))


def say(text: str) -> None:
    print(text)


def hint(text: str) -> None:
    print(text, file=sys.stderr)


def write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    if not sys.stdout.isatty():
        for row in rows:
            print("\t".join("" if cell is None else str(cell) for cell in row))
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(*headers, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
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
    """Unified diff text, coloured on a terminal."""
    if not sys.stdout.isatty():
        return unified
    colours = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
    lines = []
    for line in unified.splitlines():
        colour = None if line.startswith(("+++", "---")) else colours.get(line[:1])
        lines.append(f"{colour}{line}\x1b[0m" if colour else line)
    return "".join(f"{line}\n" for line in lines)


def short_peer(peer_id: str) -> str:
    return peer_id[-PEER_SHORT_CHARS:]


def short_hash(hex_hash: str) -> str:
    return hex_hash[:HASH_SHORT_CHARS]


def when(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(time_ms / 1000))
