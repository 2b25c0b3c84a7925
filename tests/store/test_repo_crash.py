"""Crash safety with real processes: SIGKILL at random moments never loses an acknowledged edit.

A child process (crash_writer.py) appends numbered lines to one doc of a SQLite store, printing
each number only after ``commit`` returned. The parent reads a random number of those
acknowledgements, then kills the child with SIGKILL — usually in the middle of its next
commit, sometimes in a snapshot write or a WAL checkpoint. After every kill the store must
open, ``verify`` must be clean, and every acknowledged line must be there. All trials share
one store, so each run also recovers from the previous crash.

A second child (crash_receiver.py) applies a remote author's single-change batches in groups,
as the sync driver does: after every kill, each group is stored whole or not at all, and every
group acknowledged is there.

The store lives on tmpfs (/dev/shm) when there is one: a killed process loses what it had not
written to the kernel, not what sits in the page cache, so tmpfs tests the same thing while
saving the ~2 ms fsync per commit that would make 10,000 commits slow on a shared machine.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import crash_receiver
import crash_writer
import native
from protocol.identity import Identity
from protocol.space import Genesis
from store.repo import Repo
from store_helpers import NOW_MS

TRIALS = 20
EDITS_PER_CHILD = 1000
SEED = 20240501
# Small, so kills also land inside snapshot writes (every this many changes).
SNAPSHOT_EVERY = 50
# Generous for a loaded 2-core machine; a healthy child acknowledges an edit in milliseconds.
ACK_TIMEOUT_S = 30
WRITER = Path(crash_writer.__file__)
RECEIVER = Path(crash_receiver.__file__)
RECEIVER_TRIALS = 10
RECEIVED_CHANGES = 2000
GROUP = 25  # single-change batches per group: kills land inside groups
GROUPS_PER_CHILD_MAX = 4  # so 10 children never run out of changes to receive
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TMPFS = Path("/dev/shm")


class ChildFailed(AssertionError):
    pass


def read_acks(child: subprocess.Popen[bytes], wanted: int) -> list[int]:
    """Wait for the 'ready' line, then read ``wanted`` acknowledged numbers straight off the pipe."""
    assert child.stdout is not None
    pipe = child.stdout.fileno()
    lines: list[bytes] = []
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while len(lines) < wanted + 1:  # + the 'ready' line
            if not selector.select(timeout=ACK_TIMEOUT_S):
                raise ChildFailed(f"no acknowledgement within {ACK_TIMEOUT_S} s")
            chunk = os.read(pipe, 65536)
            if not chunk:
                raise ChildFailed(f"the writer exited early: {child.stderr.read() if child.stderr else b''!r}")
            *complete, pending = (pending + chunk).split(b"\n")
            lines += complete
    if lines[0] != b"ready":
        raise ChildFailed(f"the writer said {lines[0]!r} before 'ready'")
    return [int(line) for line in lines[1 : wanted + 1]]


def acks_then_kill(arguments: list[str], wanted: int) -> list[int]:
    """Run a child on ``arguments``, read ``wanted`` acknowledgements, then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        return read_acks(child, wanted)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()


def logged_numbers(path: Path, identity: Identity, space: bytes) -> list[int]:
    with Repo.open(path, identity) as repo:
        assert repo.verify() == []
        document = repo.document(space, crash_writer.DOC)
        text = document.get(native.ROOT, crash_writer.TEXT_KEY)
        return [int(line) for line in document.text(text.id).splitlines()] if isinstance(text, native.ObjectRef) else []


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    if not (TMPFS.is_dir() and os.access(TMPFS, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=TMPFS, prefix="distspace-crash-") as directory:
        yield Path(directory)


def test_sigkill_at_random_moments_loses_no_acknowledged_edit(store_dir: Path, alice) -> None:
    path = store_dir / "crash.db"
    with Repo.open(path, alice) as repo:
        genesis = repo.create_space("crash", NOW_MS)
    rng = random.Random(SEED)
    acknowledged: list[int] = []
    for trial in range(TRIALS):
        arguments = [str(path), alice.seed.hex(), genesis.encode().hex(), str(EDITS_PER_CHILD), str(SNAPSHOT_EVERY)]
        acknowledged += acks_then_kill([str(WRITER), *arguments], rng.randint(0, EDITS_PER_CHILD))

        numbers = logged_numbers(path, alice, genesis.space_id)
        assert numbers == list(range(len(numbers))), f"trial {trial}: the log is not 0..n-1"
        assert set(acknowledged) <= set(numbers), f"trial {trial}: acknowledged edits were lost"
        acknowledged = numbers  # an unacknowledged edit may have committed; later runs continue after it


def test_sigkill_during_grouped_remote_applies_keeps_every_group_whole(store_dir: Path) -> None:
    path = store_dir / "receiver.db"
    genesis = Genesis.create(crash_receiver.AUTHOR, "crash", NOW_MS, nonce=bytes(16))
    space, doc = genesis.space_id, crash_receiver.DOC
    hashes = [change.hash for change, _ in crash_receiver.authored(space, RECEIVED_CHANGES)]
    rng = random.Random(SEED)
    stored: list[bytes] = []
    for trial in range(RECEIVER_TRIALS):
        arguments = [str(path), genesis.encode().hex(), str(RECEIVED_CHANGES), str(GROUP)]
        acknowledged = acks_then_kill([str(RECEIVER), *arguments], rng.randint(0, GROUPS_PER_CHILD_MAX))

        with Repo.open(path, crash_receiver.RECEIVER) as repo:
            assert repo.verify() == [], f"trial {trial}"
            stored = [change_hash for change_hash in hashes if repo.has_change(space, doc, change_hash)]
        assert stored == hashes[: len(stored)], f"trial {trial}: the stored changes are not the first n"
        assert len(stored) % GROUP == 0, f"trial {trial}: {len(stored)} changes stored, a group was cut"
        assert len(stored) >= max(acknowledged, default=0), f"trial {trial}: an acknowledged group was lost"
    assert stored, "no trial stored anything: the test did not exercise groups"
