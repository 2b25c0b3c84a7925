"""verify beyond flipped bytes: forged tips, uncovered changes, rows that lie about their bytes,
a damaged genesis. Each is reported as a typed Problem, and verify changes nothing."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

import native
from store.errors import CorruptionError
from store.records import ChangeRow, DocRow, WriteBatch
from store.repo import Repo
from store.verify import ProblemKind
from store_helpers import FILE_DOC, NOW_MS, OTHER_DOC, append, read_text


def update(path: Path, sql: str, parameters: tuple[object, ...]) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql, parameters)
    connection.close()


def test_a_forged_tip_leaves_its_authors_changes_uncovered(make_repo, alice) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    hashes = [append(repo, space, FILE_DOC, word) for word in "ab"]
    [tip] = repo.backend.tips(space, FILE_DOC)
    repo.backend.write(WriteBatch(tips=[dataclasses.replace(tip, signature=bytes(64))]))

    problems = repo.verify()
    assert [(p.kind, p.subject) for p in problems] == [(ProblemKind.TIP_INVALID, alice.public_key)] + [
        (ProblemKind.UNCOVERED_CHANGE, h) for h in hashes
    ]
    assert repo.verify() == problems  # verify wrote nothing


def test_a_change_stored_without_its_authors_tip_is_uncovered(make_repo, alice, bob) -> None:
    repo = make_repo(alice)
    space = repo.create_space("project", NOW_MS).space_id
    stranger = native.Document(bob.public_key)
    stranger.put(native.ROOT, "k", 1)
    stranger.commit(time=1)
    change = native.decode_change(stranger.get_changes()[0])
    row = ChangeRow(space, OTHER_DOC, change.hash, 0, change.actor, change.seq, (), change.time, change.raw)
    repo.backend.write(WriteBatch(changes=[row], docs=[DocRow(space, OTHER_DOC, (change.hash,), 1)]))

    assert [(p.kind, p.doc, p.subject) for p in repo.verify()] == [(ProblemKind.UNCOVERED_CHANGE, OTHER_DOC, change.hash)]


def test_a_row_whose_columns_disagree_with_its_bytes_is_damaged(tmp_path: Path, alice) -> None:
    path = tmp_path / "alice.db"
    with Repo.open(path, alice) as repo:
        space = repo.create_space("project", NOW_MS).space_id
        _first, second = (append(repo, space, FILE_DOC, word) for word in "ab")
    update(path, "UPDATE changes SET deps = ? WHERE hash = ?", (bytes(32), second))

    with Repo.open(path, alice) as repo:
        found = {(p.kind, p.subject) for p in repo.verify()}
        assert (ProblemKind.CHANGE_DAMAGED, second) in found
        assert (ProblemKind.MISSING_DEP, second) in found


def test_a_damaged_genesis_is_reported_and_the_other_spaces_stay_usable(tmp_path: Path, alice) -> None:
    path = tmp_path / "alice.db"
    with Repo.open(path, alice) as repo:
        damaged = repo.create_space("damaged", NOW_MS).space_id
        healthy = repo.create_space("healthy", NOW_MS).space_id
        append(repo, healthy, FILE_DOC, "fine")
        genesis = repo.genesis(damaged).encode()
    update(path, "UPDATE spaces SET genesis = ? WHERE space = ?", (genesis[:-1] + bytes([genesis[-1] ^ 1]), damaged))

    with Repo.open(path, alice) as repo:
        assert [(p.kind, p.space) for p in repo.verify()] == [(ProblemKind.GENESIS_DAMAGED, damaged)]
        with pytest.raises(CorruptionError, match="genesis"):
            repo.genesis(damaged)
        assert [g.space_id for g in repo.spaces()] == [healthy]
        assert read_text(repo, healthy, FILE_DOC) == "fine"
