"""Crash safety with real processes: SIGKILL at random moments never loses an acknowledged edit.

A child process (crash_writer.py) appends numbered lines to one doc of a SQLite store, printing
each number only after ``commit`` returned. The parent reads a random number of those
acknowledgements, then kills the child with SIGKILL — usually in the middle of its next
commit, sometimes in a snapshot write or a WAL checkpoint. After every kill the store must
open, ``verify`` must be clean, and every acknowledged line must be there. All trials share
one store, so each run also recovers from the previous crash.

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

import native
import pytest

from protocol.identity import Identity
from store.repo import Repo
from store_helpers import NOW_MS

import crash_writer

TRIALS = 20
EDITS_PER_CHILD = 1000
SEED = 20240501
# Small, so kills also land inside snapshot writes (every this many changes).
SNAPSHOT_EVERY = 50
# Generous for a loaded 2-core machine; a healthy child acknowledges an edit in milliseconds.
ACK_TIMEOUT_S = 30
WRITER = Path(crash_writer.__file__)
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    for trial in range(TRIALS):
        wanted = rng.randint(0, EDITS_PER_CHILD)
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), alice.seed.hex(), genesis.encode().hex(), str(EDITS_PER_CHILD), str(SNAPSHOT_EVERY)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            acknowledged += read_acks(child, wanted)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stderr.close()

        numbers = logged_numbers(path, alice, genesis.space_id)
        assert numbers == list(range(len(numbers))), f"trial {trial}: the log is not 0..n-1"
        assert set(acknowledged) <= set(numbers), f"trial {trial}: acknowledged edits were lost"
        acknowledged = numbers  # an unacknowledged edit may have committed; later runs continue after it
