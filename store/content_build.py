"""New files' content docs, built on a few threads: what a bulk write spends most of its time on.

A new file's content doc is one change: a text object holding the text (one op per code point)
or a bytes value. ``native.first_change`` encodes it without building the document, and the tip
that covers it is signed (libsodium), both releasing the GIL, so a batch is built on
``CONTENT_BUILD_THREADS`` threads while the caller stores the ones already built. Results come
back in the order of the contents, and each depends only on its content, key, doc, author,
message and time (Ed25519 signatures are deterministic), never on which thread built it or when:
the threaded build is byte for byte the sequential one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import native
from protocol.identity import Identity
from protocol.tips import SignedTip

# Threads building first changes at once: the machines this runs on have a few cores, and the
# caller's thread (SQLite, the tree) needs one too.
CONTENT_BUILD_THREADS = min(4, os.cpu_count() or 1)
# Below this many characters (or bytes) in a batch, starting threads costs more than they save
# (~0.13 us per character to build, ~70 us per tip, ~100 us to start a pool).
THREADED_BUILD_MIN_CHARS = 64 * 1024
# Docs per task handed to a thread, up to about this many characters: one task per small file
# cost ~35 us to submit and as much again to wait on, a tenth of building a 2 KB file.
BUILD_TASK_CHARS = 64 * 1024
# A build holds ~270 bytes per character at its peak (Automerge's ops before they are encoded:
# ~550 MB for a 2 MiB file, as much as building the document did): contents this large are
# built one at a time, so threads do not multiply that peak.
LARGE_BUILD_CHARS = 256 * 1024

NewDoc = tuple[bytes, native.DecodedChange, SignedTip]  # a doc id, its first change, the tip covering it


def new_docs(
    identity: Identity, space: bytes, contents: Sequence[tuple[bytes, str, str | bytes]], *, message: str, time: int
) -> Iterator[NewDoc]:
    """Each new doc of ``contents`` (a doc id, the root key and the str or bytes to put there)
    with its first change by ``identity`` and the tip covering it, in order, built ahead on
    threads while the caller consumes them."""

    one_large = threading.Lock()

    def build(item: tuple[bytes, str, str | bytes]) -> NewDoc:
        doc, key, content = item
        with one_large if len(content) >= LARGE_BUILD_CHARS else contextlib.nullcontext():
            change = native.first_change(identity.public_key, key, content, message, time)
        return doc, change, SignedTip.sign(identity, space, doc, change.hash)

    threads = min(CONTENT_BUILD_THREADS, len(contents))
    if threads < 2 or sum(len(content) for _, _, content in contents) < THREADED_BUILD_MIN_CHARS:
        yield from map(build, contents)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="new-docs") as pool:
        for built in pool.map(lambda task: [build(item) for item in task], _tasks(contents)):
            yield from built


def _tasks(contents: Sequence[tuple[bytes, str, str | bytes]]) -> Iterator[Sequence[tuple[bytes, str, str | bytes]]]:
    """``contents`` in order, cut into runs of about BUILD_TASK_CHARS characters."""
    start, chars = 0, 0
    for end, (_, _, content) in enumerate(contents):
        if end > start and chars >= BUILD_TASK_CHARS:
            yield contents[start:end]
            start, chars = end, 0
        chars += len(content)
    if start < len(contents):
        yield contents[start:]
