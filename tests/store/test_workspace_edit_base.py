"""Edits at the version their author saw: ``Workspace.edit`` and the three-way ``write``.

A client reads a file's text and heads, computes edits in that text, and sends them with
``base=heads``. The store commits them as one change made AT base (Automerge isolation), so the
merge places them; the change is signed and stored like any other. Peers are real Repos
exchanging changes through the store path (workspace_replicas), with no daemon.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from store.repo import RepoEvent, StoreEvent
from store.workspace import CHAR_DIFF_PAIRS_MAX, Edit, text_edits
from store.workspace_errors import ContentTooLarge, InvalidEdit, NotFound, NotText, UnknownBase
from workspace_replicas import MakeRepo, Peer, Typed, assert_every_insert_survives, open_peers, read_with_heads, send, sync, two_peers_with

PATH = "notes.txt"


@pytest.fixture
def alice_bob(make_repo: MakeRepo) -> list[Peer]:
    return two_peers_with(PATH, "hello world", make_repo)


def read(peer: Peer) -> tuple[str, tuple[bytes, ...]]:
    return read_with_heads(peer, PATH)


def doc_of(peer: Peer) -> bytes:
    return peer.ws.node(PATH).doc_id


def test_edits_at_a_stale_base_are_one_change_made_there_signed_and_stored(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    _, base = read(alice)
    bob.ws.splice(PATH, 0, 0, "oh, ", now_ms=bob.now())
    send(bob, alice)
    events: list[RepoEvent] = []
    alice.repo.subscribe(events.append)

    result = alice.ws.edit(PATH, [Edit(11, 0, "!"), Edit(5, 0, ",")], base=base, now_ms=alice.now(), message="punctuate")

    assert read(alice)[0] == "oh, hello, world!"
    assert result.made_at == base and result.heads == read(alice)[1]
    assert result.change is not None and result.change in result.heads
    change = native.decode_change(alice.repo.document(alice.ws.space, doc_of(alice)).get_change_by_hash(result.change) or b"")
    assert tuple(change.deps) == base and change.actor == alice.key and change.message == "punctuate"
    (event,) = [e for e in events if isinstance(e, StoreEvent)]
    assert event.origin == "local" and event.hashes == (result.change,) and event.tip is not None
    assert event.tip.change_hash == result.change and event.changes == (change.raw,)
    assert alice.repo.verify() == []
    sync(alice, bob)
    assert read(bob)[0] == "oh, hello, world!"


def test_the_doc_cache_follows_after_an_edit_at_base(alice_bob: list[Peer], make_repo: MakeRepo) -> None:
    """After the isolated commit the cached document holds every change, at the merged heads:
    later remote changes apply, later local writes commit, and a reload agrees."""
    alice, bob = alice_bob
    _, base = read(alice)
    bob.ws.splice(PATH, 11, 0, " again", now_ms=bob.now())
    send(bob, alice)
    alice.ws.edit(PATH, [Edit(0, 1, "H")], base=base, now_ms=alice.now())
    send(alice, bob)
    bob.ws.splice(PATH, 0, 0, "> ", now_ms=bob.now())
    send(bob, alice)
    assert read(alice)[0] == "> Hello world again"
    alice.ws.splice(PATH, 0, 2, "", now_ms=alice.now())
    sync(alice, bob)
    assert read(alice) == read(bob) and read(alice)[0] == "Hello world again"
    heads = read(alice)[1]
    alice.repo.close()
    reopened = make_repo(alice.repo.identity, name="alice")
    if reopened.spaces():  # sqlite: the same file; in memory there is nothing to reopen
        document = reopened.document(alice.ws.space, doc_of(bob))
        assert tuple(sorted(document.heads())) == heads


def test_an_edit_behind_this_nodes_own_newer_change_stays_on_its_chain(alice_bob: list[Peer]) -> None:
    """Another local client wrote after this one read: the change is made at the base plus that
    write (an author's changes form one chain), and the edit still lands where it was meant."""
    alice, bob = alice_bob
    _, base = read(alice)
    alice.ws.splice(PATH, 0, 0, "[agent] ", now_ms=alice.now())  # the other local client
    bob.ws.splice(PATH, 11, 0, " [bob]", now_ms=bob.now())
    send(bob, alice)
    own = read(alice)[1]
    result = alice.ws.edit(PATH, [Edit(6, 5, "there")], base=base, now_ms=alice.now())
    assert read(alice)[0] == "[agent] hello there [bob]"
    assert result.made_at != base and set(result.made_at) <= set(own) | set(base)
    change = native.decode_change(alice.repo.document(alice.ws.space, doc_of(alice)).get_change_by_hash(result.change or b"") or b"")
    assert change.actor == alice.key and tuple(change.deps) == result.made_at
    sync(alice, bob)
    assert read(bob)[0] == "[agent] hello there [bob]"


def test_no_op_edits_make_no_change(alice_bob: list[Peer]) -> None:
    alice, _ = alice_bob
    text, base = read(alice)
    version = alice.ws.version()
    result = alice.ws.edit(PATH, [Edit(3), Edit(0, 0, "")], base=base)
    assert (result.change, result.heads, alice.ws.version(), read(alice)) == (None, base, version, (text, base))


def test_base_none_edits_the_text_now(alice_bob: list[Peer]) -> None:
    alice, _ = alice_bob
    result = alice.ws.edit(PATH, [Edit(0, 5, "HELLO")], base=None, now_ms=alice.now())
    assert read(alice) == ("HELLO world", result.heads)


def test_bad_edits_are_refused_naming_the_param_and_change_nothing(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write("data.bin", b"\x00\x01", now_ms=alice.now())
    _, base = read(alice)
    bob.ws.splice(PATH, 11, 0, " and more", now_ms=bob.now())
    send(bob, alice)
    bob.ws.splice(PATH, 0, 0, "!", now_ms=bob.now())
    _, unsent = read(bob)  # a version alice has not received
    document = alice.repo.document(alice.ws.space, doc_of(alice))
    before, version, heads = read(alice), alice.ws.version(), document.heads()
    refusals: list[tuple[object, type[Exception], str]] = [
        ([Edit(0, 3), Edit(2, 0, "x")], InvalidEdit, r"^edits: edits\[0\] and edits\[1\] overlap"),
        ([Edit(4, 2), Edit(1, 4)], InvalidEdit, r"^edits: edits\[1\] and edits\[0\] overlap"),
        ([Edit(0), Edit(12, 0, "x")], InvalidEdit, r"^edits\[1\]: cannot delete 0 characters at 12 .*11 characters at base"),
        ([Edit(5, 7)], InvalidEdit, r"^edits\[0\]: .*at base"),  # fits the text now, not at base
        ([Edit(-1)], InvalidEdit, r"^edits\[0\]: an Edit"),
        ([Edit(0, 0, "a\ud800")], InvalidEdit, r"^edits\[0\]: .*Unicode"),
        ([(0, 0, "x")], InvalidEdit, r"^edits\[0\]"),
        ("text", InvalidEdit, r"^edits: a list"),
        ([Edit(0, 0, "x" * (2**24))], ContentTooLarge, "limit"),
    ]
    for edits, error, message in refusals:
        with pytest.raises(error, match=message):
            alice.ws.edit(PATH, edits, base=base, now_ms=alice.now())  # type: ignore[arg-type]
    for bad_base in (unsent, [b"\x01" * 32], [b"short"], []):
        with pytest.raises(UnknownBase, match=r"^base:"):
            alice.ws.edit(PATH, [Edit(0, 0, "x")], base=bad_base, now_ms=alice.now())
    with pytest.raises(NotText, match="binary"):
        alice.ws.edit("data.bin", [Edit(0, 0, "x")], base=None, now_ms=alice.now())
    assert read(alice) == before and alice.ws.version() == version and document.heads() == heads


# ----- the three-way write -----


def test_a_whole_file_save_at_an_old_base_keeps_a_concurrent_remote_edit(alice_bob: list[Peer]) -> None:
    alice, bob = alice_bob
    alice.ws.write(PATH, "line one\nline two\nline three\n", now_ms=alice.now())
    sync(alice, bob)
    text, base = read(alice)  # alice's editor loads the file
    bob.ws.splice(PATH, text.index("three"), 0, "number ", now_ms=bob.now())
    send(bob, alice)  # arrives while alice types
    saved = text.replace("line one", "line ONE").replace("line two\n", "")
    alice.ws.write(PATH, saved, now_ms=alice.now(), base=base)
    assert read(alice)[0] == "line ONE\nline number three\n"
    sync(alice, bob)
    assert read(bob)[0] == "line ONE\nline number three\n"


def test_a_save_without_base_still_overwrites_what_it_did_not_see(alice_bob: list[Peer]) -> None:
    """Today's meaning, kept: the diff is against the text now."""
    alice, bob = alice_bob
    text, _ = read(alice)
    bob.ws.splice(PATH, 0, 0, "oh, ", now_ms=bob.now())
    send(bob, alice)
    alice.ws.write(PATH, text + "!", now_ms=alice.now())
    assert read(alice)[0] == "hello world!"


def test_a_write_at_base_of_a_removed_file_or_with_unknown_heads_is_refused(alice_bob: list[Peer]) -> None:
    alice, _ = alice_bob
    version = alice.ws.version()
    with pytest.raises(UnknownBase, match=r"^base:"):
        alice.ws.write(PATH, "x", now_ms=alice.now(), base=[b"\x02" * 32])
    with pytest.raises(NotFound, match="no file"):
        alice.ws.write("gone.txt", "x", now_ms=alice.now(), base=[b"\x02" * 32])
    assert alice.ws.version() == version


@given(st.text(st.sampled_from("ab\nc"), max_size=40), st.text(st.sampled_from("ab\nd"), max_size=40))
def test_text_edits_turn_the_old_text_into_the_new(old: str, new: str) -> None:
    result = old
    for edit in reversed(text_edits(old, new)):
        result = result[: edit.position] + edit.insert + result[edit.position + edit.delete :]
    assert result == new


def test_text_edits_of_a_huge_changed_run_replace_it_whole() -> None:
    old, new = "a" * 2_000, "b" * 2_000
    assert len(old) * len(new) > CHAR_DIFF_PAIRS_MAX
    assert text_edits(old, new) == [Edit(0, 2_000, new)]


# ----- the property: N replicas, stale bases, edit lists, any delivery order -----

PEERS = ("alice", "bob", "carol", "dave")
INITIAL = "".join(chr(0x41 + i) for i in range(12))  # A..L; every inserted character is unique too
FIRST_INSERTED = 0x20000  # astral code points, none in INITIAL


edit_spec = st.tuples(st.integers(0, 99), st.integers(0, 3), st.integers(0, 3))
step = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 3), st.lists(edit_spec, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("send"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("read"), st.integers(0, 3)),
)


def spread(text: str, specs: list[tuple[int, int, int]], fresh: itertools.count[int]) -> list[Edit]:
    """Non-overlapping edits of ``text`` from arbitrary numbers: positions sorted, ranges cut."""
    edits: list[Edit] = []
    floor = 0
    for position, delete, size in sorted(specs):
        position = floor + position % (len(text) - floor + 1)
        delete = min(delete, len(text) - position)
        edits.append(Edit(position, delete, "".join(chr(next(fresh)) for _ in range(size))))
        floor = position + delete
    return edits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 4), st.lists(step, max_size=14), st.randoms(use_true_random=False))
def test_every_inserted_character_survives_in_order_per_author_whatever_the_bases_and_delivery(
    peer_count: int, steps: list[tuple[object, ...]], rng: object
) -> None:
    peers = open_peers(*PEERS[:peer_count])
    peers[0].ws.write(PATH, INITIAL, now_ms=peers[0].now())
    sync(*peers)
    bases = [read(peer) for peer in peers]  # each client's possibly stale view: text and heads
    fresh = itertools.count(FIRST_INSERTED)
    made: list[Typed] = []
    for kind, *args in steps:
        if kind == "read":
            who = int(args[0]) % peer_count  # type: ignore[call-overload]
            bases[who] = read(peers[who])
        elif kind == "send":
            source, target = (peers[int(i) % peer_count] for i in args)  # type: ignore[call-overload]
            if source is not target:
                send(source, target)
        else:
            who_arg, specs, stale = args
            who = int(who_arg) % peer_count  # type: ignore[call-overload]
            peer = peers[who]
            text, base = bases[who] if stale else read(peer)
            edits = spread(text, specs, fresh)  # type: ignore[arg-type]
            result = peer.ws.edit(PATH, edits, base=base, now_ms=peer.now())
            if stale:
                bases[who] = (_applied(text, edits), (result.change,)) if result.made_at == base and result.change else read(peer)
            made.extend(Typed(text, e.position, e.delete, e.insert) for e in edits)
    order = list(itertools.permutations(peers, 2))
    rng.shuffle(order)  # type: ignore[attr-defined]
    for source, target in order:
        send(source, target)
    sync(*peers)
    final = read(peers[0])[0]
    assert all(read(peer)[0] == final for peer in peers[1:])
    assert_every_insert_survives(final, INITIAL, made)


def _applied(text: str, edits: list[Edit]) -> str:
    for edit in reversed(edits):
        text = text[: edit.position] + edit.insert + text[edit.position + edit.delete :]
    return text
