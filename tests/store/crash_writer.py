"""Crash-test child: append numbered lines to one doc, printing each number once its commit returns.

Run by tests/store/test_repo_crash.py, which kills it with SIGKILL at a random moment. It
resumes the numbering from the lines already in the store, so every run continues the last.

    python crash_writer.py STORE_PATH SEED_HEX GENESIS_HEX EDITS SNAPSHOT_EVERY
"""

from __future__ import annotations

import sys
from pathlib import Path

import native
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.space import Genesis
from store.repo import Repo

DOC = bytes([0x0F]) * 16
TEXT_KEY = "log"


def main() -> None:
    path, seed_hex, genesis_hex, edits, snapshot_every = sys.argv[1:]
    genesis = Genesis.decode(bytes.fromhex(genesis_hex))
    with Repo.open(Path(path), Identity(bytes.fromhex(seed_hex)), snapshot_every=int(snapshot_every)) as repo:
        repo.add_space(genesis)
        space = genesis.space_id
        document = repo.document(space, DOC)
        found = document.get(native.ROOT, TEXT_KEY)
        if isinstance(found, native.ObjectRef):
            text = found.id
        else:
            text = document.put_object(native.ROOT, TEXT_KEY, "text")
            repo.commit(space, DOC, "start the log", now_ms=NOW_MS)
        first = len(document.text(text).splitlines())
        print("ready", flush=True)
        for number in range(first, first + int(edits)):
            document = repo.document(space, DOC)
            document.splice_text(text, document.length(text), 0, f"{number}\n")
            repo.commit(space, DOC, f"line {number}", now_ms=NOW_MS)
            print(number, flush=True)


if __name__ == "__main__":
    main()
