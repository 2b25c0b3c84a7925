"""Crash-test child: apply a remote author's single-change batches in groups, printing the count
of changes stored each time a group commits.

Run by tests/store/test_repo_crash.py, which kills it with SIGKILL at a random moment. The
author's changes are the same on every run (fixed key, doc and clock), so each run resumes after
the changes already stored.

    python crash_receiver.py STORE_PATH GENESIS_HEX CHANGES GROUP
"""

from __future__ import annotations

import sys
from pathlib import Path

import native
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.space import Genesis
from protocol.tips import SignedTip
from store.repo import Repo

AUTHOR = Identity(bytes([0xA1]) * 32)
RECEIVER = Identity(bytes([0xB0]) * 32)
DOC = bytes([0x0F]) * 16


def authored(space: bytes, count: int) -> list[tuple[native.DecodedChange, SignedTip]]:
    """The author's first ``count`` keystrokes, each a change with its own signed tip (a live push)."""
    document = native.Document(actor=AUTHOR.public_key)
    text = document.put_object(native.ROOT, "log", "text")
    hashes = []
    for number in range(count):
        document.splice_text(text, document.length(text), 0, f"{number % 10}")
        hashes.append(document.commit(None, time=NOW_MS // 1000))
    changes = {change.hash: change for change in map(native.decode_change, document.get_changes([]))}
    return [(changes[change_hash], SignedTip.sign(AUTHOR, space, DOC, change_hash)) for change_hash in hashes]


def main() -> None:
    path, genesis_hex, count, group = sys.argv[1:]
    genesis = Genesis.decode(bytes.fromhex(genesis_hex))
    space = genesis.space_id
    pushes = authored(space, int(count))
    with Repo.open(Path(path), RECEIVER) as repo:
        repo.add_space(genesis)
        start = sum(1 for change, _ in pushes if repo.has_change(space, DOC, change.hash))
        print("ready", flush=True)
        for first in range(start, len(pushes), int(group)):
            with repo.group():
                for change, tip in pushes[first : first + int(group)]:
                    repo.apply(space, DOC, [change], [tip], now_ms=NOW_MS)
            print(min(first + int(group), len(pushes)), flush=True)


if __name__ == "__main__":
    main()
