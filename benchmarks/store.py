"""store: what the durable store costs — ingest, cold open, reads at a version, snapshots, memory.

The automerge-paper trace becomes one Automerge change per patch, written by alice (actor = her
public key); bob's store ingests them as the sync protocol would hand them over: decoded,
verified, in batches of INGEST_BATCH with one signed tip each. Two fresh processes:

1. ``ingest``: bob's SQLite store applies every batch (one transaction each); the baseline is
   raw Automerge ``apply_changes`` of the same changes into an empty document. Then
   ``maintain`` takes the snapshot the ingest made due.
2. ``open_and_read``, on that store: a cold open that reads the file's text (beside a cited
   baseline, not measured here: automerge-repo 2.5.6 on the project machine, 1.3 s, issue 4),
   reads of the text at random past versions, a snapshot of the live document, and the memory
   all of it takes.
"""

from __future__ import annotations

import random
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import native
from benchmarks.measure import PhaseMemory, log, run_python_workload
from benchmarks.registry import Figure, RunOptions, benchmark
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.identity import Identity
from protocol.space import DOC_ID_BYTES, Genesis
from protocol.tips import SignedTip
from simulations.trace_files import load_sequential
from store.repo import Repo

TRACE = "automerge-paper"
FULL_CHANGES = 100_000  # the "100k-change file"
QUICK_CHANGES = 10_000
# Changes per apply call, one tip each: the order of a sync batch; every call is a transaction.
INGEST_BATCH = 1_000
INGEST_TARGET_PER_S = 20_000
COLD_OPEN_TARGET_S = 0.5
AUTOMERGE_REPO_COLD_OPEN_S = 1.3
AUTOMERGE_REPO_COLD_OPEN_SOURCE = "Dist-Space issue 4, automerge-repo 2.5.6 on the project machine; in benchmarks/store.py since caa7709, 2026-11-22"
READS_AT_VERSION = 200
SEED = 4
ALICE_SEED = bytes([0xA1]) * 32
BOB_SEED = bytes([0xB0]) * 32
GENESIS_NONCE = bytes(16)
FILE_DOC = bytes([0x0F]) * DOC_ID_BYTES
TEXT_KEY = "text"


def _genesis() -> Genesis:
    return Genesis.create(Identity(ALICE_SEED), "benchmark", NOW_MS, nonce=GENESIS_NONCE)


def _trace_changes(limit: int) -> tuple[list[bytes], str]:
    """One change per trace patch by alice, and the text the changes end with."""
    replay = load_sequential(TRACE, limit)
    document = native.Document(Identity(ALICE_SEED).public_key)
    text = document.put_object(native.ROOT, TEXT_KEY, "text")
    document.splice_text(text, 0, 0, replay.start)
    document.commit(time=NOW_MS // 1000)
    for pos, delete, insert in replay.patches:
        document.splice_text(text, pos, delete, insert)
        document.commit(time=NOW_MS // 1000)
    return document.get_changes(), replay.expected


def ingest(store_dir: str, limit: int) -> dict[str, Any]:
    """Workload 1 (fresh process): bob's store ingests alice's pre-signed changes."""
    raws, expected = _trace_changes(limit)
    alice, genesis = Identity(ALICE_SEED), _genesis()
    space = genesis.space_id
    decoded = [native.decode_change(raw) for raw in raws]
    batches = [
        (decoded[start : start + INGEST_BATCH], [SignedTip.sign(alice, space, FILE_DOC, decoded[end - 1].hash)])
        for start in range(0, len(decoded), INGEST_BATCH)
        for end in (min(start + INGEST_BATCH, len(decoded)),)
    ]

    started = perf_counter()
    native.Document().apply_changes(raws)
    automerge_apply_s = perf_counter() - started

    with Repo.open(Path(store_dir) / "bob.db", Identity(BOB_SEED)) as repo:
        repo.add_space(genesis)
        started = perf_counter()
        for changes, tips in batches:
            repo.apply(space, FILE_DOC, changes, tips, now_ms=NOW_MS)
        ingest_s = perf_counter() - started
        started = perf_counter()
        repo.maintain(NOW_MS)
        maintain_s = perf_counter() - started
        if repo.heads(space, FILE_DOC) != sorted(native.Document.load(b"".join(raws)).heads()):
            raise AssertionError("the store's heads differ from Automerge's")
    return {
        "changes": len(raws),
        "ingest_per_s": len(raws) / ingest_s,
        "automerge_apply_per_s": len(raws) / automerge_apply_s,
        "maintain_s": maintain_s,
        "expected_chars": len(expected),
        "store_mb": sum(f.stat().st_size for f in Path(store_dir).iterdir()) / 1e6,
    }


def open_and_read(store_dir: str, expected_chars: int) -> dict[str, Any]:
    """Workload 2 (fresh process): cold open, reads at versions, a live snapshot, memory."""
    space = _genesis().space_id
    memory = PhaseMemory()
    started = perf_counter()
    repo = Repo.open(Path(store_dir) / "bob.db", Identity(BOB_SEED))
    document = repo.document(space, FILE_DOC)
    found = document.get(native.ROOT, TEXT_KEY)
    assert isinstance(found, native.ObjectRef)
    text = document.text(found.id)
    cold_open_s = perf_counter() - started
    open_memory_mb = memory.growth_mb()
    if len(text) != expected_chars:
        raise AssertionError(f"read {len(text)} chars, expected {expected_chars}")

    rng = random.Random(SEED)
    latencies_ms = []
    for _ in range(READS_AT_VERSION):
        version = rng.randint(1, repo.version(space))
        started = perf_counter()
        heads = repo.heads_at(space, version)[FILE_DOC]
        document.text(found.id, heads)
        latencies_ms.append((perf_counter() - started) * 1000)

    document.splice_text(found.id, 0, 0, "x")
    repo.commit(space, FILE_DOC, "one local edit", now_ms=NOW_MS)
    started = perf_counter()
    repo.snapshot(space, NOW_MS)
    snapshot_s = perf_counter() - started
    snapshot = repo.backend.doc_snapshot(space, FILE_DOC)
    if snapshot is None:
        raise AssertionError("snapshot() left the file doc without a snapshot")
    snapshot_bytes = sum(len(repo.block(cid)) for cid in snapshot.chunks)
    repo.close()
    return {
        "cold_open_s": cold_open_s,
        "open_memory_mb": open_memory_mb,
        "read_at_version_median_ms": statistics.median(latencies_ms),
        "read_at_version_p95_ms": statistics.quantiles(latencies_ms, n=20)[-1],
        "snapshot_s": snapshot_s,
        "snapshot_bytes": snapshot_bytes,
        "snapshot_mb_per_s": snapshot_bytes / 1e6 / snapshot_s,
    }


def _best(runs: list[dict[str, Any]], higher_is_better: frozenset[str]) -> dict[str, Any]:
    """Each figure's best over the runs: noise on a shared machine only makes things worse."""
    return {key: (max if key in higher_is_better else min)(run[key] for run in runs) for key in runs[0]}


@benchmark("store", cheap=True)
def store(options: RunOptions) -> Iterator[Figure]:
    limit = QUICK_CHANGES if options.quick else FULL_CHANGES
    ingests, reads = [], []
    for run in range(1, options.repeat + 1):
        with tempfile.TemporaryDirectory(prefix="distspace-bench-") as store_dir:
            log(f"store run {run}/{options.repeat}: ingest of {limit} changes")
            ingests.append(run_python_workload(ingest, store_dir=store_dir, limit=limit))
            log(f"store run {run}/{options.repeat}: cold open and reads")
            reads.append(run_python_workload(open_and_read, store_dir=store_dir, expected_chars=ingests[-1]["expected_chars"]))
    ingested = _best(ingests, frozenset({"ingest_per_s", "automerge_apply_per_s"}))
    read = _best(reads, frozenset({"snapshot_mb_per_s"}))
    log(
        f"store: ingest {ingested['ingest_per_s']:.0f} changes/s (target {INGEST_TARGET_PER_S}), "
        f"cold open {read['cold_open_s']:.3f} s (target {COLD_OPEN_TARGET_S})"
    )
    yield Figure("ingest_rate", round(ingested["ingest_per_s"]), "changes/s", "automerge_apply_changes", round(ingested["automerge_apply_per_s"]))
    yield Figure("ingest_changes", ingested["changes"], "changes")
    yield Figure("maintain_snapshot_after_ingest", round(ingested["maintain_s"], 3), "s")
    yield Figure("store_size", round(ingested["store_mb"], 2), "MB")
    yield Figure("cold_open_read_text", round(read["cold_open_s"], 3), "s", "automerge-repo 2.5.6", AUTOMERGE_REPO_COLD_OPEN_S, cited=AUTOMERGE_REPO_COLD_OPEN_SOURCE)
    yield Figure("read_at_version_median", round(read["read_at_version_median_ms"], 3), "ms")
    yield Figure("read_at_version_p95", round(read["read_at_version_p95_ms"], 3), "ms")
    yield Figure("snapshot_time", round(read["snapshot_s"], 4), "s")
    yield Figure("snapshot_size", read["snapshot_bytes"], "bytes")
    yield Figure("snapshot_rate", round(read["snapshot_mb_per_s"], 2), "MB/s")
    yield Figure("open_memory_growth", round(read["open_memory_mb"], 1), "MB")
    yield Figure("open_process_peak_rss", round(read["process_peak_rss_mb"], 1), "MB")
