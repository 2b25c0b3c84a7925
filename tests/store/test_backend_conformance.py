"""The backend contract, run against SQLite and memory: atomic batches, the same constraints.

A backend is dumb (store/backend.py): these tests write rows directly, without a repo, to pin
down what the repo may rely on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from store.backend import Backend, MemoryBackend
from store.errors import InvalidInput, StorageError
from store.records import (
    ChangeRow,
    Compaction,
    DocRow,
    DocSnapshot,
    QuarantineRow,
    SpaceSnapshot,
    SyncStateKey,
    SyncStateRow,
    TipRow,
    VersionRecord,
    VersionRow,
    WriteBatch,
)
from store.sqlite_backend import SqliteBackend

SPACE = bytes([1]) * 32
DOC = bytes([2]) * 16
ALICE = bytes([3]) * 32
H1, H2, H3 = (bytes([n]) * 32 for n in (0x11, 0x22, 0x33))
CID = bytes([0x01, 0x55, 0x12, 0x20]) + bytes(32)


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    store: Backend = SqliteBackend(tmp_path / "store.db") if request.param == "sqlite" else MemoryBackend()
    store.write(WriteBatch(spaces=[(SPACE, b"genesis")]))
    yield store
    store.close()


def change(change_hash: bytes, position: int, deps: tuple[bytes, ...] = ()) -> ChangeRow:
    return ChangeRow(SPACE, DOC, change_hash, position, ALICE, position + 1, deps, 1_700_000_000, b"raw" + change_hash)


def test_every_row_kind_reads_back_as_written(backend: Backend) -> None:
    record = VersionRecord(1, DOC, (H2,), (H1, H2), "local", 5)
    snapshot = DocSnapshot(SPACE, DOC, (H2,), 2, (CID,), 7)
    backend.write(
        WriteBatch(
            changes=[change(H1, 0), change(H2, 1, (H1,))],
            tips=[TipRow(SPACE, DOC, ALICE, H2, 2, bytes(64))],
            docs=[DocRow(SPACE, DOC, (H2,), 2)],
            versions=[VersionRow(SPACE, record)],
            sync_states=[SyncStateRow(ALICE, SPACE, DOC, b"state")],
            blocks=[(CID, b"data")],
            doc_snapshots=[snapshot],
            space_snapshots=[SpaceSnapshot(SPACE, CID, 1, 7)],
        )
    )
    assert backend.spaces() == [(SPACE, b"genesis")]
    assert backend.changes(SPACE, DOC) == [change(H1, 0), change(H2, 1, (H1,))]
    assert backend.changes(SPACE, DOC, from_position=1) == [change(H2, 1, (H1,))]
    assert backend.change(SPACE, DOC, H2) == change(H2, 1, (H1,)) and backend.change(SPACE, DOC, H3) is None
    assert backend.stored_hashes(SPACE, DOC, [H1, H3]) == {H1}
    assert backend.tips(SPACE, DOC) == [TipRow(SPACE, DOC, ALICE, H2, 2, bytes(64))]
    assert backend.docs(SPACE) == [DocRow(SPACE, DOC, (H2,), 2)] and backend.doc(SPACE, DOC) == DocRow(SPACE, DOC, (H2,), 2)
    assert backend.latest_version(SPACE) == 1 and backend.versions(SPACE, 0, None) == [record]
    assert backend.heads_at(SPACE, 1) == {DOC: (H2,)} and backend.heads_at(SPACE, 0) == {}
    assert backend.sync_state(ALICE, SPACE, DOC) == b"state"
    assert backend.block(CID) == b"data" and list(backend.blocks()) == [(CID, b"data")]
    assert backend.doc_snapshot(SPACE, DOC) == snapshot and backend.doc_snapshots(SPACE) == [snapshot]
    assert backend.space_snapshot(SPACE) == SpaceSnapshot(SPACE, CID, 1, 7)


def test_a_batch_with_a_row_of_an_unknown_space_writes_nothing(backend: Backend) -> None:
    stranger = bytes([9]) * 32
    batch = WriteBatch(
        changes=[change(H1, 0)],
        blocks=[(CID, b"data")],
        docs=[DocRow(stranger, DOC, (H1,), 1)],
    )
    with pytest.raises(StorageError):
        backend.write(batch)
    assert backend.changes(SPACE, DOC) == [] and backend.block(CID) is None


def test_a_position_clash_is_refused_and_a_stored_change_is_ignored(backend: Backend) -> None:
    backend.write(WriteBatch(changes=[change(H1, 0)]))
    backend.write(WriteBatch(changes=[change(H1, 0)]))  # the same change again: nothing happens
    with pytest.raises(StorageError):
        backend.write(WriteBatch(changes=[change(H2, 0)]))
    assert backend.changes(SPACE, DOC) == [change(H1, 0)]


def test_a_version_number_is_used_once(backend: Backend) -> None:
    version = VersionRow(SPACE, VersionRecord(1, DOC, (H1,), (H1,), "remote", 5))
    backend.write(WriteBatch(versions=[version]))
    with pytest.raises(StorageError):
        backend.write(WriteBatch(versions=[version]))
    assert backend.versions(SPACE, 0, 10) == [version.record]


def test_compaction_drops_only_the_bytes_below_the_position(backend: Backend) -> None:
    backend.write(WriteBatch(changes=[change(H1, 0), change(H2, 1, (H1,)), change(H3, 2, (H2,))]))
    backend.write(WriteBatch(compactions=[Compaction(SPACE, DOC, 2)]))
    assert [row.raw for row in backend.changes(SPACE, DOC)] == [None, None, b"raw" + H3]
    assert backend.change(SPACE, DOC, H1) == change(H1, 0)._replace(raw=None)


def test_deleted_blocks_are_gone_and_replaced_rows_are_replaced(backend: Backend) -> None:
    backend.write(WriteBatch(blocks=[(CID, b"data")], sync_states=[SyncStateRow(ALICE, SPACE, DOC, b"one")]))
    backend.write(WriteBatch(deleted_blocks=[CID], sync_states=[SyncStateRow(ALICE, SPACE, DOC, b"two")]))
    assert backend.block(CID) is None and backend.sync_state(ALICE, SPACE, DOC) == b"two"


# ----- author chains, quarantine, sync-state pruning (issue 12) -----

BOB = bytes([4]) * 32


def authored(change_hash: bytes, position: int, actor: bytes, seq: int, deps: tuple[bytes, ...] = ()) -> ChangeRow:
    return ChangeRow(SPACE, DOC, change_hash, position, actor, seq, deps, 1_700_000_000, b"raw" + change_hash)


def test_author_seq_is_the_authors_highest_seq_and_of_two_the_first_stored(backend: Backend) -> None:
    assert backend.author_seq(SPACE, DOC, ALICE) is None
    backend.write(WriteBatch(changes=[authored(H1, 0, ALICE, 1), authored(H2, 1, BOB, 1, (H1,))]))
    assert backend.author_seq(SPACE, DOC, ALICE) == (1, H1) and backend.author_seq(SPACE, DOC, BOB) == (1, H2)
    backend.write(WriteBatch(changes=[authored(H3, 2, ALICE, 1)]))  # a fork of alice's seq 1
    assert backend.author_seq(SPACE, DOC, ALICE) == (1, H1)
    with backend.group():
        backend.write(WriteBatch(changes=[authored(bytes([0x44]) * 32, 3, ALICE, 2, (H1,))]), durable=False)
        assert backend.author_seq(SPACE, DOC, ALICE) == (2, bytes([0x44]) * 32)  # a group's own rows count
    assert backend.author_seq(SPACE, DOC, ALICE) == (2, bytes([0x44]) * 32)


def test_quarantine_moves_changes_and_tips_out_and_renumbers_what_stays(backend: Backend) -> None:
    h4 = bytes([0x44]) * 32
    backend.write(
        WriteBatch(
            changes=[
                authored(H1, 0, ALICE, 1),
                authored(H2, 1, ALICE, 2, (H1,)),
                authored(H3, 2, ALICE, 2, (H1,)),  # a fork of alice's seq 2
                authored(h4, 3, BOB, 1, (H2,)),
            ],
            tips=[TipRow(SPACE, DOC, ALICE, H3, 2, bytes(64)), TipRow(SPACE, DOC, BOB, h4, 1, bytes(64))],
            versions=[VersionRow(SPACE, VersionRecord(1, DOC, (H3, h4), (H1, H2, H3, h4), "remote", 5))],
        )
    )
    quarantined = QuarantineRow(SPACE, DOC, "change", H3, ALICE, 2, (H1,), 1_700_000_000, b"raw" + H3, "fork", 9)
    tip = QuarantineRow(SPACE, DOC, "tip", H3, ALICE, 2, (), 0, bytes(64), "names it", 9)
    rewritten = VersionRow(SPACE, VersionRecord(1, DOC, (h4,), (H1, H2, h4), "remote", 5))
    batch = WriteBatch(docs=[DocRow(SPACE, DOC, (h4,), 3)], quarantined=[quarantined, tip], rewritten_versions=[rewritten])
    backend.write(batch)
    assert [(row.hash, row.position) for row in backend.changes(SPACE, DOC)] == [(H1, 0), (H2, 1), (h4, 2)]
    assert backend.changes(SPACE, DOC, from_position=2) == [authored(h4, 2, BOB, 1, (H2,))]
    assert [tip.author for tip in backend.tips(SPACE, DOC)] == [BOB]
    assert backend.quarantined(SPACE) == [quarantined, tip]
    assert backend.versions(SPACE, 0, None) == [rewritten.record]
    assert backend.author_seq(SPACE, DOC, ALICE) == (2, H2)
    backend.write(batch)  # again: nothing more happens
    assert backend.quarantined(SPACE) == [quarantined, tip] and len(backend.changes(SPACE, DOC)) == 3
    backend.write(WriteBatch(changes=[authored(H3, 3, ALICE, 3, (H2,))]))  # positions go on from there
    assert backend.changes(SPACE, DOC, from_position=3)[0].hash == H3


def test_a_quarantine_inside_a_group_that_raises_writes_nothing(backend: Backend) -> None:
    backend.write(WriteBatch(changes=[authored(H1, 0, ALICE, 1), authored(H2, 1, ALICE, 1)]))
    with pytest.raises(RuntimeError), backend.group(durable=True):
        backend.write(WriteBatch(quarantined=[QuarantineRow(SPACE, DOC, "change", H2, ALICE, 1, (), 0, None, "fork", 9)]))
        raise RuntimeError
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1, H2] and backend.quarantined(SPACE) == []
    assert backend.author_seq(SPACE, DOC, ALICE) == (1, H1)


def test_sync_states_carry_their_save_time_and_are_pruned_by_key(backend: Backend) -> None:
    backend.write(WriteBatch(sync_states=[SyncStateRow(ALICE, SPACE, DOC, b"a", 5), SyncStateRow(BOB, SPACE, DOC, b"b", 7)]))
    assert sorted(backend.sync_state_keys()) == [SyncStateKey(ALICE, SPACE, DOC, 5), SyncStateKey(BOB, SPACE, DOC, 7)]
    backend.write(WriteBatch(pruned_sync_states=[SyncStateKey(ALICE, SPACE, DOC, 0)]))
    assert backend.sync_state(ALICE, SPACE, DOC) is None and backend.sync_state(BOB, SPACE, DOC) == b"b"


# ----- groups: one transaction for many writes -----


def remote_apply(hash_: bytes, position: int, deps: tuple[bytes, ...] = ()) -> WriteBatch:
    """What the repo writes for one remote single-change batch."""
    record = VersionRecord(position + 1, DOC, (hash_,), (hash_,), "remote", 5)
    return WriteBatch(
        changes=[change(hash_, position, deps)],
        tips=[TipRow(SPACE, DOC, ALICE, hash_, position + 1, bytes(64))],
        docs=[DocRow(SPACE, DOC, (hash_,), position + 1)],
        versions=[VersionRow(SPACE, record)],
    )


def test_a_group_reads_its_own_writes_and_commits_them_on_exit(backend: Backend) -> None:
    with backend.group():
        backend.write(remote_apply(H1, 0), durable=False)
        assert backend.stored_hashes(SPACE, DOC, [H1, H2]) == {H1}
        assert backend.change(SPACE, DOC, H1) == change(H1, 0)
        backend.write(remote_apply(H2, 1, (H1,)), durable=False)
        assert [tip.change_hash for tip in backend.tips(SPACE, DOC)] == [H2]
        assert backend.doc(SPACE, DOC) == DocRow(SPACE, DOC, (H2,), 2)
        assert backend.changes(SPACE, DOC) == [change(H1, 0), change(H2, 1, (H1,))]
        backend.write(remote_apply(H3, 2, (H2,)), durable=False)
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1, H2, H3]
    assert [record.number for record in backend.versions(SPACE, 0, None)] == [1, 2, 3]


def test_a_group_that_raises_writes_nothing(backend: Backend) -> None:
    backend.write(remote_apply(H1, 0))
    with pytest.raises(KeyboardInterrupt), backend.group():
        backend.write(remote_apply(H2, 1, (H1,)), durable=False)
        assert backend.changes(SPACE, DOC)[-1].hash == H2  # sent to the store, not yet committed
        backend.write(remote_apply(H3, 2, (H2,)), durable=False)
        raise KeyboardInterrupt
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1]
    assert backend.doc(SPACE, DOC) == DocRow(SPACE, DOC, (H1,), 1)
    assert [tip.change_hash for tip in backend.tips(SPACE, DOC)] == [H1]
    assert backend.latest_version(SPACE) == 1
    backend.write(remote_apply(H2, 1, (H1,)))  # and the store goes on from there
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1, H2]


def test_one_failed_write_fails_the_whole_group(backend: Backend) -> None:
    with pytest.raises(StorageError), backend.group():
        backend.write(remote_apply(H1, 0), durable=False)
        with suppress(StorageError):  # memory refuses it at once; SQLite when the rows are sent
            backend.write(WriteBatch(changes=[change(H2, 0)]), durable=False)  # a position clash
        backend.write(WriteBatch(sync_states=[SyncStateRow(ALICE, SPACE, DOC, b"state")]), durable=False)
    assert backend.changes(SPACE, DOC) == [] and backend.sync_state(ALICE, SPACE, DOC) is None


def test_a_group_takes_no_durable_write_and_does_not_nest(backend: Backend) -> None:
    with backend.group():
        with pytest.raises(InvalidInput, match="durable"):
            backend.write(remote_apply(H1, 0))
        with pytest.raises(InvalidInput, match="nest"), backend.group():
            pass
        backend.write(remote_apply(H1, 0), durable=False)
    assert backend.stored_hashes(SPACE, DOC, [H1]) == {H1}


def test_a_durable_group_takes_durable_writes_in_order(backend: Backend) -> None:
    backend.write(WriteBatch(blocks=[(CID, b"data")]))
    with backend.group(durable=True):
        backend.write(remote_apply(H1, 0))
        backend.write(WriteBatch(deleted_blocks=[CID]))
        backend.write(WriteBatch(blocks=[(CID, b"data")]))  # written again after its deletion
        backend.write(remote_apply(H2, 1, (H1,)), durable=False)
        assert backend.block(CID) == b"data"
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1, H2]
    assert backend.block(CID) == b"data" and backend.latest_version(SPACE) == 2


def test_a_durable_group_that_raises_writes_nothing(backend: Backend) -> None:
    backend.write(remote_apply(H1, 0))
    with pytest.raises(RuntimeError), backend.group(durable=True):
        backend.write(remote_apply(H2, 1, (H1,)))
        backend.write(WriteBatch(blocks=[(CID, b"data")]))
        raise RuntimeError
    assert [row.hash for row in backend.changes(SPACE, DOC)] == [H1] and backend.block(CID) is None
    assert backend.doc(SPACE, DOC) == DocRow(SPACE, DOC, (H1,), 1) and backend.latest_version(SPACE) == 1


def test_a_durable_group_does_not_nest_either(backend: Backend) -> None:
    with backend.group(durable=True), pytest.raises(InvalidInput, match="nest"), backend.group():
        pass
    with backend.group(), pytest.raises(InvalidInput, match="nest"), backend.group(durable=True):
        pass
