"""New files' first changes, built on a few threads: what a bulk write spends most of its time on.

A new file's content doc is one change: a text object holding the text (one op per code point)
or a bytes value. ``native.first_change`` encodes it without building the document and releases
the GIL while it does, so a batch is built on ``CONTENT_BUILD_THREADS`` threads while the
caller signs and stores the ones already built. Results come back in the order of the contents,
and each change depends only on its content, key, author, message and time, never on which
thread built it or when: the threaded build is byte for byte the sequential one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import native

# Threads building first changes at once: the machines this runs on have a few cores, and the
# caller's thread (signing, SQLite) needs one too.
CONTENT_BUILD_THREADS = min(4, os.cpu_count() or 1)
# Below this many characters (or bytes) in a batch, starting threads costs more than they save
# (~0.13 us per character to build, ~100 us to start a pool).
THREADED_BUILD_MIN_CHARS = 64 * 1024


def first_changes(
    actor: bytes, contents: Sequence[tuple[str, str | bytes]], *, message: str, time: int
) -> Iterator[native.DecodedChange]:
    """The first change of each new doc, in the order of ``contents`` (each a root key and the
    str or bytes to put there), built ahead on threads while the caller consumes them."""
    threads = min(CONTENT_BUILD_THREADS, len(contents))
    if threads < 2 or sum(len(content) for _, content in contents) < THREADED_BUILD_MIN_CHARS:
        for key, content in contents:
            yield native.first_change(actor, key, content, message, time)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="first-change") as pool:
        yield from pool.map(lambda item: native.first_change(actor, item[0], item[1], message, time), contents)

