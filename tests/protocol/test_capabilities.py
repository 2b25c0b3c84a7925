"""The capability model: strict decoding, the authorisation rules, and convergence of the rule
(protocol/capabilities.py's docstring states it) whatever order records arrive in."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import capabilities, cbor
from protocol.capabilities import (
    ANYONE,
    MAX_PATHS_PER_GRANT,
    MAX_RECORD_BYTES,
    CapabilityLog,
    Grant,
    Record,
    Revocation,
    Role,
    decode_record,
)
from protocol.errors import CapabilityError, CapabilityLimit, InvalidCapability, WireError
from protocol.identity import Identity
from protocol.space import Genesis


def identity_of(name: str) -> Identity:
    """A stable key per name (not the harness's: this module needs none of the sync machinery)."""
    return Identity(hashlib.sha256(b"capability test " + name.encode()).digest())


ROOT = identity_of("root")
ALICE = identity_of("alice")  # an admin
BOB = identity_of("bob")  # a writer or another admin
CAROL = identity_of("carol")
MALLORY = identity_of("mallory")
DOC = bytes(range(16))
OTHER_DOC = bytes(range(1, 17))
GENESIS = Genesis.create(ROOT, "private space", 1, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
DETERMINISTIC = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def grant(issuer: Identity, subject: bytes, role: Role = Role.WRITE, *, at: int = 10, parents: tuple[bytes, ...] = (), **extra: object) -> Grant:
    return Grant.issue(issuer, space=SPACE, subject=subject, role=role, issued_ms=at, parents=parents, **extra)  # type: ignore[arg-type]


def revoke(issuer: Identity, subject: bytes, *, at: int = 50, parents: tuple[bytes, ...] = (), seen: tuple[tuple[bytes, int], ...] = ()) -> Revocation:
    return Revocation.issue(issuer, space=SPACE, subject=subject, seen=seen, issued_ms=at, parents=parents)


def log_of(*records: Record) -> CapabilityLog:
    return CapabilityLog(GENESIS, records)


# --- records and the decoder ---


@DETERMINISTIC
@given(
    role=st.sampled_from(Role),
    paths=st.lists(st.sampled_from(["src/*", "docs/", "*.md", "a/**/b", "!src/secret"]), max_size=4),
    expires=st.none() | st.integers(0, 2**63),
    uses=st.none() | st.integers(1, 2**32),
    may_delegate=st.booleans(),
    parents=st.lists(st.binary(min_size=32, max_size=32), max_size=capabilities.MAX_PARENTS),
)
def test_a_grant_round_trips(role, paths, expires, uses, may_delegate, parents):
    record = grant(ALICE, BOB.public_key, role, paths=paths, expires_ms=expires, uses=uses, may_delegate=may_delegate, parents=tuple(parents))
    assert decode_record(record.encode()) == record
    assert decode_record(record.encode()).hash == record.hash


def test_a_revocation_round_trips_and_keeps_the_highest_seq_per_doc():
    record = revoke(ALICE, BOB.public_key, seen=((OTHER_DOC, 3), (DOC, 5), (DOC, 2)))
    assert record.seen == ((DOC, 5), (OTHER_DOC, 3))
    assert decode_record(record.encode()) == record


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_garbage_bytes_raise_only_capability_errors(data):
    with pytest.raises(CapabilityError):
        decode_record(data)


_CBOR_VALUES = st.recursive(
    st.integers(0, 2**64 - 1) | st.booleans() | st.binary(max_size=40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=14),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_CBOR_VALUES)
def test_well_formed_cbor_of_any_shape_raises_only_capability_errors(value):
    with pytest.raises(CapabilityError):
        decode_record(cbor.dumps(value))


def _fields_of(record: Record) -> list[object]:
    return list(cbor.loads_canonical(record.encode(), "record"))


_VALID = grant(ALICE, BOB.public_key, paths=("src/*",), expires_ms=99, uses=2, parents=(bytes(32),))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(position=st.integers(0, 12), replacement=_CBOR_VALUES)
def test_a_grant_with_any_field_replaced_is_refused_with_a_capability_error(position, replacement):
    """Crafted records: the right shape with one field swapped for any value (wrong types,
    unsorted lists, true for an integer): refused, or re-signed-looking but not verifying."""
    fields = _fields_of(_VALID)
    if fields[position] == replacement:
        return
    fields[position] = replacement
    with pytest.raises(CapabilityError):
        decode_record(cbor.dumps(fields))


def test_a_record_with_any_bit_flipped_is_refused():
    encoded = revoke(ALICE, BOB.public_key, seen=((DOC, 1),)).encode()
    for position in range(len(encoded)):
        flipped = bytearray(encoded)
        flipped[position] ^= 1 << (position % 8)
        with pytest.raises(CapabilityError):
            decode_record(bytes(flipped))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.__setitem__(10, True),  # true where issued_ms belongs
        lambda f: f.__setitem__(5, ["src/*", "docs/"]),  # globs unsorted
        lambda f: f.__setitem__(5, ["\\"]),  # a glob pathspec refuses
        lambda f: f.__setitem__(5, ["#comment"]),  # a glob that matches nothing
        lambda f: f.__setitem__(4, 5),  # no such role
        lambda f: f.__setitem__(9, [0]),  # an invitation of no use
        lambda f: f.__setitem__(11, [bytes(32), bytes(32)]),  # a parent twice
        lambda f: f.__setitem__(5, [f"p{i}" for i in range(MAX_PATHS_PER_GRANT + 1)]),
    ],
)
def test_crafted_grants_are_refused(mutate):
    fields = _fields_of(_VALID)
    mutate(fields)
    with pytest.raises(CapabilityError):
        decode_record(cbor.dumps(fields))


def test_decode_errors_are_wire_errors_and_oversized_grants_a_limit():
    assert issubclass(CapabilityError, WireError)
    fields = _fields_of(_VALID)
    fields[5] = [f"{i:0>60}" for i in range(MAX_PATHS_PER_GRANT)]
    with pytest.raises(CapabilityLimit):
        decode_record(cbor.dumps(fields))
    assert len(cbor.dumps(fields)) > MAX_RECORD_BYTES


def test_a_forged_signature_is_a_capability_error():
    forged = dataclasses.replace(grant(MALLORY, MALLORY.public_key, Role.ADMIN), issuer=ROOT.public_key)
    with pytest.raises(CapabilityError, match="signature"):
        decode_record(forged.encode())


def test_issuing_refuses_what_no_record_can_carry():
    with pytest.raises(InvalidCapability):
        grant(ROOT, BOB.public_key, paths=[f"p{i}" for i in range(MAX_PATHS_PER_GRANT + 1)])
    with pytest.raises(InvalidCapability):
        grant(ROOT, BOB.public_key, paths=["[?-.]"])
    with pytest.raises(InvalidCapability):
        grant(ROOT, BOB.public_key, uses=0)
    with pytest.raises(InvalidCapability):
        Role.parse("owner")
    assert Role.parse(" Write ") is Role.WRITE


# --- the log: bookkeeping ---


def test_the_log_refuses_another_spaces_records_and_more_than_its_budget(monkeypatch):
    other = Genesis.create(ROOT, "other", 1, private=True)
    with pytest.raises(CapabilityError):
        CapabilityLog(other).add(grant(ROOT, BOB.public_key))
    monkeypatch.setattr(capabilities, "MAX_CAPABILITY_RECORDS", 2)
    log = log_of(grant(ROOT, BOB.public_key), grant(ROOT, CAROL.public_key))
    assert not log.add(grant(ROOT, BOB.public_key))  # already held
    with pytest.raises(CapabilityLimit):
        log.add(grant(ROOT, ALICE.public_key))


def test_a_record_waits_for_its_parents():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    to_bob = grant(ALICE, BOB.public_key, parents=(to_alice.hash,))
    log = log_of(to_bob)
    assert log.verdict(to_bob.hash) == "missing parent"
    assert not log.admits(BOB.public_key, 20)
    assert log.records() == [to_bob]
    log.add(to_alice)
    assert log.verdict(to_bob.hash) is None
    assert log.admits(BOB.public_key, 20)
    assert log.records() == [to_alice, to_bob]


def test_heads_and_digest():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    to_bob = grant(ALICE, BOB.public_key, parents=(to_alice.hash,))
    to_carol = grant(ROOT, CAROL.public_key)
    log = log_of(to_alice, to_bob, to_carol)
    assert log.heads == tuple(sorted([to_bob.hash, to_carol.hash]))
    assert log.digest == log_of(to_carol, to_bob, to_alice).digest != log_of(to_alice).digest
    assert log.parents_for(ALICE.public_key) == tuple(sorted([to_alice.hash, to_bob.hash, to_carol.hash]))  # authority + heads
    assert log.parents_for(ROOT.public_key) == log.heads


# --- authorisation ---


def test_an_open_space_allows_everything():
    log = CapabilityLog(Genesis.create(ROOT, "open", 1))
    assert not log.private
    assert log.admits(MALLORY.public_key, 0)
    assert log.role(MALLORY.public_key) is Role.WRITE
    assert log.change_refusal(MALLORY.public_key, DOC, 1, ["anything"], 0) is None
    assert log.write_refusal(MALLORY.public_key, ["x"], 0) is None
    assert log.proof_for(MALLORY.public_key) == []


def test_root_may_do_anything_and_a_stranger_nothing():
    log = log_of()
    assert log.private and log.admits(ROOT.public_key, 0) and log.role(ROOT.public_key) is Role.ADMIN
    assert log.change_refusal(ROOT.public_key, DOC, 1, None, 0) is None
    assert not log.admits(MALLORY.public_key, 0)
    assert log.role(MALLORY.public_key) is None
    assert log.change_refusal(MALLORY.public_key, DOC, 1, ["a"], 0) == "the author is not a member of this space"
    assert [member.key for member in log.members(0)] == [ROOT.public_key]


def test_a_non_admin_cannot_grant():
    to_bob = grant(ROOT, BOB.public_key, Role.WRITE)
    by_bob = grant(BOB, CAROL.public_key, Role.READ, parents=(to_bob.hash,))
    by_mallory = grant(MALLORY, CAROL.public_key, Role.READ)
    revocation_by_bob = revoke(BOB, CAROL.public_key, parents=(to_bob.hash,))
    log = log_of(to_bob, by_bob, by_mallory, revocation_by_bob)
    assert log.verdict(by_bob.hash) == "issuer may not delegate"
    assert log.verdict(by_mallory.hash) == "issuer is not a member"
    assert log.verdict(revocation_by_bob.hash) == "issuer is not an admin"
    assert not log.admits(CAROL.public_key, 20)


def test_authority_must_be_an_ancestor():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    unanchored = grant(ALICE, BOB.public_key)  # names no parents: Alice had no authority it saw
    log = log_of(to_alice, unanchored)
    assert log.verdict(unanchored.hash) == "issuer is not a member"


def test_a_readers_change_is_refused():
    log = log_of(grant(ROOT, BOB.public_key, Role.READ))
    assert log.admits(BOB.public_key, 20)
    assert log.change_refusal(BOB.public_key, DOC, 1, ["a.md"], 20) == "the author holds read, not write"
    assert log.write_refusal(BOB.public_key, ["a.md"], 20) == "the author holds read, not write"


def test_a_scoped_writers_out_of_scope_change_is_refused_naming_the_scope():
    log = log_of(grant(ROOT, BOB.public_key, Role.WRITE, paths=("src/*",)))
    assert log.change_refusal(BOB.public_key, DOC, 1, ["src/a.py", "src/deep/b.py"], 20) is None
    assert log.change_refusal(BOB.public_key, DOC, 1, ["src/a.py", "docs/a.md"], 20) == "write is scoped to src/*; docs/a.md is outside it"
    assert "src/*" in (log.change_refusal(BOB.public_key, DOC, 1, None, 20) or "")
    assert log.write_refusal(BOB.public_key, ["docs/a.md"], 20) == "write is scoped to src/*; docs/a.md is outside it"


def test_delegation_only_narrows():
    to_bob = grant(ROOT, BOB.public_key, Role.WRITE, paths=("docs/*", "src/*"), may_delegate=True, expires_ms=1000)
    parents = (to_bob.hash,)
    narrower = grant(BOB, CAROL.public_key, Role.READ, paths=("src/*",), expires_ms=900, parents=parents)
    cases = {
        narrower: None,
        grant(BOB, ALICE.public_key, Role.ADMIN, paths=("src/*",), expires_ms=900, parents=parents): "wider than the issuer's grant (role admin over write)",
        grant(BOB, ALICE.public_key, paths=("src/a/*",), expires_ms=900, parents=parents): "wider than the issuer's grant (paths)",
        grant(BOB, ALICE.public_key, expires_ms=900, parents=parents): "wider than the issuer's grant (paths)",
        grant(BOB, ALICE.public_key, paths=("src/*",), parents=parents): "wider than the issuer's grant (expiry)",
        grant(BOB, ALICE.public_key, paths=("src/*",), expires_ms=900, at=1000, parents=parents): "expired",
    }
    log = log_of(to_bob, *cases)
    assert {record: log.verdict(record.hash) for record in cases} == cases
    assert log.change_refusal(CAROL.public_key, DOC, 1, ["src/a"], 20) == "the author holds read, not write"


def test_a_revoked_keys_changes_above_the_cutoff_are_refused_and_at_or_below_kept():
    to_bob = grant(ROOT, BOB.public_key)
    revocation = revoke(ROOT, BOB.public_key, parents=(to_bob.hash,), seen=((DOC, 3),))
    log = log_of(to_bob, revocation)
    assert log.revocation_cutoff(BOB.public_key) == {DOC: 3}
    assert log.change_refusal(BOB.public_key, DOC, 3, ["a"], 20) is None
    assert log.change_refusal(BOB.public_key, DOC, 4, ["a"], 20) == "the author's key was revoked; its changes to this doc after seq 3 are refused"
    assert log.change_refusal(BOB.public_key, OTHER_DOC, 1, ["a"], 20) is not None
    assert not log.admits(BOB.public_key, 20)
    assert log.role(BOB.public_key) is None
    assert log.write_refusal(BOB.public_key, ["a"], 20) == "this key was revoked from the space"
    assert log.proof_for(BOB.public_key) == []
    assert [member.revoked for member in log.members(20) if member.key == BOB.public_key] == [True]
    assert log.revocation_cutoff(CAROL.public_key) is None


def test_the_root_cannot_be_revoked_nor_anyone():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    of_root = revoke(ALICE, ROOT.public_key, parents=(to_alice.hash,))
    of_anyone = revoke(ALICE, ANYONE, parents=(to_alice.hash,))
    log = log_of(to_alice, of_root, of_anyone)
    assert log.verdict(of_root.hash) == "the root admin cannot be revoked"
    assert log.verdict(of_anyone.hash) == "anyone cannot be revoked"
    assert log.admits(ROOT.public_key, 0)


def test_mutual_concurrent_admin_revocations_resolve_the_same_way_in_any_order():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    to_bob = grant(ROOT, BOB.public_key, Role.ADMIN)
    seen = tuple(sorted([to_alice.hash, to_bob.hash]))
    alice_revokes_bob = revoke(ALICE, BOB.public_key, parents=seen)
    bob_revokes_alice = revoke(BOB, ALICE.public_key, parents=seen)
    records = [to_alice, to_bob, alice_revokes_bob, bob_revokes_alice]
    outcomes = set()
    for _ in range(6):
        random.Random(_).shuffle(records)
        log = log_of(*records)
        outcomes.add((log.verdict(alice_revokes_bob.hash), log.verdict(bob_revokes_alice.hash), log.digest))
    assert len(outcomes) == 1
    ((first, second, _digest),) = outcomes
    assert sorted([first, second], key=str) == [None, "revoked"]  # exactly one stands
    winner = alice_revokes_bob if first is None else bob_revokes_alice
    assert min([alice_revokes_bob, bob_revokes_alice], key=lambda r: r.hash) == winner  # the earlier in order


def test_a_grant_concurrent_with_its_issuers_revocation_is_invalid():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    seen_by_root = grant(ALICE, CAROL.public_key, parents=(to_alice.hash,), at=20)
    concurrent = grant(ALICE, BOB.public_key, parents=(to_alice.hash,), at=60)
    revocation = revoke(ROOT, ALICE.public_key, parents=(seen_by_root.hash,), at=50)
    log = log_of(to_alice, seen_by_root, concurrent, revocation)
    assert log.verdict(seen_by_root.hash) is None  # the revoker had seen it
    assert log.verdict(concurrent.hash) == "revoked"
    assert log.admits(CAROL.public_key, 70) and not log.admits(BOB.public_key, 70)
    after = grant(ALICE, MALLORY.public_key, parents=(revocation.hash, to_alice.hash), at=70)
    log.add(after)
    assert log.verdict(after.hash) == "revoked"  # a key that knows it was removed gets nothing either


def test_a_removed_admins_earlier_concurrent_grants_are_undone_on_a_later_pass():
    """Bob's grants come before the revocation in the fixed order (lower height): the first
    pass takes them, the second, knowing Bob's removal, drops them and what they authorised."""
    to_bob = grant(ROOT, BOB.public_key, Role.ADMIN)
    bobs = grant(BOB, CAROL.public_key, may_delegate=True, parents=(to_bob.hash,))
    carols = grant(CAROL, identity_of("dave").public_key, parents=(bobs.hash,))
    later = grant(ROOT, ALICE.public_key, parents=(to_bob.hash,))
    root_revokes = revoke(ROOT, BOB.public_key, parents=(later.hash,), seen=((DOC, 2),))  # height 2
    log = log_of(to_bob, bobs, carols, later, root_revokes)
    assert log.records().index(bobs) < log.records().index(root_revokes)
    assert log.verdict(root_revokes.hash) is None
    assert log.verdict(bobs.hash) == "revoked"
    assert log.verdict(carols.hash) == "issuer is not a member"
    assert not log.admits(identity_of("dave").public_key, 20)
    without = log_of(to_bob, bobs, carols, later)
    assert without.verdict(carols.hash) is None and without.admits(identity_of("dave").public_key, 20)


def test_invitation_uses_count_the_first_n_in_the_fixed_order():
    invitation_key = identity_of("invitation")
    invitation = grant(ROOT, invitation_key.public_key, Role.READ, uses=2)
    joins = [grant(invitation_key, identity_of(f"joiner {i}").public_key, Role.READ, parents=(invitation.hash,)) for i in range(4)]
    log = log_of(invitation, *joins)
    in_order = [record for record in log.records() if record in joins]
    assert [log.verdict(record.hash) for record in in_order] == [None, None, "uses spent", "uses spent"]
    assert not log.admits(invitation_key.public_key, 20)  # an invitation key is not a login
    assert [m.invitation for m in log.members(20) if m.key == invitation_key.public_key] == [True]
    wider = grant(invitation_key, CAROL.public_key, Role.WRITE, parents=(invitation.hash,))
    reinvite = grant(invitation_key, CAROL.public_key, Role.READ, uses=1, parents=(invitation.hash,))
    revocation = revoke(invitation_key, ALICE.public_key, parents=(invitation.hash,))
    log = log_of(invitation, wider, reinvite, revocation)
    assert log.verdict(wider.hash) == "wider than the issuer's grant (role write over read)"
    assert log.verdict(reinvite.hash) == "an invitation key may not issue invitations"
    assert log.verdict(revocation.hash) == "issuer is not an admin"


def test_expiry_by_issued_ms_and_at_ms():
    to_bob = grant(ROOT, BOB.public_key, Role.ADMIN, expires_ms=100, not_before_ms=10)
    in_time = grant(BOB, CAROL.public_key, Role.READ, at=99, expires_ms=100, parents=(to_bob.hash,))
    too_late = grant(BOB, ALICE.public_key, Role.READ, at=100, expires_ms=100, parents=(to_bob.hash,))
    too_early = grant(BOB, MALLORY.public_key, Role.READ, at=9, expires_ms=100, parents=(to_bob.hash,))
    log = log_of(to_bob, in_time, too_late, too_early)
    assert log.verdict(in_time.hash) is None
    assert log.verdict(too_late.hash) == "expired"
    assert log.verdict(too_early.hash) == "the issuer's grant is not yet in force"
    assert log.change_refusal(BOB.public_key, DOC, 1, ["a"], 99) is None
    assert log.change_refusal(BOB.public_key, DOC, 1, ["a"], 100) is not None
    assert log.change_refusal(BOB.public_key, DOC, 1, ["a"], 5) is not None
    assert log.admits(BOB.public_key, 50) and not log.admits(BOB.public_key, 100)
    assert log.role(BOB.public_key) is Role.ADMIN and log.role(BOB.public_key, 100) is None
    assert [m.key for m in log.members(100)] == [ROOT.public_key]


def test_grants_to_anyone_confer_access_but_no_authority():
    public_read = grant(ROOT, ANYONE, Role.READ)
    public_admin = grant(ROOT, ANYONE, Role.ADMIN)
    by_mallory = grant(MALLORY, CAROL.public_key, Role.READ, parents=(public_read.hash,))
    log = log_of(public_read, public_admin, by_mallory)
    assert log.verdict(public_admin.hash) == "a grant to anyone confers access only"
    assert log.verdict(by_mallory.hash) == "issuer is not a member"
    assert log.admits(MALLORY.public_key, 0) and log.role(MALLORY.public_key) is Role.READ
    assert log.change_refusal(MALLORY.public_key, DOC, 1, ["a"], 0) == "the author holds read, not write"
    log.add(grant(ROOT, ANYONE, Role.WRITE, paths=("inbox/*",)))
    assert log.change_refusal(MALLORY.public_key, DOC, 1, ["inbox/x"], 0) is None
    assert log.proof_for(MALLORY.public_key)  # the public grant admits it


def test_a_proof_is_the_delegation_chain_even_in_a_long_log():
    """Every record names the heads, so the log is one long DAG; a proof still holds only the
    grants from root to the member, and a log holding nothing else admits the member."""
    log = log_of()
    chain = [ROOT, ALICE, BOB, CAROL]
    for step, (issuer, subject) in enumerate(itertools.pairwise(chain)):
        for filler in range(20):
            log.add(grant(ROOT, identity_of(f"filler {step} {filler}").public_key, Role.READ, at=step, parents=log.parents_for(ROOT.public_key)))
        record = grant(issuer, subject.public_key, Role.WRITE, may_delegate=True, at=step, parents=log.parents_for(issuer.public_key))
        log.add(record)
        assert log.verdict(record.hash) is None
    proof = log.proof_for(CAROL.public_key)
    assert [record.subject for record in proof] == [ALICE.public_key, BOB.public_key, CAROL.public_key]
    fresh = log_of(*proof)
    assert fresh.admits(CAROL.public_key, 10) and fresh.proof_for(CAROL.public_key) == proof


def test_proof_for_a_delegated_member_is_its_chain_and_admits_it_on_a_fresh_log():
    to_alice = grant(ROOT, ALICE.public_key, Role.ADMIN)
    unrelated = grant(ROOT, CAROL.public_key)
    log = log_of(to_alice, unrelated)
    to_bob = grant(ALICE, BOB.public_key, parents=log.parents_for(ALICE.public_key))
    log.add(to_bob)
    proof = log.proof_for(BOB.public_key)
    assert proof == [to_alice, to_bob]
    assert log_of(*proof).admits(BOB.public_key, 20)
    assert log.proof_for(ROOT.public_key) == [] and log.proof_for(MALLORY.public_key) == []


# --- convergence ---

_ACTORS = [ROOT, ALICE, BOB, CAROL, MALLORY]


@st.composite
def histories(draw: st.DrawFn) -> list[Record]:
    """A random capability history: each step an actor signs a grant or revocation having seen a
    random subset of the records so far (so records are concurrent as often as not)."""
    records: list[Record] = []
    for step in range(draw(st.integers(1, 14))):
        issuer = draw(st.sampled_from(_ACTORS))
        subject = draw(st.sampled_from([*(a.public_key for a in _ACTORS[1:]), identity_of("dave").public_key, ANYONE]))
        seen = draw(st.lists(st.sampled_from(records), max_size=4, unique_by=lambda r: r.hash)) if records else []
        parents = tuple(r.hash for r in seen)
        if draw(st.integers(0, 3)) == 0:
            docs = draw(st.lists(st.sampled_from([DOC, OTHER_DOC]), max_size=2, unique=True))
            records.append(
                Revocation.issue(issuer, space=SPACE, subject=subject, seen=[(d, draw(st.integers(0, 4))) for d in docs], issued_ms=step, parents=parents)
            )
        else:
            records.append(
                Grant.issue(
                    issuer,
                    space=SPACE,
                    subject=subject,
                    role=draw(st.sampled_from(Role)),
                    paths=draw(st.sampled_from([(), ("src/*",), ("docs/*",)])),
                    expires_ms=draw(st.none() | st.integers(0, 20)),
                    may_delegate=draw(st.booleans()),
                    uses=draw(st.none() | st.integers(1, 2)) if subject != ANYONE else None,
                    issued_ms=step,
                    parents=parents,
                )
            )
    return records


def _outcome(log: CapabilityLog, records: list[Record]) -> object:
    keys = [a.public_key for a in _ACTORS] + [identity_of("dave").public_key]
    return (
        log.digest,
        [log.verdict(r.hash) for r in records],
        log.members(10),
        log.heads,
        [(log.role(k, 10), log.revocation_cutoff(k), log.change_refusal(k, DOC, 3, ["src/a"], 10)) for k in keys],
        [r.hash for r in log.records()],
    )


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(records=histories(), seed=st.integers(0, 2**32))
def test_any_arrival_order_gives_the_same_verdicts(records, seed):
    """Two peers receive the same records in different orders (one reading the log after every
    record): once they hold the same set, they agree on everything."""
    reference = log_of(*records)
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    incremental = log_of()
    for record in shuffled:
        incremental.add(record)
        incremental.verdict(record.hash)  # evaluate mid-way: the cache must not go stale
    assert _outcome(incremental, records) == _outcome(reference, records)


def _ancestors(record: Record, by_hash: dict[bytes, Record]) -> set[bytes]:
    seen: set[bytes] = set()
    stack = list(record.parents)
    while stack:
        parent = stack.pop()
        if parent not in seen and parent in by_hash:
            seen.add(parent)
            stack.extend(by_hash[parent].parents)
    return seen


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_the_rule_holds_on_any_history(records):
    """Invariants of rules 3, 6 and 8 on any history: every valid record's issuer is root or
    holds a valid grant among the record's ancestors; every valid record by a revoked key is an
    ancestor of each effective revocation of it; root is never revoked."""
    log = log_of(*records)
    by_hash = {r.hash: r for r in records}
    valid = [r for r in records if log.verdict(r.hash) is None]
    effective = [r for r in valid if isinstance(r, Revocation)]
    for record in valid:
        ancestors = _ancestors(record, by_hash)
        if record.issuer != ROOT.public_key:
            assert any(isinstance(by_hash[a], Grant) and by_hash[a].subject == record.issuer and log.verdict(a) is None for a in ancestors)
        for revocation in effective:
            if revocation.subject == record.issuer:
                assert record.hash in _ancestors(revocation, by_hash)
    assert all(revocation.subject not in (ROOT.public_key, ANYONE) for revocation in effective)


def test_a_thousand_record_log_evaluates_and_answers_from_its_cache():
    """Not a timing assert: evaluation is once per record set, and a change check reuses it."""
    keys = [identity_of(f"member {i}") for i in range(100)]
    log = log_of()
    for i in range(1000):
        log.add(grant(ROOT, keys[i % 100].public_key, paths=("src/*",), at=i, parents=log.heads if i % 50 == 0 else ()))
    assert log.admits(keys[0].public_key, 5)
    evaluation = log._evaluation
    assert evaluation is not None
    for key in keys:
        assert log.change_refusal(key.public_key, DOC, 1, ["src/a.py"], 5) is None
    assert log._evaluation is evaluation
