"""capabilities: what authorising changes costs at ingest — changes/s into a private space
with a 1,000-record capability log, beside the same changes into an open space, same run
(issue 13's target: under 10% slower).

One fresh process. A writer holding ``write`` on ``src/*`` (one grant among RECORDS: the rest
are grants to other keys) types into ``src/notes.txt``, one Automerge change per keystroke,
in a private space and in an open one that hold the same file. A fresh SQLite store (root's)
ingests them through ``protocol.ingest.ingest`` — the path every remote change takes, where
the private space's changes are each checked by ``CapabilityLog.change_refusal`` over their
paths — in batches of BATCH changes with one signed tip each: 1 is live editing (a pushed
keystroke), 100 a catch-up reply. Rounds alternate open and private; each rate is the best
round (noise only adds time). Only the ingest calls are timed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import native
from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from protocol.capabilities import Grant, Role
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.ingest import PendingChanges, VerifiedTips, ingest
from protocol.memory import MemoryChangeStore
from protocol.space import Genesis
from protocol.tips import SignedTip
from store.repo import Repo
from store.workspace import Workspace

RECORDS = 1_000  # the issue's "1,000-entry capability log"
CHANGES = 5_000
QUICK_CHANGES = 500
BATCHES = (1, 100)
ROUNDS = 3
TARGET_SLOWDOWN = 0.10
ROOT_SEED = bytes([0x52]) * 32
WRITER_SEED = bytes([0x57]) * 32
FILE = "src/notes.txt"
SCOPE = ("src/*",)


def _space(private: bool) -> tuple[Genesis, list[tuple[bytes, list[bytes], list[SignedTip]]]]:
    """A space holding FILE, made by root: its genesis and root's changes per doc."""
    root = Identity(ROOT_SEED)
    with Repo.open(None, root) as repo:
        genesis = repo.create_space("capabilities benchmark", NOW_MS, private=private)
        Workspace(repo, genesis.space_id).write(FILE, "", now_ms=NOW_MS, parents=True)
        space = genesis.space_id
        docs = [(doc, repo.changes_since(space, doc, []), repo.tips(space, doc)) for doc in repo.doc_ids(space)]
    return genesis, docs


def _records(genesis: Genesis) -> list[bytes]:
    """The writer's scoped grant and RECORDS - 1 grants to other keys, all by root."""
    root, space = Identity(ROOT_SEED), genesis.space_id
    writer = Grant.issue(root, space=space, subject=Identity(WRITER_SEED).public_key, role=Role.WRITE, paths=SCOPE, issued_ms=NOW_MS)
    others = [
        Grant.issue(root, space=space, subject=Identity(os.urandom(32)).public_key, role=Role.WRITE, paths=SCOPE, issued_ms=NOW_MS)
        for _ in range(RECORDS - 1)
    ]
    return [record.encode() for record in (writer, *others)]


def _keystrokes(genesis: Genesis, base: list[tuple[bytes, list[bytes], list[SignedTip]]], changes: int, batch: int) -> tuple[bytes, list[tuple[list[native.DecodedChange], list[SignedTip]]]]:
    """The writer's changes to FILE's doc, batched with one tip each (the batch's last)."""
    writer, space = Identity(WRITER_SEED), genesis.space_id
    author = MemoryChangeStore()
    for doc, raws, tips in base:
        author.apply(space, doc, [native.decode_change(raw) for raw in raws], tips)
    file_doc = next(doc for doc, _, _ in base if doc != bytes(16))
    commits = []
    for index in range(changes):
        character = chr(ord("a") + index % 26)

        def type_one(document: native.Document, character: str = character) -> None:
            text = document.get(native.ROOT, "text")
            assert isinstance(text, native.ObjectRef)
            document.splice_text(text.id, document.length(text.id), 0, character)

        commits.append(author.commit(writer, space, file_doc, [type_one], now_ms=NOW_MS))
    batches = []
    for start in range(0, changes, batch):
        part = commits[start : start + batch]
        batches.append(([native.decode_change(raw) for commit in part for raw in commit.changes], [part[-1].tip]))
    return file_doc, batches


def _ingest_s(directory: Path, genesis: Genesis, base: list[tuple[bytes, list[bytes], list[SignedTip]]], records: list[bytes], file_doc: bytes, batches: list[tuple[list[native.DecodedChange], list[SignedTip]]]) -> float:
    """Seconds a fresh store (root's, on SQLite) takes to ingest ``batches``."""
    path = directory / f"root-{os.urandom(4).hex()}.db"
    space = genesis.space_id
    with Repo.open(path, Identity(ROOT_SEED)) as repo:
        repo.add_space(genesis)
        repo.add_capability_records(space, records)
        for doc, raws, tips in base:
            repo.apply(space, doc, [native.decode_change(raw) for raw in raws], tips)
        pending, verified = PendingChanges(), VerifiedTips()
        repo.capability_log(space).change_refusal(Identity(WRITER_SEED).public_key, file_doc, 1, [FILE], NOW_MS)  # evaluate once, as a node would have
        started = perf_counter()
        for changes, tips in batches:
            result = ingest(repo, space, file_doc, changes, tips, pending, verified, NOW_MS)
            if len(result.applied) != len(changes):
                raise AssertionError(f"{len(result.applied)} of {len(changes)} applied: {result.unauthorised[:1]} {result.refused[:1]}")
        elapsed = perf_counter() - started
    for leftover in directory.glob(path.name + "*"):
        leftover.unlink()
    return elapsed


def ingest_rates(changes: int, rounds: int) -> dict[str, Any]:
    """Workload (fresh process): open vs private ingest, per batch size (module docstring)."""
    spaces = {private: _space(private) for private in (False, True)}
    records = {False: [], True: _records(spaces[True][0])}
    result: dict[str, Any] = {"changes": changes, "records": RECORDS}
    with tempfile.TemporaryDirectory(prefix="capabilities-bench-") as directory:
        for batch in BATCHES:
            work = {private: _keystrokes(*spaces[private], changes, batch) for private in (False, True)}
            best = {False: float("inf"), True: float("inf")}
            for _ in range(rounds):
                for private in (False, True):
                    genesis, base = spaces[private]
                    file_doc, batches = work[private]
                    best[private] = min(best[private], _ingest_s(Path(directory), genesis, base, records[private], file_doc, batches))
            result[f"batch_{batch}_open_per_s"] = changes / best[False]
            result[f"batch_{batch}_private_per_s"] = changes / best[True]
    return result


@benchmark("capabilities", cheap=True)
def capabilities(options: RunOptions) -> Iterator[Figure]:
    changes = QUICK_CHANGES if options.quick else CHANGES
    rounds = 1 if options.quick else max(ROUNDS, options.repeat)
    log(f"capabilities: {changes} changes, {RECORDS}-record log, {rounds} rounds, batches {BATCHES}")
    result = run_python_workload(ingest_rates, changes=changes, rounds=rounds)
    for batch in BATCHES:
        private, opened = result[f"batch_{batch}_private_per_s"], result[f"batch_{batch}_open_per_s"]
        if private <= 0 or opened <= 0:
            raise BenchmarkError("capabilities: a rate of zero")
        log(f"capabilities batch {batch}: private {private:.0f}/s, open {opened:.0f}/s ({private / opened - 1:+.1%})")
        yield Figure(f"ingest.batch_{batch}.private_{RECORDS}_records", round(private), "changes/s", "open_space", round(opened))
