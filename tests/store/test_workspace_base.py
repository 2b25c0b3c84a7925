"""Base-relative splices: a splice at positions of the text a client read lands where it meant.

A client (an editor, an agent) reads a file's text and heads, computes a position in that
text, and splices with ``base=heads``; edits that arrived in between must not move its edit
into the wrong place, nor let its delete take characters it never saw. Peers here are real
Repos exchanging changes through the store path (workspace_replicas), with no daemon.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import InvalidInput
from store.workspace_errors import UnknownBase
from workspace_replicas import MakeRepo, Peer, Typed, assert_every_insert_survives, open_peers, read_with_heads, send, sync, two_peers_with

PATH = "notes.txt"


@pytest.fixture
def alice_bob(make_repo: MakeRepo) -> list[Peer]:
    return two_peers_with(PATH, "hello world", make_repo)


def read(peer: Peer) -> tuple[str, tuple[bytes, ...]]:
    return read_with_heads(peer, PATH)


# (bob's splice, then alice's at the base she read before it arrived, the text both end with).
# A splice is (position, delete, insert) in "hello world".
STALE_SPLICES = {
    "an insert lands before the character it was typed before": ((0, 0, "oh, "), (5, 0, ","), "oh, hello, world"),
    "a delete leaves text inserted inside its range": ((4, 0, "[bob]"), (2, 5, "LLO W"), "heLLO W[bob]orld"),
    "a delete of text already deleted deletes what is left": ((3, 5, ""), (1, 9, "i"), "hid"),
    # the documented tie: text inserted since at the very point comes first, whatever arrived when
    "a concurrent insert at the same point stays before ours": ((5, 0, "[bob]"), (5, 0, "[alice]"), "hello[bob][alice] world"),
}


@pytest.mark.parametrize(("bobs", "alices", "expected"), STALE_SPLICES.values(), ids=STALE_SPLICES.keys())
def test_a_stale_splice_lands_where_its_author_meant(
    alice_bob: list[Peer], bobs: tuple[int, int, str], alices: tuple[int, int, str], expected: str
) -> None:
    alice, bob = alice_bob
    _, base = read(alice)
    bob.ws.splice(PATH, *bobs, now_ms=bob.now())
    send(bob, alice)
    alice.ws.splice(PATH, *alices, now_ms=alice.now(), base=base)
    sync(alice, bob)
    assert read(alice)[0] == read(bob)[0] == expected


def test_without_base_the_same_position_lands_in_the_wrong_place(alice_bob: list[Peer]) -> None:
    """What the demo did before: the position is taken as one of the text now."""
    alice, bob = alice_bob
    bob.ws.splice(PATH, 0, 0, "oh, ", now_ms=bob.now())
    send(bob, alice)
    alice.ws.splice(PATH, 5, 0, ",", now_ms=alice.now())
    assert read(alice)[0] == "oh, h,ello world"


def test_a_base_of_now_is_a_plain_splice(alice_bob: list[Peer]) -> None:
    alice, _ = alice_bob
    _, base = read(alice)
    alice.ws.splice(PATH, 5, 6, "!", now_ms=alice.now(), base=base)
    assert read(alice)[0] == "hello!"


def test_unknown_base_heads_are_refused_and_change_nothing(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    bob.ws.write("other.txt", "other", now_ms=bob.now())
    send(bob, alice)
    _, other_base = alice.ws.read_with_heads("other.txt")  # heads of another file's doc
    bob.ws.splice(PATH, 0, 0, "bob: ", now_ms=bob.now())
    _, unsent_base = read(bob)  # a version alice has not received
    version, before = alice.ws.version(), read(alice)
    for base in (unsent_base, other_base, [b"\x01" * 32], [b"short"], []):
        with pytest.raises(UnknownBase, match="base"):
            alice.ws.splice(PATH, 0, 0, "x", now_ms=alice.now(), base=base)
    assert alice.ws.version() == version and read(alice) == before
    assert issubclass(UnknownBase, InvalidInput)


def test_a_range_outside_the_text_at_base_is_out_of_range_even_if_it_fits_now(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    _, base = read(alice)
    bob.ws.splice(PATH, 11, 0, " and more", now_ms=bob.now())
    send(bob, alice)
    version = alice.ws.version()
    with pytest.raises(InvalidInput, match="at base"):
        alice.ws.splice(PATH, 12, 0, "x", now_ms=alice.now(), base=base)
    with pytest.raises(InvalidInput, match="at base"):
        alice.ws.splice(PATH, 5, 7, "", now_ms=alice.now(), base=base)
    assert alice.ws.version() == version


# ----- the property: any stale bases, any edits, any delivery order -----

PEERS = ("alice", "bob", "carol")
INITIAL = "".join(chr(0x41 + i) for i in range(12))  # A..L; every inserted character is unique too
FIRST_INSERTED = 0x20000  # CJK extension B: astral (one code point, two UTF-16 units), none in INITIAL


step = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 2), st.integers(0, 99), st.integers(0, 3), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("read"), st.integers(0, 2)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 3), st.lists(step, max_size=14))
def test_every_inserted_character_survives_in_order_and_deletes_take_only_what_their_base_held(
    peer_count: int, steps: list[tuple[object, ...]]
) -> None:
    peers = open_peers(*PEERS[:peer_count])
    peers[0].ws.write(PATH, INITIAL, now_ms=peers[0].now())
    sync(*peers)
    bases = [read(peer) for peer in peers]  # each client's possibly stale view: text and heads
    fresh = (chr(code) for code in itertools.count(FIRST_INSERTED))
    splices: list[Typed] = []
    for kind, *args in steps:
        if kind == "read":
            (who,) = args
            bases[who % peer_count] = read(peers[who % peer_count])
        elif kind == "send":
            source, target = (peers[int(i) % peer_count] for i in args)
            if source is not target:
                send(source, target)
        else:
            who, position, delete, size, stale = (int(a) for a in args)
            peer = peers[who % peer_count]
            text, base = bases[who % peer_count] if stale else (read(peer)[0], None)
            position %= len(text) + 1
            delete = min(delete, len(text) - position)
            insert = "".join(next(fresh) for _ in range(size))
            peer.ws.splice(PATH, position, delete, insert, now_ms=peer.now(), base=base)
            splices.append(Typed(text, position, delete, insert))
    sync(*peers)
    final = read(peers[0])[0]
    assert all(read(peer)[0] == final for peer in peers[1:])
    assert_every_insert_survives(final, INITIAL, splices)
