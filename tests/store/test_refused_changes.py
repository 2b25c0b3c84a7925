"""Refused changes kept in the store (store/refused.py): a change ingest refused as unauthorised
is kept with its reason, bounded, once per change, across a reopen; listed by verify as
expected (not damage) and by history; gone once the change is stored after all."""

from __future__ import annotations

from pathlib import Path

import pytest

import native
from protocol.identity import Identity
from protocol.store_api import Unauthorised
from store import refused
from store.history import History
from store.repo import Repo
from store.verify import ProblemKind
from store.workspace import Workspace
from store_helpers import FILE_DOC, NOW_MS, append
from workspace_replicas import MakeRepo

REASON = "write is scoped to src/*; docs/x.md is outside it"


def forged(author: Repo, space: bytes, count: int) -> list[native.DecodedChange]:
    """``count`` changes by ``author``'s key to FILE_DOC, made in its own store."""
    for index in range(count):
        append(author, space, FILE_DOC, f"edit {index} ")
    return [native.decode_change(raw) for raw in author.changes_since(space, FILE_DOC, [])]


def refusals(changes: list[native.DecodedChange], reason: str = REASON) -> list[Unauthorised]:
    return [Unauthorised(c.hash, c.actor, reason, seq=c.seq, raw=c.raw) for c in changes]


def spaces(make_repo: MakeRepo, alice: Identity, bob: Identity, *, clock: list[int] | None = None) -> tuple[Repo, Repo, bytes]:
    times = clock if clock is not None else [NOW_MS]
    owner = make_repo(alice, "owner", clock=lambda: times[0])
    genesis = owner.create_space("private", NOW_MS, private=True)
    member = make_repo(bob, "member")
    member.add_space(genesis)
    return owner, member, genesis.space_id


def test_a_refused_change_is_kept_with_its_reason_and_verify_lists_it_as_expected(
    make_repo: MakeRepo, alice: Identity, bob: Identity
) -> None:
    owner, member, space = spaces(make_repo, alice, bob)
    [change] = forged(member, space, 1)
    owner.note_refused(space, FILE_DOC, refusals([change]))
    [row] = owner.refused_changes(space)
    assert (row.hash, row.doc, row.author, row.seq, row.reason, row.refused_ms) == (
        change.hash, FILE_DOC, bob.public_key, 1, REASON, NOW_MS,
    )
    assert row.raw == change.raw and row.time_s == change.time
    assert not owner.has_change(space, FILE_DOC, change.hash) and owner.heads(space, FILE_DOC) == []
    problems = owner.verify()
    assert [(p.kind, p.subject, p.expected) for p in problems] == [(ProblemKind.REFUSED_CHANGE, change.hash, True)]
    assert REASON in problems[0].detail
    [entry] = History(Workspace(owner, space)).refused()
    assert (entry.change, entry.author, entry.reason, entry.paths) == (change.hash, bob.public_key, REASON, None)


def test_a_change_refused_again_is_one_row_with_its_first_time(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    clock = [NOW_MS]
    owner, member, space = spaces(make_repo, alice, bob, clock=clock)
    [change] = forged(member, space, 1)
    owner.note_refused(space, FILE_DOC, refusals([change]) * 2)
    clock[0] = NOW_MS + 60_000
    owner.note_refused(space, FILE_DOC, refusals([change], "another reason"))
    assert [(row.hash, row.reason, row.refused_ms) for row in owner.refused_changes(space)] == [(change.hash, REASON, NOW_MS)]


def test_the_oldest_go_first_past_the_budget_and_big_changes_keep_no_bytes(
    make_repo: MakeRepo, alice: Identity, bob: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refused, "REFUSED_CHANGES_KEPT", 3)
    owner, member, space = spaces(make_repo, alice, bob)
    changes = forged(member, space, 5)
    owner.note_refused(space, FILE_DOC, refusals(changes[:2]))
    owner.note_refused(space, FILE_DOC, refusals(changes[2:]))
    assert [row.hash for row in owner.refused_changes(space)] == [c.hash for c in changes[2:]]
    monkeypatch.setattr(refused, "REFUSED_CHANGE_BYTES_MAX", 1)
    owner.note_refused(space, FILE_DOC, refusals(changes[:1]))  # refused again after it was dropped: new
    rows = owner.refused_changes(space)
    assert [row.hash for row in rows] == [c.hash for c in (*changes[3:], changes[0])]
    assert rows[-1].raw is None and rows[-1].seq == 1  # the row without its bytes


def test_refused_changes_survive_a_reopen(tmp_path: Path, alice: Identity, bob: Identity) -> None:
    owner = Repo.open(tmp_path / "owner.db", alice)
    genesis = owner.create_space("private", NOW_MS, private=True)
    member = Repo.open(None, bob)
    member.add_space(genesis)
    changes = forged(member, genesis.space_id, 2)
    owner.note_refused(genesis.space_id, FILE_DOC, refusals(changes))
    owner.close()
    reopened = Repo.open(tmp_path / "owner.db", alice)
    assert [row.hash for row in reopened.refused_changes(genesis.space_id)] == [c.hash for c in changes]
    reopened.note_refused(genesis.space_id, FILE_DOC, refusals(changes))  # held: still one row each
    assert len(reopened.refused_changes(genesis.space_id)) == 2
    reopened.close()
    member.close()


def test_a_refused_change_stored_after_all_is_no_longer_listed(make_repo: MakeRepo, alice: Identity, bob: Identity) -> None:
    owner, member, space = spaces(make_repo, alice, bob)
    changes = forged(member, space, 2)
    owner.note_refused(space, FILE_DOC, refusals(changes))
    assert owner.apply(space, FILE_DOC, changes[:1], [], now_ms=NOW_MS) == [changes[0].hash]  # a late grant let it in
    assert [row.hash for row in owner.refused_changes(space)] == [changes[1].hash]
    owner.note_refused(space, FILE_DOC, refusals(changes[:1]))  # stored: not kept as refused
    assert [row.hash for row in owner.refused_changes(space)] == [changes[1].hash]
